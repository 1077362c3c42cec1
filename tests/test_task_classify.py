"""Tests of `rnnlab train classify`: padding invariance, training, eval, sample, resume, every user error."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from rnnlab.cli.main import main
from rnnlab.torch.heads import ClassifierConfig, SequenceClassifier
from rnnlab.training.checkpoint import load_checkpoint
from task_support import assert_one_error_line, cli, one_thread  # noqa: F401 (one_thread: autouse)

# one thread: tiny models on a busy machine are many times faster without torch's thread pool
TINY = ["--hidden-size", "16", "--embedding-dim", "8", "--batch-size", "16", "--threads", "1", "--quiet"]
POS = ["good", "great", "fine", "lovely", "superb"]
NEG = ["bad", "awful", "poor", "boring", "dull"]
FILLER = ["the", "film", "was", "a", "plot", "very", "and"]


def sentiment_file(path: Path, n: int = 200, seed: int = 0, header: bool = True) -> Path:
    rng = np.random.default_rng(seed)
    rows = ["label\ttext"] if header else []
    for i in range(n):
        y = i % 2
        words = [
            *rng.choice(FILLER, rng.integers(1, 6)),
            rng.choice(POS if y else NEG),
            *rng.choice(FILLER, rng.integers(0, 4)),
        ]
        rows.append(f"{y}\t{' '.join(words)}")
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return sentiment_file(tmp_path_factory.mktemp("cls") / "train.tsv")


# ---------------------------------------------------------------------------------------------
# the model: padding never changes a prediction


@pytest.mark.parametrize("pooling", ["last", "max", "mean"])
@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
@pytest.mark.parametrize("bidirectional", [True, False])
def test_padding_never_changes_a_prediction(pooling, cell, bidirectional):
    torch.manual_seed(0)
    config = ClassifierConfig(
        vocab_size=50,
        num_classes=3,
        cell=cell,
        embedding_dim=8,
        hidden_size=16,
        num_layers=2,
        bidirectional=bidirectional,
        pooling=pooling,
        dropout=0.0,
    )
    model = SequenceClassifier(config).eval()
    seq = torch.randint(2, 50, (1, 5))
    alone = model(seq, torch.tensor([5]))[0]
    batch = torch.randint(2, 50, (4, 80))  # much longer neighbours...
    batch[2, :5] = seq[0]
    batch[2, 5:] = 7  # ...and garbage (not even <pad>) after the sequence's end
    in_batch = model(batch, torch.tensor([80, 41, 5, 33]))[2]
    torch.testing.assert_close(in_batch, alone, atol=1e-6, rtol=0)


def test_classifier_shapes_and_config_errors():
    model = SequenceClassifier(ClassifierConfig(vocab_size=10, num_classes=4, hidden_size=8, embedding_dim=4))
    assert tuple(model(torch.tensor([[2, 3, 0]]), torch.tensor([2])).shape) == (1, 4)
    with pytest.raises(ValueError, match="num_classes: expected at least 2"):
        ClassifierConfig(vocab_size=10, num_classes=1)
    with pytest.raises(ValueError, match="pooling: expected one of last, max, mean"):
        ClassifierConfig(vocab_size=10, num_classes=2, pooling="sum")


# ---------------------------------------------------------------------------------------------
# training, eval, sample


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, data: Path) -> Path:
    """A classify run trained on `data` (a held-out tenth for validation). Do not modify it."""
    out = tmp_path_factory.mktemp("runs") / "cls"
    rc = main(
        [
            "train",
            "classify",
            "--data",
            str(data),
            "--out",
            str(out),
            "--max-steps",
            "150",
            "--eval-every",
            "75",
            "--warmup-steps",
            "10",
            *TINY,
        ]
    )
    assert rc == 0
    return out


def test_train_writes_a_run_that_learns(run):
    ckpt = load_checkpoint(run)
    assert {"vocab", "labels", "task_options", "model_config", "train_config"} <= set(ckpt.configs)
    assert ckpt.configs["labels"]["labels"] == ["0", "1"]
    assert ckpt.state["task"] == "classify"
    assert (run / "best" / "checkpoint.json").exists() and (run / "metrics.jsonl").exists()
    last = [line for line in (run / "metrics.jsonl").read_text().splitlines() if line][-1]
    assert '"val_accuracy"' in last


def test_eval_and_sample(run, data, capsys):
    rc, out, _ = cli(capsys, "eval", run)
    assert rc == 0 and '"accuracy"' in out and "held out" in out
    import json

    record = json.loads(out)
    assert record["task"] == "classify" and record["accuracy"] >= 0.8, record
    rc, out, _ = cli(capsys, "eval", run / "best", "--data", data)
    assert rc == 0 and json.loads(out)["examples"] == 200
    rc, out, _ = cli(capsys, "sample", run, "--input", "the film was superb")
    assert rc == 0
    label, prob = out.split()
    assert label == "1" and 0.5 < float(prob) <= 1.0
    texts = tmp = run.parent / "texts.txt"
    tmp.write_text("very awful\nlovely plot\n\n", encoding="utf-8")
    rc, out, _ = cli(capsys, "sample", run, "--input-file", texts)
    assert rc == 0 and [line.split()[0] for line in out.splitlines()] == ["0", "1"]
    tmp.write_text("very awful\n\nlovely plot\n", encoding="utf-8")  # output line 2 would answer input line 3
    rc, out, err = cli(capsys, "sample", run, "--input-file", texts)
    assert (rc, out) == (2, "") and err == (
        f"error: --input-file: {texts} line 2 is blank; expected one text per line, so that output line N "
        "answers input line N (remove the blank lines)\n"
    )
    rc, out, err = cli(capsys, "sample", run, "--input-file", run.parent / "nope.txt")
    assert (rc, out) == (2, "") and err == f"error: --input-file: file not found: {run.parent / 'nope.txt'}\n"


def test_val_file_and_char_level(tmp_path, data, capsys):
    val = sentiment_file(tmp_path / "dev.csv", n=40, seed=1)
    val.write_text(val.read_text().replace("\t", ","), encoding="utf-8")  # CSV works too
    rc, out, err = cli(
        capsys,
        "train",
        "classify",
        "--data",
        data,
        "--val",
        val,
        "--level",
        "char",
        "--pooling",
        "last",
        "--out",
        tmp_path / "r",
        "--max-steps",
        "4",
        "--eval-every",
        "2",
        *TINY,
    )
    assert rc == 0, err
    assert load_checkpoint(tmp_path / "r").configs["vocab"]["level"] == "char"
    rc, out, _ = cli(capsys, "eval", tmp_path / "r")
    assert rc == 0 and "dev.csv" in out


def test_resume_continues_exactly(tmp_path, data, capsys):
    common = ["--data", data, "--schedule", "constant", "--eval-every", "5", *TINY]
    assert cli(capsys, "train", "classify", *common, "--out", tmp_path / "full", "--max-steps", "12")[0] == 0
    assert cli(capsys, "train", "classify", *common, "--out", tmp_path / "half", "--max-steps", "5")[0] == 0
    rc, _, err = cli(capsys, "train", "classify", "--resume", tmp_path / "half", "--max-steps", "12", "--quiet")
    assert rc == 0, err
    full, half = load_checkpoint(tmp_path / "full").weights, load_checkpoint(tmp_path / "half").weights
    for name in full:
        np.testing.assert_array_equal(full[name], half[name], err_msg=name)


# ---------------------------------------------------------------------------------------------
# user errors: one line, status 2 (1 for a diverged run), no traceback, nothing overwritten


def test_empty_file(tmp_path, capsys):
    empty = tmp_path / "empty.tsv"
    empty.write_text("")
    rc, _, err = cli(capsys, "train", "classify", "--data", empty, "--out", tmp_path / "r", *TINY)
    assert rc == 2
    assert_one_error_line(err, "empty", "empty.tsv")
    assert not (tmp_path / "r").exists()


def test_wrong_column_count_names_the_line(tmp_path, capsys):
    bad = tmp_path / "bad.tsv"
    bad.write_text("label\ttext\n1\tgood film\n0\tbad\tfilm\n", encoding="utf-8")
    rc, _, err = cli(capsys, "train", "classify", "--data", bad, "--out", tmp_path / "r", *TINY)
    assert rc == 2
    assert_one_error_line(err, "bad.tsv line 3", "expected 2", "got 3")


def test_no_data(tmp_path, capsys):
    rc, _, err = cli(capsys, "train", "classify", "--out", tmp_path / "r", *TINY)
    assert rc == 2
    assert_one_error_line(err, "--data is required")


def test_unknown_label_at_evaluation_names_label_and_line(tmp_path, data, run, capsys):
    val = tmp_path / "dev.tsv"
    val.write_text("label\ttext\n1\tgood\n0\tbad\nneutral\tso so\n", encoding="utf-8")
    rc, _, err = cli(capsys, "train", "classify", "--data", data, "--val", val, "--out", tmp_path / "r", *TINY)
    assert rc == 2
    assert_one_error_line(err, "dev.tsv line 4", "unknown label 'neutral'")
    rc, _, err = cli(capsys, "eval", run, "--data", val)
    assert rc == 2
    assert_one_error_line(err, "dev.tsv line 4", "unknown label 'neutral'")


def test_bad_option_values(tmp_path, data, capsys):
    rc, _, err = cli(
        capsys, "train", "classify", "--data", data, "--hidden-size", "0", "--out", tmp_path / "r", "--quiet"
    )
    assert rc == 2
    assert_one_error_line(err, "--hidden-size:", "positive integer", "0")
    rc, _, err = cli(
        capsys, "train", "classify", "--data", data, "--label-column", "stars", "--out", tmp_path / "r", "--quiet"
    )
    assert rc == 2
    assert_one_error_line(err, "no column named 'stars'")


def test_sample_needs_an_input(run, capsys):
    rc, _, err = cli(capsys, "sample", run)
    assert rc == 2
    assert_one_error_line(err, "--input")


def test_diverging_run_exits_1_and_keeps_the_good_checkpoint(tmp_path, data, capsys):
    out = tmp_path / "run"
    assert (
        cli(capsys, "train", "classify", "--data", data, "--out", out, "--max-steps", "4", "--eval-every", "2", *TINY)[
            0
        ]
        == 0
    )
    before = snapshot(out)
    rc, _, err = cli(capsys, "train", "classify", "--data", data, "--out", out, "--max-steps", "4", *TINY)
    assert rc == 2  # without --overwrite, a new run never takes the folder of another
    assert_one_error_line(err, "already holds a run")
    rc, _, err = cli(
        capsys,
        "train",
        "classify",
        "--data",
        data,
        "--out",
        out,
        "--overwrite",  # replaces the earlier run only once it has a checkpoint of its own
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
        *TINY,
    )
    assert rc == 1
    assert_one_error_line(err, "became", "kept")
    assert snapshot(out) == before


@pytest.mark.parametrize("task", ["classify", "tag", "forecast", "seq2seq"])
def test_every_task_option_has_help_and_a_default(task):
    import argparse

    from rnnlab.cli.main import COMMON_DEFAULTS, TASKS, build_parser

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    train = sub.choices["train"]
    parser = next(a for a in train._actions if isinstance(a, argparse._SubParsersAction)).choices[task]
    defaults = {**COMMON_DEFAULTS, **TASKS[task].defaults}
    optional_by_design = {
        "data",
        "out",
        "config",
        "resume",
        "max_time",
        "max_steps",
        "quiet",
        "val",
        "test",
        "max_vocab",
    }
    optional_by_design |= {"checkpoint_every", "patience", "threads", "keep_best", "momentum", "device", "precision"}
    optional_by_design |= {"plateau_factor", "plateau_patience", "eval_batch_size", "help", "header"}
    for action in parser._actions:
        assert action.help, f"{task} --{action.dest} has no help text"
        if action.dest not in optional_by_design:
            assert defaults.get(action.dest) is not None, f"{task} --{action.dest} has no default"


def test_a_changed_data_file_is_refused_by_eval_and_resume(tmp_path, capsys):
    # the validation split is held out of the data file by the seed: a changed file would move
    # examples between the splits without a word, so the file's SHA-256 is saved with the run
    data = sentiment_file(tmp_path / "s.tsv")
    out = tmp_path / "run"
    rc, _, err = cli(capsys, "train", "classify", "--data", data, "--out", out, "--max-steps", "4", *TINY)
    assert rc == 0, err
    assert load_checkpoint(out).configs["data_files"]["data"]["path"] == str(data)
    assert cli(capsys, "eval", out)[0] == 0
    rc, _, err = cli(capsys, "train", "--engine", "numpy", "--resume", out)
    assert rc == 2
    assert_one_error_line(err, f"--engine: does not apply to {out}, a classify run")
    rc, _, err = cli(capsys, "train", "lm", "--resume", out)  # the command that resumes it, named
    assert rc == 2
    assert_one_error_line(err, "was trained by `rnnlab train classify`, not `rnnlab train lm`")
    rc, stdout, err = cli(capsys, "train", "--resume", out, "--max-steps", "6")  # the task is the run's own
    assert rc == 0, err
    assert json.loads(stdout.strip().splitlines()[-1])["step"] == 6
    with open(data, "a", encoding="utf-8") as f:
        f.write("1\ta fine new line\n")
    before = snapshot(out)
    for argv in (["eval", out], ["train", "classify", "--resume", out, "--max-steps", "8"]):
        rc, _, err = cli(capsys, *argv)
        assert rc == 2
        assert_one_error_line(err, str(data), "is not the data file the run was trained on")
    assert snapshot(out) == before
    rc, stdout, _ = cli(capsys, "eval", out, "--data", data)  # scoring the file itself, as a file, is fine
    assert rc == 0 and '"split": "file"' in stdout


def test_a_text_column_read_as_labels_is_one_line(tmp_path, capsys):
    path = tmp_path / "swapped.tsv"
    path.write_text("".join(f"review number {k} was fine\tpos\n" for k in range(30)), encoding="utf-8")
    rc = main(["train", "classify", "--data", str(path), "--out", str(tmp_path / "run"), "--max-steps", "1"])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1, err
    assert "has 30 distinct labels in 30 examples (label column 0, e.g. 'review number 0 was fine')" in err
    assert "--label-column and --text-column" in err and not (tmp_path / "run").exists()


def test_options_that_do_not_apply_and_missing_runs_are_named(tmp_path, data, run, capsys):
    rc, _, err = cli(capsys, "eval", run, "--engine", "numpy")
    assert rc == 2
    assert_one_error_line(err, "--engine: does not apply to a classify run")
    rc, _, err = cli(capsys, "eval", run, "--data", data, "--split", "test")  # --data is what gets scored
    assert rc == 2
    assert_one_error_line(err, "split: picks one of the run's own splits", "--split test")
    # a mistyped folder, or a file inside a run, is not "a language model" whose options are wrong
    for where in (tmp_path / "no-such-run", run / "model.safetensors"):
        rc, _, err = cli(capsys, "sample", where, "--input", "a fine film")
        assert rc == 2
        assert_one_error_line(err, "not a checkpoint directory", str(where))


def test_header_option_overrides_the_detection(tmp_path, capsys):
    # column names the detection does not know, and a class seen once: the header read as an example
    intents = ["book_flight", "weather", "play_music", "set_alarm"]
    rows = ["intent\tquery"] + [f"{intents[i % 4]}\tplease do thing number {i}" for i in range(40)]
    data = tmp_path / "intents.tsv"
    data.write_text("\n".join([*rows, "cancel_order\tcancel my order"]) + "\n", encoding="utf-8")
    for flag, classes in (("--no-header", 6), ("--header", 5)):
        out = tmp_path / flag.strip("-")
        rc, _, err = cli(capsys, "train", "classify", "--data", data, "--out", out, flag, "--max-steps", "1", *TINY)
        assert rc == 0, err
        labels = json.loads((out / "labels.json").read_text(encoding="utf-8"))
        assert len(labels["labels"] if isinstance(labels, dict) else labels) == classes, labels
        assert ("intent" in json.dumps(labels)) is (flag == "--no-header")


def test_a_missing_val_or_test_file_names_its_option(tmp_path, data, capsys):
    for option in ("--val", "--test"):
        rc, _, err = cli(
            capsys, "train", "classify", "--data", data, option, tmp_path / "nope.tsv", "--out", tmp_path / "r", *TINY
        )
        assert rc == 2
        assert_one_error_line(err, f"error: {option}: file not found: {tmp_path / 'nope.tsv'}")
        assert not (tmp_path / "r").exists()
