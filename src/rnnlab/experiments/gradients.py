"""Experiments on how gradients travel back through time, measured on real networks.

* `gradient-flow`: ‖∂h_T/∂h_t‖₂ of a tanh RNN whose W_hh is g·Q (Q orthogonal) for g below, at
  and above 1, next to the linear bound ‖W_hh‖₂^(T−t).
* `gradient-vs-length`: ‖∂y_T/∂x_1‖ against sequence length for RNN, LSTM and GRU at PyTorch's
  default initialisation, checked against torch.
* `bptt-gradients`: ‖∂L_T/∂h_t‖ inside a character model's truncated BPTT chunk, at
  initialisation and after a short training run.

Every number comes from the NumPy engine's own forward and backward passes (float64), never from
a formula: the Jacobians are read off by backpropagating basis vectors, one step at a time.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from ..scratch.init import orthogonal_
from ..scratch.recurrent import GRU, LSTM, RNN, RNNBase
from .common import find_corpus, pyplot, train_char_model, write_csv, write_summary
from .registry import experiment


def sig(x: float, digits: int = 6) -> float:
    """`x` rounded to `digits` significant digits, so summary.json stays readable (NaN/inf kept).

    Example:
        >>> sig(3.14159265, 3)
        3.14
    """
    x = float(x)
    return float(f"{x:.{digits}g}") if math.isfinite(x) else x


def state_jacobian_norms(rnn: RNNBase, x: np.ndarray, h0: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Norms of ∂h_T/∂h_t for t = 0..T of a one-layer vanilla RNN or GRU, by exact backpropagation.

    Runs the layer over x, then walks back one step at a time: each step is re-run from its stored
    input state (so the layer holds that step's cache) and its `backward` is called with
    `dstate` = the rows of ∂h_T/∂h_{t+1}, which returns the rows of ∂h_T/∂h_t. Starting from the
    identity at t = T, the batch carries one row of the Jacobian per basis vector e_i, so what
    comes back is the whole H×H Jacobian of the running network, tanh' (or ReLU') included.

    Args:
        rnn: a one-layer, unidirectional `RNN` or `GRU` (time-major, batch_first=False).
        x: inputs (T, S, I) for S independent sequences.
        h0: initial states (S, H); zeros if None.

    Returns:
        `(spectral, frobenius)`, each (T+1, S): ‖∂h_T/∂h_t‖₂ (largest singular value) and the
        Frobenius norm, for t = 0..T (row T is the identity: 1 and √H).

    Example:
        >>> rnn = RNN(4, 8, dtype=np.float64, seed=0)
        >>> spec, fro = state_jacobian_norms(rnn, np.random.default_rng(0).standard_normal((10, 2, 4)))
        >>> spec.shape, float(spec[-1, 0])
        ((11, 2), 1.0)
    """
    if rnn.mode not in ("RNN_TANH", "RNN_RELU", "GRU") or rnn.num_layers != 1 or rnn.bidirectional or rnn.batch_first:
        raise ValueError("rnn: expected a one-layer, unidirectional, time-major RNN or GRU")
    T, S, _ = x.shape
    H = rnn.hidden_size
    h = np.zeros((S, H), dtype=rnn.dtype) if h0 is None else np.asarray(h0, dtype=rnn.dtype)
    out, _ = rnn.forward(x, h[None])
    states = np.concatenate([h[None], out], axis=0)  # (T+1, S, H): states[t] = h_t
    # Batch of S·H: row s·H + i carries e_iᵀ ∂h_T/∂h_t of sequence s.
    rows = np.tile(np.eye(H, dtype=rnn.dtype), (S, 1))  # (S·H, H)
    spectral = np.ones((T + 1, S))
    frobenius = np.full((T + 1, S), math.sqrt(H))
    for t in range(T, 0, -1):
        x_t = np.repeat(x[t - 1 : t], H, axis=1)  # (1, S·H, I)
        h_prev = np.repeat(states[t - 1], H, axis=0)[None]  # (1, S·H, H)
        rnn.forward(x_t, h_prev)
        _, dh = rnn.backward(None, rows[None])
        rows = dh[0]
        J = rows.reshape(S, H, H)  # J[s] = ∂h_T/∂h_{t-1} of sequence s
        spectral[t - 1] = np.linalg.norm(J, ord=2, axis=(1, 2))
        frobenius[t - 1] = np.linalg.norm(J, axis=(1, 2))
    rnn.zero_grad()  # the weight gradients accumulated on the way are not wanted
    return spectral, frobenius


