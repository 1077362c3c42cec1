"""Experiments on memory: how far back can each recurrent cell carry information?

Three experiments, each training real networks built from `rnnlab.scratch` layers:

* `memory-capacity`: read a sequence, emit its first token at the end, for growing lengths;
  vanilla RNN vs LSTM vs GRU over several seeds (accuracy on fresh held-out sequences).
* `adding-problem`: the classic long-range regression task (Hochreiter & Schmidhuber 1997;
  Le, Jaitly & Hinton 2015), MSE curves against the 0.167 baseline of always answering 1.
* `sine`: next-step forecasting of a noisy sum of sines, against 'repeat the last value'.

Run one with `rnnlab experiment memory-capacity --out runs/exp/memory-capacity`.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..scratch import GRU, LSTM, RNN
from ..scratch.clip import clip_grad_norm_
from ..scratch.init import init_recurrent_
from ..scratch.layers import Linear
from ..scratch.losses import cross_entropy, mse_loss
from ..scratch.module import Module
from ..scratch.optim import Adam
from .common import RunProgress, pyplot, write_csv, write_summary
from .registry import experiment

CELLS = ("rnn", "irnn", "lstm", "gru")
CELL_LABELS = {"rnn": "RNN (tanh)", "irnn": "IRNN (ReLU, identity init)", "lstm": "LSTM", "gru": "GRU"}
CELL_COLORS = {"rnn": "tab:blue", "irnn": "tab:purple", "lstm": "tab:orange", "gru": "tab:green"}


# ---------------------------------------------------------------------------------------------
# The model: one recurrent layer and a linear read-out.
# ---------------------------------------------------------------------------------------------


class RecurrentModel(Module):
    """One recurrent layer (RNN, IRNN, LSTM or GRU) and a Linear head.

    The head reads the last hidden state (`per_step=False`: one output per sequence, for tasks
    that answer at the end) or every hidden state (`per_step=True`: one output per step, for
    forecasting). Inputs are time-major (T, B, I), the engine's native layout.

    Initialisation, per cell (each cell's usual recipe; the summaries say which one is used):
        'rnn':  PyTorch's default, every weight U(±1/√H), tanh.
        'irnn': Le, Jaitly & Hinton (2015): ReLU, W_hh = identity, zero biases, W_ih ~ N(0, 0.001²).
        'lstm': forget-gate bias `forget_bias` (default 1.0, Gers et al. 2000); with `span`, the
                "chrono" initialisation of Tallec & Ollivier (2018) instead: forget bias
                log U(1, span - 1) per unit and input bias its negative, so the cell starts out
                remembering over time scales up to `span` steps.
        'gru':  PyTorch's default; with `span`, the chrono bias log U(1, span - 1) on the update
                gate z (h = (1 - z) n + z h_prev, so a large z keeps the state).

    Args:
        cell: 'rnn', 'irnn', 'lstm' or 'gru'.
        input_size: features per step I.
        hidden_size: H.
        output_size: O.
        seed: seeds the initialisation.
        per_step: read out every step instead of the last.
        span: time scale for the chrono initialisation of LSTM/GRU (None: not used).
        forget_bias: LSTM forget-gate bias when `span` is None.

    Example:
        >>> m = RecurrentModel("lstm", 3, 16, 2, seed=0)
        >>> y = m.forward(np.zeros((10, 4, 3), np.float32))   # (T, B, I) -> (B, O)
        >>> y.shape
        (4, 2)
        >>> m.backward(np.ones_like(y))                        # accumulates m.grads
    """

    def __init__(
        self,
        cell: str,
        input_size: int,
        hidden_size: int,
        output_size: int,
        *,
        seed: int,
        per_step: bool = False,
        span: int | None = None,
        forget_bias: float = 1.0,
    ) -> None:
        super().__init__()
        if cell not in CELLS:
            raise ValueError(f"cell: expected one of {', '.join(CELLS)}, got {cell!r}")
        self.cell = cell
        self.per_step = per_step
        rng = np.random.default_rng([seed, 7])
        layer_seed, head_seed = (int(s) for s in rng.integers(0, 2**31, size=2))
        H = hidden_size
        if cell in ("rnn", "irnn"):
            self.rnn = RNN(input_size, H, nonlinearity="relu" if cell == "irnn" else "tanh", seed=layer_seed)
        else:
            self.rnn = (LSTM if cell == "lstm" else GRU)(input_size, H, seed=layer_seed)
        p = self.rnn.params
        if cell == "irnn":
            init_recurrent_(self.rnn, "identity", rng)  # W_hh = I, biases 0
            p["weight_ih_l0"][...] = rng.normal(0.0, 1e-3, p["weight_ih_l0"].shape)
        elif cell == "lstm" and span is None:
            p["bias_ih_l0"][H : 2 * H] = forget_bias  # b_ih + b_hh of the forget gate = forget_bias
            p["bias_hh_l0"][H : 2 * H] = 0.0
        elif cell in ("lstm", "gru") and span is not None:
            chrono = np.log(rng.uniform(1.0, max(span - 1.0, 1.0 + 1e-6), H))
            # gate blocks: LSTM [i f g o], GRU [r z n]; the keep gate is the second block in both
            p["bias_ih_l0"][H : 2 * H] = chrono
            p["bias_hh_l0"][H : 2 * H] = 0.0
            if cell == "lstm":  # input gate mostly shut at first: noise does not wash the memory out
                p["bias_ih_l0"][:H] = -chrono
                p["bias_hh_l0"][:H] = 0.0
        self.head = Linear(H, output_size, seed=head_seed)
        self.register_module("rnn", self.rnn)
        self.register_module("head", self.head)

    def forward(self, x: np.ndarray) -> np.ndarray:
        """x (T, B, I) -> outputs (B, O), or (T, B, O) with `per_step`."""
        out, h_n = self.rnn.forward(x)
        if self.per_step:
            return self.head.forward(out)  # (T, B, O)
        h = h_n[0] if self.cell == "lstm" else h_n  # (1, B, H)
        return self.head.forward(h[0])  # (B, O)

    __call__ = forward

    def backward(self, dy: np.ndarray) -> None:
        """Accumulate every parameter's gradient from dy, shaped like the output of `forward`."""
        dh = self.head.backward(dy)
        if self.per_step:
            self.rnn.backward(dh)
            return
        # only the last state reaches the loss: pass it as the final-state gradient
        dh_n = dh[None]  # (1, B, H)
        self.rnn.backward(None, (dh_n, None) if self.cell == "lstm" else dh_n)


def _train_step(model: RecurrentModel, opt: Adam, x: np.ndarray, y: np.ndarray, loss_fn, clip: float):
    """One Adam step with global-norm clipping; returns (loss, model output before the step)."""
    opt.zero_grad()
    out = model.forward(x)
    loss, dout = loss_fn(out, y)
    model.backward(dout)
    clip_grad_norm_(model, clip)
    opt.step()
    return loss, out


def _rng(seed: int, *keys: int) -> np.random.Generator:
    """An independent generator per (seed, purpose, ...): runs do not share random streams."""
    return np.random.default_rng([seed, *keys])


def _fmt_pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _ratio_phrase(value: float, reference: float) -> str:
    """'4.2x lower than' or '1.3x higher than': how `value` compares with `reference`."""
    if value <= reference:
        return f"{reference / value:.1f}x lower than" if value > 0 else "far lower than"
    return f"{value / reference:.1f}x higher than"


# ---------------------------------------------------------------------------------------------
# The adding problem.
# ---------------------------------------------------------------------------------------------


def adding_batch(rng: np.random.Generator, batch: int, length: int) -> tuple[np.ndarray, np.ndarray]:
    """A batch of the adding problem (Hochreiter & Schmidhuber 1997; Le, Jaitly & Hinton 2015).

    Channel 0 holds random numbers U(0, 1); channel 1 is a marker that is 1 at exactly two
    positions, one drawn uniformly from the first half and one from the second half. The target
    is the sum of the two marked numbers.

    Args:
        rng: random generator.
        batch: B.
        length: T >= 2.

    Returns:
        x (T, B, 2) float32, y (B, 1) float32.

    Example:
        >>> x, y = adding_batch(np.random.default_rng(0), 4, 10)
        >>> x.shape, y.shape, x[:, :, 1].sum(axis=0).tolist()
        ((10, 4, 2), (4, 1), [2.0, 2.0, 2.0, 2.0])
    """
    if length < 2:
        raise ValueError(f"length: expected at least 2, got {length}")
    half = length // 2
    x = np.zeros((length, batch, 2), dtype=np.float32)
    x[:, :, 0] = rng.random((length, batch))
    cols = np.arange(batch)
    first = rng.integers(0, half, batch)
    second = rng.integers(half, length, batch)
    x[first, cols, 1] = 1.0
    x[second, cols, 1] = 1.0
    y = (x[first, cols, 0] + x[second, cols, 0])[:, None]
    return x, y.astype(np.float32)


@dataclass(frozen=True)
class AddingConfig:
    """Budget and hyper-parameters of `adding-problem` (the defaults are the measured run)."""

    lengths: tuple[int, ...] = (50, 200)
    cells: tuple[str, ...] = CELLS
    hidden_size: int = 32
    batch_size: int = 64
    lr: float = 1e-2
    # IRNN diverged to NaN at 1e-2 (T = 200, measured); Le et al. (2015) also train it with small steps
    irnn_lr: float = 1e-3
    clip: float = 1.0
    steps: tuple[int, ...] = (3000, 5000)  # per length: the long sequences get the budget
    eval_every: int = 50
    eval_size: int = 1000
    solved_mse: float = 0.001  # stop a run once its held-out MSE is this low (saves time)
    chrono: bool = True  # chrono initialisation of LSTM/GRU with span = sequence length
    beat_margin: float = 0.9  # 'beats the baseline' = held-out MSE below 0.9 x baseline

    @classmethod
    def quick(cls) -> AddingConfig:
        return cls(lengths=(10, 20), steps=(300, 40), eval_every=20)


def train_adding(
    cell: str, length: int, steps: int, cfg: AddingConfig, seed: int, x_eval: np.ndarray, y_eval: np.ndarray
) -> dict:
    """Train one cell on the adding problem at one length; held-out MSE every `cfg.eval_every` steps.

    Returns:
        {"steps": [...], "mse": [...], "trained_steps": n, "seconds": s}; the curve starts at step 0.

    Example:
        >>> x, y = adding_batch(np.random.default_rng(1), 200, 10)
        >>> r = train_adding("lstm", 10, 40, AddingConfig.quick(), 0, x, y)   # doctest: +SKIP
    """
    t0 = time.perf_counter()
    model = RecurrentModel(cell, 2, cfg.hidden_size, 1, seed=seed, span=length if cfg.chrono else None)
    opt = Adam(model, lr=cfg.irnn_lr if cell == "irnn" else cfg.lr)
    rng = _rng(seed, 2, length, CELLS.index(cell))

    def evaluate() -> float:
        return float(np.mean((model.forward(x_eval) - y_eval) ** 2))

    curve_steps, curve_mse = [0], [evaluate()]
    step = 0
    for step in range(1, steps + 1):
        x, y = adding_batch(rng, cfg.batch_size, length)
        _train_step(model, opt, x, y, mse_loss, cfg.clip)
        if step % cfg.eval_every == 0 or step == steps:
            curve_steps.append(step)
            curve_mse.append(evaluate())
            if not np.isfinite(curve_mse[-1]) or curve_mse[-1] < cfg.solved_mse:
                break
    return {"steps": curve_steps, "mse": curve_mse, "trained_steps": step, "seconds": time.perf_counter() - t0}


# ---------------------------------------------------------------------------------------------
# Memory capacity: remember the first token.
# ---------------------------------------------------------------------------------------------


def first_token_batch(
    rng: np.random.Generator, batch: int, length: int, n_symbols: int = 8, n_distractors: int = 4
) -> tuple[np.ndarray, np.ndarray]:
    """Sequences whose first token must be recalled at the end, one-hot encoded.

    Step 0 carries one of `n_symbols` symbols (ids 0..n_symbols-1); steps 1..T-1 carry random
    distractors drawn from `n_distractors` other symbols (ids n_symbols..). The target is the first
    symbol. Chance accuracy is 1 / n_symbols.

    Args:
        rng: random generator.
        batch: B.
        length: T >= 1 (the first token included).
        n_symbols: size of the set the remembered token comes from.
        n_distractors: size of the distractor set.

    Returns:
        x (T, B, n_symbols + n_distractors) float32 one-hot, y (B,) int64 in [0, n_symbols).

    Example:
        >>> x, y = first_token_batch(np.random.default_rng(0), 3, 5)
        >>> x.shape, bool((x[0].argmax(-1) == y).all()), bool((x[1:].argmax(-1) >= 8).all())
        ((5, 3, 12), True, True)
    """
    if length < 1:
        raise ValueError(f"length: expected at least 1, got {length}")
    ids = rng.integers(n_symbols, n_symbols + n_distractors, (length, batch))
    y = rng.integers(0, n_symbols, batch)
    ids[0] = y
    x = np.zeros((length, batch, n_symbols + n_distractors), dtype=np.float32)
    np.put_along_axis(x, ids[..., None], 1.0, axis=2)
    return x, y


@dataclass(frozen=True)
class MemoryConfig:
    """Budget and hyper-parameters of `memory-capacity` (the defaults are the measured run)."""

    lengths: tuple[int, ...] = (5, 10, 20, 50, 100)
    cells: tuple[str, ...] = ("rnn", "lstm", "gru")
    seeds: int = 3
    n_symbols: int = 8
    n_distractors: int = 4
    hidden_size: int = 64
    batch_size: int = 64
    lr: float = 1e-2
    clip: float = 1.0
    max_steps: int = 1000  # the gated cells stop long before; the vanilla RNN gets a fair chance
    # early stop: this many consecutive training batches all correct with loss below stop_loss
    stop_streak: int = 5
    stop_loss: float = 0.05
    eval_size: int = 1000

    @classmethod
    def quick(cls) -> MemoryConfig:
        return cls(lengths=(3, 8), seeds=1, hidden_size=32, max_steps=150, eval_size=500)


def train_first_token(cell: str, length: int, seed: int, cfg: MemoryConfig) -> dict:
    """Train one cell to recall the first token of `length`-step sequences; test on fresh ones.

    Training stops after `cfg.max_steps` steps, or earlier once `cfg.stop_streak` consecutive
    training batches are all classified correctly with cross-entropy below `cfg.stop_loss` (a
    deterministic rule: it depends on the seed only).

    Returns:
        {"accuracy": held-out accuracy on cfg.eval_size fresh sequences, "steps": steps trained,
        "final_loss": last training loss, "seconds": wall time}.

    Example:
        >>> train_first_token("lstm", 5, 0, MemoryConfig.quick())["accuracy"]   # doctest: +SKIP
        1.0
    """
    t0 = time.perf_counter()
    V = cfg.n_symbols + cfg.n_distractors
    # LSTM and GRU get the chrono initialisation with the task's span, the vanilla RNN PyTorch's default
    model = RecurrentModel(cell, V, cfg.hidden_size, cfg.n_symbols, seed=seed, span=length)
    opt = Adam(model, lr=cfg.lr)
    rng = _rng(seed, 1, length, CELLS.index(cell))
    streak, steps, loss = 0, 0, float("nan")
    while steps < cfg.max_steps:
        x, y = first_token_batch(rng, cfg.batch_size, length, cfg.n_symbols, cfg.n_distractors)
        opt.zero_grad()
        logits = model.forward(x)
        loss, dlogits = cross_entropy(logits, y)
        perfect = bool((logits.argmax(-1) == y).all()) and loss < cfg.stop_loss
        streak = streak + 1 if perfect else 0
        # Check before updating: the model we test is exactly the one that just passed. (At
        # lr 1e-2 one more Adam step can knock a solved model off again: measured.)
        if streak >= cfg.stop_streak or not np.isfinite(loss):
            break
        model.backward(dlogits)
        clip_grad_norm_(model, cfg.clip)
        opt.step()
        steps += 1
    # held out: fresh sequences from a generator no training run draws from
    x, y = first_token_batch(_rng(seed, 99, length), cfg.eval_size, length, cfg.n_symbols, cfg.n_distractors)
    accuracy = float(np.mean(model.forward(x).argmax(-1) == y))
    return {"accuracy": accuracy, "steps": steps, "final_loss": float(loss), "seconds": time.perf_counter() - t0}


def _accuracy_table(results: list[dict], cells: tuple[str, ...], lengths: tuple[int, ...]) -> list[dict]:
    """Per (cell, length): mean, min and max held-out accuracy over seeds, and mean training steps."""
    table = []
    for cell in cells:
        for length in lengths:
            rows = [r for r in results if r["cell"] == cell and r["length"] == length]
            acc = np.array([r["accuracy"] for r in rows])
            table.append(
                {
                    "cell": cell,
                    "length": length,
                    "mean": float(acc.mean()),
                    "min": float(acc.min()),
                    "max": float(acc.max()),
                    "mean_steps": float(np.mean([r["steps"] for r in rows])),
                }
            )
    return table


@experiment("memory-capacity", "Remember the first token: accuracy vs sequence length, RNN vs LSTM vs GRU")
def memory_capacity(
    out_dir: Path, *, seed: int = 0, quick: bool = False, data: str | None = None, config: MemoryConfig | None = None
) -> dict:
    """Train RNN, LSTM and GRU to recall the first token of sequences of growing length.

    For every cell, length and seed (seeds `seed`, `seed + 1`, ...) a fresh model is trained and
    tested on `eval_size` fresh sequences. Writes memory_capacity.png (mean accuracy with min–max
    bars vs length, and training steps used), memory_capacity.csv (one row per run), summary.txt
    and summary.json (`results`: [{cell, length, seed, accuracy}], `table`: per (cell, length)
    mean/min/max).

    Args:
        out_dir: output folder (exists).
        seed: first seed.
        quick: tiny grid for tests (lengths 3 and 8, one seed, 32 units).
        data: unused (no corpus needed).
        config: override the defaults (`MemoryConfig`).

    Example:
        >>> memory_capacity(Path("runs/exp/memory-capacity"), seed=0)["table"][0]   # doctest: +SKIP
    """
    cfg = config or (MemoryConfig.quick() if quick else MemoryConfig())
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    seeds = [seed + k for k in range(cfg.seeds)]
    runs = []
    with (
        np.errstate(over="ignore", invalid="ignore"),
        RunProgress(len(cfg.cells) * len(cfg.lengths) * len(seeds), "memory-capacity") as bar,
    ):
        for cell in cfg.cells:
            for length in cfg.lengths:
                for s in seeds:
                    runs.append({"cell": cell, "length": length, "seed": s, **train_first_token(cell, length, s, cfg)})
                    bar.advance(f"{cell} T={length} seed {s}")
    results = [{k: r[k] for k in ("cell", "length", "seed", "accuracy")} for r in runs]
    table = _accuracy_table(runs, cfg.cells, cfg.lengths)
    write_csv(
        out_dir / "memory_capacity.csv",
        ["cell", "length", "seed", "accuracy", "train_steps", "final_train_loss"],
        [[r["cell"], r["length"], r["seed"], r["accuracy"], r["steps"], r["final_loss"]] for r in runs],
    )
    _plot_memory(out_dir / "memory_capacity.png", table, cfg, seeds)
    text = _memory_summary(table, cfg, seeds)
    figures = {
        "results": results,
        "table": table,
        "chance": 1.0 / cfg.n_symbols,
        "seeds": seeds,
        "config": asdict(cfg),
        "files": {"figure": "memory_capacity.png", "data": "memory_capacity.csv"},
    }
    return write_summary(out_dir, "memory-capacity", text, figures)


def _plot_memory(path: Path, table: list[dict], cfg: MemoryConfig, seeds: list[int]) -> None:
    plt = pyplot()
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(12, 4.6))
    markers = {"rnn": "o", "irnn": "v", "lstm": "s", "gru": "^"}
    for k, cell in enumerate(cfg.cells):
        rows = [t for t in table if t["cell"] == cell]
        # a small horizontal shift per cell (log axis) so that lines at 100% do not hide each other
        L = np.array([t["length"] for t in rows]) * 1.04 ** (k - (len(cfg.cells) - 1) / 2)
        mean = np.array([t["mean"] for t in rows])
        err = np.array([[t["mean"] - t["min"] for t in rows], [t["max"] - t["mean"] for t in rows]])
        style = {"marker": markers[cell], "color": CELL_COLORS[cell], "label": CELL_LABELS[cell]}
        ax.errorbar(L, 100 * mean, yerr=100 * err, capsize=4, **style)
        ax2.plot(L, [t["mean_steps"] for t in rows], **style)
    ax.axhline(100 / cfg.n_symbols, color="gray", ls=":", label=f"chance ({100 / cfg.n_symbols:.1f}%)")
    ax.set_xscale("log")
    ax.set_xticks(cfg.lengths, [str(n) for n in cfg.lengths])
    ax.set_xticks([], minor=True)  # a range under a decade would get minor labels such as "4x10^0"
    ax.set_ylim(0, 105)
    ax.set_xlabel("sequence length T (the token to recall is T - 1 steps back)")
    ax.set_ylabel(f"held-out accuracy (%), {cfg.eval_size} fresh sequences")
    n_seeds = f"{len(seeds)} seed{'s' if len(seeds) != 1 else ''}"
    ax.set_title(f"Recall the first token: mean over {n_seeds}, bars min–max")
    ax.legend(loc="lower left")
    ax2.axhline(cfg.max_steps, color="gray", ls=":", label=f"budget ({cfg.max_steps} steps)")
    ax2.set_xscale("log")
    ax2.set_xticks(cfg.lengths, [str(n) for n in cfg.lengths])
    ax2.set_xticks([], minor=True)
    ax2.set_xlabel("sequence length T")
    ax2.set_ylabel("training steps used (mean over seeds)")
    ax2.set_title("Steps until solved (early stop) or the budget")
    ax2.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _memory_summary(table: list[dict], cfg: MemoryConfig, seeds: list[int]) -> str:
    by = {(t["cell"], t["length"]): t for t in table}
    lines = [
        f"Task: read T one-hot tokens and output the first one at the last step ({cfg.n_symbols} symbols, chance "
        f"{_fmt_pct(1 / cfg.n_symbols)}; steps 2..T carry random distractors from {cfg.n_distractors} other symbols). "
        f"Each model: one recurrent layer of {cfg.hidden_size} units and a linear read-out of the last state, "
        f"Adam lr {cfg.lr:g}, gradient norm clipped at {cfg.clip:g}, batch {cfg.batch_size}, up to {cfg.max_steps} "
        f"steps, stopping once {cfg.stop_streak} consecutive training batches were all correct with loss < "
        f"{cfg.stop_loss:g}. LSTM and GRU start from the chrono initialisation (Tallec & Ollivier 2018) with span T; "
        f"the vanilla RNN from PyTorch's default. Accuracy is measured on {cfg.eval_size} fresh sequences; "
        f"seeds {', '.join(map(str, seeds))}.",
        "",
        "Held-out accuracy, mean [min-max] over seeds:",
        "length " + "".join(f"{CELL_LABELS[c]:>26}" for c in cfg.cells),
    ]
    for length in cfg.lengths:
        cells = ""
        for c in cfg.cells:
            t = by[c, length]
            cells += f"{_fmt_pct(t['mean'])} [{_fmt_pct(t['min'])}-{_fmt_pct(t['max'])}]".rjust(26)
        lines.append(f"{length:>6} {cells}")
    lines.append("")
    for cell in cfg.cells:
        solved = [n for n in cfg.lengths if by[cell, n]["min"] >= 0.99]
        upto = 0  # the longest length up to which every length was solved by every seed
        for n in cfg.lengths:
            if n not in solved:
                break
            upto = n
        longest = by[cell, cfg.lengths[-1]]
        prefix = [n for n in cfg.lengths if n <= upto]
        detail = "" if solved == prefix else f" (lengths where every seed reached >= 99%: {solved})"
        lines.append(
            f"{CELL_LABELS[cell]}: every seed >= 99% at every length up to {upto or 'none'}{detail}; "
            f"at length {cfg.lengths[-1]} mean {_fmt_pct(longest['mean'])} (min {_fmt_pct(longest['min'])}), "
            f"using {longest['mean_steps']:.0f} training steps on average."
        )
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# The adding problem, the experiment.
# ---------------------------------------------------------------------------------------------


