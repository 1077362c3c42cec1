"""Training throughput of the NumPy engine (`rnnlab.scratch`) against PyTorch on the CPU.

Three comparisons, all measured in one run with the contenders interleaved (every contender once per
round, in a fixed order, for several rounds after a warm-up), because a small shared machine is noisy:
a figure is the median over rounds of the training tokens per second, and a ratio is a ratio of
medians.

1. The recurrent layer alone (RNN tanh, LSTM, GRU; input 256, hidden 256, batch 32, 64 steps):
   forward + backward of `rnnlab.scratch` against `torch.nn.RNN/LSTM/GRU` with the same weights.
   The torch input has `requires_grad=True`, so torch computes the input gradient too, as ours
   always does.
2. A full character-LM training step (vocab 65, embedding 64, one recurrent layer of 256, linear
   head, softmax cross-entropy, clip_grad_norm 5, Adam): `LanguageModel` + `cross_entropy` +
   `clip_grad_norm_` + `Adam` against the equivalent torch model. Target: NumPy >= 0.8x PyTorch.
3. A lesson-style vanilla RNN (column vectors, one sequence at a time, one-hot inputs, per-step
   backward loop, Adagrad) against the engine's batched `LanguageModel(cell='rnn')` step with the
   same optimiser. Target: >= 20x.

Usage:
    python benchmarks/throughput.py --quick                      # smoke run, well under a minute
    python benchmarks/throughput.py --out docs/benchmarks.md     # full run, writes the report

PyTorch is optional for rnnlab and imported only here.
"""

from __future__ import annotations

import argparse
import ctypes
import datetime as dt
import math
import os
import platform
import re
import shlex
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rnnlab.config import ModelConfig
from rnnlab.scratch.clip import clip_grad_norm_, clip_grad_value_
from rnnlab.scratch.gradcheck_recurrent import make_layer
from rnnlab.scratch.losses import cross_entropy
from rnnlab.scratch.models import LanguageModel
from rnnlab.scratch.optim import Adagrad, Adam

VOCAB, EMBED, HIDDEN, BATCH, STEPS = 65, 64, 256, 32, 64
CELLS = ("rnn", "lstm", "gru")
LSTM_TARGET = 0.8  # NumPy engine / PyTorch, full LM step, every cell
LESSON_TARGET = 20.0  # batched engine / lesson-style loop
MIN_CLEAN = 3  # undisturbed rounds a contender needs before disturbed ones are dropped
START, END = "<!-- throughput:start -->", "<!-- throughput:end -->"


# ---------------------------------------------------------------------------------------------
# Threads and machine description
# ---------------------------------------------------------------------------------------------


def _openblas_lib() -> ctypes.CDLL | None:
    """The OpenBLAS that NumPy loaded (found in /proc/self/maps), or None."""
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        return None
    for path in sorted({line.split()[-1] for line in maps.splitlines() if "openblas" in line.lower()}):
        if path.endswith(".so") or ".so." in path:
            try:
                return ctypes.CDLL(path)
            except OSError:
                continue
    return None


def _blas_fn(lib: ctypes.CDLL | None, verb: str):
    """openblas_{verb}_num_threads under its plain or scipy-openblas (64-bit int) symbol name."""
    if lib is None:
        return None
    for name in (
        f"openblas_{verb}_num_threads",
        f"scipy_openblas_{verb}_num_threads64_",
        f"openblas_{verb}_num_threads64_",
        f"scipy_openblas_{verb}_num_threads",
    ):
        fn = getattr(lib, name, None)
        if fn is not None:
            return fn
    return None


def set_threads(n: int, torch) -> dict[str, str]:
    """Set NumPy's BLAS and PyTorch's intra-op threads to n; return what each reports afterwards."""
    lib = _openblas_lib()
    setter, getter = _blas_fn(lib, "set"), _blas_fn(lib, "get")
    if setter is not None:
        setter(ctypes.c_int(n))
    numpy_threads = (
        str(getter())
        if getter is not None
        else f"unknown (OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'unset')})"
    )
    torch.set_num_threads(n)
    return {"numpy": numpy_threads, "torch": str(torch.get_num_threads())}