def geometric_mean(a: np.ndarray, axis: int = -1) -> np.ndarray:
    """exp(mean(log a)): the typical value of magnitudes spanning decades (zeros give 0).

    Example:
        >>> round(float(geometric_mean(np.array([1e-2, 1e2]))), 12)
        1.0
    """
    with np.errstate(divide="ignore"):
        return np.exp(np.log(np.asarray(a, dtype=np.float64)).mean(axis=axis))


# ---------------------------------------------------------------------------------------------
# gradient-flow
# ---------------------------------------------------------------------------------------------

FLOW_GAINS = (0.5, 0.9, 1.0, 1.5)


@experiment("gradient-flow", "Vanishing and exploding gradients: ‖∂h_T/∂h_t‖ of a tanh RNN against the linear bound")
def gradient_flow(out_dir: Path, *, seed: int = 0, quick: bool = False, data: str | None = None) -> dict:
    """Measure ‖∂h_T/∂h_t‖₂ of tanh RNNs with W_hh = g·Q (Q orthogonal) for g in 0.5, 0.9, 1.0, 1.5.

    The same random orthogonal Q, input weights, biases and random N(0, 1) input sequences serve
    every g, so only the recurrent gain differs. Because every singular value of g·Q equals g,
    the linear network (no tanh) has ‖W_hh^(T−t)‖₂ = ‖W_hh‖₂^(T−t) = g^(T−t) exactly, and since
    tanh' ≤ 1 this is also an upper bound on the tanh network's Jacobian norm. Both are computed
    (the linear one by matrix powers) and drawn beside the measured curve.

    Writes gradient_flow.png, gradient_flow.csv, summary.txt and summary.json into out_dir.

    Args:
        out_dir: output folder (exists).
        seed: seeds Q, the input weights and the inputs.
        quick: smaller network and fewer sequences (a smoke test).
        data: unused (no text needed).

    Returns:
        The summary dict written to summary.json.

    Example:
        >>> gradient_flow(Path("runs/exp/gradient-flow"), seed=0)["measured_factor_per_step"]  # doctest: +SKIP
    """
    H, I, T, S = (16, 4, 50, 2) if quick else (64, 16, 50, 8)
    rng = np.random.default_rng(seed)
    Q = orthogonal_(np.empty((H, H)), rng)
    x = rng.standard_normal((T, S, I))  # (T, S, I)
    base = RNN(I, H, dtype=np.float64, seed=int(rng.integers(2**31)))  # W_ih and biases: PyTorch's U(±1/√H)

    t_axis = np.arange(T + 1)
    rows, curves, slopes = [], {}, {}
    for g in FLOW_GAINS:
        rnn = RNN(I, H, dtype=np.float64)
        rnn.load_state_dict(base.state_dict())
        rnn.params["weight_hh_l0"][...] = g * Q
        W = rnn.params["weight_hh_l0"]
        w_norm = float(np.linalg.norm(W, ord=2))
        spectral, frobenius = state_jacobian_norms(rnn, x)
        measured = geometric_mean(spectral, axis=1)  # (T+1,) typical value over the S sequences
        # The linear network: W_hh^(T-t) by repeated products, no nonlinearity.
        linear = np.empty(T + 1)
        P = np.eye(H)
        for k in range(T + 1):
            linear[T - k] = np.linalg.norm(P, ord=2)
            P = W @ P
        bound = w_norm ** (T - t_axis.astype(np.float64))
        curves[g] = (measured, spectral.min(axis=1), spectral.max(axis=1), linear, bound, w_norm)
        out, _ = rnn.forward(x)  # (T, S, H)
        slopes[g] = float(np.mean(1.0 - out**2))  # tanh'(a) = 1 - h²: the brake on every step's Jacobian
        for t in range(T + 1):
            rows.append(
                [
                    g,
                    t,
                    T - t,
                    measured[t],
                    spectral[t].min(),
                    spectral[t].max(),
                    geometric_mean(frobenius[t]),
                    linear[t],
                    bound[t],
                ]
            )
    write_csv(
        out_dir / "gradient_flow.csv",
        [
            "gain",
            "t",
            "steps_back",
            "tanh_spectral_norm_geomean",
            "tanh_spectral_norm_min",
            "tanh_spectral_norm_max",
            "tanh_frobenius_norm_geomean",
            "linear_power_spectral_norm",
            "bound_norm_pow",
        ],
        rows,
    )

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 5.5))
    colors = ["tab:blue", "tab:orange", "tab:green", "tab:red"]
    for c, g in zip(colors, FLOW_GAINS, strict=True):
        measured, lo, hi, linear, _bound, w_norm = curves[g]
        label = f"‖W_hh‖₂ = {w_norm:.2f}" + (" (orthogonal)" if g == 1.0 else "")
        ax.semilogy(t_axis, measured, color=c, lw=2, label=f"{label}: tanh RNN, measured")
        ax.fill_between(t_axis, lo, hi, color=c, alpha=0.15, lw=0)
        ax.semilogy(t_axis, linear, color=c, lw=1.2, ls="--", label=f"{label}: linear ‖W_hh^(T−t)‖₂ = bound")
    ax.set_xlabel(f"t (time step of h_t; T = {T})")
    ax.set_ylabel("‖∂h_T/∂h_t‖₂ (largest singular value)")
    ax.set_title(f"Gradient flow through a tanh RNN (H = {H}, W_hh = g·orthogonal, random inputs)")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=7.5, loc="best")
    fig.text(
        0.01,
        0.005,
        f"solid: geometric mean over {S} input sequences (band: min–max); dashed: no nonlinearity",
        fontsize=7.5,
    )
    fig.tight_layout(rect=(0, 0.02, 1, 1))
    fig.savefig(out_dir / "gradient_flow.png", dpi=120)
    plt.close(fig)

    w_norms = [curves[g][5] for g in FLOW_GAINS]
    at0 = [float(curves[g][0][0]) for g in FLOW_GAINS]
    factor = [a ** (1.0 / T) for a in at0]
    bound0 = [float(curves[g][4][0]) for g in FLOW_GAINS]
    # measured/bound over t < T and every sequence: ≤ 1 because |tanh'| ≤ 1 (at t = T both are 1)
    ratios = {g: curves[g][2][:-1] / curves[g][4][:-1] for g in FLOW_GAINS}
    ratio_max = [float(np.max(ratios[g])) for g in FLOW_GAINS]
    ratio_at = [int(np.argmax(ratios[g])) for g in FLOW_GAINS]
    lines = [
        f"A tanh RNN (H = {H}) driven by {S} random input sequences; W_hh = g·Q with Q orthogonal, so every "
        f"singular value of W_hh is g. Measured ‖∂h_T/∂h_t‖₂ over T = {T} steps by backpropagating basis vectors "
        "through the NumPy engine (float64):"
    ]
    for wn, a0, f, b0, r, r_t in zip(w_norms, at0, factor, bound0, ratio_max, ratio_at, strict=True):
        trend = "shrank" if a0 < 1 else "grew"
        lines.append(
            f"- ‖W_hh‖₂ = {wn:.3g}: ‖∂h_{T}/∂h_0‖₂ = {a0:.3g}, i.e. the gradient {trend} by {f:.3f} per step; the "
            f"linear bound ‖W_hh‖₂^{T} = {b0:.3g} ({wn:.3g} per step) is {b0 / a0:.3g} times larger; the measured "
            f"norm never exceeded the bound (largest measured/bound ratio {r:.7f}, at t = {r_t})."
        )
    i_orth = FLOW_GAINS.index(1.0)
    dev = float(np.max(np.abs(curves[1.0][3] - 1.0)))
    lines.append(
        f"With the orthogonal W_hh the linear network keeps ‖W_hh^k‖₂ = 1 for every k (largest deviation {dev:.1e}), "
        f"yet through the tanh derivatives the gradient shrinks by {factor[i_orth]:.3f} per step."
    )
    g_max = FLOW_GAINS[-1]
    lines.append(
        f"Why the largest gain does not explode like its linear bound: each step's Jacobian is diag(tanh'(a_t)) W_hh, "
        f"and a larger gain drives the units into saturation, where tanh' = 1 − h_t² is small. Averaged over all "
        f"steps, units and sequences, tanh' was {slopes[g_max]:.3f} for ‖W_hh‖₂ = {w_norms[-1]:.3g} (against "
        + ", ".join(f"{slopes[g]:.3f} for {curves[g][5]:.3g}" for g in FLOW_GAINS[:-1])
        + f"), so the measured factor per step, {factor[-1]:.3f}, sits far below the linear {w_norms[-1]:.3g}. "
        "A tanh RNN's gradient explodes while its units work in the near-linear range (small states: early in "
        "training, or with small inputs and weights); the dashed curves show that case. Once the loss has blown "
        "up and the units saturate, saturation brakes it: see the clipping experiment."
    )
    text = "\n".join(lines)
    figures = {
        "T": T,
        "hidden_size": H,
        "num_sequences": S,
        "norm": "spectral (largest singular value), geometric mean over sequences",
        "gains": list(FLOW_GAINS),
        "w_hh_spectral_norm": [sig(v) for v in w_norms],
        "measured_norm_t0": [sig(v) for v in at0],
        "measured_factor_per_step": [sig(v) for v in factor],
        "linear_bound_t0": [sig(v) for v in bound0],
        "linear_factor_per_step": [sig(v) for v in w_norms],
        "mean_tanh_derivative": [sig(slopes[g]) for g in FLOW_GAINS],
        "max_ratio_to_bound": [sig(v) for v in ratio_max],
        "orthogonal_linear_max_deviation": sig(dev, 3),
    }
    return write_summary(out_dir, "gradient-flow", text, figures)