def _first_step_below(steps: list[int], mse: list[float], threshold: float) -> int | None:
    """The first evaluated step whose MSE is below `threshold`, or None."""
    return next((s for s, m in zip(steps, mse, strict=True) if m < threshold), None)


@experiment("adding-problem", "The adding problem at two lengths: RNN, IRNN, LSTM, GRU against the 0.167 baseline")
def adding_problem(
    out_dir: Path, *, seed: int = 0, quick: bool = False, data: str | None = None, config: AddingConfig | None = None
) -> dict:
    """Train RNN (tanh), IRNN, LSTM and GRU on the adding problem and draw held-out MSE curves.

    The baseline is the MSE of always answering 1, measured on the same held-out set (in theory
    E[(s - 1)²] = Var(s) = 2/12 = 1/6 for s the sum of two U(0, 1)). Writes adding_problem.png,
    adding_problem.csv (length, cell, step, mse), summary.txt and summary.json (per length:
    the measured baseline and per cell the final and best MSE, the first step below the baseline
    and below `beat_margin` x baseline, the steps trained).

    Args:
        out_dir: output folder (exists).
        seed: seeds the models, the training batches and the held-out sets.
        quick: tiny settings for tests (lengths 10 and 20).
        data: unused (no corpus needed).
        config: override the defaults (`AddingConfig`).

    Example:
        >>> adding_problem(Path("runs/exp/adding-problem"), seed=0)["lengths"]["200"]["lstm"]   # doctest: +SKIP
    """
    cfg = config or (AddingConfig.quick() if quick else AddingConfig())
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if len(cfg.steps) != len(cfg.lengths):
        raise ValueError(f"config: expected one step budget per length, got {cfg.steps} for {cfg.lengths}")
    per_length: dict[str, dict] = {}
    curves: dict[tuple[int, str], dict] = {}
    rows = []
    with (
        np.errstate(over="ignore", invalid="ignore"),
        RunProgress(len(cfg.lengths) * len(cfg.cells), "adding-problem") as bar,
    ):
        for length, steps in zip(cfg.lengths, cfg.steps, strict=True):
            x_eval, y_eval = adding_batch(_rng(seed, 3, length), cfg.eval_size, length)
            baseline = float(np.mean((1.0 - y_eval) ** 2))  # always answer 1
            entry: dict = {"baseline_mse": baseline, "budget_steps": steps}
            for cell in cfg.cells:
                r = train_adding(cell, length, steps, cfg, seed, x_eval, y_eval)
                bar.advance(f"{cell} T={length}")
                curves[length, cell] = r
                rows += [[length, cell, s, m] for s, m in zip(r["steps"], r["mse"], strict=True)]
                finite = [m for m in r["mse"] if np.isfinite(m)]
                entry[cell] = {
                    "final_mse": r["mse"][-1] if np.isfinite(r["mse"][-1]) else None,
                    "best_mse": min(finite) if finite else None,
                    "first_step_below_baseline": _first_step_below(r["steps"], r["mse"], baseline),
                    "first_step_beating_baseline": _first_step_below(r["steps"], r["mse"], cfg.beat_margin * baseline),
                    "trained_steps": r["trained_steps"],
                    "solved": bool(np.isfinite(r["mse"][-1]) and r["mse"][-1] < cfg.solved_mse),
                    "diverged": not np.isfinite(r["mse"][-1]),
                }
            per_length[str(length)] = entry
    write_csv(out_dir / "adding_problem.csv", ["length", "cell", "step", "heldout_mse"], rows)
    _plot_adding(out_dir / "adding_problem.png", curves, per_length, cfg)
    text = _adding_summary(per_length, cfg)
    figures = {
        "lengths": per_length,
        "theoretical_baseline_mse": 1.0 / 6.0,
        "config": asdict(cfg),
        "files": {"figure": "adding_problem.png", "data": "adding_problem.csv"},
    }
    return write_summary(out_dir, "adding-problem", text, figures)


