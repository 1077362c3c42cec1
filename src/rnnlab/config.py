"""One frozen dataclass per concern: the model, the training run, sampling.

Each is saved as JSON beside every checkpoint (`model_config.json`, `train_config.json`), so a run
folder says exactly what produced it. Construction validates every field; `from_dict` refuses
unknown keys, so a typo in a config file is an error rather than a silently ignored option.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

CELLS = ("rnn", "lstm", "gru")
NONLINEARITIES = ("tanh", "relu")
INITS = ("pytorch", "normal", "xavier", "orthogonal", "identity")
OPTIMIZERS = ("adam", "adamw", "sgd", "adagrad")
CLIP_MODES = ("norm", "value", "none")
SCHEDULES = ("constant", "cosine", "plateau")
ENGINES = ("numpy", "torch")
LEVELS = ("char", "word")
PRECISIONS = ("auto", "fp32", "bf16")

C = TypeVar("C")


def _choice(name: str, value: object, options: tuple[str, ...]) -> None:
    if value not in options:
        raise ValueError(f"{name}: expected one of {', '.join(options)}, got {value!r}")


def _positive_int(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name}: expected a positive integer, got {value!r}")


def _number(name: str, value: object, low: float, high: float = math.inf, *, low_open: bool = False) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (value > low if low_open else value >= low) and value <= high
    if not ok:
        bound = "" if low == -math.inf else f" {'>' if low_open else '>='} {low}"
        bound += f" and <= {high}" if high != math.inf else ""
        raise ValueError(f"{name}: expected a finite number{bound}, got {value!r}")


def _bool(name: str, value: object) -> None:
    if not isinstance(value, bool):
        raise ValueError(f"{name}: expected true or false, got {value!r}")


def _plain_numbers(config: object) -> None:
    """NumPy scalars given for fields (np.int64(16), np.float32(0.1), np.bool_) become Python ones,
    so a config checks, compares and saves as JSON the same whichever was given."""
    for f in dataclasses.fields(config):  # type: ignore[arg-type]
        value = getattr(config, f.name)
        if isinstance(value, np.generic) and value.dtype.kind in "biuf":
            object.__setattr__(config, f.name, value.item())


def _non_negative_int(name: str, value: object, *, optional: bool = False) -> None:
    if optional and value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name}: expected an integer >= 0{' or None' if optional else ''}, got {value!r}")


def _optional_positive_int(name: str, value: object) -> None:
    if value is not None:
        _positive_int(name, value)


class _Config:
    """JSON round trip shared by the config dataclasses."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls: type[C], data: dict[str, Any]) -> C:
        if not isinstance(data, dict):
            raise TypeError(f"{cls.__name__}: expected a JSON object, got {type(data).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(
                f"{cls.__name__}: unknown option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
            )
        return cls(**data)

    def replace(self: C, **changes: Any) -> C:
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]


@dataclass(frozen=True)
class ModelConfig(_Config):
    """A language model: token embedding -> recurrent stack -> linear read-out over the vocabulary.

    Args:
        vocab_size: number of tokens V.
        cell: 'rnn', 'lstm' or 'gru'.
        nonlinearity: 'tanh' or 'relu' (vanilla RNN only).
        embedding_dim: size of the token vectors fed to the first layer.
        hidden_size: H, units per layer and direction.
        num_layers: stacked recurrent layers.
        dropout: dropout between recurrent layers and before the read-out (training only).
        init: recurrent weight initialisation: 'pytorch' (U(±1/√H)), 'normal', 'xavier',
            'orthogonal' or 'identity' (IRNN, vanilla RNN only).
        forget_bias: initial LSTM forget-gate bias (None keeps the scheme's value).
        tie_weights: share the input embedding with the output read-out (Press & Wolf, 2017; the
            usual trick for word models); needs embedding_dim == hidden_size.

    Example:
        >>> ModelConfig(vocab_size=65, cell="gru", hidden_size=256).num_layers
        1
    """

    vocab_size: int
    cell: str = "lstm"
    nonlinearity: str = "tanh"
    embedding_dim: int = 64
    hidden_size: int = 512
    num_layers: int = 1
    dropout: float = 0.0
    init: str = "pytorch"
    forget_bias: float | None = None
    tie_weights: bool = False

    def __post_init__(self) -> None:
        _plain_numbers(self)
        _positive_int("vocab_size", self.vocab_size)
        _choice("cell", self.cell, CELLS)
        _choice("nonlinearity", self.nonlinearity, NONLINEARITIES)
        _positive_int("embedding_dim", self.embedding_dim)
        _positive_int("hidden_size", self.hidden_size)
        _positive_int("num_layers", self.num_layers)
        _number("dropout", self.dropout, 0.0, 0.99)
        _choice("init", self.init, INITS)
        if self.init == "identity" and self.cell != "rnn":
            raise ValueError(f"init: 'identity' (IRNN) is for cell='rnn', got cell={self.cell!r}")
        if self.nonlinearity != "tanh" and self.cell != "rnn":
            raise ValueError(
                f"nonlinearity: applies to cell='rnn', got nonlinearity={self.nonlinearity!r} with cell={self.cell!r}"
            )
        if self.forget_bias is not None:
            _number("forget_bias", self.forget_bias, -math.inf)
            if self.cell != "lstm":
                raise ValueError(f"forget_bias: applies to cell='lstm', got cell={self.cell!r}")
        _bool("tie_weights", self.tie_weights)
        if self.tie_weights and self.embedding_dim != self.hidden_size:
            raise ValueError(
                f"tie_weights: needs embedding_dim == hidden_size (the read-out reuses the embedding), "
                f"got embedding_dim={self.embedding_dim}, hidden_size={self.hidden_size}"
            )