# ---------------------------------------------------------------------------------------------
# gradient-vs-length
# ---------------------------------------------------------------------------------------------

CELLS = {"rnn": (RNN, "RNN"), "lstm": (LSTM, "LSTM"), "gru": (GRU, "GRU")}


def input_jacobian(layer: RNNBase, x: np.ndarray) -> np.ndarray:
    """∂y_T/∂x_1 (H, I) of a one-layer recurrent layer on one sequence x (T, I), by the engine's backward.

    The sequence is repeated H times in the batch and `backward` gets `dout` zero everywhere except
    the last step, where copy i holds e_i; copy i's input gradient at step 1 is then row i.

    Example:
        >>> J = input_jacobian(LSTM(3, 5, dtype=np.float64, seed=0), np.ones((7, 3)))
        >>> J.shape
        (5, 3)
    """
    H = layer.hidden_size
    xb = np.repeat(x[:, None, :], H, axis=1)  # (T, H, I)
    out, _ = layer.forward(xb)
    dout = np.zeros_like(out)  # (T, H, H)
    dout[-1] = np.eye(H)
    dx, _ = layer.backward(dout)
    layer.zero_grad()
    return dx[0]


def torch_input_jacobian(layer: RNNBase, x: np.ndarray) -> np.ndarray:
    """The same ∂y_T/∂x_1 computed by torch.nn.RNN/LSTM/GRU loaded with `layer`'s weights (float64).

    Example:
        >>> torch_input_jacobian(GRU(3, 5, dtype=np.float64, seed=0), np.ones((7, 3))).shape  # doctest: +SKIP
        (5, 3)
    """
    import torch

    cls = {"RNN_TANH": torch.nn.RNN, "LSTM": torch.nn.LSTM, "GRU": torch.nn.GRU}[layer.mode]
    H = layer.hidden_size
    module = cls(layer.input_size, H, dtype=torch.float64)
    module.load_state_dict({k: torch.from_numpy(np.array(v, dtype=np.float64)) for k, v in layer.state_dict().items()})
    xb = torch.from_numpy(np.repeat(x[:, None, :], H, axis=1)).requires_grad_(True)
    out, _ = module(xb)
    (out[-1] * torch.eye(H, dtype=torch.float64)).sum().backward()
    return xb.grad[0].numpy()