def _plot_adding(path: Path, curves: dict, per_length: dict, cfg: AddingConfig) -> None:
    plt = pyplot()
    fig, axes = plt.subplots(1, len(cfg.lengths), figsize=(6.2 * len(cfg.lengths), 5.4), squeeze=False)
    for ax, length in zip(axes[0], cfg.lengths, strict=True):
        entry = per_length[str(length)]
        for cell in cfg.cells:
            r = curves[length, cell]
            steps, mse = np.array(r["steps"]), np.array(r["mse"], dtype=float)
            ok = np.isfinite(mse)
            label = CELL_LABELS[cell] + (" (solved, stopped)" if entry[cell]["solved"] else "")
            label += " (diverged)" if entry[cell]["diverged"] else ""
            ax.plot(steps[ok], mse[ok], color=CELL_COLORS[cell], label=label)
            if entry[cell]["solved"]:  # mark where the run stopped
                ax.plot(steps[ok][-1], mse[ok][-1], marker="*", ms=10, color=CELL_COLORS[cell])
        base = entry["baseline_mse"]
        ax.axhline(base, color="gray", ls="--", label=f"baseline: always answer 1 ({base:.3f})")
        ax.axhline(cfg.beat_margin * base, color="gray", ls=":", lw=0.8, label=f"{cfg.beat_margin:g} x baseline")
        ax.set_yscale("log")
        ax.set_xlabel(f"training step (batch of {cfg.batch_size})")
        ax.set_ylabel(f"held-out MSE ({cfg.eval_size} sequences)")
        ax.set_title(f"Adding problem, T = {length}")
        ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2, frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _adding_summary(per_length: dict, cfg: AddingConfig) -> str:
    lines = [
        "Adding problem: 2 input channels (a number U(0,1) and a marker set at one position in each half); the target "
        "is the sum of the two marked numbers. Each model: one recurrent layer of "
        f"{cfg.hidden_size} units and a linear read-out of the last state, Adam (lr {cfg.lr:g}; IRNN {cfg.irnn_lr:g}), "
        f"gradient norm clipped at {cfg.clip:g}, batch {cfg.batch_size}, MSE on {cfg.eval_size} held-out sequences "
        f"every {cfg.eval_every} steps; a run stops once that MSE is below {cfg.solved_mse:g}. IRNN: ReLU, W_hh = I, "
        "W_ih ~ N(0, 0.001^2) (Le et al. 2015); LSTM and GRU: chrono initialisation with span T. "
        f"'Beats the baseline' means held-out MSE below {cfg.beat_margin:g} x baseline, so that noise around the "
        "baseline does not count.",
    ]
    for length in cfg.lengths:
        entry = per_length[str(length)]
        lines += [
            "",
            f"T = {length}: baseline (always answer 1) MSE on the held-out set = {entry['baseline_mse']:.4f} "
            f"(theory 1/6 = {1 / 6:.4f}); budget {entry['budget_steps']} steps.",
        ]
        beaten = []
        for cell in cfg.cells:
            e = entry[cell]
            if e["diverged"]:
                state = f"diverged (NaN) after {e['trained_steps']} steps"
            elif e["solved"]:
                state = f"solved: MSE {e['final_mse']:.3g} after {e['trained_steps']} steps"
            else:
                state = f"final MSE {e['final_mse']:.3g} after {e['trained_steps']} steps"
            best = "n/a" if e["best_mse"] is None else f"{e['best_mse']:.3g}"
            when = e["first_step_beating_baseline"]
            beat = (
                f"beats the baseline from step {when}" if when is not None else "never beats the baseline within budget"
            )
            if when is not None:
                beaten.append(CELL_LABELS[cell])
            lines.append(f"  {CELL_LABELS[cell]}: {state} (best {best}); {beat}.")
        lines.append(f"  Beat the baseline at T = {length}: {', '.join(beaten) if beaten else 'none'}.")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Sine forecasting.
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SineConfig:
    """Series, budget and hyper-parameters of `sine` (the defaults are the measured run)."""

    cells: tuple[str, ...] = ("rnn", "lstm", "gru")
    periods: tuple[float, ...] = (40.0, 15.0)
    amplitudes: tuple[float, ...] = (1.0, 0.5)
    noise: float = 0.05  # std of the observation noise: no forecast can beat MSE = noise²
    n_train: int = 4000
    n_test: int = 2000
    window: int = 64
    warmup: int = 16  # steps a window runs before its predictions count (the state starts at zero)
    hidden_size: int = 32
    batch_size: int = 32
    lr: float = 3e-3
    clip: float = 1.0
    steps: int = 800
    show: int = 200  # held-out steps drawn in the figure

    @classmethod
    def quick(cls) -> SineConfig:
        return cls(n_train=600, n_test=400, window=32, warmup=8, hidden_size=16, steps=60, show=100)


