"""The language-model task of the torch trainer: characters or words, running text or one item per line.

Data follow the NumPy trainer (`rnnlab.training.lm`) exactly, so both engines train and score on
the same split: running text keeps its first 90% for training and the rest for validation;
one-item-per-line data (`per_line`) are shuffled with the seed and split by whole lines, an
optional `test_size` lines held out first as a test split. Training is char-rnn's stateful
truncated BPTT: B parallel streams through the corpus, T tokens per step, the recurrent state
carried across steps (and zeroed at random with `state_reset_prob`, so that the model also learns
to start from nothing, as sampling does). Evaluation scores every next-token prediction of a
split exactly once, with the state carried, and reports the mean in nats per token.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..config import ModelConfig, TrainConfig
from ..data.download import resolve_data
from ..data.names import load_census_names, read_lines
from ..data.text import CharVocab, DataError, StreamBatcher, iterate_eval_batches, read_text, split_text
from ..data.words import EOS, WordVocab, vocab_from_json
from .lm import LMData, _encode_lines, check_lm_data, load_lm_data
from .trainer import Carry, Task

Vocab = CharVocab | WordVocab
EVAL_SEQ_LEN = 256  # columns per evaluation batch (the NumPy engine's `evaluate` uses the same)


# ---------------------------------------------------------------------------------------------
# data


@dataclass(frozen=True)
class LMSplits:
    """Encoded splits of a language-model corpus and its vocabulary.

    Attributes:
        vocab: a `CharVocab` (level 'char') or a `WordVocab` (level 'word').
        train, val: (N,) int64 token ids; test: the same, or None without a test split.
        name: where the text came from. per_line: one item per line. level: 'char' or 'word'.
    """

    vocab: Vocab
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray | None
    name: str
    per_line: bool
    level: str

    @property
    def boundary_id(self) -> int | None:
        """The token between items of per-line data (None for running text)."""
        if not self.per_line:
            return None
        return self.vocab.boundary_id if isinstance(self.vocab, CharVocab) else self.vocab.eos_id


def _word_lines(vocab: WordVocab, lines: list[str]) -> np.ndarray:
    # <eos> w w <eos> w <eos> ...: the same framing as the character boundary token
    ids = vocab.encode_text("\n".join(lines) + "\n", newline=True)
    return np.concatenate([[vocab.eos_id], ids]).astype(np.int64)


def _split_at_space(text: str, val_fraction: float) -> tuple[str, str]:
    # a word-level split must not cut a word in two: move the cut to the next line end or space
    train, _ = split_text(text, val_fraction)
    cut = len(train)
    nl = text.find("\n", cut)
    sp = text.find(" ", cut)
    nearest = [i for i in (nl, sp) if i != -1]
    if nearest:
        cut = min(nearest) + 1
    if cut >= len(text):
        raise DataError(f"data: cannot split the text into train and validation words with val_fraction={val_fraction}")
    return text[:cut], text[cut:]


def load_lm_splits(config: TrainConfig, vocab: Vocab | None = None) -> LMSplits:
    """Read, split and encode the corpus named by `config` (`data`, `per_line`, `level`, `test_size`).

    Args:
        config: the training config; `config.data` None means the embedded census first names.
        vocab: encode with this vocabulary instead of building one from the training split
            (resuming, or scoring a trained model): the ids then mean what they meant in training.

    Raises:
        DataError: one line, for every problem with the data (missing, not UTF-8, too short...).

    Example:
        >>> d = load_lm_splits(TrainConfig(max_steps=1, per_line=True, data="names.txt", test_size=1000))  # doctest: +SKIP
        >>> d.per_line, d.test is not None                                                                 # doctest: +SKIP
        (True, True)
    """
    per_line = config.per_line or config.data is None
    if config.level == "char" and config.test_size == 0 and vocab is None:
        d = load_lm_data(config)  # exactly the NumPy engine's data
        return LMSplits(d.vocab, d.train, d.val, None, d.name, d.per_line, "char")
    if per_line:
        lines = load_census_names() if config.data is None else read_lines(resolve_data(config.data))
        name = "census first names (package 'names')" if config.data is None else str(config.data)
        order = np.random.default_rng(config.seed).permutation(len(lines))
        lines = [lines[i] for i in order]
        test_lines: list[str] = []
        if config.test_size:
            if config.test_size >= len(lines) - 1:
                raise DataError(
                    f"data: {name} has {len(lines)} line(s); test_size={config.test_size} leaves too few to train on"
                )
            lines, test_lines = lines[: -config.test_size], lines[-config.test_size :]
        n_val = max(1, round(len(lines) * config.val_fraction))
        if len(lines) - n_val < 1:
            raise DataError(f"data: {name} has {len(lines)} line(s); need at least 2 to hold some out for validation")
        train_lines, val_lines = lines[:-n_val], lines[-n_val:]
        if config.level == "char":
            v = vocab if vocab is not None else CharVocab.from_lines(train_lines + val_lines + test_lines)
            if not isinstance(v, CharVocab) or v.boundary_id is None:
                raise DataError("vocab: a per-line character model needs a character vocabulary with a boundary token")
            enc = lambda ls: _encode_lines(v, ls)  # noqa: E731
        else:
            v = vocab if vocab is not None else WordVocab.from_text("\n".join(train_lines) + "\n", min_freq=1)
            if not isinstance(v, WordVocab) or v.eos_id is None:
                raise DataError("vocab: a per-line word model needs a word vocabulary with <eos>")
            enc = lambda ls: _word_lines(v, ls)  # noqa: E731
        splits = LMSplits(
            v, enc(train_lines), enc(val_lines), enc(test_lines) if test_lines else None, name, True, config.level
        )
    else:
        text = read_text(config.data)  # type: ignore[arg-type]
        if config.level == "char":
            v = vocab if vocab is not None else CharVocab.from_text(text)
            if not isinstance(v, CharVocab):
                raise DataError("vocab: a character model needs a character vocabulary")
            train_text, val_text = split_text(text, config.val_fraction)
            splits = LMSplits(v, v.encode(train_text), v.encode(val_text), None, str(config.data), False, "char")
        else:
            train_text, val_text = _split_at_space(text, config.val_fraction)
            v = vocab if vocab is not None else WordVocab.from_text(train_text)
            if not isinstance(v, WordVocab):
                raise DataError("vocab: a word model needs a word vocabulary")
            train, val = v.encode_text(train_text), v.encode_text(val_text)
            splits = LMSplits(v, train, val, None, str(config.data), False, "word")
    check_lm_data(LMData(splits.vocab, splits.train, splits.val, splits.name, splits.per_line), config)  # type: ignore[arg-type]
    return splits


# ---------------------------------------------------------------------------------------------
# scoring


@torch.no_grad()
def lm_loss_sums(
    model: nn.Module,
    tokens: np.ndarray,
    *,
    batch_size: int = 128,
    seq_len: int = EVAL_SEQ_LEN,
    device: torch.device | str = "cpu",
    rows: slice | None = None,
) -> tuple[float, float]:
    """Summed cross-entropy (nats) and the number of predictions over the whole of `tokens`.

    Every prediction `tokens[i] -> tokens[i+1]` is scored once, the state carried from chunk to
    chunk (see `data.text.iterate_eval_batches`); streams are kept at least `seq_len` long.

    Args:
        model: a torch `LanguageModel` (eval mode is the caller's business).
        tokens: (N,) ids.
        batch_size: parallel streams at most.
        seq_len: columns per forward call.
        device: where the model is.
        rows: score only these streams (a data-parallel rank's share); None: all.

    Returns:
        (loss_sum, count); the mean loss is loss_sum / count.

    Example:
        >>> total, n = lm_loss_sums(model, splits.val)   # doctest: +SKIP
        >>> total / n                                   # doctest: +SKIP
        1.47
    """
    batch_size = max(1, min(batch_size, (len(tokens) - 1) // seq_len))
    total = torch.zeros((), dtype=torch.float64, device=device)
    count = 0.0
    state = None
    for x, y, mask in iterate_eval_batches(tokens, batch_size, seq_len):
        if rows is not None:
            x, y, mask = x[rows], y[rows], mask[rows]
            if len(x) == 0:
                break
        xt = torch.from_numpy(x).to(device, non_blocking=True)
        yt = torch.from_numpy(y).to(device, non_blocking=True)
        mt = torch.from_numpy(mask).to(device, non_blocking=True)
        logits, state = model(xt, state)
        nll = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), yt.reshape(-1), reduction="none")
        total += (nll * mt.reshape(-1)).sum(dtype=torch.float64)
        count += float(mask.sum())
    return float(total.item()), count


# ---------------------------------------------------------------------------------------------
# the task


class LMTask(Task):
    """Next-token prediction with stateful truncated BPTT, for the `Trainer`.

    Args:
        data: the encoded splits (`load_lm_splits`).
        model_config: the model; `vocab_size` must equal `len(data.vocab)`.
        config: the training config (batch_size, seq_len, state_reset_prob, seed, eval_batch_size).

    Example:
        >>> task = LMTask.from_config(TrainConfig(max_steps=100), {"hidden_size": 256})   # doctest: +SKIP
        >>> Trainer(task, task.config, "runs/names").fit()["val_loss"]                     # doctest: +SKIP
    """

    name = "lm"

    def __init__(self, data: LMSplits, model_config: ModelConfig, config: TrainConfig) -> None:
        if model_config.vocab_size != len(data.vocab):
            raise ValueError(
                f"vocab_size: expected {len(data.vocab)} (the data's vocabulary), got {model_config.vocab_size}"
            )
        self.data, self.model_config, self.config = data, model_config, config
        self.batcher = StreamBatcher(data.train, config.batch_size, config.seq_len)
        # Per-line data: the items are re-shuffled every epoch. With one fixed order the stream
        # repeats, and a model that carries its state across items learns which item follows which
        # (on names: train 1.76, test 2.06); a fresh order leaves nothing to learn across a boundary.
        self._items: list[np.ndarray] | None = None
        if data.per_line and data.boundary_id is not None:
            cuts = np.flatnonzero(data.train == data.boundary_id)
            # the stream is <b> item <b> item <b> ...: each item runs to and includes its closing <b>
            self._items = [data.train[a + 1 : b + 1] for a, b in itertools.pairwise(cuts)]
        self._stream_epoch = 0

    def _epoch_tokens(self, epoch: int) -> np.ndarray:
        """The training stream of an epoch: the loaded order first, then a fresh order per epoch."""
        if self._items is None or epoch == 0:
            return self.data.train
        order = np.random.default_rng([self.config.seed, 2, epoch]).permutation(len(self._items))
        head = self.data.train[:1]  # the opening boundary token
        return np.concatenate([head, *(self._items[i] for i in order)])

    def _sync_stream(self) -> None:
        # rebuild the batcher over the epoch's order when the epoch changes (same length, so the
        # position carries over unchanged; a resume lands here with the saved epoch)
        epoch = self.batcher.epoch
        if self._items is None or epoch == self._stream_epoch:
            return
        position = self.batcher.position
        self.batcher = StreamBatcher(self._epoch_tokens(epoch), self.config.batch_size, self.config.seq_len)
        self.batcher.epoch, self.batcher.position = epoch, position
        self._stream_epoch = epoch

    @classmethod
    def from_config(
        cls, config: TrainConfig, model_options: dict[str, Any] | None = None, vocab: Vocab | None = None
    ) -> LMTask:
        """Load the data named by `config` and build the task; `model_options` are `ModelConfig`
        fields other than vocab_size (which comes from the data)."""
        data = load_lm_splits(config, vocab)
        model_config = ModelConfig(vocab_size=len(data.vocab), **(model_options or {}))
        return cls(data, model_config, config)

    def setup(self, device: torch.device, rank: int, world_size: int) -> None:
        if self.config.batch_size % world_size:
            raise ValueError(
                f"batch_size: the global batch of {self.config.batch_size} streams must split evenly "
                f"across {world_size} processes"
            )
        super().setup(device, rank, world_size)

    def build_model(self, seed: int) -> nn.Module:
        from ..torch.models import LanguageModel

        return LanguageModel(self.model_config, seed=seed)

    def next_batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor, bool, torch.Tensor | None]:
        self._sync_stream()
        x, y, reset = self.batcher.next_batch()  # the global (B, T) batch
        B = x.shape[0]
        rows = self.shard(np.arange(B))
        zero = None
        if not reset and self.config.state_reset_prob > 0:
            # drawn from (seed, step) rather than a running generator: nothing to save for a resume,
            # and every rank draws the same B numbers
            draw = np.random.default_rng([self.config.seed, 1, step]).random(B) < self.config.state_reset_prob
            if draw[rows].any():
                zero = torch.from_numpy(~draw[rows]).to(self.device)
        xt = torch.from_numpy(x[rows]).to(self.device, non_blocking=True)
        yt = torch.from_numpy(y[rows]).to(self.device, non_blocking=True)
        return xt, yt, reset, zero

    def loss(self, model: nn.Module, batch: Any, carry: Carry) -> tuple[torch.Tensor, Carry]:
        x, y, reset, keep = batch
        if reset:
            carry = None
        elif keep is not None and carry is not None:
            mask = keep.view(1, -1, 1)
            carry = (
                tuple(t * mask.to(t.dtype) for t in carry) if isinstance(carry, tuple) else carry * mask.to(carry.dtype)
            )
        logits, carry = model(x, carry)
        loss = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), y.reshape(-1))
        return loss, carry

    def eval_sums(self, model: nn.Module, split: str) -> dict[str, float]:
        tokens = {"val": self.data.val, "test": self.data.test}.get(split)
        if tokens is None:
            raise ValueError(f"split: expected 'val' or 'test' (with a test split), got {split!r}")
        streams = max(1, min(self.config.eval_batch_size, (len(tokens) - 1) // EVAL_SEQ_LEN))
        share = np.array_split(np.arange(streams), self.world_size)[self.rank]
        rows = slice(int(share[0]), int(share[-1]) + 1) if len(share) else slice(0, 0)
        total, count = lm_loss_sums(
            model, tokens, batch_size=self.config.eval_batch_size, device=self.device, rows=rows
        )
        return {"loss_sum": total, "count": count}

    def final_splits(self) -> tuple[str, ...]:
        return ("test",) if self.data.test is not None else ()

    def data_state(self) -> dict[str, Any]:
        return self.batcher.state_dict()

    def load_data_state(self, state: dict[str, Any]) -> None:
        self.batcher.load_state_dict(dict(state))
        self._sync_stream()

    def artifacts(self) -> dict[str, dict[str, Any]]:
        return {"vocab": {**self.data.vocab.to_json(), "per_line": self.data.per_line}}

    def tokens_per_step(self) -> int:
        return self.config.batch_size * self.config.seq_len


# ---------------------------------------------------------------------------------------------
# loading a trained run (either engine)


@dataclass(frozen=True)
class LoadedRun:
    """A language-model run folder, loaded for sampling or scoring.

    Attributes:
        model: a torch `LanguageModel` (engine 'torch') or a NumPy one (engine 'numpy'), eval mode.
        engine: which engine `model` is. trained_engine: the engine that trained it.
        vocab, per_line, model_config, train_config: as saved.
    """

    model: Any
    engine: str
    trained_engine: str
    vocab: Vocab
    per_line: bool
    model_config: ModelConfig
    train_config: TrainConfig


def load_run(run_dir: str | Path, engine: str | None = None, device: str = "cpu") -> LoadedRun:
    """Load a run folder written by either engine into either engine (weights are read on the CPU).

    Args:
        run_dir: the run folder (or its `best/` subfolder).
        engine: 'torch' or 'numpy'; None: the engine that trained it.
        device: torch device for engine 'torch'.

    Raises:
        CheckpointError: not a checkpoint, or a damaged one (one line, naming the file).
        DataError: the configs or the vocabulary do not parse.

    Example:
        >>> run = load_run("runs/shakespeare", engine="numpy")   # doctest: +SKIP
    """
    from .checkpoint import load_checkpoint

    ckpt = load_checkpoint(run_dir)
    for needed in ("model_config", "train_config", "vocab"):
        if needed not in ckpt.configs:
            raise DataError(f"checkpoint: {run_dir} has no {needed}.json (not a language-model run)")
    model_config = ModelConfig.from_dict(ckpt.configs["model_config"])
    train_config = TrainConfig.from_dict(ckpt.configs["train_config"])
    vocab_json = dict(ckpt.configs["vocab"])
    per_line = bool(vocab_json.pop("per_line", False))
    vocab = vocab_from_json(vocab_json)
    trained = train_config.engine
    engine = engine or trained
    if engine not in ("torch", "numpy"):
        raise ValueError(f"engine: expected 'torch' or 'numpy', got {engine!r}")
    if engine == "torch":
        from ..torch.convert import load_weights
        from ..torch.models import LanguageModel

        model = LanguageModel(model_config, seed=0)
        load_weights(model, ckpt.weights)
        model.to(device).eval()
    else:
        from ..scratch.models import LanguageModel as NumpyLanguageModel

        model = NumpyLanguageModel(model_config, seed=0)
        model.load_state_dict(ckpt.weights)
        model.eval()
    return LoadedRun(model, engine, trained, vocab, per_line, model_config, train_config)


class WordCodec:
    """Makes a `WordVocab` look like a `CharVocab` to `generation.sample.sample_lm`.

    Tokens are printed with a leading space and `<eos>` as a line end, so streamed pieces add up
    to the final text. For a prime, an unknown word is an error, skipped, or mapped to `<unk>`
    (with `--unknown map`, whatever `--replacement` says).

    Example:
        >>> codec = WordCodec(WordVocab.from_text("the cat\\n"))
        >>> codec.decode(codec.encode_lossy("the cat", "skip")[0])
        ' the cat'
    """

    def __init__(self, vocab: WordVocab, per_line: bool = False) -> None:
        self.vocab = vocab
        self.itos = vocab.itos
        self.boundary_id = vocab.eos_id if per_line else None

    def __len__(self) -> int:
        return len(self.vocab)

    def __contains__(self, token: object) -> bool:
        return True  # the replacement of --unknown map is <unk>, always there

    def encode_lossy(
        self, text: str, unknown: str = "skip", replacement: str | None = None
    ) -> tuple[np.ndarray, list[str]]:
        tokens = self.vocab.tokenize(text, newline=self.vocab.eos_id is not None)
        bad = list(dict.fromkeys(t for t in tokens if t not in self.vocab.stoi))
        if unknown == "skip":
            tokens = [t for t in tokens if t in self.vocab.stoi]
        ids = self.vocab.encode(tokens) if tokens else np.zeros(0, dtype=np.int64)
        return ids, bad

    def decode(self, ids: Any) -> str:
        out = []
        for i in np.asarray(ids, dtype=np.int64).reshape(-1).tolist():
            tok = self.vocab.itos[i]
            if i == self.boundary_id or tok == EOS:
                out.append("" if self.boundary_id is not None else "\n")
            else:
                out.append(" " + tok)
        return "".join(out)
