"""Experiments on the recurrent weight initialisation and on gradient clipping, on a real task.

Both train a vanilla RNN with a linear read-out on the adding problem (Hochreiter & Schmidhuber
1997; Le et al. 2015): each step's input is (value, marker) with values U(0, 1) and the marker 1
at two steps, one in each half of the sequence; the target after the last step is the sum of the
two marked values. Predicting the mean alone leaves the target's variance (1/6) as the MSE, so a
loss well below that proves the network carried the first marked value across half the sequence.

* `init-compare`: normal, Xavier, orthogonal and identity (IRNN, with ReLU) W_hh: their singular
  values, ‖∂h_T/∂h_t‖ through the untrained network, and the training loss of each.
* `clipping`: one high-learning-rate SGD run three times, without clipping, with element-wise
  value clipping and with global-norm clipping.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ..scratch import init as rinit
from ..scratch.clip import clip_grad_norm_, clip_grad_value_
from ..scratch.layers import Linear
from ..scratch.losses import mse_loss
from ..scratch.module import Module
from ..scratch.optim import SGD, Adam, Optimizer
from ..scratch.recurrent import RNN
from .common import pyplot, write_csv, write_summary
from .gradients import geometric_mean, sig, state_jacobian_norms
from .registry import experiment


def adding_problem(rng: np.random.Generator, length: int, batch: int) -> tuple[np.ndarray, np.ndarray]:
    """One batch of the adding problem.

    Args:
        rng: random generator.
        length: sequence length T (>= 2).
        batch: number of sequences B.

    Returns:
        x (T, B, 2): channel 0 the values U(0, 1), channel 1 the markers (one 1 in each half);
        y (B, 1): the sum of the two marked values.

    Example:
        >>> x, y = adding_problem(np.random.default_rng(0), 10, 4)
        >>> x.shape, y.shape, x[:, :, 1].sum(axis=0).tolist()
        ((10, 4, 2), (4, 1), [2.0, 2.0, 2.0, 2.0])
    """
    x = np.zeros((length, batch, 2))
    x[:, :, 0] = rng.random((length, batch))
    cols = np.arange(batch)
    first = rng.integers(0, length // 2, batch)
    second = rng.integers(length // 2, length, batch)
    x[first, cols, 1] = 1.0
    x[second, cols, 1] = 1.0
    y = x[first, cols, 0] + x[second, cols, 0]
    return x, y[:, None]


class AddingNet(Module):
    """One-layer vanilla RNN (float64) and a linear read-out of the last hidden state.

    Args:
        hidden_size: H.
        nonlinearity: 'tanh' or 'relu'.
        seed: seeds the engine's default initialisation (W_ih, W_hh, biases) and the read-out.

    Example:
        >>> net = AddingNet(8, seed=0)
        >>> x, y = adding_problem(np.random.default_rng(0), 5, 3)
        >>> loss = net.loss_and_backward(x, y)
    """

    def __init__(self, hidden_size: int, nonlinearity: str = "tanh", *, seed: int = 0) -> None:
        super().__init__()
        self.rnn = RNN(2, hidden_size, nonlinearity=nonlinearity, dtype=np.float64, seed=seed)
        self.head = Linear(hidden_size, 1, dtype=np.float64, seed=seed + 1)
        self.register_module("rnn", self.rnn)
        self.register_module("head", self.head)

    def loss_and_backward(self, x: np.ndarray, y: np.ndarray) -> float:
        """MSE of the prediction from the last step; accumulates every gradient; returns the loss."""
        out, _ = self.rnn.forward(x)  # (T, B, H)
        pred = self.head.forward(out[-1])  # (B, 1)
        loss, dpred = mse_loss(pred, y)
        dout = np.zeros_like(out)
        dout[-1] = self.head.backward(dpred)  # only the last step reaches the loss
        self.rnn.backward(dout)
        return loss


def global_norm(grads: dict[str, np.ndarray]) -> float:
    """sqrt of the sum of squares of every gradient entry (the norm `clip_grad_norm_` clips)."""
    with np.errstate(over="ignore", invalid="ignore"):
        return float(math.sqrt(sum(float(np.sum(np.square(g, dtype=np.float64))) for g in grads.values())))


def train_adding(
    net: AddingNet,
    opt: Optimizer,
    *,
    steps: int,
    length: int,
    batch: int,
    data_seed: int,
    clip: str = "none",
    threshold: float = 1.0,
) -> dict[str, np.ndarray | int | None]:
    """Train `net` on fresh adding-problem batches; stops early when the loss or gradient is not finite.

    Args:
        net: the model.
        opt: its optimiser.
        steps: number of updates.
        length: sequence length T.
        batch: sequences per batch.
        data_seed: seeds the batches (the same seed gives every run the same data).
        clip: 'none', 'value' (`clip_grad_value_(threshold)`) or 'norm' (`clip_grad_norm_(threshold)`).
        threshold: the clipping threshold.

    Returns:
        dict with per-step arrays `loss`, `norm_pre` (global gradient norm before clipping),
        `norm_post` (after), `norm_w_hh` (of W_hh's gradient, before clipping), the variance
        of all targets seen `target_var`, and `nonfinite_step` (the step whose loss or gradient
        was NaN/inf, the run stopped there; None if it never happened).

    Example:
        >>> net = AddingNet(8, seed=0)
        >>> log = train_adding(net, Adam(net, lr=1e-2), steps=5, length=6, batch=4, data_seed=0)
        >>> log["loss"].shape
        (5,)
    """
    rng = np.random.default_rng(data_seed)
    loss, pre, post, whh = [], [], [], []
    targets = []
    nonfinite = None
    # Divergence is detected and reported below, so NumPy's overflow warnings would only be noise.
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        for step in range(steps):
            x, y = adding_problem(rng, length, batch)
            targets.append(y)
            net.zero_grad()
            value = net.loss_and_backward(x, y)
            grads = net.grads
            n_pre = global_norm(grads)
            loss.append(value)
            pre.append(n_pre)
            whh.append(float(np.linalg.norm(grads["rnn.weight_hh_l0"])))
            if not (math.isfinite(value) and math.isfinite(n_pre)):
                post.append(math.nan)
                nonfinite = step
                break
            if clip == "value":
                clip_grad_value_(net, threshold)
            elif clip == "norm":
                clip_grad_norm_(net, threshold)
            post.append(global_norm(grads))
            opt.step()
    return {
        "loss": np.array(loss),
        "norm_pre": np.array(pre),
        "norm_post": np.array(post),
        "norm_w_hh": np.array(whh),
        "target_var": float(np.var(np.concatenate(targets))),
        "nonfinite_step": nonfinite,
    }


def running_mean(a: np.ndarray, window: int) -> np.ndarray:
    """Mean of the last `window` values at each step (fewer at the start).

    Example:
        >>> running_mean(np.array([1.0, 3.0, 5.0]), 2).tolist()
        [1.0, 2.0, 4.0]
    """
    c = np.cumsum(np.insert(np.asarray(a, dtype=np.float64), 0, 0.0))
    idx = np.arange(1, len(a) + 1)
    lo = np.maximum(idx - window, 0)
    return (c[idx] - c[lo]) / (idx - lo)


# ---------------------------------------------------------------------------------------------
# init-compare
# ---------------------------------------------------------------------------------------------

INITS = ("normal", "xavier", "orthogonal", "identity")
NORMAL_STD = 0.1
LABELS = {
    "normal": f"normal N(0, {NORMAL_STD}²), tanh",
    "xavier": "Xavier uniform, tanh",
    "orthogonal": "orthogonal, tanh",
    "identity": "identity (IRNN), ReLU",
}


def make_init_net(scheme: str, hidden_size: int, seed: int) -> AddingNet:
    """The adding-problem RNN with W_hh from `scheme`; everything else identical across schemes.

    W_ih is Xavier-uniform and the biases zero for every scheme (as `init_recurrent_` does), drawn
    from the same generator, so only W_hh differs. 'identity' is the IRNN of Le et al. (2015):
    W_hh = I with ReLU units; the others use tanh.

    Example:
        >>> net = make_init_net("orthogonal", 8, 0)
        >>> W = net.rnn.params["weight_hh_l0"]
        >>> bool(np.allclose(W @ W.T, np.eye(8)))
        True
    """
    net = AddingNet(hidden_size, "relu" if scheme == "identity" else "tanh", seed=seed)
    p = net.rnn.params
    rinit.xavier_uniform_(p["weight_ih_l0"], np.random.default_rng(seed + 2))
    rinit.zeros_(p["bias_ih_l0"])
    rinit.zeros_(p["bias_hh_l0"])
    W, rng = p["weight_hh_l0"], np.random.default_rng(seed + 3)
    if scheme == "normal":
        rinit.normal_(W, NORMAL_STD, rng)
    elif scheme == "xavier":
        rinit.xavier_uniform_(W, rng)
    elif scheme == "orthogonal":
        rinit.orthogonal_(W, rng)
    elif scheme == "identity":
        rinit.identity_(W)
    else:
        raise ValueError(f"scheme: expected one of {', '.join(INITS)}, got {scheme!r}")
    return net


@experiment(
    "init-compare", "Initialising W_hh: normal, Xavier, orthogonal, identity (IRNN): spectrum, gradient flow, training"
)
def init_compare(out_dir: Path, *, seed: int = 0, quick: bool = False, data: str | None = None) -> dict:
    """Compare four initialisations of a vanilla RNN's W_hh on the adding problem.

    (a) all singular values of each initial W_hh; (b) ‖∂h_T/∂h_t‖₂ over T = 50 steps through each
    untrained network, driven by adding-problem inputs (geometric mean over sequences); (c) the
    training loss of the same network and data with each init (Adam, lr 3e-3, global-norm clipping
    at 1 for every run so that no init is favoured by stability tricks).

    Writes init_compare.png, singular_values.csv, gradient_flow.csv, loss_curves.csv,
    initial_w_hh.npz, summary.txt and summary.json.

    Args:
        out_dir: output folder (exists).
        seed: seeds the weights and the training batches.
        quick: a smaller network and a few dozen steps (a smoke test).
        data: unused.

    Returns:
        The summary dict.

    Example:
        >>> init_compare(Path("runs/exp/init"), seed=0)["largest_singular_value"]  # doctest: +SKIP
    """
    if quick:
        H, length, steps, batch, flow_T, flow_S = 16, 20, 60, 16, 50, 2
    else:
        H, length, steps, batch, flow_T, flow_S = 32, 40, 1500, 32, 50, 8
    lr, clip = 3e-3, 1.0
    nets = {s: make_init_net(s, H, seed) for s in INITS}
    W0 = {s: nets[s].rnn.params["weight_hh_l0"].copy() for s in INITS}
    np.savez(out_dir / "initial_w_hh.npz", **W0)

    # (a) spectrum
    svals = {s: np.linalg.svd(W0[s], compute_uv=False) for s in INITS}
    write_csv(
        out_dir / "singular_values.csv", ["index", *INITS], [[i, *(svals[s][i] for s in INITS)] for i in range(H)]
    )

    # (b) gradient flow through the untrained networks, on the task's own inputs
    x_flow, _ = adding_problem(np.random.default_rng(seed + 10), flow_T, flow_S)
    flow, flow_zero = {}, {}
    for s in INITS:
        spectral, _ = state_jacobian_norms(nets[s].rnn, x_flow)
        flow[s] = geometric_mean(spectral, axis=1)  # (T+1,)
        flow_zero[s] = int(np.sum(spectral == 0.0))  # ReLU can cut every path: exactly 0
    write_csv(
        out_dir / "gradient_flow.csv",
        ["t", "steps_back", *INITS],
        [[t, flow_T - t, *(flow[s][t] for s in INITS)] for t in range(flow_T + 1)],
    )

    # (c) training, same data for every init
    logs = {}
    for s in INITS:
        net = nets[s]
        logs[s] = train_adding(
            net,
            Adam(net, lr=lr),
            steps=steps,
            length=length,
            batch=batch,
            data_seed=seed + 20,
            clip="norm",
            threshold=clip,
        )
    n_done = min(len(logs[s]["loss"]) for s in INITS)
    write_csv(
        out_dir / "loss_curves.csv",
        ["step", *INITS],
        [[k, *(logs[s]["loss"][k] for s in INITS)] for k in range(n_done)],
    )
    baseline = logs[INITS[0]]["target_var"]  # same data for every run: the MSE of predicting the mean
    window = max(10, steps // 50)  # at least 10 batches: one batch of 16 is too noisy to mean anything
    smooth = {s: running_mean(logs[s]["loss"], window) for s in INITS}

    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(16, 5))
    colors = {"normal": "tab:blue", "xavier": "tab:orange", "orthogonal": "tab:green", "identity": "tab:red"}
    ax = axes[0]
    styles = {"normal": ("o", "-"), "xavier": ("o", "-"), "orthogonal": ("s", "-"), "identity": ("x", "--")}
    for s in INITS:
        marker, ls = styles[s]
        ax.plot(np.arange(1, H + 1), svals[s], marker=marker, ls=ls, ms=4, color=colors[s], label=LABELS[s])
    ax.set_xlabel("index i (singular values sorted, largest first)")
    ax.set_ylabel("singular value σ_i of the initial W_hh")
    ax.set_title(f"(a) Spectrum of W_hh (H = {H})")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    ax = axes[1]
    t_axis = np.arange(flow_T + 1)
    for s in INITS:
        y = np.where(flow[s] > 0, flow[s], np.nan)  # log axis: an exact 0 cannot be drawn
        ax.semilogy(t_axis, y, color=colors[s], lw=2, label=LABELS[s])
    ax.set_xlabel(f"t (time step of h_t; T = {flow_T})")
    ax.set_ylabel("‖∂h_T/∂h_t‖₂ (geometric mean over sequences)")
    ax.set_title("(b) Gradient flow through the untrained RNN")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8)
    ax = axes[2]
    steps_axis = np.arange(n_done)
    for s in INITS:
        ax.semilogy(np.arange(len(logs[s]["loss"])), logs[s]["loss"], color=colors[s], lw=0.5, alpha=0.2)
        ax.semilogy(np.arange(len(smooth[s])), smooth[s], color=colors[s], lw=1.8, label=LABELS[s])
    ax.axhline(baseline, color="gray", ls="--", lw=1, label=f"predict the mean (MSE {baseline:.3f})")
    ax.set_xlim(0, max(1, steps_axis[-1] if n_done else 1))
    ax.set_xlabel("training step")
    ax.set_ylabel(f"training MSE (faint: per step; solid: mean of last {window})")
    ax.set_title(f"(c) Adding problem, T = {length}: training loss")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8)
    fig.suptitle("Initialising the recurrent weights of a vanilla RNN: measured on the same network, inputs and data")
    fig.tight_layout()
    fig.savefig(out_dir / "init_compare.png", dpi=110)
    plt.close(fig)

    tail = max(1, steps // 10)
    final = {s: float(np.mean(logs[s]["loss"][-tail:])) for s in INITS}
    half = {}
    for s in INITS:
        below = np.flatnonzero(smooth[s] < baseline / 2)
        half[s] = int(below[0]) if below.size else None
    lines = [
        f"A vanilla RNN (H = {H}) on the adding problem (T = {length}), four initialisations of W_hh; "
        f"W_ih (Xavier), biases (0), read-out and data are the same in every run. The identity init is the "
        f"IRNN of Le et al. (2015) and uses ReLU units; the others use tanh. Normal means N(0, {NORMAL_STD}²)."
    ]
    for s in INITS:
        reached = (
            f"its running-mean loss first fell below half the predict-the-mean MSE ({baseline / 2:.3f}) at step {half[s]}"
            if half[s] is not None
            else f"its running-mean loss never fell below half the predict-the-mean MSE ({baseline / 2:.3f})"
        )
        zero_note = (
            f" ({flow_zero[s]} of the {flow_S * (flow_T + 1)} Jacobians were exactly 0: ReLU cut every path)"
            if flow_zero[s]
            else ""
        )
        lines.append(
            f"- {LABELS[s]}: largest singular value {svals[s][0]:.3f}, smallest {svals[s][-1]:.3g}; "
            f"‖∂h_{flow_T}/∂h_0‖₂ = {flow[s][0]:.3g}{zero_note}; final training MSE (mean of the last {tail} steps) "
            f"{final[s]:.4f}; {reached}."
        )
    best = min(INITS, key=lambda s: final[s])
    lines.append(
        f"Lowest final loss: {LABELS[best]} ({final[best]:.4f}, against {baseline:.4f} for predicting the mean); "
        f"{steps} steps of Adam (lr {lr:g}, global-norm clipping at {clip:g}) for every init."
    )
    figures = {
        "hidden_size": H,
        "task_length": length,
        "steps": steps,
        "normal_std": NORMAL_STD,
        "largest_singular_value": {s: sig(svals[s][0]) for s in INITS},
        "smallest_singular_value": {s: sig(svals[s][-1]) for s in INITS},
        "flow_T": flow_T,
        "grad_norm_t0": {s: sig(flow[s][0]) for s in INITS},
        "baseline_mse": sig(baseline),
        "final_loss": {s: sig(final[s]) for s in INITS},
        "step_below_half_baseline": half,
    }
    return write_summary(out_dir, "init-compare", "\n".join(lines), figures)


def nonfinite_what(log: dict) -> str:
    """'the loss was nan' or 'the gradient norm was inf (loss 3.9e+306)' for a run stopped by `train_adding`."""
    loss, norm = float(log["loss"][-1]), float(log["norm_pre"][-1])
    if not math.isfinite(loss):
        return f"the loss was {loss}"
    return f"the gradient norm was {norm} (loss {loss:.3g})"


# ---------------------------------------------------------------------------------------------
# clipping
# ---------------------------------------------------------------------------------------------

CLIP_MODES = ("none", "value", "norm")


def _off_scale(values: np.ndarray, top: float) -> str | None:
    """'no clipping: off the scale from step K, up to X' for the unclipped run's curve, or None."""
    off = np.flatnonzero(~np.isfinite(values) | (values > top))
    if not off.size:
        return None
    biggest = float(np.nanmax(np.where(np.isfinite(values), values, np.nan)))
    return f"no clipping: off the scale from step {off[0]}, up to {biggest:.3g}"


def _corner_note(ax, text: str, y: float) -> None:
    """A small boxed note at the right edge of the axes, its top at height `y` (axes fraction)."""
    ax.text(
        0.98,
        y,
        text,
        transform=ax.transAxes,
        ha="right",
        va="top",
        fontsize=8,
        bbox={"facecolor": "white", "alpha": 0.8, "edgecolor": "none"},
    )


@experiment(
    "clipping", "Gradient clipping: the same high-learning-rate run without clipping, with value and with norm clipping"
)
def clipping(out_dir: Path, *, seed: int = 0, quick: bool = False, data: str | None = None) -> dict:
    """Train one tanh RNN three times (same init, same batches) with SGD at a learning rate that explodes.

    Runs: no clipping; `clip_grad_value_(0.1)` (every gradient entry into [-0.1, 0.1]);
    `clip_grad_norm_(1.0)` (all gradients rescaled together to global norm ≤ 1). SGD with
    momentum 0.9 at lr 0.1 on the adding problem (T = 30, H = 32). The global gradient norm is
    recorded before and after clipping at every step. A run whose loss or gradient becomes
    NaN/inf is stopped at that step; a spike is the first step whose loss exceeds 10× the
    first step's loss.

    Writes clipping.png, clipping.csv, summary.txt and summary.json.

    Args:
        out_dir: output folder (exists).
        seed: seeds the weights and the batches.
        quick: fewer steps (a smoke test; the unclipped run still spikes within it).
        data: unused.

    Returns:
        The summary dict.

    Example:
        >>> clipping(Path("runs/exp/clipping"), seed=0)["nonfinite_step"]  # doctest: +SKIP
    """
    H, length, batch, lr, momentum = 32, 30, 32, 0.1, 0.9
    steps = 80 if quick else 400
    thresholds = {"none": math.nan, "value": 0.1, "norm": 1.0}
    logs = {}
    for mode in CLIP_MODES:
        net = AddingNet(H, "tanh", seed=seed)  # PyTorch's default U(±1/√H) init, identical for every run
        opt = SGD(net, lr=lr, momentum=momentum)
        logs[mode] = train_adding(
            net, opt, steps=steps, length=length, batch=batch, data_seed=seed + 1, clip=mode, threshold=thresholds[mode]
        )
    rows = []
    for mode in CLIP_MODES:
        lg = logs[mode]
        for k in range(len(lg["loss"])):
            rows.append([mode, k, lg["loss"][k], lg["norm_pre"][k], lg["norm_post"][k], lg["norm_w_hh"][k]])
    write_csv(
        out_dir / "clipping.csv",
        ["clip", "step", "loss", "grad_norm_pre_clip", "grad_norm_post_clip", "grad_norm_w_hh"],
        rows,
    )

    spike = {}
    for mode in CLIP_MODES:
        loss = logs[mode]["loss"]
        over = np.flatnonzero(~np.isfinite(loss) | (loss > 10 * loss[0]))
        spike[mode] = int(over[0]) if over.size else None

    plt = pyplot()
    fig, (ax_l, ax_g) = plt.subplots(1, 2, figsize=(14, 6.2))
    colors = {"none": "tab:red", "value": "tab:orange", "norm": "tab:blue"}
    labels = {
        "none": "no clipping",
        "value": f"value clipping at ±{thresholds['value']:g}",
        "norm": f"global-norm clipping at {thresholds['norm']:g}",
    }
    # The diverging run would squash the others into a flat line: cap the loss axis (and the values
    # drawn, which near 1e308 overflow matplotlib's log transform) and say in words what left it.
    clipped_max = max(
        float(np.nanmax(np.where(np.isfinite(logs[m]["loss"]), logs[m]["loss"], np.nan))) for m in ("value", "norm")
    )
    top = 100.0 * clipped_max
    lowest = min(float(np.nanmin(np.where(np.isfinite(logs[m]["loss"]), logs[m]["loss"], np.nan))) for m in CLIP_MODES)
    for mode in CLIP_MODES:
        lg = logs[mode]
        k = np.arange(len(lg["loss"]))
        finite = np.isfinite(lg["loss"])
        shown = np.minimum(lg["loss"][finite], 10 * top)  # off the top of the axis either way
        ax_l.semilogy(k[finite], shown, color=colors[mode], lw=1.2, label=labels[mode])
        fin_n = np.isfinite(lg["norm_pre"])
        ax_g.semilogy(
            k[fin_n], lg["norm_pre"][fin_n], color=colors[mode], lw=1.2, label=f"{labels[mode]}: before clipping"
        )
        if mode != "none":
            ax_g.semilogy(
                k, lg["norm_post"], color=colors[mode], lw=0.8, ls=":", label=f"{labels[mode]}: after clipping"
            )
    s = spike["none"]
    nf = logs["none"]["nonfinite_step"]
    for ax in (ax_l, ax_g):
        if s is not None:
            ax.axvline(s, color="tab:red", ls="--", lw=1)
        if nf is not None:
            ax.axvline(nf, color="black", ls="-.", lw=1)
    ax_l.set_ylim(0.5 * lowest, top)
    notes = []
    if s is not None:
        notes.append(f"no clipping: loss > 10× its first value at step {s} (dashed)")
    off = _off_scale(logs["none"]["loss"], top)
    if off:
        notes.append(off)
    if nf is not None:
        notes.append(f"no clipping: {nonfinite_what(logs['none'])} at step {nf}, run stopped (dash-dot)")
    if notes:
        _corner_note(ax_l, "\n".join(notes), 0.80)  # in the empty top of the capped axis, clear of the spike
    baseline = logs["norm"]["target_var"]  # same batches in every run (this one runs them all): MSE of the mean
    ax_l.axhline(baseline, color="gray", ls="--", lw=1, label=f"predict the mean (MSE {baseline:.3f})")
    # The same cap on the gradient axis: the unclipped run's 1e50+ norms would flatten the others.
    pre_clipped = [logs[m]["norm_pre"][np.isfinite(logs[m]["norm_pre"])] for m in ("value", "norm")]
    g_top = 100.0 * max(float(np.max(v)) for v in pre_clipped if v.size)
    g_low = min(
        float(np.min(v[v > 0]))
        for v in [*pre_clipped, *(logs[m]["norm_post"] for m in ("value", "norm"))]
        if (v > 0).any()
    )
    ax_g.set_ylim(0.5 * g_low, g_top)
    g_off = _off_scale(logs["none"]["norm_pre"], g_top)
    if g_off:
        _corner_note(ax_g, g_off, 0.97)
    ax_g.axhline(thresholds["norm"], color="tab:blue", ls="--", lw=0.8, label=f"norm threshold {thresholds['norm']:g}")
    ax_l.set_xlabel("SGD step")
    ax_l.set_ylabel("training MSE")
    ax_l.set_title("Training loss (axis capped at 100× the clipped runs' maximum)")
    ax_g.set_xlabel("SGD step")
    ax_g.set_ylabel("global gradient norm")
    ax_g.set_title("Gradient norm before (solid) and after (dotted) clipping, capped alike")
    for ax in (ax_l, ax_g):  # legends under the axes: no curve is ever hidden behind one
        ax.grid(True, which="major", alpha=0.3)
        ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=2, frameon=False)
    fig.suptitle(f"Same tanh RNN, same data, SGD lr {lr:g} momentum {momentum:g}: adding problem T = {length}, H = {H}")
    fig.tight_layout()
    fig.savefig(out_dir / "clipping.png", dpi=110)
    plt.close(fig)

    tail = 50 if not quick else 10
    lines = [
        f"One tanh RNN (H = {H}, PyTorch's default init) trained on the adding problem (T = {length}) three times "
        f"with the same initial weights and batches: SGD, lr {lr:g}, momentum {momentum:g}, {steps} steps."
    ]
    figures: dict = {
        "hidden_size": H,
        "task_length": length,
        "lr": lr,
        "momentum": momentum,
        "steps": steps,
        "baseline_mse": sig(baseline),
    }
    for mode in CLIP_MODES:
        lg = logs[mode]
        loss, pre = lg["loss"], lg["norm_pre"]
        desc = f"- {labels[mode]}: "
        if spike[mode] is not None:
            k = spike[mode]
            share = lg["norm_w_hh"][k] / pre[k] if math.isfinite(pre[k]) and pre[k] > 0 else math.nan
            desc += (
                f"the loss spiked at step {k} ({loss[k]:.3g}, from {loss[0]:.3g} at step 0; gradient norm {pre[k]:.3g}, "
                f"of which W_hh's gradient {share:.0%} by norm); "
            )
        if lg["nonfinite_step"] is not None:
            desc += f"{nonfinite_what(lg)} at step {lg['nonfinite_step']}, so the run was stopped there"
        else:
            end = float(np.mean(loss[-tail:]))
            verdict = "below" if end < baseline else "not below"
            desc += (
                f"finite for all {len(loss)} steps; mean loss over the last {tail} steps {end:.4g}, {verdict} the "
                f"{baseline:.4g} of predicting the mean"
            )
        desc += f"; largest pre-clip gradient norm {np.nanmax(np.where(np.isfinite(pre), pre, np.nan)):.3g}"
        if mode == "norm":
            clipped = float(np.mean(pre > thresholds["norm"]))
            desc += f"; {clipped:.0%} of steps were clipped, the largest norm after clipping was {np.max(lg['norm_post']):.6g}"
        if mode == "none" and spike[mode] is not None:
            after = slice(spike[mode] + 1, len(loss))
            ok = np.isfinite(pre[after]) & (pre[after] > 0)
            if ok.any():
                shares = lg["norm_w_hh"][after][ok] / pre[after][ok]
                desc += (
                    f"; after the spike W_hh's share of the gradient norm has median {np.median(shares):.0%}: "
                    "with tanh saturated, dh/dh_prev ≈ 0, so little flows back through time and the huge "
                    "gradient sits in the input and read-out weights"
                )
                figures["w_hh_share_after_spike_median"] = sig(np.median(shares))
        lines.append(desc + ".")
        figures[mode] = {
            "threshold": None if mode == "none" else thresholds[mode],
            "steps_run": len(loss),
            "spike_step": spike[mode],
            "nonfinite_step": lg["nonfinite_step"],
            "final_loss": sig(np.mean(loss[-tail:])) if lg["nonfinite_step"] is None else None,
            "max_grad_norm_pre_clip": sig(np.nanmax(np.where(np.isfinite(pre), pre, np.nan))),
            "max_grad_norm_post_clip": sig(np.nanmax(lg["norm_post"])) if np.isfinite(lg["norm_post"]).any() else None,
        }
    return write_summary(out_dir, "clipping", "\n".join(lines), figures)