def sine_series(cfg: SineConfig, rng: np.random.Generator) -> np.ndarray:
    """A noisy sum of sines, `n_train + n_test` points: Σ_k a_k sin(2π t / P_k + φ_k) + noise·N(0, 1).

    The phases φ_k are drawn from `rng`, so each seed sees a different series.

    Example:
        >>> s = sine_series(SineConfig.quick(), np.random.default_rng(0))
        >>> s.shape, s.dtype
        ((1000,), dtype('float32'))
    """
    t = np.arange(cfg.n_train + cfg.n_test, dtype=np.float64)
    phases = rng.uniform(0, 2 * np.pi, len(cfg.periods))
    clean = sum(
        a * np.sin(2 * np.pi * t / p + ph) for a, p, ph in zip(cfg.amplitudes, cfg.periods, phases, strict=True)
    )
    return (clean + cfg.noise * rng.standard_normal(t.shape)).astype(np.float32)


def _windows(series: np.ndarray, starts: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    """Inputs x (W, B, 1) = series[s : s + W] and next-step targets y (W, B, 1) = series[s + 1 : s + W + 1]."""
    idx = starts[None, :] + np.arange(window)[:, None]  # (W, B)
    return series[idx][..., None], series[idx + 1][..., None]


def _test_windows(cfg: SineConfig) -> tuple[np.ndarray, np.ndarray]:
    """Window starts covering the test part: every test target is predicted exactly once, with at
    least `warmup` steps of context. Returns (starts, counted): `counted` (window, n_windows) marks
    the steps of each window whose predictions are scored. Consecutive windows score their steps
    after the warm-up; a last window, ending at the last test point, scores only the targets the
    others left (its context then includes steps scored before)."""
    stride = cfg.window - cfg.warmup
    first = cfg.n_train  # first test target index: predicted from series[first - 1]
    end = cfg.n_train + cfg.n_test  # one past the last test target
    starts = np.arange(first - 1 - cfg.warmup, end - cfg.window, stride)  # window at s predicts s+1 .. s+window
    counted = np.zeros((cfg.window, len(starts)), dtype=bool)
    counted[cfg.warmup :] = True
    covered = int(starts[-1]) + cfg.window + 1 if len(starts) else first  # one past the last target scored
    if covered < end:
        counted = np.concatenate([counted, np.zeros((cfg.window, 1), dtype=bool)], axis=1)
        counted[cfg.window - (end - covered) :, -1] = True
        starts = np.append(starts, end - 1 - cfg.window)
    return starts, counted


@experiment("sine", "Next-step forecasting of a noisy sum of sines: RNN vs LSTM vs GRU vs 'repeat last value'")
def sine(
    out_dir: Path, *, seed: int = 0, quick: bool = False, data: str | None = None, config: SineConfig | None = None
) -> dict:
    """Train RNN, LSTM and GRU to predict the next value of a noisy sum of sines; test on the
    continuation of the series that no model saw.

    Writes sine.png (predictions over the truth on a held-out stretch for each cell, and the
    histogram of held-out errors), sine_predictions.csv (every held-out step: truth, each cell's
    prediction, the repeat-last baseline), summary.txt and summary.json (`test_mse` per cell,
    `baseline_mse` of repeating the last value, `noise_mse` = noise², the floor).

    Args:
        out_dir: output folder (exists).
        seed: seeds the series' phases and noise, the models and the training windows.
        quick: tiny settings for tests.
        data: unused (no corpus needed).
        config: override the defaults (`SineConfig`).

    Example:
        >>> sine(Path("runs/exp/sine"), seed=0)["test_mse"]   # doctest: +SKIP
    """
    cfg = config or (SineConfig.quick() if quick else SineConfig())
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    series = sine_series(cfg, _rng(seed, 4))
    starts, counted = _test_windows(cfg)
    scored = counted.T  # (n_windows, window): picks the scored steps in time order
    x_test, y_test = _windows(series, starts, cfg.window)
    truth = y_test[:, :, 0].T[scored]  # (N,) in time order: windows are consecutive
    last = x_test[:, :, 0].T[scored]  # the value just seen: 'repeat last' predicts it
    t_index = (starts[:, None] + 1 + np.arange(cfg.window)[None, :])[scored]
    preds: dict[str, np.ndarray] = {}
    losses: dict[str, list[float]] = {}
    mask = np.zeros((cfg.window, cfg.batch_size, 1), dtype=bool)
    mask[cfg.warmup :] = True  # the first steps predict from an empty state: do not train on them

    def masked_mse(out: np.ndarray, y: np.ndarray):
        return mse_loss(out, y, mask=mask)

    with np.errstate(over="ignore", invalid="ignore"):
        for cell in cfg.cells:
            model = RecurrentModel(cell, 1, cfg.hidden_size, 1, seed=seed, per_step=True)
            opt = Adam(model, lr=cfg.lr)
            rng = _rng(seed, 5, CELLS.index(cell))
            curve = []
            for _ in range(cfg.steps):
                s = rng.integers(0, cfg.n_train - cfg.window - 1, cfg.batch_size)  # targets stay in the train part
                x, y = _windows(series, s, cfg.window)
                loss, _ = _train_step(model, opt, x, y, masked_mse, cfg.clip)
                curve.append(loss)
            losses[cell] = curve
            preds[cell] = model.forward(x_test)[:, :, 0].T[scored]
    test_mse = {cell: float(np.mean((preds[cell] - truth) ** 2)) for cell in cfg.cells}
    baseline_mse = float(np.mean((last - truth) ** 2))
    write_csv(
        out_dir / "sine_predictions.csv",
        ["t", "truth", *[f"pred_{c}" for c in cfg.cells], "repeat_last"],
        [
            [int(t), float(v), *[float(preds[c][i]) for c in cfg.cells], float(last[i])]
            for i, (t, v) in enumerate(zip(t_index, truth, strict=True))
        ],
    )
    _plot_sine(out_dir / "sine.png", cfg, t_index, truth, preds, last, test_mse, baseline_mse)
    noise_mse = cfg.noise**2
    best = min(cfg.cells, key=lambda c: test_mse[c])
    lines = [
        f"Series: {' + '.join(f'{a:g} sin(2 pi t / {p:g} + phase)' for a, p in zip(cfg.amplitudes, cfg.periods, strict=True))} "
        f"+ N(0, {cfg.noise:g}^2) noise; the first {cfg.n_train} points train, the next {cfg.n_test} test. Each model "
        f"(one recurrent layer of {cfg.hidden_size} units, a linear read-out at every step) reads windows of "
        f"{cfg.window} values and predicts each next value; Adam lr {cfg.lr:g}, clip {cfg.clip:g}, batch "
        f"{cfg.batch_size}, {cfg.steps} steps; the first {cfg.warmup} steps of every window are context only.",
        "",
        f"Held-out next-step MSE over {truth.size} test points:",
        *[
            f"  {CELL_LABELS[c]}: {test_mse[c]:.5f} ({_ratio_phrase(test_mse[c], baseline_mse)} repeat-last)"
            for c in cfg.cells
        ],
        f"  repeat the last value (naive baseline): {baseline_mse:.5f}",
        f"  noise floor (noise variance, the best any forecast can do): {noise_mse:.5f}",
        f"Best cell: {CELL_LABELS[best]}, {test_mse[best] / noise_mse:.2f}x the noise floor.",
    ]
    figures = {
        "test_mse": test_mse,
        "baseline_mse": baseline_mse,
        "noise_mse": noise_mse,
        "final_train_loss": {c: losses[c][-1] for c in cfg.cells},
        "n_test_points": int(truth.size),
        "config": asdict(cfg),
        "files": {"figure": "sine.png", "data": "sine_predictions.csv"},
    }
    return write_summary(out_dir, "sine", "\n".join(lines), figures)


def _plot_sine(path, cfg, t_index, truth, preds, last, test_mse, baseline_mse) -> None:
    plt = pyplot()
    n = len(cfg.cells)
    fig, axes = plt.subplots(n + 1, 1, figsize=(11, 2.3 * (n + 1) + 0.6))
    show = slice(0, min(cfg.show, truth.size))
    for ax, cell in zip(axes[:n], cfg.cells, strict=True):
        ax.plot(t_index[show], truth[show], color="black", lw=1, label="truth (noisy series)")
        ax.plot(
            t_index[show], preds[cell][show], color=CELL_COLORS[cell], lw=1.4, label=f"{CELL_LABELS[cell]} prediction"
        )
        ax.set_title(f"{CELL_LABELS[cell]}: one-step-ahead forecast on held-out data, test MSE {test_mse[cell]:.4f}")
        ax.set_ylabel("value")
        ax.legend(loc="upper right", fontsize=8)
    axes[n - 1].set_xlabel("time step t (held-out part of the series)")
    ax = axes[n]
    errors = [preds[c] - truth for c in cfg.cells] + [last - truth]
    lim = float(np.percentile(np.abs(np.concatenate(errors)), 99.5))
    bins = np.linspace(-lim, lim, 61)
    for cell, e in zip(cfg.cells, errors, strict=False):
        ax.hist(
            e,
            bins=bins,
            histtype="step",
            lw=1.5,
            color=CELL_COLORS[cell],
            label=f"{CELL_LABELS[cell]} (MSE {test_mse[cell]:.4f})",
        )
    ax.hist(
        errors[-1],
        bins=bins,
        histtype="step",
        lw=1.5,
        color="gray",
        ls="--",
        label=f"repeat last value (MSE {baseline_mse:.4f})",
    )
    ax.set_xlabel("prediction error on held-out steps (prediction - truth)")
    ax.set_ylabel("count")
    ax.set_title("Error histogram, all held-out steps")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
