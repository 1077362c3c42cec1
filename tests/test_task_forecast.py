"""Tests of `rnnlab train forecast`: windows and normalisation, beating the naive forecast, sample, every user error."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from rnnlab.cli.main import main
from rnnlab.cli.tasks import load_task_run
from rnnlab.data.timeseries import Normalizer
from rnnlab.torch.heads import Forecaster, ForecasterConfig
from rnnlab.training.checkpoint import load_checkpoint
from task_support import assert_one_error_line, cli, one_thread  # noqa: F401 (one_thread: autouse)

TINY = ["--hidden-size", "16", "--batch-size", "16", "--threads", "1", "--quiet"]


def wave(n: int = 300) -> np.ndarray:
    # a period-12 wave around 1000 (far from 0 and 1: predictions must be put back into these units)
    t = np.arange(n)
    return 1000.0 + 50.0 * np.sin(2 * np.pi * t / 12) + 0.5 * np.cos(t / 7)


@pytest.fixture(scope="module")
def series_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ts") / "wave.csv"
    path.write_text(
        "month,passengers\n" + "".join(f"2000-{i},{v:.6f}\n" for i, v in enumerate(wave())), encoding="utf-8"
    )
    return path


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, series_file: Path) -> Path:
    out = tmp_path_factory.mktemp("runs") / "fc"
    argv = [
        "train",
        "forecast",
        "--data",
        series_file,
        "--column",
        "passengers",
        "--input-len",
        "12",
        "--horizon",
        "3",
        "--test-fraction",
        "0.1",
        "--out",
        out,
        "--max-steps",
        "200",
        "--eval-every",
        "200",
        "--lr",
        "1e-2",
        *TINY,
    ]
    assert main([str(a) for a in argv]) == 0
    return out


def test_forecaster_shapes_and_residual_start():
    model = Forecaster(ForecasterConfig(input_len=5, horizon=2, hidden_size=8))
    x = torch.randn(3, 5)
    # the residual head starts at zero: an untrained model is the naive last-value forecast
    torch.testing.assert_close(model(x), x[:, -1:].expand(3, 2))
    assert tuple(Forecaster(ForecasterConfig(input_len=5, horizon=4, residual=False))(x).shape) == (3, 4)


def test_run_beats_the_naive_forecast_and_saves_the_normalizer(run, series_file, capsys):
    ckpt = load_checkpoint(run)
    norm = Normalizer.from_json(ckpt.configs["normalizer"])
    assert json.loads((run / "normalizer.json").read_text())["type"] == "normalizer"
    n = len(wave())
    train_part = wave()[: n - round(n * 0.1) - round(n * 0.1)]  # last tenths: validation, test
    np.testing.assert_allclose(norm.mean, train_part.mean(), rtol=1e-6)  # fitted on the TRAIN part only
    rc, out, _ = cli(capsys, "eval", run)
    m = json.loads(out)
    assert rc == 0 and m["task"] == "forecast"
    assert m["mse"] < 0.5 * m["naive_mse"], m  # original units, better than "tomorrow is like today"
    np.testing.assert_allclose(m["rmse"] ** 2, m["mse"])
    rc, out, _ = cli(capsys, "eval", run, "--split", "test")
    assert rc == 0 and json.loads(out)["split"] == "test"
    last = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()][-1]
    assert "test_mse" in last and "val_naive_mse" in last


def test_sample_forecasts_the_next_values_in_original_units(run, series_file, capsys):
    rc, out, _ = cli(capsys, "sample", run)  # the end of the training series
    values = [float(v) for v in out.split()]
    assert rc == 0 and len(values) == 3
    truth = 1000.0 + 50.0 * np.sin(2 * np.pi * np.arange(300, 303) / 12)
    assert np.abs(np.array(values) - truth).max() < 25.0, (values, truth)
    rc, out, err = cli(capsys, "sample", run, "--horizon", "7", "--input", " ".join(f"{v:.4f}" for v in wave(40)))
    assert rc == 0 and len(out.split()) == 7 and "recursively" in err
    task, model = load_task_run(run, load_data=False)
    direct = task.forecast(model, wave(40), 3)
    np.testing.assert_allclose(direct, [float(v) for v in out.split()[:3]], rtol=1e-5)


def test_one_column_file_without_header(tmp_path, capsys):
    path = tmp_path / "plain.txt"
    path.write_text("".join(f"{v}\n" for v in wave(120)), encoding="utf-8")
    rc, out, err = cli(
        capsys,
        "train",
        "forecast",
        "--data",
        path,
        "--input-len",
        "6",
        "--out",
        tmp_path / "r",
        "--max-steps",
        "3",
        "--eval-every",
        "3",
        *TINY,
    )
    assert rc == 0, err
    assert "val_naive_mse" in out


# ---------------------------------------------------------------------------------------------
# user errors


def test_empty_file(tmp_path, capsys):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    rc, _, err = cli(capsys, "train", "forecast", "--data", empty, "--out", tmp_path / "r", *TINY)
    assert rc == 2
    assert_one_error_line(err, "empty", "empty.csv")


@pytest.mark.parametrize(
    ("cell", "message"),
    [
        ("nan", "line 5, column 'value': expected a finite number, got 'nan'"),
        ("", "line 5, column 'value': expected a finite number, got an empty cell"),
    ],
)
def test_nan_in_the_series_names_line_and_column(tmp_path, capsys, cell, message):
    path = tmp_path / "bad.csv"
    rows = [f"{i},{v}" for i, v in enumerate(wave(60))]
    rows[3] = f"3,{cell}"
    path.write_text("t,value\n" + "\n".join(rows) + "\n", encoding="utf-8")
    rc, _, err = cli(capsys, "train", "forecast", "--data", path, "--column", "value", "--out", tmp_path / "r", *TINY)
    assert rc == 2
    assert_one_error_line(err, "bad.csv", message)


def test_short_row_names_the_line(tmp_path, capsys):
    path = tmp_path / "short.csv"
    path.write_text("a,b,value\n1,2,3\n1,2\n", encoding="utf-8")
    rc, _, err = cli(capsys, "train", "forecast", "--data", path, "--column", "value", "--out", tmp_path / "r", *TINY)
    assert rc == 2
    assert_one_error_line(err, "short.csv line 3", "expected 3 columns", "got 2")


def test_series_too_short_for_the_windows(tmp_path, capsys):
    path = tmp_path / "few.csv"
    path.write_text("".join(f"{v}\n" for v in wave(20)), encoding="utf-8")
    rc, _, err = cli(capsys, "train", "forecast", "--data", path, "--input-len", "24", "--out", tmp_path / "r", *TINY)
    assert rc == 2
    assert_one_error_line(err, "--input-len 24", "few.csv")


def test_unknown_column(tmp_path, series_file, capsys):
    rc, _, err = cli(
        capsys, "train", "forecast", "--data", series_file, "--column", "sales", "--out", tmp_path / "r", *TINY
    )
    assert rc == 2
    assert_one_error_line(err, "no column named 'sales'", "'passengers'")


def test_sample_input_must_be_numbers(run, capsys):
    rc, _, err = cli(capsys, "sample", run, "--input", "1 2 three")
    assert rc == 2
    assert_one_error_line(err, "--input", "numbers")
    rc, _, err = cli(capsys, "sample", run, "--input", "1 2 3")
    assert rc == 2
    assert err == "error: --input: the model reads 12 values (--input-len), the given series has 3\n"
    rc, _, err = cli(capsys, "sample", run, "--input", "nan " + " ".join(["1"] * 11))
    assert (rc, err) == (2, "error: --input: the given series holds NaN or infinite values\n")
    # --data is not ignored beside --input
    rc, _, err = cli(capsys, "sample", run, "--input", " ".join(["1"] * 12), "--data", run / "missing.csv")
    assert (rc, err) == (2, "error: sample: give --input or --data, not both\n")


def test_diverging_run_exits_1_and_keeps_the_good_checkpoint(tmp_path, series_file, capsys):
    out = tmp_path / "run"
    common = ["--data", series_file, "--out", out, *TINY]
    assert cli(capsys, "train", "forecast", *common, "--max-steps", "2", "--eval-every", "2")[0] == 0
    before = {str(p.relative_to(out)): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    rc, _, err = cli(
        capsys,
        "train",
        "forecast",
        *common,
        "--lr",
        "1e30",
        "--optimizer",
        "sgd",
        "--warmup-steps",
        "0",
        "--max-steps",
        "20",
        "--eval-every",
        "10",
        "--overwrite",  # replaces the earlier run only once it has a checkpoint of its own
    )
    assert rc == 1
    assert_one_error_line(err, "became", "kept")
    assert {str(p.relative_to(out)): p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