def _torch_or_none():
    try:
        import torch
    except ImportError:
        return None
    return torch


@experiment(
    "gradient-vs-length", "Gradient of the last output w.r.t. the first input against sequence length: RNN, LSTM, GRU"
)
def gradient_vs_length(out_dir: Path, *, seed: int = 0, quick: bool = False, data: str | None = None) -> dict:
    """Measure ‖∂y_T/∂x_1‖_F against T for RNN (tanh), LSTM and GRU at PyTorch's default initialisation.

    For each trial a fresh layer (U(±1/√H) for every parameter, PyTorch's default) and a fresh
    N(0, 1) input sequence; the figure shows the mean over trials. Where torch is installed the
    same Jacobian is computed by torch.nn.RNN/LSTM/GRU with the same weights, and the largest
    relative Frobenius difference ‖J_numpy − J_torch‖ / ‖J_torch‖ goes into summary.json as
    `engine_max_rel_diff`.

    Writes gradient_vs_length.png, gradient_vs_length.csv, summary.txt and summary.json.

    Args:
        out_dir: output folder (exists).
        seed: seeds the layers and the inputs.
        quick: fewer lengths, trials and units (a smoke test).
        data: unused.

    Returns:
        The summary dict.

    Example:
        >>> gradient_vs_length(Path("runs/exp/gvl"), seed=0)["mean_norm"]["rnn"]  # doctest: +SKIP
    """
    if quick:
        H, I, trials, lengths = 16, 4, 1, (5, 50, 200)
    else:
        H, I, trials, lengths = 64, 16, 4, (5, 10, 20, 50, 100, 150, 200)
    torch = _torch_or_none()
    threads = None
    if torch is not None:
        # Tiny per-step products: one thread is fastest, and several spin badly on a busy CPU.
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
    rng = np.random.default_rng(seed)
    rows = []
    norms = {c: np.zeros((len(lengths), trials)) for c in CELLS}
    rel_diffs: list[float] = []
    try:
        for trial in range(trials):
            layer_seeds = {c: int(rng.integers(2**31)) for c in CELLS}
            x_full = rng.standard_normal((max(lengths), I))  # one sequence per trial; its prefixes
            for c, (cls, _) in CELLS.items():
                layer = cls(I, H, dtype=np.float64, seed=layer_seeds[c])
                for j, T in enumerate(lengths):
                    x = x_full[:T]
                    J = input_jacobian(layer, x)
                    n = float(np.linalg.norm(J))
                    norms[c][j, trial] = n
                    n_torch, rel = math.nan, math.nan
                    if torch is not None:
                        Jt = torch_input_jacobian(layer, x)
                        n_torch = float(np.linalg.norm(Jt))
                        rel = float(np.linalg.norm(J - Jt) / np.linalg.norm(Jt))
                        rel_diffs.append(rel)
                    rows.append([c, T, trial, n, n_torch, rel])
    finally:
        if threads is not None:
            torch.set_num_threads(threads)
    write_csv(
        out_dir / "gradient_vs_length.csv",
        ["cell", "length", "trial", "norm_numpy", "norm_torch", "rel_diff_jacobian"],
        rows,
    )

    # the norms of different nets spread over many powers of ten: their typical value is the
    # geometric mean (an arithmetic mean would follow the single largest net)
    means = {c: geometric_mean(norms[c], axis=1) for c in CELLS}
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 5))
    for c, (_, label) in CELLS.items():
        (line,) = ax.semilogy(
            lengths, means[c], "o-", lw=2, label=f"{label}: geometric mean of {trials} (dots: each net)"
        )
        for trial in range(trials):
            ax.semilogy(lengths, norms[c][:, trial], ".", color=line.get_color(), alpha=0.35)
    ax.set_xlabel("sequence length T")
    ax.set_ylabel("‖∂y_T/∂x_1‖_F")
    ax.set_title(f"Gradient of the last output w.r.t. the first input\n(H = {H}, PyTorch default init, N(0,1) inputs)")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out_dir / "gradient_vs_length.png", dpi=120)
    plt.close(fig)

    first, last = lengths[0], lengths[-1]
    per_step = {c: (means[c][-1] / means[c][0]) ** (1.0 / (last - first)) for c in CELLS}
    lines = [
        f"‖∂y_T/∂x_1‖_F of one-layer recurrent nets (H = {H}, PyTorch's default U(±1/√H) init, N(0,1) inputs), "
        f"geometric mean over {trials} random nets and inputs (their norms spread over powers of ten), from the "
        "NumPy engine's backward in float64:"
    ]
    for c, (_, label) in CELLS.items():
        lines.append(
            f"- {label}: {means[c][0]:.3g} at T = {first}, {means[c][-1]:.3g} at T = {last}: a factor "
            f"{means[c][-1] / means[c][0]:.3g}, i.e. {per_step[c]:.3f} per extra step."
        )
    ranked = sorted(CELLS, key=lambda c: per_step[c], reverse=True)  # slowest decay first
    a, b, c = ranked
    if per_step[a] - per_step[b] < 0.01 * per_step[a]:  # within 1%: no honest winner
        lines.append(
            f"The {CELLS[a][1]} and the {CELLS[b][1]} decay at almost the same rate ({per_step[a]:.3f} and "
            f"{per_step[b]:.3f} per step), the {CELLS[c][1]} faster ({per_step[c]:.3f})."
        )
    else:
        lines.append(
            f"Slowest decay at this initialisation: the {CELLS[a][1]} ({per_step[a]:.3f} per step); fastest: "
            f"the {CELLS[c][1]} ({per_step[c]:.3f})."
        )
    if torch is None:
        lines.append("torch is not installed, so the comparison with torch.nn was skipped.")
    else:
        worst = max(rel_diffs)
        verdict = "agreed with" if worst < 1e-6 else "DISAGREED with"
        lines.append(
            f"torch.nn.RNN/LSTM/GRU loaded with the same weights {verdict} the NumPy engine: largest relative "
            f"difference of the Jacobians ‖J_numpy − J_torch‖/‖J_torch‖ = {worst:.2g} over {len(rel_diffs)} cases."
        )
    figures = {
        "hidden_size": H,
        "input_size": I,
        "trials": trials,
        "lengths": list(lengths),
        "mean_norm": {c: [sig(v) for v in norms[c].mean(axis=1)] for c in CELLS},
        "geomean_norm": {c: [sig(v) for v in means[c]] for c in CELLS},
        "factor_per_step": {c: sig(per_step[c]) for c in CELLS},
        "torch_compared": torch is not None,
        "engine_max_rel_diff": sig(max(rel_diffs), 3) if rel_diffs else None,
    }
    return write_summary(out_dir, "gradient-vs-length", "\n".join(lines), figures)


