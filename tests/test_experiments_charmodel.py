"""The character-model experiments (hidden-states, lstm-gates, temperature), the neuron page and the report.

Everything runs with --quick on a tiny text written here, so the module takes seconds.
"""

from __future__ import annotations

import csv
import html
import json
import math
import re
import struct
from pathlib import Path

import numpy as np
import pytest

from rnnlab.cli.main import main
from rnnlab.config import SampleConfig
from rnnlab.experiments import EXPERIMENTS, Experiment, charmodel
from rnnlab.experiments.charmodel import (
    correlate_units,
    lstm_gate_trace,
    model_trace,
    sample_with_entropy,
    text_features,
)
from rnnlab.experiments.report import ExperimentsFailed, run_all
from rnnlab.experiments.visualize import write_neuron_page
from rnnlab.generation.sample import sample_lm
from rnnlab.scratch.models import LanguageModel
from rnnlab.training.lm import load_lm

NAMES = ("hidden-states", "lstm-gates", "temperature")
FILES = {
    "hidden-states": ("hidden_states.png", "hidden_states.csv", "unit_correlations.csv"),
    "lstm-gates": ("lstm_gates.png", "lstm_gates.json", "gate_stats.csv"),
    "temperature": ("temperature.png", "entropy.csv", "samples.json", "samples.txt"),
}
TEXT = (
    'First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak. "Who is it?" he said '
    "(quietly).\n\nFirst Citizen:\nYou are all resolved rather to die than to famish?\n\nAll:\nResolved. resolved. "
    '[Exit] "We know <it> & that," they cried {softly}.\n\n'
) * 8


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">II", data[16:24])