def machine_info(torch) -> dict[str, str]:
    cpu = platform.processor() or platform.machine()
    mhz = ""
    try:
        text = Path("/proc/cpuinfo").read_text()
        m = re.search(r"^model name\s*:\s*(.+)$", text, re.M)
        cpu = m.group(1).strip() if m else cpu
        fam = re.search(r"^cpu family\s*:\s*(\d+)$", text, re.M)
        mod = re.search(r"^model\s*:\s*(\d+)$", text, re.M)
        if fam and mod:
            cpu += f" (family {fam.group(1)}, model {mod.group(1)})"
        f = re.search(r"^cpu MHz\s*:\s*([\d.]+)$", text, re.M)
        mhz = f", {float(f.group(1)):.0f} MHz" if f else ""
    except OSError:
        pass
    ram = "unknown"
    try:
        kb = int(re.search(r"MemTotal:\s*(\d+)", Path("/proc/meminfo").read_text()).group(1))
        ram = f"{kb / 2**20:.1f} GiB"
    except (OSError, AttributeError):
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()

    blas = "unknown"
    try:
        cfg = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        blas = f"{cfg.get('name', '?')} {cfg.get('version', '')}".strip()
        extra = cfg.get("openblas configuration")
        if extra:
            blas += f" ({' '.join(extra.split())})"
    except Exception:  # numpy's config layout differs between versions
        pass
    lib = _openblas_lib()
    corename = getattr(lib, "scipy_openblas_get_corename64_", None) or getattr(lib, "openblas_get_corename", None)
    if corename is not None:
        corename.restype = ctypes.c_char_p
        blas += f", kernel {corename().decode()}"
    tcfg = torch.__config__.show()
    tblas = re.search(r"BLAS_INFO=(\w+)", tcfg)
    mkl = re.search(r"Math Kernel Library Version ([\w.\-]+)", tcfg)
    torch_blas = (tblas.group(1) if tblas else "?") + (
        f" {mkl.group(1)}" if mkl and tblas and tblas.group(1) == "mkl" else ""
    )
    load = load_avg()
    return {
        "cpu": f"{cpu}{mhz}",
        "cores": str(cores),
        "ram": ram,
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "numpy": np.__version__,
        "blas": blas,
        "torch": f"{torch.__version__} (BLAS {torch_blas}, parallel backend "
        f"{'OpenMP' if 'OpenMP' in torch.__config__.parallel_info() else '?'})",
        "load": load,
    }


def load_avg() -> str:
    try:
        return " / ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


class CpuMonitor:
    """CPU time that other processes (and the hypervisor, as steal) took while we measured.

    Total busy time from /proc/stat minus this process's own CPU time, over the wall time: the
    average number of cores something else was using. Zero on an idle machine.
    """

    def __init__(self) -> None:
        self.t0, self.busy0, self.own0 = time.perf_counter(), self._busy(), self._own()

    @staticmethod
    def _busy() -> float | None:
        try:
            fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        except (OSError, ValueError):
            return None
        user, nice, system, _idle, _iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
        return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")

    @staticmethod
    def _own() -> float:
        t = os.times()
        return t.user + t.system

    def other_cores(self) -> float | None:
        busy = self._busy()
        if busy is None or self.busy0 is None:
            return None
        wall = time.perf_counter() - self.t0
        return max(0.0, (busy - self.busy0) - (self._own() - self.own0)) / wall


# ---------------------------------------------------------------------------------------------
# Contenders
# ---------------------------------------------------------------------------------------------


@dataclass
class Contender:
    """One thing to time: `step()` trains on `tokens` tokens."""

    group: str
    name: str
    step: Callable[[], object]
    tokens: int
    warmup: int = 3
    calls: int = 1
    samples: list[float] = field(default_factory=list)  # tokens/s, one per round
    clean: list[bool] = field(default_factory=list)  # no other process took CPU during that block

    @property
    def n_clean(self) -> int:
        return sum(self.clean)

    @property
    def kept(self) -> list[float]:
        """The undisturbed samples, or all of them if fewer than three are undisturbed."""
        ok = [v for v, c in zip(self.samples, self.clean, strict=True) if c]
        return ok if len(ok) >= MIN_CLEAN else self.samples

    @property
    def median(self) -> float:
        return statistics.median(self.kept)

    @property
    def spread(self) -> tuple[float, float]:
        return min(self.kept), max(self.kept)


def _data(rng: np.random.Generator):
    tokens = rng.integers(0, VOCAB, size=(BATCH, STEPS + 1))
    return tokens[:, :-1], tokens[:, 1:]


