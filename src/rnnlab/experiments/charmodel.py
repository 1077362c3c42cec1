"""Experiments on a trained character model: its hidden states, its LSTM gates, sampling temperature.

All three read one character-level LSTM trained with the NumPy engine on the corpus (tinyshakespeare
by default) for a fixed number of steps, not a fixed time, so that `--seed` gives the same model and
the same figures on any machine. When several of them run in one process (`rnnlab experiment all`)
the model is trained once and copied into each experiment's folder.

The helpers here are also the analysis tools of `rnnlab visualize` (`rnnlab.experiments.visualize`):
`model_trace` runs a model over a text and returns its hidden states and next-character logits,
`lstm_gate_trace` recomputes an LSTM step by step from its parameters with PyTorch's equations and
returns every gate, `text_features` and `correlate_units` find the units that follow simple
properties of the text.
"""

from __future__ import annotations

import atexit
import json
import math
import re
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..data.text import CharVocab, DataError, read_text, split_text
from .common import find_corpus, pyplot, train_char_model, write_csv, write_summary
from .registry import experiment

# The model every experiment here reads. Default: ~45 s of training on 2 CPU cores (2,000 steps of
# 32 streams x 64 characters); quick: a few steps of a tiny model, enough to exercise the code.
MODEL_SETTINGS = {"cell": "lstm", "hidden_size": 128, "max_steps": 2000, "batch_size": 32, "seq_len": 64}
QUICK_MODEL_SETTINGS = {"cell": "lstm", "hidden_size": 32, "max_steps": 30, "batch_size": 8, "seq_len": 32}

ANALYSIS_CHARS = 10_000  # held-out characters over which statistics and correlations are measured
WARMUP_CHARS = 200  # the shown piece starts after this much context, so the state is not the zero start
TEMPERATURES = (0.2, 0.5, 0.8, 1.0, 1.2, 1.5)

# Simple properties of a text that a unit may follow (Karpathy, Johnson & Fei-Fei 2015 found cells
# for quotes, brackets and line position). Each is the value *after reading* character t, which
# is what the hidden state at t can know.
FEATURES = {
    "in_quotes": "inside quotes",
    "column": "position in line",
    "in_brackets": "inside brackets",
    "word_position": "position in word",
    "uppercase": "capital letter",
}

# How characters are drawn on axes and in the page: invisible ones get a visible stand-in.
_SHOWN = {"\n": "↵", " ": "␣", "\t": "⇥"}


def display_char(c: str) -> str:
    """A visible stand-in for a character on a plot axis: '↵' for a newline, '␣' for a space.

    Example:
        >>> display_char(" "), display_char("a")
        ('␣', 'a')
    """
    if c in _SHOWN:
        return _SHOWN[c]
    return c if c.isprintable() else "·"


# ---------------------------------------------------------------------------------------------
# Running a model over a text
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Trace:
    """What a language model did over a text, one row per character read.

    Attributes:
        h: (T, H) hidden state of the top layer after each character.
        c: (T, H) cell state of the top layer (LSTM only, else None).
        logits: (T, V) next-character logits after each character.
    """

    h: np.ndarray
    c: np.ndarray | None
    logits: np.ndarray


def model_trace(model, ids: np.ndarray, state=None) -> Trace:
    """Run a NumPy `LanguageModel` over one sequence of token ids and keep every step's state.

    Args:
        model: `rnnlab.scratch.models.LanguageModel` (put in eval mode here).
        ids: (T,) token ids.
        state: initial recurrent state, or None for zeros.

    Returns:
        A `Trace` in float64.

    Example:
        >>> run = load_lm("runs/shakespeare")                                   # doctest: +SKIP
        >>> tr = model_trace(run.model, run.vocab.encode("To be, or not to be"))  # doctest: +SKIP
        >>> tr.h.shape                                                          # doctest: +SKIP
        (19, 128)
    """
    ids = np.asarray(ids, dtype=np.int64)
    if ids.ndim != 1 or len(ids) == 0:
        raise ValueError(f"ids: expected a non-empty 1-D array of token ids, got shape {ids.shape}")
    model.eval()
    x = model.embedding.forward(ids[None])  # (1, T, E)
    out, _ = model.rnn.forward(x, state)  # (1, T, H): the top layer's h
    logits = model.head.forward(out)  # (1, T, V)
    c = None
    if model.config.cell == "lstm":
        # the engine keeps c in its cache, feature-major (T+1, H, B) with c_0 first; top layer last
        top = model.rnn._cache["caches"][-1]
        c = np.asarray(top.kernel_cache[0][1:, :, 0], dtype=np.float64)
    model.rnn._cache = None  # no backward follows; drop the activations
    return Trace(np.asarray(out[0], dtype=np.float64), c, np.asarray(logits[0], dtype=np.float64))


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * np.tanh(0.5 * x) + 0.5  # = 1 / (1 + e^-x) without overflow warnings