def numbers(obj):
    """Every number in a JSON value (bools excluded)."""
    if isinstance(obj, bool) or obj is None or isinstance(obj, str):
        return
    if isinstance(obj, (int, float)):
        yield obj
    elif isinstance(obj, dict):
        for v in obj.values():
            yield from numbers(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from numbers(v)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("corpus") / "tiny.txt"
    path.write_text(TEXT, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def runs(tmp_path_factory, corpus) -> Path:
    """The three experiments once each through the CLI, seed 0."""
    out = tmp_path_factory.mktemp("runs")
    charmodel._TRAINED.clear()
    for name in NAMES:
        assert (
            main(["experiment", name, "--quick", "--seed", "0", "--data", str(corpus), "--out", str(out / name)]) == 0
        )
    return out


@pytest.mark.parametrize("name", NAMES)
def test_outputs_are_complete(runs: Path, name: str):
    d = runs / name
    for f in FILES[name] + ("summary.txt", "summary.json"):
        assert (d / f).is_file(), f"{name}: {f} missing"
    w, h = png_size(d / FILES[name][0])
    assert w > 500 and h > 300
    for f in FILES[name]:
        if f.endswith(".csv"):
            with open(d / f, newline="", encoding="utf-8") as fh:
                rows = list(csv.reader(fh))
            assert len(rows) > 1 and all(len(r) == len(rows[0]) for r in rows)
        elif f.endswith(".json"):
            json.loads((d / f).read_text(encoding="utf-8"))
    summary = json.loads((d / "summary.json").read_text(encoding="utf-8"))
    assert summary["experiment"] == name
    assert summary["summary"] == (d / "summary.txt").read_text(encoding="utf-8").strip()
    assert all(math.isfinite(x) for x in numbers(summary))
    assert summary["train_steps"] == charmodel.QUICK_MODEL_SETTINGS["max_steps"]
    # the summary quotes the measured numbers it stores
    assert f"{summary['val_loss']:.3f}" in summary["summary"]


def test_hidden_states_quote_the_data(runs: Path):
    s = json.loads((runs / "hidden-states" / "summary.json").read_text())
    with open(runs / "hidden-states" / "unit_correlations.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == s["hidden_size"]
    for sel in s["selected_units"]:
        if sel["r"] is not None:
            csv_r = float(rows[sel["unit"]][f"r_{sel['feature']}"])
            assert csv_r == pytest.approx(sel["r"], abs=1e-5)
            assert f"unit {sel['unit']} correlates most with the" in s["summary"]
            # the selected unit is the best of all units for its feature
            best = max(abs(float(r[f"r_{sel['feature']}"])) for r in rows)
            assert abs(csv_r) == pytest.approx(best, abs=1e-5)


def test_lstm_gates_summary_is_measured(runs: Path):
    s = json.loads((runs / "lstm-gates" / "summary.json").read_text())
    assert s["engine_max_abs_diff_h"] < 1e-5 and s["engine_max_abs_diff_c"] < 1e-4
    assert 0 < s["mean_forget_gate"] < 1
    f = s["gates"]["f"]
    assert s["forget_saturated_fraction"] == pytest.approx(f["above_0_9"] + f["below_0_1"])
    shown = json.loads((runs / "lstm-gates" / "lstm_gates.json").read_text())
    assert set(shown["values"]) == set("figoch")
    v = np.array(shown["values"]["f"])
    assert v.shape == (len(shown["text"]), shown["units"]) and ((v >= 0) & (v <= 1)).all()


def test_temperature_entropy_rises(runs: Path):
    s = json.loads((runs / "temperature" / "summary.json").read_text())
    ent = s["entropy_nats"]
    assert s["temperatures"] == sorted(s["temperatures"])
    assert ent[-1] > ent[0] and s["entropy_rises"] >= len(ent) - 2
    assert all(0 <= e <= s["max_entropy_nats"] + 1e-9 for e in ent)
    samples = json.loads((runs / "temperature" / "samples.json").read_text())
    assert [len(t["samples"]) for t in samples["temperatures"]] == [s["samples_per_temperature"]] * len(ent)
    assert all(len(x) == s["sample_length"] for t in samples["temperatures"] for x in t["samples"])


def test_deterministic_and_report(runs: Path, corpus: Path, tmp_path: Path):
    charmodel._TRAINED.clear()  # train again from scratch, not a copy
    report = run_all(tmp_path, seed=0, quick=True, data=str(corpus), names=list(NAMES))
    for name in NAMES:
        a = json.loads((runs / name / "summary.json").read_text())
        b = json.loads((tmp_path / name / "summary.json").read_text())
        assert a == b, name
        assert b["settings"] == {"seed": 0, "quick": True, "data": str(corpus)}  # what reproduces the run
        for f in FILES[name][1:]:
            assert (runs / name / f).read_bytes() == (tmp_path / name / f).read_bytes(), f"{name}/{f}"
    page = report.read_text(encoding="utf-8")
    assert page.count('src="data:image/png;base64,') == 3 and 'href="#exp-temperature"' in page
    rec = json.loads((tmp_path / "report.json").read_text())
    assert [e["name"] for e in rec["experiments"]] == list(NAMES) and rec["failed"] == []
    assert all(e["ok"] and e["seconds"] > 0 and e["summary"] for e in rec["experiments"])


def test_run_all_reports_failures_and_raises(monkeypatch, tmp_path: Path):
    def good(out_dir, *, seed=0, quick=False, data=None):
        (out_dir / "summary.txt").write_text("fine\n")
        return {"experiment": "zz-good", "summary": "fine", "x": 1.0}

    def bad(out_dir, *, seed=0, quick=False, data=None):
        raise ValueError("boom <script>")

    monkeypatch.setitem(EXPERIMENTS, "zz-good", Experiment("zz-good", "Good", good))
    monkeypatch.setitem(EXPERIMENTS, "zz-bad", Experiment("zz-bad", "Bad", bad))
    lines = []
    with pytest.raises(ExperimentsFailed, match=r"1 of 2 experiment\(s\) failed: zz-bad"):
        run_all(tmp_path, names=["zz-bad", "zz-good"], log=lines.append)
    page = (tmp_path / "report.html").read_text()
    assert "ValueError: boom &lt;script&gt;" in page and "<script>" not in page
    rec = json.loads((tmp_path / "report.json").read_text())
    assert rec["failed"] == ["zz-bad"] and rec["experiments"][1]["figures"] == {"x": 1.0}
    assert any("zz-bad: FAILED" in line for line in lines)


def test_gate_recomputation_matches_engine(runs: Path):
    run = load_lm(runs / "lstm-gates" / "model")
    # float64 twin of the trained model: the step-by-step equations must agree to rounding
    m64 = LanguageModel(run.model_config, dtype=np.float64)
    m64.load_state_dict(run.model.state_dict())
    m64.eval()
    ids = run.vocab.encode(TEXT[:300])
    x = m64.embedding.forward(ids[None])
    m64.rnn.forward(x, None)
    cache = m64.rnn._cache["caches"][0]
    cs, _, acts = cache.kernel_cache
    gates = lstm_gate_trace(m64.params, m64.params["embedding.weight"][ids])
    H = run.model_config.hidden_size
    np.testing.assert_allclose(gates["h"], cache.hs[1:, :, 0], atol=1e-6)
    np.testing.assert_allclose(gates["c"], cs[1:, :, 0], atol=1e-6)
    for k, name in enumerate("ifgo"):
        np.testing.assert_allclose(gates[name], acts[:, k * H : (k + 1) * H, 0], atol=1e-6)
    tr = model_trace(m64, ids)
    np.testing.assert_allclose(tr.h, gates["h"], atol=1e-6)
    np.testing.assert_allclose(tr.c, gates["c"], atol=1e-6)


def test_sampling_with_entropy_is_rnnlab_sample(runs: Path):
    run = load_lm(runs / "temperature" / "model")
    texts, ent = sample_with_entropy(run.model, run.vocab, "All:\n", temperature=0.7, length=30, num_samples=3, seed=5)
    ref = sample_lm(
        run.model, run.vocab, SampleConfig(length=30, num_samples=3, temperature=0.7, prime="All:\n", seed=5)
    )
    assert ["All:\n" + t for t in texts] == ref
    assert ent.shape == (3, 30) and (ent > 0).all() and (ent <= math.log(len(run.vocab)) + 1e-9).all()


def test_text_features_and_correlation():
    f = text_features('ab "c(d)"\nxY')
    assert f["in_quotes"].tolist() == [0, 0, 0, 1, 1, 1, 1, 1, 0, 0, 0, 0]
    assert f["in_brackets"].tolist() == [0, 0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0]
    assert f["column"].tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1]
    assert f["uppercase"].tolist()[-1] == 1
    rng = np.random.default_rng(0)
    feat = rng.normal(size=200)
    acts = np.stack([feat * 2 + 1, -feat, rng.normal(size=200), np.zeros(200)], axis=1)
    r = correlate_units(acts, feat)
    assert r[0] == pytest.approx(1) and r[1] == pytest.approx(-1) and abs(r[2]) < 0.3 and r[3] == 0
    assert r[2] == pytest.approx(np.corrcoef(acts[:, 2], feat)[0, 1])
    assert correlate_units(acts, np.ones(200)) is None


def page_data(page: str) -> dict:
    m = re.search(r'<script type="application/json" id="neuron-data">(.*?)</script>', page, re.S)
    return json.loads(m.group(1))


def test_neuron_page(runs: Path, corpus: Path, tmp_path: Path, capsys):
    out = tmp_path / "sub" / "page.html"
    assert (
        main(
            [
                "visualize",
                str(runs / "hidden-states" / "model"),
                "--text",
                str(corpus),
                "--out",
                str(out),
                "--max-chars",
                "500",
            ]
        )
        == 0
    )
    assert json.loads(capsys.readouterr().out) == {"page": str(out)}
    page = out.read_text(encoding="utf-8")
    data = page_data(page)
    shown = TEXT[:500]
    assert data["text"] == shown and data["length"] == 500
    text_div = re.search(r'<div id="text">(.*?)</div>', page, re.S).group(1)
    assert text_div.count('class="ch') == 500  # one span per character, newlines included
    assert text_div.count("<br>") == shown.count("\n")
    assert "&lt;it&gt; &amp;" not in text_div  # escaped character by character...
    assert '<span class="ch" data-i="{}">&lt;</span>'.format(shown.index("<")) in text_div  # ...like this
    assert "<it>" not in page.split('<script type="application/json"')[0]
    assert re.search(r"\bsrc=|\bhref=\"http|@import|url\(", page) is None  # nothing external
    assert "</script>" not in data["text"] and page.count("</script>") == 2
    for ids, probs in zip(data["top_ids"], data["top_probs"], strict=True):
        assert len(ids) == 5 == len(set(ids)) and probs == sorted(probs, reverse=True) and sum(probs) <= 1.001
    keys = [s["key"] for s in data["series"]]
    assert keys == ["h", "c"]
    H = data["hidden_size"]
    for s in data["series"]:
        import base64

        q = np.frombuffer(base64.b64decode(s["values_b64"]), dtype=np.int8).reshape(H, 500)
        assert np.allclose(q.mean(axis=1) / 127, s["mean"], atol=0.01)
        assert s["top"]["in_quotes"] is not None and len(s["top"]["in_quotes"]) == 5
        u = s["top"]["in_quotes"][0]["unit"]
        assert abs(s["top"]["in_quotes"][0]["r"]) == pytest.approx(max(abs(x) for x in s["corr"]["in_quotes"]))
        assert f'data-series="{s["key"]}" data-unit="{u}"' in page
    assert html.escape("hidden state h") in page


def test_neuron_page_max_chars_and_unknown_characters(runs: Path, tmp_path: Path):
    text = tmp_path / "t.txt"
    text.write_text("All: ž speak\n" * 10, encoding="utf-8")  # 'ž' is not in the model's vocabulary
    out = write_neuron_page(runs / "hidden-states" / "model", text, tmp_path / "p.html", max_chars=26)
    data = page_data(out.read_text(encoding="utf-8"))
    assert data["text"] == "All:  speak\nAll:  speak\n" and data["dropped_chars"] == 2
    with pytest.raises(ValueError, match="max_chars: expected a positive integer, got 0"):
        write_neuron_page(runs / "hidden-states" / "model", text, tmp_path / "p.html", max_chars=0)


@pytest.mark.parametrize("which", ["checkpoint", "text"])
def test_visualize_missing_input_exits_2(runs: Path, corpus: Path, tmp_path: Path, capsys, which: str):
    ckpt = tmp_path / "nope" if which == "checkpoint" else runs / "hidden-states" / "model"
    text = tmp_path / "nope.txt" if which == "text" else corpus
    assert main(["visualize", str(ckpt), "--text", str(text), "--out", str(tmp_path / "p.html")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and "nope" in err
    if which == "text":
        assert err == f"error: --text: file not found: {text}\n"
    assert not (tmp_path / "p.html").exists()


def test_a_corpus_too_short_for_an_experiment_names_no_training_option(tmp_path: Path, capsys):
    short = tmp_path / "short.txt"
    short.write_text("To be, or not to be. " * 12, encoding="utf-8")  # 252 characters
    assert main(["experiment", "hidden-states", "--quick", "--data", str(short), "--out", str(tmp_path / "o")]) == 2
    assert capsys.readouterr().err.startswith(
        f"error: data: {short} is too short for this experiment: its training split (the first 90%) has 226 characters"
    )
    assert not (tmp_path / "o").exists()


def test_experiment_without_corpus_exits_2(tmp_path: Path, capsys):
    assert (
        main(
            ["experiment", "temperature", "--quick", "--data", str(tmp_path / "none.txt"), "--out", str(tmp_path / "o")]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "none.txt" in err
    assert not (tmp_path / "o").exists()  # nothing half-written, not even the folder


def test_experiment_all_checks_its_data_first(tmp_path: Path, capsys):
    empty = tmp_path / "empty.txt"
    empty.write_text("", encoding="utf-8")
    out = tmp_path / "deep" / "all"
    assert main(["experiment", "all", "--quick", "--data", str(empty), "--out", str(out)]) == 2
    assert capsys.readouterr().err == f"error: data: file is empty: {empty}\n"
    assert not (tmp_path / "deep").exists()


def test_visualize_needs_a_character_language_model(tmp_path: Path, capsys):
    text = tmp_path / "t.txt"
    text.write_text("the cat sat on the mat. " * 60, encoding="utf-8")
    runs = []
    for extra in (["lm", "--level", "word"], ["classify"]):
        if extra[0] == "classify":
            text_or_tsv = tmp_path / "c.tsv"
            text_or_tsv.write_text("".join(f"{i % 2}\tthe cat {i % 2}\n" for i in range(60)), encoding="utf-8")
        else:
            text_or_tsv = text
        out = tmp_path / extra[0] / extra[-1]
        argv = ["train", *extra, "--data", str(text_or_tsv), "--out", str(out), "--max-steps", "2", "--quiet"]
        argv += ["--hidden-size", "8", "--embedding-dim", "8", "--batch-size", "2", "--threads", "1"]
        assert main(argv) == 0, capsys.readouterr().err
        runs.append(out)
    capsys.readouterr()
    for run, needle in zip(runs, ["is a word-level language model", "is a classify run"], strict=True):
        assert main(["visualize", str(run), "--text", str(text), "--out", str(tmp_path / "p.html")]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and needle in err, err
    assert not (tmp_path / "p.html").exists()
