"""The `init-compare` and `clipping` experiments run end to end and measure what they claim.

Each is run twice through the CLI with --quick and the same seed: outputs exist and parse,
summary.json repeats exactly, and one property of the measured data holds.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
from pathlib import Path

import numpy as np
import pytest

from rnnlab.cli.main import main

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def run_twice(tmp: Path, name: str) -> tuple[Path, Path]:
    outs = (tmp / f"{name}-a", tmp / f"{name}-b")
    for out in outs:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            assert main(["experiment", name, "--out", str(out), "--quick", "--seed", "0"]) == 0
    return outs


def all_numbers(obj) -> list[float]:
    if isinstance(obj, bool):
        return []
    if isinstance(obj, (int, float)):
        return [float(obj)]
    if isinstance(obj, dict):
        return [x for v in obj.values() for x in all_numbers(v)]
    if isinstance(obj, list):
        return [x for v in obj for x in all_numbers(v)]
    return []


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def check_outputs(out: Path, png: str, csvs: list[str], keys: list[str]) -> dict:
    data = (out / png).read_bytes()
    assert data[:8] == PNG_MAGIC and len(data) > 1000
    import matplotlib.image

    assert matplotlib.image.imread(out / png).ndim == 3
    for name in csvs:
        assert read_csv(out / name)
    assert (out / "summary.txt").read_text(encoding="utf-8").strip()
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    for k in ["experiment", "summary", *keys]:
        assert k in summary, k
    nums = all_numbers(summary)
    assert nums and all(math.isfinite(x) for x in nums)
    return summary


def test_init_compare_orthogonal_and_identity_have_unit_singular_values(tmp_path):
    a, b = run_twice(tmp_path, "init-compare")
    keys = ["largest_singular_value", "grad_norm_t0", "final_loss", "baseline_mse", "step_below_half_baseline"]
    summary = check_outputs(
        a, "init_compare.png", ["singular_values.csv", "gradient_flow.csv", "loss_curves.csv"], keys
    )
    assert json.loads((a / "summary.json").read_text()) == json.loads((b / "summary.json").read_text())

    W = np.load(a / "initial_w_hh.npz")
    H = W["identity"].shape[0]
    np.testing.assert_array_equal(W["identity"], np.eye(H))
    np.testing.assert_allclose(W["orthogonal"] @ W["orthogonal"].T, np.eye(H), atol=1e-12)
    rows = read_csv(a / "singular_values.csv")
    for scheme in ("orthogonal", "identity"):
        np.testing.assert_allclose([float(r[scheme]) for r in rows], 1.0, atol=1e-12)
    # the random inits are not orthogonal: their spectra spread out
    assert max(float(r["xavier"]) for r in rows) > 1.2 * min(float(r["xavier"]) for r in rows)
    assert summary["largest_singular_value"]["orthogonal"] == pytest.approx(1.0)


def test_clipping_keeps_runs_finite_and_norms_under_the_threshold(tmp_path):
    a, b = run_twice(tmp_path, "clipping")
    summary = check_outputs(a, "clipping.png", ["clipping.csv"], ["none", "value", "norm", "lr", "steps"])
    assert json.loads((a / "summary.json").read_text()) == json.loads((b / "summary.json").read_text())

    rows = read_csv(a / "clipping.csv")
    by_mode: dict[str, list[dict]] = {}
    for r in rows:
        by_mode.setdefault(r["clip"], []).append(r)
    # the learning rate really is too high: the unclipped run spikes
    assert summary["none"]["spike_step"] is not None
    for mode in ("value", "norm"):
        assert summary[mode]["nonfinite_step"] is None
        assert len(by_mode[mode]) == summary["steps"]
        assert all(math.isfinite(float(r["loss"])) for r in by_mode[mode])
    threshold = summary["norm"]["threshold"]
    post = np.array([float(r["grad_norm_post_clip"]) for r in by_mode["norm"]])
    pre = np.array([float(r["grad_norm_pre_clip"]) for r in by_mode["norm"]])
    assert np.all(post <= threshold * (1 + 1e-9))
    assert np.any(pre > threshold)  # clipping did act
    np.testing.assert_allclose(post[pre <= threshold], pre[pre <= threshold])  # and only when needed
    value = summary["value"]["threshold"]
    with_value = [float(r["grad_norm_post_clip"]) for r in by_mode["value"]]
    H = summary["hidden_size"]
    n_params = H * H + H * 2 + 2 * H + H + 1  # W_hh, W_ih, two biases, read-out weight and bias
    assert max(with_value) <= value * math.sqrt(n_params) * (1 + 1e-9)
    # the summary says whether each finished run beat predicting the mean, against the measured baseline
    baseline = summary["baseline_mse"]
    for mode in ("value", "norm"):
        verdict = "below" if summary[mode]["final_loss"] < baseline else "not below"
        assert f"{verdict} the {baseline:.4g} of predicting the mean" in summary["summary"]