def layer_contenders(cell: str, torch, rng: np.random.Generator) -> tuple[list[Contender], float, str]:
    """NumPy layer vs torch layer, same weights, forward + backward (input gradient included)."""
    tcls = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[cell]
    tl = tcls(HIDDEN, HIDDEN)  # time-major (T, B, I) in both engines
    nl = make_layer(cell, HIDDEN, HIDDEN)
    nl.load_state_dict({k: v.detach().numpy() for k, v in tl.state_dict().items()})

    x = rng.standard_normal((STEPS, BATCH, HIDDEN)).astype(np.float32)
    dout = rng.standard_normal((STEPS, BATCH, HIDDEN)).astype(np.float32)
    xt = torch.from_numpy(x.copy()).requires_grad_(True)
    dt_ = torch.from_numpy(dout.copy())
    tparams = list(tl.parameters())

    def np_step():
        nl.zero_grad()
        nl.forward(x)
        return nl.backward(dout)

    def torch_step():
        xt.grad = None
        for p in tparams:
            p.grad = None
        out, _ = tl(xt)
        out.backward(dt_)
        return xt.grad

    # same weights -> same gradients: check once so that the timings compare equal work
    dx_np, _ = np_step()
    dx_t = torch_step()
    err = float(np.abs(dx_np - dx_t.numpy()).max())
    n = BATCH * STEPS
    g = f"layer/{cell}"
    return (
        [Contender(g, "numpy", np_step, n), Contender(g, "torch", torch_step, n)],
        err,
        torch_path(torch, torch_step),
    )


def torch_path(torch, step: Callable[[], object]) -> str:
    """Which CPU implementation torch picked for one training step, from its profiler."""
    from torch.profiler import profile

    with profile() as prof:
        step()
    counts = {e.key: e.count for e in prof.key_averages()}
    if "aten::mkldnn_rnn_layer" in counts:
        return "oneDNN fused layer (`mkldnn_rnn_layer`)"
    mm = counts.get("aten::mm", 0) + counts.get("aten::addmm", 0)
    return f"per-step ATen ops + autograd ({mm} matmuls)"


def torch_lm(torch, cell: str):
    """Embedding -> nn.RNN/LSTM/GRU (batch_first) -> Linear, the twin of `LanguageModel`."""
    nn = torch.nn
    rnn_cls = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}[cell]

    class TorchLM(nn.Module):
        def __init__(self):
            super().__init__()
            self.embedding = nn.Embedding(VOCAB, EMBED)
            self.rnn = rnn_cls(EMBED, HIDDEN, batch_first=True)
            self.head = nn.Linear(HIDDEN, VOCAB)

        def forward(self, idx):
            out, _ = self.rnn(self.embedding(idx))
            return self.head(out)

    return TorchLM()


def lm_contenders(cell: str, torch, rng: np.random.Generator) -> tuple[list[Contender], float]:
    """Full training step: model, cross-entropy, clip_grad_norm 5, Adam; same initial weights."""
    F = torch.nn.functional
    tm = torch_lm(torch, cell)
    nm = LanguageModel(ModelConfig(vocab_size=VOCAB, cell=cell, embedding_dim=EMBED, hidden_size=HIDDEN))
    nm.load_state_dict({k: v.detach().numpy() for k, v in tm.state_dict().items()})
    t_opt = torch.optim.Adam(tm.parameters(), lr=2e-3)
    n_opt = Adam(nm, lr=2e-3)
    x, y = _data(rng)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y).reshape(-1)

    def np_step():
        n_opt.zero_grad()
        logits, _ = nm.forward(x)
        loss, dlogits = cross_entropy(logits, y)
        nm.backward(dlogits)
        clip_grad_norm_(nm, 5.0)
        n_opt.step()
        return loss

    def torch_step():
        t_opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(tm(xt).reshape(-1, VOCAB), yt)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(tm.parameters(), 5.0)
        t_opt.step()
        return loss.item()

    # same weights, same data, same optimiser: the losses agree step for step (checked on three)
    err = max(abs(np_step() - torch_step()) for _ in range(3))
    g = f"lm/{cell}"
    return [
        Contender(g, "numpy", np_step, BATCH * STEPS),
        Contender(g, "torch", torch_step, BATCH * STEPS),
    ], err


# ---------------------------------------------------------------------------------------------
# Lesson-style vanilla RNN: column vectors, one sequence at a time, one-hot inputs, Adagrad
# ---------------------------------------------------------------------------------------------