# ---------------------------------------------------------------------------------------------
# bptt-gradients
# ---------------------------------------------------------------------------------------------


def bptt_state_gradients(model, idx: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray | None, float]:
    """‖∂L_T/∂h_t‖ for t = 1..T inside one BPTT chunk of a `LanguageModel`, L_T the last step's loss.

    The chunk runs one step at a time from a zero state, keeping every state. Backward starts
    from the read-out gradient of the last step only, then walks back step by step: each step is
    re-run from its stored input state and the recurrent layer's `backward(None, dstate)` turns
    ∂L_T/∂(h_t, c_t) into ∂L_T/∂(h_{t-1}, c_{t-1}): exactly the `dh` (and `dc`) that BPTT carries.
    Each sequence's own loss is used (sum over the batch), so the per-sequence norms are comparable.

    Args:
        model: a one-layer `rnnlab.scratch.models.LanguageModel` (dropout off).
        idx: (B, T) input token ids.
        targets: (B,) the token to predict after the last input.

    Returns:
        `(dh_norm, dc_norm, loss)`: dh_norm (T, B) ‖∂L_T/∂h_t‖₂ with row t-1 for h_t; dc_norm the
        same for the LSTM cell state (None for other cells); loss the mean last-step cross-entropy.

    Example:
        >>> dh, dc, loss = bptt_state_gradients(lm, idx, idx[:, -1])  # doctest: +SKIP
    """
    from ..scratch.losses import cross_entropy

    rnn = model.rnn
    B, T = idx.shape
    lstm = rnn.mode == "LSTM"
    emb = model.embedding.forward(idx)  # (B, T, E)
    H = rnn.hidden_size
    zeros = np.zeros((1, B, H), dtype=rnn.dtype)
    state = (zeros, zeros.copy()) if lstm else zeros
    states = [state]
    out = None
    for t in range(T):
        out, state = rnn.forward(emb[:, t : t + 1], state)  # out (B, 1, H)
        states.append(state)
    logits = model.head.forward(out[:, 0])  # (B, V)
    loss, dlogits = cross_entropy(logits, targets, reduction="sum")
    dh = model.head.backward(dlogits)[None]  # (1, B, H) = ∂L_T/∂h_T
    dc = np.zeros_like(dh) if lstm else None
    dh_norm = np.zeros((T, B))
    dc_norm = np.zeros((T, B)) if lstm else None
    for t in range(T, 0, -1):
        dh_norm[t - 1] = np.linalg.norm(dh[0], axis=1)
        if lstm:
            dc_norm[t - 1] = np.linalg.norm(dc[0], axis=1)
        if t == 1:
            break
        rnn.forward(emb[:, t - 1 : t], states[t - 1])
        _, dstate = rnn.backward(None, (dh, dc) if lstm else dh)
        dh, dc = dstate if lstm else (dstate, None)
    model.zero_grad()
    return dh_norm, dc_norm, loss / B