def lstm_gate_trace(
    params: Mapping[str, np.ndarray],
    x: np.ndarray,
    h0: np.ndarray | None = None,
    c0: np.ndarray | None = None,
    *,
    layer: int = 0,
    prefix: str = "rnn.",
) -> dict[str, np.ndarray]:
    """Run one LSTM layer step by step from its parameters and return every gate at every step.

    The equations are PyTorch's (`torch.nn.LSTM`), written out one step at a time for reading,
    in float64; the engine's fast kernel computes the same thing with its gates fused:

        i, f, g, o = σ(·), σ(·), tanh(·), σ(·)  of  W_ih x_t + b_ih + W_hh h_{t-1} + b_hh  (rows i|f|g|o)
        c_t = f ⊙ c_{t-1} + i ⊙ g
        h_t = o ⊙ tanh(c_t)

    Args:
        params: parameter arrays by name, e.g. `model.params` of a `LanguageModel`
            (`rnn.weight_ih_l0` (4H, I), `rnn.weight_hh_l0` (4H, H), `rnn.bias_ih_l0`, `rnn.bias_hh_l0`).
        x: (T, I) the layer's input at each step (for layer 0 of a language model, the embeddings).
        h0, c0: (H,) initial state; zeros if None.
        layer: which layer's parameters to use.
        prefix: name prefix of the recurrent layer's parameters.

    Returns:
        {"i", "f", "g", "o", "c", "h"}: each (T, H), the value at step t (after reading x_t).

    Example:
        >>> lm = load_lm("runs/shakespeare").model                             # doctest: +SKIP
        >>> x = lm.params["embedding.weight"][lm_vocab.encode("hello")]        # doctest: +SKIP
        >>> gates = lstm_gate_trace(lm.params, x)                              # doctest: +SKIP
        >>> gates["f"].mean()                                                  # doctest: +SKIP
    """
    W_ih = np.asarray(params[f"{prefix}weight_ih_l{layer}"], dtype=np.float64)  # (4H, I)
    W_hh = np.asarray(params[f"{prefix}weight_hh_l{layer}"], dtype=np.float64)  # (4H, H)
    b = np.zeros(W_ih.shape[0])
    for name in (f"{prefix}bias_ih_l{layer}", f"{prefix}bias_hh_l{layer}"):
        if name in params:
            b = b + np.asarray(params[name], dtype=np.float64)
    H = W_hh.shape[1]
    x = np.asarray(x, dtype=np.float64)
    T = len(x)
    h = np.zeros(H) if h0 is None else np.asarray(h0, dtype=np.float64)
    c = np.zeros(H) if c0 is None else np.asarray(c0, dtype=np.float64)
    out = {k: np.empty((T, H)) for k in "ifgoch"}
    pre_x = x @ W_ih.T + b  # (T, 4H): the input part of every step at once, as the engine does
    for t in range(T):
        a = pre_x[t] + W_hh @ h  # (4H,)
        i, f, g, o = _sigmoid(a[:H]), _sigmoid(a[H : 2 * H]), np.tanh(a[2 * H : 3 * H]), _sigmoid(a[3 * H :])
        c = f * c + i * g
        h = o * np.tanh(c)
        for k, v in zip("ifgoch", (i, f, g, o, c, h), strict=True):
            out[k][t] = v
    return out


# ---------------------------------------------------------------------------------------------
# Features of a text and the units that follow them
# ---------------------------------------------------------------------------------------------


def text_features(text: str) -> dict[str, np.ndarray]:
    """Simple per-character properties of `text`, each the value after reading character t.

    in_quotes: 1 from an opening '"' up to (not including) the closing one; column: index of the
    character in its line (0 first); in_brackets: 1 while a '(', '[' or '{' is open; word_position:
    characters since the last non-letter; uppercase: 1 for a capital letter.

    Example:
        >>> text_features('a "b" c')["in_quotes"].tolist()
        [0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0]
    """
    T = len(text)
    f = {k: np.zeros(T) for k in FEATURES}
    inside, depth, col, wpos = False, 0, 0, 0
    for t, ch in enumerate(text):
        if ch == '"':
            inside = not inside
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth = max(0, depth - 1)
        wpos = wpos + 1 if ch.isalpha() else 0
        f["in_quotes"][t] = inside
        f["column"][t] = col
        f["in_brackets"][t] = depth > 0
        f["word_position"][t] = wpos
        f["uppercase"][t] = ch.isupper()
        col = 0 if ch == "\n" else col + 1
    return f


def correlate_units(acts: np.ndarray, feature: np.ndarray) -> np.ndarray | None:
    """Pearson correlation of each unit's activation with a feature over the text.

    Args:
        acts: (T, H) activations.
        feature: (T,) the feature.

    Returns:
        (H,) r values (0 for a unit that never changes), or None when the feature is constant on
        this text (no quotes at all, say), where a correlation is undefined.

    Example:
        >>> r = correlate_units(np.array([[1.0, 0.0], [2.0, 0.0], [3.0, 0.0]]), np.array([0.0, 1.0, 2.0]))
        >>> r.round(6).tolist()                 # unit 0 rises with the feature; unit 1 is constant
        [1.0, 0.0]
    """
    a = np.asarray(acts, dtype=np.float64)
    f = np.asarray(feature, dtype=np.float64)
    fc = f - f.mean()
    fn = np.sqrt(fc @ fc)
    if fn == 0:
        return None
    ac = a - a.mean(axis=0)
    an = np.sqrt((ac * ac).sum(axis=0))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (fc @ ac) / (an * fn)
    return np.where(an > 0, r, 0.0)