class LessonRNN:
    """The character RNN as tutorials write it: one sequence at a time, one time step at a time.

    h_t = tanh(Wxh x_t + Whh h_{t-1} + bh), y_t = Why h_t + by, p_t = softmax(y_t), with x_t a
    (V, 1) one-hot column; the backward pass walks the steps in reverse accumulating every weight
    gradient with an outer product; gradients are clipped to [-5, 5] and Adagrad updates the
    weights after every sequence.
    """

    def __init__(self, Wxh, Whh, bh, Why, by, lr: float = 0.1) -> None:
        self.Wxh, self.Whh, self.bh, self.Why, self.by = Wxh, Whh, bh, Why, by
        self.lr = lr
        self.mem = [np.zeros_like(p) for p in self.weights]

    @property
    def weights(self):
        return [self.Wxh, self.Whh, self.bh, self.Why, self.by]

    def loss_and_grads(self, inputs, targets, hprev):
        Wxh, Whh, bh, Why, by = self.weights
        V, H = Why.shape
        dtype = Wxh.dtype
        xs, hs, ps = {}, {-1: hprev}, {}
        loss = 0.0
        for t, ix in enumerate(inputs):  # forward, one step at a time
            xs[t] = np.zeros((V, 1), dtype=dtype)
            xs[t][ix] = 1
            hs[t] = np.tanh(Wxh @ xs[t] + Whh @ hs[t - 1] + bh)
            y = Why @ hs[t] + by
            e = np.exp(y)
            ps[t] = e / np.sum(e)
            loss -= math.log(ps[t][targets[t], 0])
        dWxh, dWhh, dbh = np.zeros_like(Wxh), np.zeros_like(Whh), np.zeros_like(bh)
        dWhy, dby = np.zeros_like(Why), np.zeros_like(by)
        dhnext = np.zeros((H, 1), dtype=dtype)
        for t in reversed(range(len(inputs))):  # backward, one step at a time
            dy = ps[t].copy()
            dy[targets[t]] -= 1
            dWhy += dy @ hs[t].T
            dby += dy
            dh = Why.T @ dy + dhnext
            dhraw = (1 - hs[t] * hs[t]) * dh
            dbh += dhraw
            dWxh += dhraw @ xs[t].T
            dWhh += dhraw @ hs[t - 1].T
            dhnext = Whh.T @ dhraw
        grads = [dWxh, dWhh, dbh, dWhy, dby]
        for d in grads:
            np.clip(d, -5, 5, out=d)
        return loss, grads, hs[len(inputs) - 1]

    def train(self, inputs_batch, targets_batch) -> float:
        """Train on the sequences one after another; an Adagrad step after each. Returns the mean loss."""
        total = 0.0
        H = self.Whh.shape[0]
        for inputs, targets in zip(inputs_batch, targets_batch, strict=True):
            # the rows of a batch are separate streams: each sequence starts from a zero state
            loss, grads, _ = self.loss_and_grads(inputs, targets, np.zeros((H, 1), dtype=self.Whh.dtype))
            for p, d, m in zip(self.weights, grads, self.mem, strict=True):
                m += d * d
                p += -self.lr * d / np.sqrt(m + 1e-8)
            total += loss
        return total / (len(inputs_batch) * len(inputs_batch[0]))


def lesson_contenders(rng: np.random.Generator, lesson_seqs: int) -> tuple[list[Contender], float]:
    """Batched engine (one-hot-wide embedding, Adagrad) vs the lesson loop, same initial weights."""
    cfg = ModelConfig(vocab_size=VOCAB, cell="rnn", embedding_dim=VOCAB, hidden_size=HIDDEN)
    nm = LanguageModel(cfg, seed=0)
    nm.embedding.params["weight"][...] = np.eye(VOCAB, dtype=np.float32)  # embedding = one-hot
    p = nm.params
    lesson = LessonRNN(
        p["rnn.weight_ih_l0"].copy(),
        p["rnn.weight_hh_l0"].copy(),
        (p["rnn.bias_ih_l0"] + p["rnn.bias_hh_l0"])[:, None].copy(),
        p["head.weight"].copy(),
        p["head.bias"][:, None].copy(),
        lr=0.1,
    )
    opt = Adagrad(nm, lr=0.1)
    x, y = _data(rng)
    lx, ly = x[:lesson_seqs].tolist(), y[:lesson_seqs].tolist()

    # same weights -> same loss on the same sequences (before any update)
    H = HIDDEN
    lesson_loss = sum(
        lesson.loss_and_grads(i, t, np.zeros((H, 1), np.float32))[0] for i, t in zip(lx, ly, strict=True)
    ) / (lesson_seqs * STEPS)
    engine_loss = cross_entropy(nm.forward(x[:lesson_seqs])[0], y[:lesson_seqs])[0]

    def np_step():
        opt.zero_grad()
        logits, _ = nm.forward(x)
        loss, dlogits = cross_entropy(logits, y)
        nm.backward(dlogits)
        clip_grad_value_(nm, 5.0)  # what the lessons do
        opt.step()
        return loss

    def lesson_step():
        return lesson.train(lx, ly)

    return [
        Contender("lesson", "numpy engine (batched)", np_step, BATCH * STEPS),
        Contender("lesson", "lesson-style loop", lesson_step, lesson_seqs * STEPS, warmup=1),
    ], abs(lesson_loss - engine_loss)


# ---------------------------------------------------------------------------------------------
# Timing
# ---------------------------------------------------------------------------------------------


