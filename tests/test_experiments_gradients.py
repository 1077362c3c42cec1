"""The gradient experiments (`gradient-flow`, `gradient-vs-length`, `bptt-gradients`) run end to end.

Each is run twice through the CLI with --quick and the same seed: the outputs must exist and parse,
summary.json must repeat exactly, and one property of the measured numbers must hold that would
fail if the maths were wrong.
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

# ~3,000 characters of varied running text: enough for the quick char model (8 x 32 tokens per batch)
TEXT = (
    "The quick brown fox jumps over the lazy dog. A stitch in time saves nine; "
    "every cloud has a silver lining, and all that glitters is not gold! "
    "Where are the snows of yesteryear? To be, or not to be: that is the question.\n"
) * 14


def run_cli(args: list[str]) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        rc = main([str(a) for a in args])
    assert rc == 0
    return out.getvalue()


def run_twice(tmp: Path, name: str, extra: list[str] = ()) -> tuple[Path, Path]:
    """Run experiment `name` with --quick --seed 0 into two folders."""
    outs = (tmp / f"{name}-a", tmp / f"{name}-b")
    for out in outs:
        run_cli(["experiment", name, "--out", out, "--quick", "--seed", "0", *extra])
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


def check_outputs(out: Path, png: str, csv_name: str, keys: list[str]) -> tuple[dict, list[dict]]:
    """PNG valid, CSV parses, summary.txt non-empty, summary.json has `keys` and only finite numbers."""
    data = (out / png).read_bytes()
    assert data[:8] == PNG_MAGIC and len(data) > 1000
    import matplotlib.image

    assert matplotlib.image.imread(out / png).ndim == 3
    with open(out / csv_name, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert rows
    assert (out / "summary.txt").read_text(encoding="utf-8").strip()
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    for k in ["experiment", "summary", *keys]:
        assert k in summary, k
    nums = all_numbers(summary)
    assert nums and all(math.isfinite(x) for x in nums)
    return summary, rows


def same_summary(a: Path, b: Path) -> None:
    assert json.loads((a / "summary.json").read_text()) == json.loads((b / "summary.json").read_text())


# ---------------------------------------------------------------------------------------------


def test_gradient_flow_stays_under_the_linear_bound(tmp_path):
    a, b = run_twice(tmp_path, "gradient-flow")
    keys = ["gains", "measured_norm_t0", "measured_factor_per_step", "linear_bound_t0", "max_ratio_to_bound"]
    summary, rows = check_outputs(a, "gradient_flow.png", "gradient_flow.csv", keys)
    same_summary(a, b)

    T = summary["T"]
    by_gain: dict[float, list[dict]] = {}
    for r in rows:
        by_gain.setdefault(float(r["gain"]), []).append(r)
    for gain, rs in by_gain.items():
        rs.sort(key=lambda r: int(r["t"]))
        assert len(rs) == T + 1
        for r in rs:
            # |tanh'| <= 1, so ‖∏ D_k W‖₂ <= ‖W‖₂^(T-t) for every sequence and every t
            assert float(r["tanh_spectral_norm_max"]) <= float(r["bound_norm_pow"]) * (1 + 1e-9)
        if gain < 1:  # contractive: the gradient reaching t = 0 is smaller than one step back from T
            assert float(rs[0]["tanh_spectral_norm_geomean"]) < float(rs[T - 1]["tanh_spectral_norm_geomean"])
        if gain == 1.0:  # orthogonal W_hh: every power has norm 1 without the nonlinearity
            lin = np.array([float(r["linear_power_spectral_norm"]) for r in rs])
            np.testing.assert_allclose(lin, 1.0, atol=1e-12)
    assert all(r <= 1 + 1e-9 for r in summary["max_ratio_to_bound"])
    # a larger gain saturates the units more: the mean tanh' the summary quotes as the brake falls
    slopes = summary["mean_tanh_derivative"]
    assert all(0 < x < 1 for x in slopes) and slopes == sorted(slopes, reverse=True)
    assert f"tanh' was {slopes[-1]:.3f}" in summary["summary"]


def test_state_jacobian_matches_finite_differences():
    from rnnlab.experiments.gradients import state_jacobian_norms
    from rnnlab.scratch import RNN

    rng = np.random.default_rng(1)
    rnn = RNN(3, 5, dtype=np.float64, seed=0)
    x = rng.standard_normal((6, 1, 3))
    spectral, _ = state_jacobian_norms(rnn, x)
    # ∂h_T/∂h_0 by central differences on the initial state
    eps, J = 1e-6, np.zeros((5, 5))
    for j in range(5):
        h = np.zeros((1, 1, 5))
        h[0, 0, j] = eps
        plus = rnn.forward(x, h)[1][0, 0]
        minus = rnn.forward(x, -h)[1][0, 0]
        J[:, j] = (plus - minus) / (2 * eps)
    assert spectral[0, 0] == pytest.approx(np.linalg.norm(J, 2), rel=1e-6)


@pytest.fixture(scope="module")
def gvl_runs(tmp_path_factory):
    return run_twice(tmp_path_factory.mktemp("gvl"), "gradient-vs-length")


def test_gradient_vs_length_vanishes_for_the_rnn(gvl_runs):
    a, b = gvl_runs
    keys = ["lengths", "mean_norm", "factor_per_step", "engine_max_rel_diff", "torch_compared"]
    summary, _ = check_outputs(a, "gradient_vs_length.png", "gradient_vs_length.csv", keys)
    same_summary(a, b)
    lengths, rnn = summary["lengths"], summary["mean_norm"]["rnn"]
    assert lengths[0] == 5 and lengths[-1] == 200
    assert 0 < rnn[-1] < 1e-20 * rnn[0]


def test_gradient_vs_length_engines_agree(gvl_runs):
    pytest.importorskip("torch")
    a, _ = gvl_runs
    summary = json.loads((a / "summary.json").read_text())
    assert summary["torch_compared"] is True
    assert summary["engine_max_rel_diff"] < 1e-6
    with open(a / "gradient_vs_length.csv", newline="") as f:
        for r in csv.DictReader(f):
            assert float(r["norm_numpy"]) == pytest.approx(float(r["norm_torch"]), rel=1e-6)


def test_bptt_gradients_runs_on_a_small_text(tmp_path):
    text = tmp_path / "text.txt"
    text.write_text(TEXT, encoding="utf-8")
    a, b = run_twice(tmp_path, "bptt-gradients", ["--data", text])
    keys = ["chunk_lengths", "first_last_ratio", "last_step_loss", "train_steps", "val_loss"]
    summary, rows = check_outputs(a, "bptt_gradients.png", "bptt_gradients.csv", keys)
    same_summary(a, b)
    for cell in ("lstm", "rnn"):
        for stage in ("init", "trained"):
            for L in summary["chunk_lengths"]:
                norms = {
                    int(r["t"]): float(r["grad_h_norm_mean"])
                    for r in rows
                    if r["cell"] == cell and r["stage"] == stage and int(r["chunk_len"]) == L
                }
                ratio = summary["first_last_ratio"][cell][stage][str(L)]
                assert ratio == pytest.approx(norms[1] / norms[L], rel=1e-5)


@pytest.mark.parametrize("cell", ["lstm", "rnn", "gru"])
def test_step_by_step_bptt_equals_full_backward(cell):
    """The one-step-at-a-time walk gives the same ∂L_T/∂h_t as one backward over the rest of the chunk."""
    from rnnlab.config import ModelConfig
    from rnnlab.experiments.gradients import bptt_state_gradients
    from rnnlab.scratch.losses import cross_entropy
    from rnnlab.scratch.models import LanguageModel

    model = LanguageModel(
        ModelConfig(vocab_size=7, cell=cell, hidden_size=6, embedding_dim=4), dtype=np.float64, seed=0
    )
    model.eval()
    rng = np.random.default_rng(0)
    B, T = 3, 8
    idx = rng.integers(0, 7, (B, T))
    target = rng.integers(0, 7, B)
    dh_norm, _, _ = bptt_state_gradients(model, idx, target)
    for t in range(1, T):
        _, state = model.forward(idx[:, :t])  # state after t inputs
        logits, _ = model.forward(idx[:, t:], state)
        _, dlast = cross_entropy(logits[:, -1], target, reduction="sum")
        dlogits = np.zeros_like(logits)
        dlogits[:, -1] = dlast
        dout = model.head.backward(dlogits)
        _, dstate0 = model.rnn.backward(dout)
        dh0 = dstate0[0] if cell == "lstm" else dstate0
        np.testing.assert_allclose(dh_norm[t - 1], np.linalg.norm(dh0[0], axis=1), rtol=1e-10)