@dataclass(frozen=True)
class TrainConfig(_Config):
    """A training run of a language model.

    Args:
        engine: 'numpy' (rnnlab.scratch) or 'torch'.
        data: path of a UTF-8 text file; None trains on the embedded census first names.
        per_line: one item per line (names, words): each line becomes <b> item <b> with a boundary
            token, and the validation split takes whole lines.
        batch_size: B parallel streams through the corpus (stateful truncated BPTT).
        seq_len: T, time steps per truncated-BPTT chunk.
        optimizer: 'adam', 'adamw', 'sgd' or 'adagrad'.
        lr: peak learning rate.
        lr_schedule: 'constant', or 'cosine' decay to lr_min_ratio·lr over the run's budget (steps, or
            seconds when only max_time bounds the run).
        warmup_steps: linear warm-up steps.
        weight_decay, momentum: optimiser options (momentum for SGD only).
        grad_clip: threshold for clip_mode 'norm' (global L2 norm) or 'value' (element-wise).
        max_steps / max_time: stop at whichever comes first (seconds of training, evaluation excluded).
        eval_every: steps between evaluations on the whole validation split (and checkpoints).
        val_fraction: last fraction of the data held out for validation.
        state_reset_prob: chance that a stream's carried state is zeroed before a chunk. With the
            state always carried, a model sees a zero state once per epoch and generates nonsense
            from one; occasional resets teach it to start from nothing, as sampling does.
        seed: seeds initialisation, data order, dropout.

    Options of the torch engine (`rnnlab.training.trainer`; the NumPy trainer refuses the ones it
    does not implement rather than ignoring them):
        level: 'char' or 'word' tokens (language models).
        test_size: items (lines) held out as a test split before the validation split is taken,
            scored once at the end of the run (per-line data only; 0: none).
        lr_schedule 'plateau': warm-up, then the learning rate is multiplied by plateau_factor
            whenever the validation loss has not improved for plateau_patience evaluations.
        patience: early stopping: stop after this many evaluations without a better validation
            loss (None: never stop early).
        checkpoint_every: also write the resumable checkpoint every N steps (None: at evaluations
            and at the end only).
        keep_best: keep the weights with the lowest validation loss in the run's `best/` folder.
        device: 'auto' (cuda, then mps, then cpu), or a torch device string such as 'cuda:1'.
        precision: 'auto' (bf16 autocast on CUDA, float32 elsewhere), 'fp32' or 'bf16' (CUDA only).
        threads: CPU threads for torch while training (None: 1 for a small model, else torch's default).

    Example:
        >>> TrainConfig(max_time=120).batch_size
        32
    """

    engine: str = "numpy"
    data: str | None = None
    per_line: bool = False
    batch_size: int = 32
    seq_len: int = 64
    optimizer: str = "adam"
    lr: float = 3e-3
    lr_schedule: str = "cosine"
    lr_min_ratio: float = 0.1
    warmup_steps: int = 0
    weight_decay: float = 0.0
    momentum: float = 0.9
    clip_mode: str = "norm"
    grad_clip: float = 5.0
    max_steps: int | None = None
    max_time: float | None = None
    eval_every: int = 250
    eval_batch_size: int = 128
    val_fraction: float = 0.1
    state_reset_prob: float = 0.01
    seed: int = 1337
    level: str = "char"
    test_size: int = 0
    plateau_factor: float = 0.5
    plateau_patience: int = 1
    patience: int | None = None
    checkpoint_every: int | None = None
    keep_best: bool = True
    device: str = "auto"
    precision: str = "auto"
    threads: int | None = None

    def __post_init__(self) -> None:
        _plain_numbers(self)
        _choice("engine", self.engine, ENGINES)
        if self.data is not None and not isinstance(self.data, str):
            raise TypeError(f"data: expected a path, URL or data-set name as a string (or None), got {self.data!r}")
        _bool("per_line", self.per_line)
        _positive_int("batch_size", self.batch_size)
        _positive_int("seq_len", self.seq_len)
        _choice("optimizer", self.optimizer, OPTIMIZERS)
        _number("lr", self.lr, 0.0, low_open=True)
        _choice("lr_schedule", self.lr_schedule, SCHEDULES)
        _number("lr_min_ratio", self.lr_min_ratio, 0.0, 1.0)
        _non_negative_int("warmup_steps", self.warmup_steps)
        _number("weight_decay", self.weight_decay, 0.0)
        _number("momentum", self.momentum, 0.0, 1.0)
        _choice("clip_mode", self.clip_mode, CLIP_MODES)
        _number("grad_clip", self.grad_clip, 0.0, low_open=True)
        if self.max_steps is not None:
            _positive_int("max_steps", self.max_steps)
        if self.max_time is not None:
            _number("max_time", self.max_time, 0.0, low_open=True)
        if self.max_steps is None and self.max_time is None:
            raise ValueError("max_steps/max_time: expected at least one bound on the run, got neither")
        _positive_int("eval_every", self.eval_every)
        _positive_int("eval_batch_size", self.eval_batch_size)
        _number("val_fraction", self.val_fraction, 0.0, 0.5, low_open=True)
        _number("state_reset_prob", self.state_reset_prob, 0.0, 1.0)
        _non_negative_int("seed", self.seed)
        _choice("level", self.level, LEVELS)
        _non_negative_int("test_size", self.test_size)
        if self.test_size and not self.per_line and self.data is not None:
            raise ValueError("test_size: holds out whole lines, so it needs per_line data (--per-line)")
        _number("plateau_factor", self.plateau_factor, 0.0, 1.0, low_open=True)
        _positive_int("plateau_patience", self.plateau_patience)
        _optional_positive_int("patience", self.patience)
        _optional_positive_int("checkpoint_every", self.checkpoint_every)
        _bool("keep_best", self.keep_best)
        if not isinstance(self.device, str) or not self.device:
            raise ValueError(f"device: expected 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps', got {self.device!r}")
        _choice("precision", self.precision, PRECISIONS)
        _optional_positive_int("threads", self.threads)