def measure(contenders: list[Contender], args, log) -> int:
    """Warm up, size each timed block to ~args.block seconds, then interleaved rounds; returns the count.

    A block during which other processes took more than `args.max_other` cores (see `CpuMonitor`)
    is marked disturbed. After `args.repeats` rounds, more rounds are run while some contender has
    fewer than `args.repeats` undisturbed blocks, until `args.budget` seconds of measuring are spent.
    """
    for c in contenders:
        for _ in range(1 if args.quick else c.warmup):
            c.step()
        t0 = time.perf_counter()
        c.step()
        one = time.perf_counter() - t0
        c.calls = max(1, round(args.block / one))
    log(f"warm-up done; rounds of {len(contenders)} contenders, ~{args.block:.2f} s each")
    start = time.perf_counter()
    rounds = 0
    while True:
        for c in contenders:
            if rounds and time.perf_counter() - start > 1.25 * args.budget:
                log("  time budget exceeded in mid-round (the machine is busy); stopping")
                return rounds
            time.sleep(args.gap)  # idle OpenBLAS / OpenMP workers spin ~0.1 s before sleeping
            monitor = CpuMonitor()
            t0 = time.perf_counter()
            for _ in range(c.calls):
                c.step()
            c.samples.append(c.tokens * c.calls / (time.perf_counter() - t0))
            other = monitor.other_cores()
            c.clean.append(other is None or other <= args.max_other)
        rounds += 1
        least = min(c.n_clean for c in contenders)
        elapsed = time.perf_counter() - start
        log(f"  round {rounds} done ({elapsed:.0f} s); fewest undisturbed blocks of a contender: {least}")
        if rounds >= args.repeats and (least >= args.repeats or elapsed >= args.budget):
            return rounds
        if rounds >= min(MIN_CLEAN, args.repeats) and elapsed >= args.budget:
            return rounds


# ---------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------


def _fmt(v: float) -> str:
    return f"{v:,.0f}"


def build_tables(
    groups: dict[str, list[Contender]], checks: dict[str, float], paths: dict[str, str]
) -> tuple[str, bool, bool]:
    """Markdown tables (also printed) and the two verdicts."""
    lines = []
    lines.append("**1. Recurrent layer alone** (input 256, hidden 256, batch 32, 64 steps; forward + backward)")
    lines.append("")
    lines.append(
        "| cell | NumPy engine tok/s | PyTorch tok/s | NumPy / PyTorch | max abs Δ dx (check) | PyTorch CPU path |"
    )
    lines.append("|---|---:|---:|---:|---:|---|")
    for cell in CELLS:
        a, b = groups[f"layer/{cell}"]
        lines.append(
            f"| {cell} | {_fmt(a.median)} | {_fmt(b.median)} | **{a.median / b.median:.2f}x** "
            f"| {checks[f'layer/{cell}']:.1e} | {paths[cell]} |"
        )
    lines.append("")
    lines.append(
        "**2. Full character-LM training step** (vocab 65, embedding 64, 1 layer of 256, linear head, "
        "cross-entropy, clip_grad_norm 5, Adam; batch 32 x 64 steps). Target: NumPy >= "
        f"{LSTM_TARGET}x PyTorch for every cell"
    )
    lines.append("")
    lines.append("| cell | NumPy engine tok/s | PyTorch tok/s | NumPy / PyTorch | target | max abs Δ loss (check) |")
    lines.append("|---|---:|---:|---:|---|---:|")
    lm_ok = True
    for cell in CELLS:
        a, b = groups[f"lm/{cell}"]
        ratio = a.median / b.median
        ok = ratio >= LSTM_TARGET
        lm_ok &= ok
        lines.append(
            f"| {cell} | {_fmt(a.median)} | {_fmt(b.median)} | **{ratio:.2f}x** "
            f"| {'PASS' if ok else 'FAIL'} (>= {LSTM_TARGET}x) | {checks[f'lm/{cell}']:.1e} |"
        )
    lines.append("")
    eng, les = groups["lesson"]
    ratio = eng.median / les.median
    lesson_ok = ratio >= LESSON_TARGET
    lines.append(
        "**3. Batched engine vs a lesson-style loop** (vanilla tanh RNN, hidden 256, vocab 65, 64 steps, "
        "Adagrad lr 0.1, gradients clipped to ±5). Target: >= "
        f"{LESSON_TARGET:.0f}x"
    )
    lines.append("")
    lines.append("| contender | tok/s | per timed call |")
    lines.append("|---|---:|---|")
    lines.append(f"| NumPy engine, `LanguageModel(cell='rnn')`, batch 32 | {_fmt(eng.median)} | 32 x 64 tokens |")
    lines.append(
        f"| lesson-style loop, one sequence at a time | {_fmt(les.median)} "
        f"| {les.tokens // STEPS} sequences x 64 tokens |"
    )
    lines.append(
        f"| **speed-up** | **{ratio:.1f}x** | {'PASS' if lesson_ok else 'FAIL'} (>= {LESSON_TARGET:.0f}x); "
        f"check: max abs Δ mean loss {checks['lesson']:.1e} |"
    )
    return "\n".join(lines), lm_ok, lesson_ok