def _chunks(tokens: np.ndarray, length: int, count: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    starts = rng.integers(0, len(tokens) - length - 1, size=count)
    idx = np.stack([tokens[s : s + length] for s in starts])  # (B, T)
    return idx, tokens[starts + length]


@experiment(
    "bptt-gradients",
    "Per-timestep gradient magnitude inside a character model's BPTT chunk, before and after training",
    needs_text=True,
)
def bptt_gradients(out_dir: Path, *, seed: int = 0, quick: bool = False, data: str | None = None) -> dict:
    """Measure ‖∂L_T/∂h_t‖ in a char LSTM and a char tanh RNN, at initialisation and after training.

    Both models (embedding 32, one layer, H = 128) are trained on the corpus with
    `train_char_model` for a fixed number of steps (a step budget rather than seconds, so the run
    is reproducible). For chunk lengths 25, 50 and 100, chunks drawn from the validation split
    (the training split if it is too short) are run in float64 and the gradient of the last
    step's loss L_T is backpropagated to every hidden state.

    Writes bptt_gradients.png, bptt_gradients.csv, summary.txt, summary.json and the two trained
    models (lstm/model, rnn/model) into out_dir.

    Args:
        out_dir: output folder (exists).
        seed: seeds training, initialisation and the choice of chunks.
        quick: a tiny model trained for 3 steps (a smoke test).
        data: the text file (default: tinyshakespeare.txt, see `find_corpus`).

    Returns:
        The summary dict.

    Example:
        >>> bptt_gradients(Path("runs/exp/bptt"), data="input.txt")["first_last_ratio"]  # doctest: +SKIP
    """
    from ..scratch.models import LanguageModel

    corpus = find_corpus(data)
    if quick:
        H, steps, batch, seq, lengths, count = 32, 3, 8, 32, (10, 20), 4
    else:
        H, steps, batch, seq, lengths, count = 128, 400, 32, 64, (25, 50, 100), 16
    cells = ("lstm", "rnn")
    rows = []
    results: dict[str, dict[str, dict[int, np.ndarray]]] = {}
    ratios: dict[str, dict[str, dict[str, float]]] = {}
    losses: dict[str, dict[str, float]] = {}
    train_info = {}
    for cell in cells:
        run, lm_data = train_char_model(
            corpus,
            out_dir / cell,
            cell=cell,
            hidden_size=H,
            seconds=3600.0,
            max_steps=steps,
            seed=seed,
            seq_len=seq,
            batch_size=batch,
        )
        with open(out_dir / cell / "model" / "metrics.jsonl", encoding="utf-8") as f:
            train_info[cell] = json.loads(f.read().splitlines()[-1])
        tokens = lm_data.val if len(lm_data.val) > max(lengths) + 2 else lm_data.train
        # float64 copies: the model before training (same seed as train_lm) and after
        models = {}
        for stage, weights in (("init", LanguageModel(run.model_config, seed=seed)), ("trained", run.model)):
            models[stage] = LanguageModel(run.model_config, dtype=np.float64)
            models[stage].load_state_dict(weights.state_dict())
        results[cell], ratios[cell], losses[cell] = {}, {}, {}
        chunk_rng = np.random.default_rng(seed + 1)
        chunks = {L: _chunks(tokens, L, count, chunk_rng) for L in lengths}  # same chunks for both stages
        for stage, model in models.items():
            model.eval()
            results[cell][stage] = {}
            ratios[cell][stage] = {}
            stage_losses = []
            for L in lengths:
                idx, target = chunks[L]
                dh, dc, loss = bptt_state_gradients(model, idx, target)
                stage_losses.append(loss)
                mean_dh = dh.mean(axis=1)  # (L,) mean over the chunks
                results[cell][stage][L] = mean_dh
                ratios[cell][stage][str(L)] = float(mean_dh[0] / mean_dh[-1])
                for t in range(L):
                    rows.append(
                        [cell, stage, L, t + 1, L - (t + 1), mean_dh[t], math.nan if dc is None else dc[t].mean()]
                    )
            losses[cell][stage] = float(np.mean(stage_losses))
    write_csv(
        out_dir / "bptt_gradients.csv",
        ["cell", "stage", "chunk_len", "t", "steps_before_loss", "grad_h_norm_mean", "grad_c_norm_mean"],
        rows,
    )

    plt = pyplot()
    fig, axes = plt.subplots(1, len(cells), figsize=(12, 5), sharey=True)
    colors = plt.get_cmap("plasma")(np.linspace(0.0, 0.75, len(lengths)))
    names = {"lstm": "LSTM", "rnn": "tanh RNN"}
    for ax, cell in zip(axes, cells, strict=True):
        for c, L in zip(colors, lengths, strict=True):
            back = np.arange(L - 1, -1, -1)  # steps before the loss, for t = 1..L
            ax.semilogy(back, results[cell]["trained"][L], color=c, lw=2, label=f"T = {L}, trained")
            ax.semilogy(back, results[cell]["init"][L], color=c, lw=1.2, ls="--", label=f"T = {L}, at init")
        ax.set_title(f"char {names[cell]} (H = {H}), {train_info[cell]['step']} training steps")
        ax.set_xlabel("T − t: steps between h_t and the loss at the last step")
        ax.grid(True, which="major", alpha=0.3)
        ax.legend(fontsize=8)
    axes[0].set_ylabel("‖∂L_T/∂h_t‖₂ (mean over chunks)")
    fig.suptitle(f"How far back the last step's loss reaches in one BPTT chunk ({corpus.name})")
    fig.tight_layout()
    fig.savefig(out_dir / "bptt_gradients.png", dpi=120)
    plt.close(fig)

    lines = [
        f"Gradient of the last step's loss L_T with respect to each hidden state h_t of a BPTT chunk, for a char "
        f"LSTM and a char tanh RNN (H = {H}) on {corpus.name}, {count} chunks per length from "
        f"{'the validation split' if tokens is lm_data.val else 'the training split'}, float64. "
        "Ratio = ‖∂L_T/∂h_1‖ / ‖∂L_T/∂h_T‖ (first over last step of the chunk):"
    ]
    for cell in cells:
        info = train_info[cell]
        for stage in ("init", "trained"):
            desc = "at initialisation" if stage == "init" else f"after {info['step']} training steps"
            parts = ", ".join(f"T = {L}: {ratios[cell][stage][str(L)]:.3g}" for L in lengths)
            lines.append(f"- {names[cell]} {desc} (last-step loss {losses[cell][stage]:.3f} nats): {parts}.")
    for cell in cells:
        L = lengths[-1]
        a, b = ratios[cell]["init"][str(L)], ratios[cell]["trained"][str(L)]
        change = "larger" if b > a else "smaller"
        lines.append(
            f"Training made the {names[cell]}'s ratio over T = {L} {change} by a factor {max(a, b) / min(a, b):.3g} "
            f"(validation loss after training {train_info[cell]['val_loss']:.3f} nats)."
        )
    figures = {
        "hidden_size": H,
        "train_steps": {c: int(train_info[c]["step"]) for c in cells},
        "val_loss": {c: sig(train_info[c]["val_loss"]) for c in cells},
        "chunk_lengths": list(lengths),
        "chunks_per_length": count,
        "last_step_loss": {c: {s: sig(v) for s, v in losses[c].items()} for c in cells},
        "first_last_ratio": {c: {s: {k: sig(v) for k, v in r.items()} for s, r in ratios[c].items()} for c in cells},
    }
    return write_summary(out_dir, "bptt-gradients", "\n".join(lines), figures)