# ---------------------------------------------------------------------------------------------
# The shared model
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CharModel:
    """A trained character model and the text it was trained on.

    Attributes:
        run: the loaded run (`LoadedLM`): model, vocab, configs.
        corpus: path of the text.
        text: the whole text; val_text: its held-out end (never trained on).
        steps, val_loss: training steps and the final validation loss (nats per character).
        reused: True when the model was copied from an earlier experiment (see `trained_char_model`).
    """

    run: object
    corpus: Path
    text: str
    val_text: str
    steps: int
    val_loss: float
    reused: bool

    def describe(self) -> str:
        """One phrase for titles and summaries: cell, size, training steps, corpus, validation loss."""
        cfg = self.run.model_config
        return (
            f"a character-level {cfg.cell.upper()} with {cfg.hidden_size} hidden units, trained {self.steps:,} steps "
            f"on {self.corpus.name} (validation loss {self.val_loss:.3f} nats/character)"
        )


# model folders already trained in this process, by (corpus, its size and time, seed, settings)
_TRAINED: dict[str, Path] = {}


def trained_char_model(out_dir: Path, *, data: str | None, seed: int, quick: bool) -> CharModel:
    """Train the experiments' character model into `out_dir/model`, or copy one trained before.

    hidden-states, lstm-gates and temperature study the same model. It is trained once (2,000
    steps, a few minutes) and then copied: from this process's earlier experiment, or from a
    finished experiment in a folder beside this one (`rnnlab experiment hidden-states` then
    `rnnlab experiment lstm-gates` with the default folders), when corpus, seed and settings match
    (`model/experiment_model.json`).

    Args:
        out_dir: the experiment's folder.
        data: corpus path or None (tinyshakespeare via `find_corpus`).
        seed: training seed.
        quick: tiny settings for a smoke test.

    Example:
        >>> cm = trained_char_model(Path("runs/exp/hidden-states"), data=None, seed=0, quick=False)  # doctest: +SKIP
    """
    from ..training.lm import load_lm
    from ..training.metrics import METRICS_FILE

    corpus = find_corpus(data)
    text = read_text(corpus)  # DataError (one line) for a missing or unreadable file, before training
    settings = QUICK_MODEL_SETTINGS if quick else MODEL_SETTINGS
    st = corpus.stat()
    key = {
        "corpus": str(corpus.resolve()),
        "size": st.st_size,
        "mtime_ns": st.st_mtime_ns,
        "seed": seed,
        "settings": dict(sorted(settings.items())),
    }
    out_dir = Path(out_dir)
    model_dir = out_dir / "model"
    if model_dir.exists():
        shutil.rmtree(model_dir)  # a stale run would append to its metrics.jsonl
    src = _find_trained(key, out_dir)
    if src is not None:
        shutil.copytree(src, model_dir)
    else:
        # seconds=None: the budget is steps alone, so the result does not depend on the machine's speed
        train_char_model(corpus, out_dir, seconds=None, seed=seed, **settings)
        (model_dir / MODEL_KEY_FILE).write_text(json.dumps(key, indent=2) + "\n", encoding="utf-8")
        _TRAINED[json.dumps(key, sort_keys=True)] = _keep_a_copy(model_dir)
    run = load_lm(model_dir)
    last = json.loads((model_dir / METRICS_FILE).read_text(encoding="utf-8").strip().splitlines()[-1])
    _, val_text = split_text(text, run.train_config.val_fraction)
    return CharModel(run, corpus, text, val_text, int(last["step"]), float(last["val_loss"]), src is not None)


MODEL_KEY_FILE = "experiment_model.json"  # what a trained model of the experiments was trained on


def _find_trained(key: dict, out_dir: Path) -> Path | None:
    """A finished model folder trained with `key`: this process's copy, else one beside `out_dir`."""
    from ..training.checkpoint import MANIFEST

    cached = _TRAINED.get(json.dumps(key, sort_keys=True))
    candidates = [] if cached is None else [cached]
    # out_dir is an experiment folder, or the staging folder inside one (registry.staged_output)
    for base in (out_dir.parent, out_dir.parent.parent):
        candidates += sorted(f.parent for f in base.glob(f"*/model/{MODEL_KEY_FILE}"))
    for folder in candidates:
        try:
            same = json.loads((folder / MODEL_KEY_FILE).read_text(encoding="utf-8")) == key
        except (OSError, ValueError):
            continue
        if same and (folder / MANIFEST).is_file() and folder.resolve() != (out_dir / "model").resolve():
            return folder
    return None