# The TrainConfig fields a resumed run may change: the budget, where it runs, and a moved data file.
# Anything else would not match the saved optimiser state, or would be recorded in the run folder
# without having been trained with (the Trainer refuses it; `rnnlab train --resume` takes only these).
RESUMABLE_FIELDS = frozenset(
    {"max_steps", "max_time", "checkpoint_every", "device", "threads", "patience", "data", "engine"}
)


@dataclass(frozen=True)
class SampleConfig(_Config):
    """How to draw text from a trained language model.

    Args:
        length: characters to generate (per-line models stop each item at the boundary token; then
            `length` caps one item).
        num_samples: independent samples drawn in one batch.
        temperature: divides the logits; < 1 is more conservative, > 1 more surprising.
        top_k: sample only among the k most likely tokens (None: all).
        top_p: nucleus sampling: only among the most likely tokens whose probabilities add up to
            top_p (None or 1: all).
        greedy: always take the most likely token (ignores temperature and top_k).
        prime: text that sets the state before generating (not for per-line models' boundary).
        unknown: what to do with prime characters outside the vocabulary: 'error', 'skip' or 'map'.
        replacement: the character that 'map' puts in their place, for a character model (a word
            model maps to `<unk>`, and needs none).
        seed: random seed (None: fresh entropy).

    Example:
        >>> SampleConfig(temperature=0.8, top_k=5).greedy
        False
    """

    length: int = 500
    num_samples: int = 1
    temperature: float = 1.0
    top_k: int | None = None
    greedy: bool = False
    prime: str = ""
    unknown: str = "error"
    replacement: str | None = None
    seed: int | None = None
    top_p: float | None = None

    def __post_init__(self) -> None:
        _plain_numbers(self)
        _positive_int("length", self.length)
        _positive_int("num_samples", self.num_samples)
        _bool("greedy", self.greedy)
        if not isinstance(self.prime, str):
            raise TypeError(f"prime: expected a string, got {type(self.prime).__name__}")
        if self.replacement is not None and not isinstance(self.replacement, str):
            raise TypeError(f"replacement: expected a character or None, got {type(self.replacement).__name__}")
        _number("temperature", self.temperature, 0.0, low_open=True)
        if self.top_k is not None:
            _positive_int("top_k", self.top_k)
        if self.top_p is not None:
            _number("top_p", self.top_p, 0.0, 1.0, low_open=True)
        _choice("unknown", self.unknown, ("error", "skip", "map"))
        _non_negative_int("seed", self.seed, optional=True)
        if self.replacement is not None and len(self.replacement) != 1:
            raise ValueError(f"replacement: expected one character, got {self.replacement!r}")