def spread_table(contenders: list[Contender]) -> str:
    lines = [
        "| group | contender | median tok/s | min | max | undisturbed / rounds | steps per block |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for c in contenders:
        lo, hi = c.spread
        lines.append(
            f"| {c.group} | {c.name} | {_fmt(c.median)} | {_fmt(lo)} | {_fmt(hi)} "
            f"| {c.n_clean} / {len(c.samples)} | {c.calls} |"
        )
    return "\n".join(lines)


EXPLANATION = """\
### Why the NumPy engine is fast

Only the recurrent product `W_hh h_{t-1}` is inherently sequential; everything else in
`rnnlab.scratch.recurrent` is arranged so that NumPy spends its time inside a few large BLAS calls
rather than in the Python interpreter:

- **Input projection of all steps in one GEMM.** `W_ih x_t + b` for all T steps is one
  (G, I) x (I, T·B) product before the time loop, so the loop only adds the recurrent part.
- **Weight gradients of all steps in one GEMM.** The backward loop only stores the gate
  pre-activation gradients `dG_t` (one contiguous block per step; a single transposing copy then
  makes them a (G, T·B) matrix); afterwards `dW_ih`, the bias gradient and `dW_hh` are column blocks of one product
  `dG Zᵀ` with `z_t = [x_t; 1; h_{t-1}]` and time and batch flattened together
  (`dW = Σ_t dG_t z_tᵀ`), and `dx = W_ihᵀ dG` is one more. Per step, the backward loop does one
  matrix product (`W_hhᵀ dG_t`, with `W_hhᵀ` copied to a contiguous array once) and a few
  element-wise ops.
- **Feature-major (H, B) recurrent step.** Inside the engine a sequence is (T, F, B): the step
  product is `W_hh (G, H) @ h_{t-1} (H, B)` and every gate is a contiguous (H, B) block, which
  OpenBLAS runs faster than the batch-major `h (B, H) @ W_hhᵀ` at the small batch sizes of RNN
  training. σ is computed as 1/(1+e^(-x)) (and LSTM's g as 2σ(2x)−1) with the −1 and −2 folded into
  the gate rows of the weights, so all gates of a step go through one `exp`, one add and one
  reciprocal over one contiguous block (NumPy's float32 `exp` is vectorised on AVX2, its `tanh` not).
- **Buffers reused from step to step.** Hidden states, cell states, gate activations, the input
  projection and the gradients live in arrays that each layer keeps between calls
  (`recurrent.Workspace`); every step writes into them with `out=` arguments, so after the first
  training step the engine allocates almost nothing. Fresh multi-megabyte arrays would come from
  new pages of memory, and the first write to each page is a page fault: whether a process pays
  that depends on the allocator's history (measured: one LSTM layer step, input and hidden 256,
  batch 32, 64 steps, took 81 ms when every temporary faulted and 51 ms when none did).

What PyTorch does on the CPU differs by cell (see the "PyTorch CPU path" column, read off
`torch.profiler` during the run). For **LSTM** in float32, PyTorch hands the whole layer, forward
and backward, to oneDNN's fused LSTM kernel (`aten::mkldnn_rnn_layer`): compiled code with no
per-step Python or autograd work. That is the strongest opponent, and the one the NumPy engine finds
hardest to match. For the **vanilla RNN and GRU** it takes the generic path: one input-projection
GEMM up front, then a handful of ATen ops per step, each recorded by autograd and replayed one by
one in the backward pass, with two matrix products per step there (one for `dh`, one for the step's
share of `dW_hh`) and a few microseconds of dispatcher and autograd overhead per op, which at hidden
256 and batch 32 is comparable to the arithmetic. The NumPy engine has no graph to record (its
backward pass is written out by hand) and does one matrix product per backward step. At larger sizes
both engines spend a larger share of their time in GEMMs and per-op overheads matter less, so
these ratios hold for the sizes measured here (those the course uses), not in general.

The lesson-style loop is slow for the opposite reasons: every time step of every sequence is a few
matrix-*vector* products on a (H, 1) column plus a dozen small NumPy calls (a one-hot column, a
softmax, outer products for each weight gradient), so the interpreter, not the arithmetic, sets the
pace; processing 32 sequences together turns those matrix-vector products into matrix-matrix
products and divides the per-call overhead by 32, and the all-steps GEMMs above remove the
per-step outer products entirely.
"""


def build_section(info, threads, command, tables, lm_ok, lesson_ok, spreads, args, warning) -> str:
    today = dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    verdict = (
        f"- Full LM step, NumPy >= {LSTM_TARGET}x PyTorch for RNN, LSTM and GRU: "
        f"**{'PASS' if lm_ok else 'FAIL'}**\n"
        f"- Batched engine >= {LESSON_TARGET:.0f}x lesson-style loop: **{'PASS' if lesson_ok else 'FAIL'}**"
    )
    notes = []
    if args.quick:
        notes.append("> **Quick smoke run** (`--quick`): few rounds, short blocks; not the reference figures.")
    if warning:
        notes.append(f"> **{warning}**")
    quick = "".join(f"\n{n}\n" for n in notes)
    return f"""{START}
## Throughput (benchmarks/throughput.py)

Generated by `benchmarks/throughput.py`; this section is overwritten on every run with `--out`.
{quick}
- Date: {today}
- Machine: {info["cpu"]}; {info["cores"]} cores available; {info["ram"]} RAM; {info["os"]}
- Load average (1/5/15 min) before the run: {info["load"]}; other processes used
  {info["other"]} of the {info["cores"]} cores on average during the measurement
- Python {info["python"]}, NumPy {info["numpy"]}, NumPy BLAS: {info["blas"]}
- PyTorch {info["torch"]}
- Threads: NumPy BLAS {threads["numpy"]}, PyTorch intra-op {threads["torch"]} (`--threads`, default all cores)
- Command: `{command}`
- Method: training tokens per second (batch x steps / wall time of one training step), float32, CPU.
  All contenders are measured in one process and interleaved: warm-up, then {info["rounds"]} rounds in
  each of which every contender runs one timed block of ~{args.block:.2f} s (a whole number of training
  steps), with a {args.gap:.2f} s pause between blocks. A figure is the median over rounds; a ratio is a
  ratio of medians. The machine is shared, so the script reads /proc/stat around every block and
  drops a block if other processes took more than {args.max_other} of a core meanwhile (dropped here:
  {info["dropped"]} blocks); it adds rounds until every contender has {args.repeats} undisturbed blocks
  or {args.budget:.0f} s of measuring are spent.
- Fairness: both engines start from the same weights (the torch state dict is loaded into the NumPy
  model) and train on the same tokens. The script checks this before timing; the "check" columns
  give the largest differences (input gradients of the layers, losses of the first three LM training
  steps, mean loss of the lesson model). In the layer benchmark the torch input has
  `requires_grad=True`, so torch computes the input gradient too, as the NumPy engine always does.
  Torch runs in its default configuration (`torch.optim.Adam` with its default CPU implementation,
  `set_to_none` gradients).

{tables}

{verdict}

<details><summary>Spread over rounds</summary>

{spreads}

</details>

{EXPLANATION}

### The lesson-style contender

`LessonRNN` in the script is written the way min-char-rnn-style tutorials write it: column vectors,
one sequence at a time, a one-hot (V, 1) input column per step, `h = tanh(Wxh @ x + Whh @ h + bh)`,
`y = Why @ h + by`, softmax, a reverse per-step loop accumulating `dWxh += dhraw @ x.T` and friends,
clipping to ±5 and an Adagrad update after each sequence. It runs in float32 like the engine (the
tutorials use float64; float32 keeps the comparison like for like). It is timed on {args.lesson_seqs}
sequences of 64 steps per call (its tokens/s does not depend on how many sequences a call holds). The
engine side is `LanguageModel(cell='rnn', embedding_dim=65, hidden_size=256)` with its embedding set to
the identity (so it sees exactly the one-hot input), `clip_grad_value_(5)` and
`rnnlab.scratch.optim.Adagrad(lr=0.1)`, on batches of 32 x 64 tokens; both start from the same weights
and their losses agree.
{END}"""


def write_doc(path: Path, section: str) -> None:
    intro = (
        "# Benchmarks\n\n"
        "Measured figures for rnnlab. Each section is written by the script named in its heading; "
        "re-run the script to refresh it.\n\n"
    )
    text = path.read_text() if path.exists() else intro
    if START in text and END in text:
        before, rest = text.split(START, 1)
        after = rest.split(END, 1)[1]
        text = before + section + after
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


# ---------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--quick", action="store_true", help="fast smoke run: 3 rounds of short blocks")
    ap.add_argument("--out", type=Path, default=None, help="write/refresh the Throughput section of this Markdown file")
    ap.add_argument("--repeats", type=int, default=None, help="undisturbed rounds wanted (default 15, --quick 3)")
    ap.add_argument(
        "--budget",
        type=float,
        default=None,
        help="seconds of measuring after which no extra rounds are added (default 270, --quick 25)",
    )
    ap.add_argument(
        "--max-other",
        type=float,
        default=0.1,
        help="a block is disturbed if other processes took more than this many cores (default 0.1)",
    )
    ap.add_argument("--block", type=float, default=None, help="seconds per timed block (default 0.6, --quick 0.15)")
    ap.add_argument(
        "--gap", type=float, default=None, help="pause between blocks in seconds (default 0.2, --quick 0.05)"
    )
    ap.add_argument(
        "--threads",
        type=int,
        default=cores,
        help=f"threads for NumPy's BLAS and for PyTorch (default all cores: {cores})",
    )
    ap.add_argument(
        "--lesson-seqs",
        type=int,
        default=4,
        help="sequences per timed call of the lesson-style loop (default 4)",
    )
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    args.repeats = args.repeats or (3 if args.quick else 15)
    args.block = args.block or (0.15 if args.quick else 0.6)
    args.gap = args.gap if args.gap is not None else (0.05 if args.quick else 0.2)
    args.budget = args.budget if args.budget is not None else (25.0 if args.quick else 270.0)
    if args.repeats < 1 or args.threads < 1 or not 1 <= args.lesson_seqs <= BATCH:
        ap.error("--repeats and --threads must be >= 1, --lesson-seqs in [1, 32]")

    try:
        import torch
    except ImportError:
        print("PyTorch is needed for this benchmark: pip install 'rnnlab[torch]'", file=sys.stderr)
        return 2

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    threads = set_threads(args.threads, torch)
    info = machine_info(torch)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    log(f"{info['cpu']}, {info['cores']} cores; threads numpy={threads['numpy']} torch={threads['torch']}")

    groups: dict[str, list[Contender]] = {}
    checks: dict[str, float] = {}
    paths: dict[str, str] = {}
    for cell in CELLS:
        groups[f"layer/{cell}"], checks[f"layer/{cell}"], paths[cell] = layer_contenders(cell, torch, rng)
    for cell in CELLS:
        groups[f"lm/{cell}"], checks[f"lm/{cell}"] = lm_contenders(cell, torch, rng)
    groups["lesson"], checks["lesson"] = lesson_contenders(rng, args.lesson_seqs)
    contenders = [c for cs in groups.values() for c in cs]

    t0 = time.perf_counter()
    monitor = CpuMonitor()
    rounds = measure(contenders, args, log)
    other = monitor.other_cores()
    elapsed = time.perf_counter() - t0
    info["other"] = "unknown" if other is None else f"{other:.2f}"
    info["rounds"] = str(rounds)
    blocks = sum(len(c.samples) for c in contenders)
    info["dropped"] = f"{blocks - sum(c.n_clean for c in contenders)} of {blocks}"
    short = [f"{c.group}/{c.name}" for c in contenders if c.n_clean < MIN_CLEAN]
    warning = None
    if short:
        warning = (
            f"WARNING: other processes kept taking CPU time: {len(short)} of {len(contenders)} contenders "
            f"({', '.join(short[:3])}{', ...' if len(short) > 3 else ''}) got fewer than {MIN_CLEAN} "
            "undisturbed blocks, so all of their blocks are counted and the figures are unreliable. "
            "Rerun on an idle machine (check `uptime`)."
        )

    tables, lm_ok, lesson_ok = build_tables(groups, checks, paths)
    spreads = spread_table(contenders)
    command = shlex.join(["python", "benchmarks/throughput.py", *(sys.argv[1:] if argv is None else argv)])
    print()
    print(f"rnnlab throughput — {info['cpu']}, {info['cores']} cores, {info['ram']} RAM")
    print(f"NumPy {info['numpy']} ({info['blas']}); PyTorch {info['torch']}")
    print(f"threads: numpy BLAS {threads['numpy']}, torch {threads['torch']}; load avg at start {info['load']}")
    print(f"{rounds} interleaved rounds, medians of training tokens/s; measured in {elapsed:.0f} s")
    print(
        f"other processes used {info['other']} of {info['cores']} cores on average meanwhile; "
        f"disturbed blocks dropped: {info['dropped']}"
    )
    print()
    print(tables)
    print()
    print(spreads)
    print()
    print(f"Full LM step, NumPy >= {LSTM_TARGET}x PyTorch (rnn, lstm, gru): {'PASS' if lm_ok else 'FAIL'}")
    print(f"Batched engine >= {LESSON_TARGET:.0f}x lesson-style loop:        {'PASS' if lesson_ok else 'FAIL'}")
    if warning:
        print(warning)

    if args.out is not None:
        section = build_section(info, threads, command, tables, lm_ok, lesson_ok, spreads, args, warning)
        write_doc(args.out, section)
        print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