def _keep_a_copy(model_dir: Path) -> Path:
    """Copy a trained model into this process's temporary cache (the experiment's own folder moves)."""
    global _CACHE_DIR
    if _CACHE_DIR is None:
        _CACHE_DIR = Path(tempfile.mkdtemp(prefix="rnnlab-experiment-models-"))
        atexit.register(shutil.rmtree, _CACHE_DIR, ignore_errors=True)
    dest = Path(tempfile.mkdtemp(dir=_CACHE_DIR)) / "model"
    shutil.copytree(model_dir, dest)
    return dest


_CACHE_DIR: Path | None = None


def _analysis_text(cm: CharModel, quick: bool) -> str:
    """The held-out text the statistics are measured on (characters outside the vocabulary dropped)."""
    text = cm.val_text[: (2000 if quick else ANALYSIS_CHARS)]
    ids, _ = cm.run.vocab.encode_lossy(text, unknown="skip")
    if len(ids) < 2:
        raise DataError(f"data: the held-out part of {cm.corpus} has too few characters to analyse")
    return cm.run.vocab.decode(ids)


def _piece_start(text: str, n: int) -> int:
    """Where the shown piece starts: the first line start after some warm-up context, if there is room."""
    warm = min(WARMUP_CHARS, len(text) // 3)
    nl = text.find("\n", warm)
    start = nl + 1 if nl >= 0 else warm
    return start if start + min(n, 20) <= len(text) else max(0, len(text) - n)


def _char_axis(ax, piece: str) -> None:
    ax.set_xticks(range(len(piece)))
    ax.set_xticklabels([display_char(c) for c in piece], fontsize=7, family="DejaVu Sans Mono")
    ax.tick_params(axis="x", length=0)


def _fmt_r(r: float) -> str:
    return f"{r:+.2f}"


def _quote(s: str, n: int = 70) -> str:
    s = s.replace("\n", "↵")
    return json.dumps(s[:n] + ("…" if len(s) > n else ""), ensure_ascii=False)


# ---------------------------------------------------------------------------------------------
# hidden-states
# ---------------------------------------------------------------------------------------------


@experiment("hidden-states", "Hidden units of a trained character model over a text", needs_text=True)
def hidden_states(out_dir: Path, *, seed: int = 0, quick: bool = False, data: str | None = None) -> dict:
    """Train a character LSTM and draw its hidden units over a held-out piece of text.

    Writes hidden_states.png (a few units as lines, all units as a heatmap, x axis = characters),
    hidden_states.csv (every unit at every shown character), unit_correlations.csv (each unit's
    Pearson r with simple text features over the held-out analysis text), summary.txt/json.

    Example:
        >>> hidden_states(Path("runs/exp/hidden-states"), seed=0)   # doctest: +SKIP
    """
    plt = pyplot()
    cm = trained_char_model(out_dir, data=data, seed=seed, quick=quick)
    vocab: CharVocab = cm.run.vocab
    text = _analysis_text(cm, quick)
    tr = model_trace(cm.run.model, vocab.encode(text))
    h = tr.h  # (T, H)
    T, H = h.shape
    feats = text_features(text)
    corr = {k: correlate_units(h, v) for k, v in feats.items()}

    # the units shown as lines: for each feature the text has, the unit that follows it best
    # (by |r|), then the most variable units until there are four
    chosen: list[tuple[int, str]] = []
    for key in ("column", "word_position", "uppercase", "in_quotes", "in_brackets"):
        r = corr[key]
        if r is None or len(chosen) >= 3:
            continue
        order = np.argsort(-np.abs(r), kind="stable")
        u = next(int(u) for u in order if all(u != c for c, _ in chosen))
        chosen.append((u, key))
    std = h.std(axis=0)
    for u in np.argsort(-std, kind="stable"):
        if len(chosen) >= 4:
            break
        if all(int(u) != c for c, _ in chosen):
            chosen.append((int(u), "variance"))

    n = 24 if quick else 100
    start = _piece_start(text, n)
    piece = text[start : start + n]
    hp = h[start : start + len(piece)]  # (n, H)

    fig, (ax1, ax2) = plt.subplots(
        2, 1, figsize=(max(10.0, 0.15 * len(piece) + 2), 8.5), sharex=True, gridspec_kw={"height_ratios": [1, 1.5]}
    )
    for u, key in chosen:
        if key == "variance":
            lab = f"unit {u} (most variable, std {std[u]:.2f})"
        else:
            lab = f"unit {u} ({FEATURES[key]}, r = {_fmt_r(corr[key][u])})"
        ax1.plot(range(len(piece)), hp[:, u], marker=".", lw=1.2, label=lab)
    ax1.axhline(0, color="0.6", lw=0.6)
    ax1.set_ylim(-1.1, 1.55)  # headroom above +1 for the legend, so it never hides a line
    ax1.set_yticks([-1, -0.5, 0, 0.5, 1])
    ax1.set_ylabel("activation h")
    ax1.set_title(f"Selected hidden units over {len(piece)} held-out characters")
    ax1.legend(fontsize=8, loc="upper left", ncol=2, frameon=False)
    _char_axis(ax1, piece)
    ax1.tick_params(axis="x", labelbottom=True)
    ax1.grid(axis="x", alpha=0.15)
    im = ax2.imshow(hp.T, aspect="auto", cmap="RdBu_r", vmin=-1, vmax=1, interpolation="nearest")
    ax2.set_ylabel("hidden unit")
    ax2.set_title(f"All {H} hidden units (rows) × characters (columns)")
    _char_axis(ax2, piece)
    ax2.set_xlabel("character read (↵ newline, ␣ space)")
    fig.colorbar(im, ax=[ax1, ax2], label="h (tanh range −1…1)", fraction=0.025, pad=0.015)
    fig.suptitle(f"Hidden states of {cm.describe()}", fontsize=10)
    fig.savefig(out_dir / "hidden_states.png", dpi=110, bbox_inches="tight")
    plt.close(fig)

    write_csv(
        out_dir / "hidden_states.csv",
        ["position", "char", *[f"unit_{u}" for u in range(H)]],
        [[start + t, piece[t], *(f"{v:.5f}" for v in hp[t])] for t in range(len(piece))],
    )
    keys = [k for k in FEATURES if corr[k] is not None]
    write_csv(
        out_dir / "unit_correlations.csv",
        ["unit", "mean", "std", *[f"r_{k}" for k in keys]],
        [[u, f"{h[:, u].mean():.5f}", f"{std[u]:.5f}", *(f"{corr[k][u]:.5f}" for k in keys)] for u in range(H)],
    )

    saturated = float((np.abs(h) > 0.9).mean())
    strong = {k: int((np.abs(corr[k]) > 0.5).sum()) for k in keys}
    sentences = [
        f"The model is {cm.describe()}; it read {T:,} held-out characters.",
    ]
    for u, key in chosen:
        if key == "variance":
            sentences.append(f"Unit {u} is the most variable of the other units (std {std[u]:.2f} over the text).")
        else:
            best = int(np.argmax(np.abs(corr[key])))
            if best == u:
                lead = f"Of all {H} units, unit {u} correlates most with the {FEATURES[key]}"
            else:  # the best one is already drawn for another feature
                taken = next(FEATURES.get(k, k) for c, k in chosen if c == best)
                lead = (
                    f"Of the units not drawn for another feature, unit {u} correlates most with the "
                    f"{FEATURES[key]} (unit {best}, drawn for the {taken}, has r = {_fmt_r(corr[key][best])})"
                )
            sentences.append(f"{lead}: Pearson r = {_fmt_r(corr[key][u])} ({strong[key]} unit(s) have |r| > 0.5).")
    sentences.append(
        f"Of all activations, {100 * saturated:.1f}% are saturated (|h| > 0.9); the mean |h| is {np.abs(h).mean():.2f}."
    )
    sentences.append(f"The figure shows the {len(piece)} characters from held-out position {start}: {_quote(piece)}.")
    figures = {
        "cell": cm.run.model_config.cell,
        "hidden_size": H,
        "train_steps": cm.steps,
        "val_loss": cm.val_loss,
        "analysis_chars": T,
        "piece_start": start,
        "piece_chars": len(piece),
        "selected_units": [
            {"unit": u, "feature": key, "r": None if key == "variance" else float(corr[key][u]), "std": float(std[u])}
            for u, key in chosen
        ],
        "best_r": {k: float(corr[k][np.argmax(np.abs(corr[k]))]) for k in keys},
        "units_abs_r_over_0_5": strong,
        "saturated_fraction": saturated,
        "mean_abs_h": float(np.abs(h).mean()),
    }
    return write_summary(out_dir, "hidden-states", " ".join(sentences), figures)


# ---------------------------------------------------------------------------------------------
# lstm-gates
# ---------------------------------------------------------------------------------------------

_GATE_PANELS = (
    ("f", "forget gate f = σ(·)", "viridis", (0.0, 1.0)),
    ("i", "input gate i = σ(·)", "viridis", (0.0, 1.0)),
    ("g", "candidate g = tanh(·)", "RdBu_r", (-1.0, 1.0)),
    ("o", "output gate o = σ(·)", "viridis", (0.0, 1.0)),
    ("c", "cell state c = f⊙c₋₁ + i⊙g", "RdBu_r", None),
    ("h", "hidden state h = o⊙tanh(c)", "RdBu_r", (-1.0, 1.0)),
)


@experiment("lstm-gates", "LSTM gates, cell and hidden state over a text", needs_text=True)
def lstm_gates(out_dir: Path, *, seed: int = 0, quick: bool = False, data: str | None = None) -> dict:
    """Recompute a trained LSTM step by step and draw its forget, input, candidate and output gates,
    its cell and its hidden state over a held-out piece of text.

    Writes lstm_gates.png (6 heatmaps, units × characters, one shared x axis), lstm_gates.json (the
    shown values), gate_stats.csv (per gate: mean and saturation over the analysis text),
    summary.txt/json.

    Example:
        >>> lstm_gates(Path("runs/exp/lstm-gates"), seed=0)   # doctest: +SKIP
    """
    plt = pyplot()
    cm = trained_char_model(out_dir, data=data, seed=seed, quick=quick)
    model, vocab = cm.run.model, cm.run.vocab
    text = _analysis_text(cm, quick)
    ids = vocab.encode(text)
    params = model.params
    g = lstm_gate_trace(params, params["embedding.weight"][ids])  # layer 0, from the zero state
    T, H = g["h"].shape
    # the recomputation must agree with the engine that trained the model (float32 there)
    engine = model_trace(model, ids) if model.config.num_layers == 1 else None
    diff_h = float(np.abs(engine.h - g["h"]).max()) if engine else float("nan")
    diff_c = float(np.abs(engine.c - g["c"]).max()) if engine else float("nan")

    stats = {}
    for k in "ifo":
        v = g[k]
        stats[k] = {"mean": float(v.mean()), "above_0_9": float((v > 0.9).mean()), "below_0_1": float((v < 0.1).mean())}
    stats["g"] = {
        "mean": float(g["g"].mean()),
        "above_0_9": float((g["g"] > 0.9).mean()),
        "below_minus_0_9": float((g["g"] < -0.9).mean()),
    }
    for k in "fio":
        stats[k]["saturated"] = stats[k]["above_0_9"] + stats[k]["below_0_1"]
    stats["g"]["saturated"] = stats["g"]["above_0_9"] + stats["g"]["below_minus_0_9"]
    abs_c = np.abs(g["c"])
    stats["c"] = {"mean_abs": float(abs_c.mean()), "max_abs": float(abs_c.max()), "beyond_1": float((abs_c > 1).mean())}
    # "integrators": units whose forget gate stays open (f > 0.9) for most characters keep their cell long
    long_memory = int(((g["f"] > 0.9).mean(axis=0) > 0.5).sum())
    forgetful = int(((g["f"] < 0.1).mean(axis=0) > 0.5).sum())

    n = 24 if quick else 80
    start = _piece_start(text, n)
    piece = text[start : start + n]
    sl = slice(start, start + len(piece))
    shown_units = min(H, 128)

    fig, axes = plt.subplots(6, 1, figsize=(max(10.0, 0.15 * len(piece) + 2.5), 15), sharex=True, layout="constrained")
    for ax, (k, title, cmap, lim) in zip(axes, _GATE_PANELS, strict=True):
        v = g[k][sl, :shown_units].T  # (units, n)
        extend = "neither"
        if lim is None:
            # c is unbounded and a few units run far out; clipping the colours at the 98th
            # percentile of |c| keeps the typical values visible (the colour bar says so)
            m = max(float(np.percentile(np.abs(v), 98)), 1e-6)
            lim, extend = (-m, m), "both"
            title = f"{title}   (colours clipped at ±{m:.1f}; max |c| here {np.abs(v).max():.1f})"
        im = ax.imshow(v, aspect="auto", cmap=cmap, vmin=lim[0], vmax=lim[1], interpolation="nearest")
        ax.set_title(title, fontsize=10, loc="left")
        ax.set_ylabel("unit")
        fig.colorbar(im, ax=ax, fraction=0.02, pad=0.01, extend=extend)
    _char_axis(axes[-1], piece)
    axes[-1].set_xlabel("character read (↵ newline, ␣ space)")
    more = f" (first {shown_units} of {H} units)" if shown_units < H else ""
    fig.suptitle(f"LSTM gates over {len(piece)} held-out characters{more}\n{cm.describe()}", fontsize=10)
    fig.savefig(out_dir / "lstm_gates.png", dpi=110)
    plt.close(fig)

    (out_dir / "lstm_gates.json").write_text(
        json.dumps(
            {
                "text": piece,
                "start": start,
                "units": shown_units,
                "layout": "values[gate][t][unit], t over the characters of text",
                "values": {k: np.round(g[k][sl, :shown_units], 4).tolist() for k in "figoch"},
            },
            ensure_ascii=False,
        )
        + "\n",
        encoding="utf-8",
    )
    rows = []
    for k in "figo":
        s = stats[k]
        low = s.get("below_0_1", s.get("below_minus_0_9"))
        rows.append([k, f"{s['mean']:.5f}", f"{s['above_0_9']:.5f}", f"{low:.5f}", f"{s['saturated']:.5f}"])
    write_csv(
        out_dir / "gate_stats.csv", ["gate", "mean", "frac_above_0.9", "frac_below_0.1_or_-0.9", "frac_saturated"], rows
    )

    sentences = [
        f"The model is {cm.describe()}. Its gates were recomputed step by step from the parameters with PyTorch's "
        f"LSTM equations over {T:,} held-out characters; they reproduce the engine's hidden state to {diff_h:.1e} "
        f"and cell state to {diff_c:.1e} (max abs difference).",
        f"Mean forget gate {stats['f']['mean']:.2f}, input gate {stats['i']['mean']:.2f}, output gate "
        f"{stats['o']['mean']:.2f}.",
        f"Saturated (> 0.9 or < 0.1): forget {100 * stats['f']['saturated']:.1f}% "
        f"({100 * stats['f']['above_0_9']:.1f}% open, {100 * stats['f']['below_0_1']:.1f}% shut), input "
        f"{100 * stats['i']['saturated']:.1f}%, output {100 * stats['o']['saturated']:.1f}%; the candidate g is beyond "
        f"±0.9 {100 * stats['g']['saturated']:.1f}% of the time.",
        f"{long_memory} of {H} units keep their forget gate above 0.9 for more than half of the characters "
        f"(they carry their cell along), {forgetful} keep it below 0.1.",
        f"The cell state is unbounded: mean |c| {stats['c']['mean_abs']:.2f}, max |c| {stats['c']['max_abs']:.2f}, "
        f"|c| > 1 for {100 * stats['c']['beyond_1']:.1f}% of the values, while h = o⊙tanh(c) stays within ±1.",
        f"The figure shows the {len(piece)} characters from held-out position {start}: {_quote(piece)}.",
    ]
    figures = {
        "cell": "lstm",
        "hidden_size": H,
        "train_steps": cm.steps,
        "val_loss": cm.val_loss,
        "analysis_chars": T,
        "piece_start": start,
        "piece_chars": len(piece),
        "engine_max_abs_diff_h": diff_h,
        "engine_max_abs_diff_c": diff_c,
        "gates": stats,
        "mean_forget_gate": stats["f"]["mean"],
        "forget_saturated_fraction": stats["f"]["saturated"],
        "input_saturated_fraction": stats["i"]["saturated"],
        "output_saturated_fraction": stats["o"]["saturated"],
        "long_memory_units": long_memory,
        "forgetful_units": forgetful,
    }
    return write_summary(out_dir, "lstm-gates", " ".join(sentences), figures)


# ---------------------------------------------------------------------------------------------
# temperature
# ---------------------------------------------------------------------------------------------


def sample_with_entropy(
    model, vocab: CharVocab, prime: str, *, temperature: float, length: int, num_samples: int, seed: int
) -> tuple[list[str], np.ndarray]:
    """Sample like `rnnlab sample` and measure, at every drawn character, the entropy of the
    distribution it was drawn from: H = −Σ p log p with p = softmax(logits / temperature).

    Args:
        model: a NumPy `LanguageModel`; vocab: its vocabulary.
        prime: text to start from (characters outside the vocabulary are dropped).
        temperature, length, num_samples, seed: as `SampleConfig`.

    Returns:
        (samples without the prime, entropies (num_samples, length) in nats).

    Example:
        >>> texts, ent = sample_with_entropy(lm, vocab, "ROMEO:", temperature=0.8, length=100,
        ...                                  num_samples=2, seed=0)   # doctest: +SKIP
    """
    from ..generation.sample import sample_next
    from ..scratch.losses import softmax

    rng = np.random.default_rng(seed)
    start, _ = vocab.encode_lossy(prime, unknown="skip")
    if len(start) == 0:
        start = np.array([rng.integers(len(vocab))], dtype=np.int64)
    model.eval()
    logits, state = model.forward(np.tile(start, (num_samples, 1)), None)
    last = logits[:, -1]
    out = np.empty((num_samples, length), dtype=np.int64)
    ent = np.empty((num_samples, length))
    for t in range(length):
        p = softmax(np.asarray(last, dtype=np.float64) / temperature, axis=-1)  # (n, V)
        with np.errstate(divide="ignore", invalid="ignore"):
            ent[:, t] = -np.where(p > 0, p * np.log(p), 0.0).sum(axis=-1)
        nxt = sample_next(last, rng, temperature)  # the same p, drawn as `rnnlab sample` does
        out[:, t] = nxt
        logits, state = model.forward(nxt[:, None], state)
        last = logits[:, -1]
    model.rnn._cache = None
    return [vocab.decode(row) for row in out], ent


def _pct(x: float | None) -> str:
    return "n/a (no words)" if x is None else f"{100 * x:.0f}%"


def _words(text: str) -> list[str]:
    return re.findall(r"[A-Za-z]+(?:'[A-Za-z]+)?", text)


@experiment("temperature", "Sampling temperature: entropy and samples", needs_text=True)
def temperature(out_dir: Path, *, seed: int = 0, quick: bool = False, data: str | None = None) -> dict:
    """Sample one trained character model at temperatures 0.2 to 1.5 and measure the entropy of
    the distribution each character was drawn from, and how many generated words are real.

    Writes temperature.png (mean entropy and real-word fraction vs temperature), entropy.csv (one
    row per sample), samples.json and samples.txt (every sample), summary.txt/json.

    Example:
        >>> temperature(Path("runs/exp/temperature"), seed=0)   # doctest: +SKIP
    """
    plt = pyplot()
    cm = trained_char_model(out_dir, data=data, seed=seed, quick=quick)
    model, vocab = cm.run.model, cm.run.vocab
    first_line = cm.text.split("\n", 1)[0][:60]
    prime = first_line + "\n" if "\n" in vocab.stoi else first_line
    length, num = (40, 2) if quick else (400, 4)
    train_text, _ = split_text(cm.text, cm.run.train_config.val_fraction)
    known = {w.lower() for w in _words(train_text)}

    records, rows = [], []
    for k, temp in enumerate(TEMPERATURES):
        texts, ent = sample_with_entropy(
            model, vocab, prime, temperature=temp, length=length, num_samples=num, seed=seed * 1000 + k
        )
        per_sample = ent.mean(axis=1)  # (num,)
        n_words = n_real = 0
        for j, s in enumerate(texts):
            words = _words(s)
            real = sum(w.lower() in known for w in words)
            n_words, n_real = n_words + len(words), n_real + real
            rows.append([temp, j, f"{per_sample[j]:.5f}", f"{real / len(words):.5f}" if words else "", len(words)])
        records.append(
            {
                "temperature": temp,
                "entropy_mean": float(ent.mean()),
                "entropy_std_over_samples": float(per_sample.std()),
                # pooled over the samples; 0 words (possible for a tiny quick model) leaves it undefined
                "real_word_fraction": n_real / n_words if n_words else None,
                "samples": texts,
                "seed": seed * 1000 + k,
            }
        )
    temps = np.array(TEMPERATURES)
    ent_mean = np.array([r["entropy_mean"] for r in records])
    ent_std = np.array([r["entropy_std_over_samples"] for r in records])
    real_frac = np.array([np.nan if r["real_word_fraction"] is None else r["real_word_fraction"] for r in records])
    max_ent = math.log(len(vocab))
    rises = int((np.diff(ent_mean) > 0).sum())

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    ax1.errorbar(
        temps, ent_mean, yerr=ent_std, marker="o", capsize=3, label=f"mean over {num} samples × {length} chars"
    )
    ax1.axhline(max_ent, color="0.5", ls="--", lw=1, label=f"uniform over {len(vocab)} characters: {max_ent:.2f}")
    ax1.set_xlabel("temperature T")
    ax1.set_ylabel("entropy of softmax(logits / T) (nats per character)")
    ax1.set_title("Entropy of the distribution each character was drawn from")
    ax1.set_ylim(0, max_ent * 1.08)
    ax1.legend(fontsize=8, loc="lower right")
    ax2.plot(temps, 100 * real_frac, marker="s", color="C2")
    ax2.set_xlabel("temperature T")
    ax2.set_ylabel("generated words found in the training text (%)")
    ax2.set_ylim(0, 105)
    ax2.set_title("Real words among the generated words")
    for ax in (ax1, ax2):
        ax.set_xticks(temps)
        ax.grid(alpha=0.3)
    fig.suptitle(f"Sampling temperature: {cm.describe()}", fontsize=10)
    fig.tight_layout()
    fig.savefig(out_dir / "temperature.png", dpi=110)
    plt.close(fig)

    write_csv(
        out_dir / "entropy.csv", ["temperature", "sample", "mean_entropy_nats", "real_word_fraction", "words"], rows
    )
    (out_dir / "samples.json").write_text(
        json.dumps({"prime": prime, "length": length, "temperatures": records}, indent=2, ensure_ascii=False) + "\n",
        encoding="utf-8",
    )
    with open(out_dir / "samples.txt", "w", encoding="utf-8") as f:
        for r in records:
            for j, s in enumerate(r["samples"]):
                f.write(f"=== temperature {r['temperature']}, sample {j + 1} (prime {prime!r}) ===\n{prime}{s}\n\n")

    lo, hi = records[0], records[-1]
    sentences = [
        f"The model is {cm.describe()}; primed with {_quote(prime)}, it drew {num} samples of {length} characters "
        f"at each temperature.",
        f"The mean entropy of the distribution each character was drawn from rises from "
        f"{lo['entropy_mean']:.2f} nats at T = {lo['temperature']} to {hi['entropy_mean']:.2f} nats at "
        f"T = {hi['temperature']} (it rose in {rises} of {len(TEMPERATURES) - 1} steps; uniform over the "
        f"{len(vocab)} characters would be {max_ent:.2f}).",
        "At T = 1.0 it is "
        + f"{records[TEMPERATURES.index(1.0)]['entropy_mean']:.2f} nats, the model's own uncertainty along its samples.",
        f"Generated words found in the training text: {_pct(lo['real_word_fraction'])} at T = {lo['temperature']}, "
        f"{_pct(hi['real_word_fraction'])} at T = {hi['temperature']}.",
        "First sample at each temperature (first 70 characters):",
    ]
    text = (
        " ".join(sentences) + "\n" + "\n".join(f"  T = {r['temperature']}: {_quote(r['samples'][0])}" for r in records)
    )
    figures = {
        "cell": cm.run.model_config.cell,
        "hidden_size": cm.run.model_config.hidden_size,
        "train_steps": cm.steps,
        "val_loss": cm.val_loss,
        "prime": prime,
        "sample_length": length,
        "samples_per_temperature": num,
        "temperatures": list(TEMPERATURES),
        "entropy_nats": [float(x) for x in ent_mean],
        "entropy_std_over_samples": [float(x) for x in ent_std],
        "real_word_fraction": [r["real_word_fraction"] for r in records],
        "max_entropy_nats": max_ent,
        "entropy_rises": rises,
    }
    return write_summary(out_dir, "temperature", text, figures)
