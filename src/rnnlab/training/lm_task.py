"""The language-model task of the torch trainer: characters or words, running text or one item per line.

Data follow the NumPy trainer (`rnnlab.training.lm`) exactly, so both engines train and score on
the same split: running text keeps its first 90% for training and the rest for validation (a
word-level cut moves to the next space or line end, so no word is cut in two); one-item-per-line
data (`per_line`) are shuffled with the seed and split by whole lines, an optional `test_size`
lines held out first as a test split.

Running text is never read whole: it is streamed (`data.corpus.TextStream`) to build the
vocabulary, then encoded once into memory-mapped token ids, and training and evaluation read
only the pages their batches touch, so a corpus may be larger than memory. Each run keeps its
data in its own folder, `RUN/data/`:

    tokens.bin, tokens.bin.json   the token ids (uint16; uint32 past 65,536 vocabulary entries), their
                                  header (length, vocabulary, source sha256); running text only
    split.json                    which tokens (running text) or which lines, in training order
                                  (per-line data), went to train/val/test, with the sha256 of
                                  the source (`data.corpus.save_split`)

Inside the run folder rather than in a cache keyed by the source's checksum: a run folder is
then self-contained (copy or delete it and its data go with it), there is no shared cache to
invalidate or to race on, and the folder says exactly what the run trained on. The price is one
encoded copy per run. The files are written when the run starts (`prepare_lm_splits`; under
torchrun rank 0 writes them while the other ranks wait, then every rank maps the same file);
`--resume`, `rnnlab eval` and anything else that reopens the run (`open_run_splits`) use the
saved split as it is, never recomputed, after checking that the source still has the recorded
sha256: a changed data file is a one-line `DataError` naming the file and both checksums. (A run
folder written before runs kept their data has no `data/`: its split is rebuilt from its options.)

Training is char-rnn's stateful truncated BPTT: B parallel streams through the corpus, T tokens
per step, the recurrent state carried across steps (and zeroed at random with
`state_reset_prob`, so that the model also learns to start from nothing, as sampling does).
Evaluation scores every next-token prediction of a split exactly once, with the state carried,
and reports the mean in nats per token.
"""

from __future__ import annotations

import hashlib
import itertools
import shutil
import tempfile
import weakref
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..config import ModelConfig, TrainConfig
from ..data.corpus import (
    DEFAULT_CHUNK,
    MemmapTokens,
    Split,
    TextStream,
    count_words_streaming,
    encode_to_memmap,
    header_path,
    load_split,
    save_split,
    sha256_file,
)
from ..data.download import resolve_data
from ..data.names import load_census_names, read_lines
from ..data.text import CharVocab, DataError, StreamBatcher, iterate_eval_batches, split_text
from ..data.words import EOS, WordVocab, vocab_from_json
from .lm import LMData, _encode_lines, check_lm_data
from .trainer import BEST_DIR, Carry, Distributed, Task, init_distributed, select_device

Vocab = CharVocab | WordVocab
EVAL_SEQ_LEN = 256  # columns per evaluation batch (the NumPy engine's `evaluate` uses the same)
DATA_DIR = "data"  # RUN/data/: the run's token file and split
TOKENS_FILE = "tokens.bin"
SPLIT_FILE = "split.json"
CENSUS = "census first names (package 'names')"
CHUNK_CHARS = DEFAULT_CHUNK  # bytes per read when streaming running text (memory is O(this))


# ---------------------------------------------------------------------------------------------
# data


@dataclass(frozen=True)
class LMSplits:
    """Encoded splits of a language-model corpus and its vocabulary.

    Attributes:
        vocab: a `CharVocab` (level 'char') or a `WordVocab` (level 'word').
        train, val: (N,) token ids; test: the same, or None without a test split. Running text:
            read-only views of `tokens` (np.memmap, uint16 or uint32), read from disk on use;
            per-line data: int64 arrays in memory.
        name: where the text came from. per_line: one item per line. level: 'char' or 'word'.
        tokens: the memory-mapped token file (running text), else None.
        split: the saved split (`RUN/data/split.json`).
        data_dir: the folder holding the token and split files.
    """

    vocab: Vocab
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray | None
    name: str
    per_line: bool
    level: str
    tokens: MemmapTokens | None = None
    split: Split | None = None
    data_dir: Path | None = None

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


def _check(splits: LMSplits, config: TrainConfig) -> None:
    check_lm_data(LMData(splits.vocab, splits.train, splits.val, splits.name, splits.per_line), config)  # type: ignore[arg-type]


def _settings(config: TrainConfig, per_line: bool) -> dict[str, Any]:
    """What a saved split was made with, besides its source (checked when it is reopened)."""
    out: dict[str, Any] = {"per_line": per_line, "level": config.level, "val_fraction": config.val_fraction}
    if per_line:
        out.update(test_size=config.test_size, seed=config.seed)
    return out


def _sha256_lines(lines: list[str]) -> str:
    # the embedded names are no file: their checksum is over the items themselves
    return hashlib.sha256("\n".join(lines).encode("utf-8")).hexdigest()


def _lines_source(config: TrainConfig) -> tuple[list[str], str, str, str]:
    """(lines, name, source, sha256) of per-line data: the census names, or the file `config.data`."""
    if config.data is None:
        lines = load_census_names()
        return lines, CENSUS, CENSUS, _sha256_lines(lines)
    path = resolve_data(config.data)  # a URL or a named data set: the cached download
    return read_lines(path), str(config.data), str(path), sha256_file(path)


def _encode_line_parts(config: TrainConfig, vocab: Vocab | None, lines: list[str], split: Split, name: str) -> LMSplits:
    """Encode the lines of each part of `split` (indices in training order) and check the result."""
    parts = {k: [lines[i] for i in split.part(k).tolist()] for k in split.parts}  # type: ignore[union-attr]
    train_lines, val_lines, test_lines = parts["train"], parts["val"], parts.get("test", [])
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
    test = enc(test_lines) if test_lines else None
    splits = LMSplits(v, enc(train_lines), enc(val_lines), test, name, True, config.level, split=split)
    _check(splits, config)
    return splits


def _make_lines(config: TrainConfig, vocab: Vocab | None, data_dir: Path) -> LMSplits:
    lines, name, source, sha = _lines_source(config)
    n = len(lines)
    order = np.random.default_rng(config.seed).permutation(n)
    if config.test_size and config.test_size >= n - 1:
        raise DataError(f"data: {name} has {n} line(s); test_size={config.test_size} leaves too few to train on")
    rest = n - config.test_size
    n_val = max(1, round(rest * config.val_fraction))
    if rest - n_val < 1:
        raise DataError(f"data: {name} has {n} line(s); need at least 2 to hold some out for validation")
    # parts keep the shuffled order (not sorted as make_split's): it is the order training reads them in
    parts = {"train": order[: rest - n_val], "val": order[rest - n_val : rest]}
    if config.test_size:
        parts["test"] = order[rest:]
    fractions = {k: len(v) / n for k, v in parts.items()}
    split = Split(n, "indices", parts, fractions, seed=config.seed, source=source, source_sha256=sha)
    split.extra = _settings(config, per_line=True)
    splits = _encode_line_parts(config, vocab, lines, split, name)
    # a token file left by an earlier run in this folder would describe other data
    (data_dir / TOKENS_FILE).unlink(missing_ok=True)
    header_path(data_dir / TOKENS_FILE).unlink(missing_ok=True)
    save_split(data_dir / SPLIT_FILE, split)
    return replace(splits, data_dir=data_dir)


def _char_cut(n_chars: int, val_fraction: float) -> int:
    # split_text's rule and errors, applied to the length alone: the text is never held whole
    train, _ = split_text(range(n_chars), val_fraction)  # type: ignore[type-var]
    return len(train)


def _word_cut(path: Path, n_chars: int, val_fraction: float) -> int:
    """Where a word-level split cuts: after the first space or line end at or past the character cut."""
    cut = _char_cut(n_chars, val_fraction)
    pos, found = 0, -1
    for piece in TextStream(path, CHUNK_CHARS):
        if pos + len(piece) > cut:
            hits = [i for i in (piece.find(" ", max(cut - pos, 0)), piece.find("\n", max(cut - pos, 0))) if i != -1]
            if hits:
                found = pos + min(hits)
                break
        pos += len(piece)
    if found != -1:
        cut = found + 1
    if cut >= n_chars:
        raise DataError(f"data: cannot split the text into train and validation words with val_fraction={val_fraction}")
    return cut


def _make_text(config: TrainConfig, vocab: Vocab | None, data_dir: Path) -> LMSplits:
    path = resolve_data(config.data)  # type: ignore[arg-type]
    name = str(config.data)
    # pass 1: the length in characters (and a character model's vocabulary); every error of an
    # unreadable file surfaces here, before anything is written
    stream = TextStream(path, CHUNK_CHARS)
    n_chars, chars = 0, set()
    for piece in stream:
        n_chars += len(piece)
        if config.level == "char" and vocab is None:
            chars.update(piece)
    if config.level == "char":
        cut = _char_cut(n_chars, config.val_fraction)
        v = vocab if vocab is not None else CharVocab(sorted(chars))
        if not isinstance(v, CharVocab):
            raise DataError("vocab: a character model needs a character vocabulary")
        n_train: int | None = cut  # one token per character
    else:
        cut = _word_cut(path, n_chars, config.val_fraction)
        if vocab is None:
            # the vocabulary of the training text only: validation words it lacks become <unk>
            counts = count_words_streaming(path, stop=cut, chunk_chars=CHUNK_CHARS)
            v, n_train = WordVocab.from_counts(counts, min_freq=1), counts.total()
        else:
            v, n_train = vocab, None
        if not isinstance(v, WordVocab):
            raise DataError("vocab: a word model needs a word vocabulary")
    if n_train is not None:
        # check_lm_data's tests on the lengths alone (ranges stand in for the ids), before the
        # encoding pass writes anything; a word model's validation length is known only after it
        n_val = n_chars - cut if config.level == "char" else 2
        check_lm_data(LMData(v, range(n_train), range(n_val), name, False), config)  # type: ignore[arg-type]

    tokens_path = data_dir / TOKENS_FILE
    split_path = data_dir / SPLIT_FILE
    try:
        split_path.unlink(missing_ok=True)  # an earlier run's split must not outlive its tokens
        tokens = encode_to_memmap(path, v, tokens_path, cuts=[cut], chunk_chars=CHUNK_CHARS)
        if tokens.source_sha256 != stream.sha256:
            raise DataError(f"data: {path} changed while it was being read; try again")
        n_train = int(tokens.header["token_cuts"][0])
        vf = config.val_fraction
        split = Split(
            len(tokens), "offsets", {"train": (0, n_train), "val": (n_train, len(tokens))},
            {"train": 1 - vf, "val": vf}, source=str(path), source_sha256=tokens.source_sha256,
        )  # fmt: skip
        split.extra = {**_settings(config, per_line=False), "char_cut": cut}
        splits = LMSplits(
            v, tokens[0:n_train], tokens[n_train:], None, name, False, config.level, tokens, split, data_dir
        )
        _check(splits, config)
        save_split(split_path, split)
    except BaseException:
        # the folder holds a complete, usable set of files or none
        for f in (tokens_path, header_path(tokens_path), split_path):
            f.unlink(missing_ok=True)
        raise
    return splits


def load_lm_splits(config: TrainConfig, vocab: Vocab | None = None, *, data_dir: str | Path | None = None) -> LMSplits:
    """Read, split and encode the corpus named by `config` (`data`, `per_line`, `level`, `test_size`),
    saving the token file and the split in `data_dir`.

    Running text is streamed, never read whole, and encoded into `data_dir/tokens.bin`; the splits
    are memory-mapped views of it. The split goes to `data_dir/split.json` either way. Files an
    earlier build left in `data_dir` are replaced; a build that fails leaves no token or split
    file behind (the data errors that can be found before writing are raised before it).

    Args:
        config: the training config; `config.data` None means the embedded census first names.
        vocab: encode with this vocabulary instead of building one from the training split
            (a run made before splits were saved): the ids then mean what they meant in training.
        data_dir: where to write the files (a run's `RUN/data`); None: a private temporary folder,
            deleted when the returned splits are garbage-collected.

    Raises:
        DataError: one line, for every problem with the data (missing, not UTF-8, too short...).

    Example:
        >>> d = load_lm_splits(TrainConfig(max_steps=1, data="input.txt"), data_dir="runs/x/data")  # doctest: +SKIP
        >>> type(d.tokens).__name__, d.train.dtype                                                  # doctest: +SKIP
        ('MemmapTokens', dtype('uint16'))
    """
    per_line = config.per_line or config.data is None
    temporary = data_dir is None
    folder = Path(tempfile.mkdtemp(prefix="rnnlab-data-")) if data_dir is None else Path(data_dir)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        splits = _make_lines(config, vocab, folder) if per_line else _make_text(config, vocab, folder)
    except BaseException:
        if temporary:
            shutil.rmtree(folder, ignore_errors=True)
        raise
    if temporary:
        weakref.finalize(splits, shutil.rmtree, folder, True)
    return splits


def _changed(source: str, split_path: Path, expected: str | None, actual: str) -> DataError:
    return DataError(
        f"data: {source} has changed since the run's split {split_path} was made: expected sha256 {expected}, "
        f"got {actual}; restore the original file, or train a new run on the changed data"
    )


def open_lm_splits(data_dir: str | Path, config: TrainConfig, vocab: Vocab | None = None) -> LMSplits:
    """The splits saved in `data_dir` by `load_lm_splits`, reused as they are: nothing is recomputed or written.

    The source (`config.data`, which may name a moved copy) must still have the sha256 recorded in
    the split, so a run never resumes or scores on data other than its own.

    Args:
        data_dir: the folder holding `split.json` (and `tokens.bin` for running text).
        config: the run's training config (its `data`, `per_line`, `level`, ...).
        vocab: the run's vocabulary (from its checkpoint); it must be the one the tokens were
            encoded with. None: the saved one (running text) or rebuilt from the saved split.

    Raises:
        DataError: one line: a missing or damaged file, a source whose sha256 differs from the
            recorded one (naming the file and both checksums), or settings that differ.

    Example:
        >>> d = open_lm_splits("runs/shakespeare/data", load_run("runs/shakespeare").train_config)  # doctest: +SKIP
    """
    data_dir = Path(data_dir)
    split_path = data_dir / SPLIT_FILE
    split = load_split(split_path)
    per_line = config.per_line or config.data is None
    wanted = _settings(config, per_line)
    for key, value in wanted.items():
        if split.extra.get(key) != value:
            raise DataError(
                f"data: the split {split_path} was made with {key}={split.extra.get(key)!r}, "
                f"but the run's config has {key}={value!r}"
            )
    if per_line:
        lines, name, source, sha = _lines_source(config)
        if sha != split.source_sha256:
            raise _changed(source, split_path, split.source_sha256, sha)
        if split.kind != "indices" or split.num_items != len(lines):
            raise DataError(f"data: {split_path} does not describe the {len(lines)} lines of {source}")
        return replace(_encode_line_parts(config, vocab, lines, split, name), data_dir=data_dir)
    path = resolve_data(config.data)  # type: ignore[arg-type]
    sha = sha256_file(path)
    if sha != split.source_sha256:
        raise _changed(str(path), split_path, split.source_sha256, sha)
    tokens = MemmapTokens(data_dir / TOKENS_FILE)
    if tokens.source_sha256 != split.source_sha256 or len(tokens) != split.num_items or split.kind != "offsets":
        raise DataError(f"data: {tokens.path} and {split_path} do not describe the same data; train a new run")
    if vocab is not None and tokens.vocab != vocab:
        raise DataError(f"vocab: the run's vocabulary differs from the one {tokens.path} was encoded with")
    splits = LMSplits(
        tokens.vocab, tokens[split.part("train")], tokens[split.part("val")], None, str(config.data), False,
        config.level, tokens, split, data_dir,
    )  # fmt: skip
    _check(splits, config)
    return splits


def run_data_dir(run_dir: str | Path) -> Path:
    """The data folder of a run folder (`RUN/data`; for `RUN/best`, the run's).

    Example:
        >>> run_data_dir("runs/shakespeare/best")          # doctest: +SKIP
        PosixPath('runs/shakespeare/data')
    """
    run = Path(run_dir)
    if not (run / DATA_DIR).is_dir() and run.name == BEST_DIR and (run.parent / DATA_DIR).is_dir():
        run = run.parent
    return run / DATA_DIR


def open_run_splits(run_dir: str | Path, config: TrainConfig, vocab: Vocab | None = None) -> LMSplits:
    """The splits of an existing run, for `--resume` and `rnnlab eval`: its saved split, checked.

    A run folder written before splits were saved has no `data/split.json`: its splits are then
    rebuilt from its options as they were made then (into a temporary folder; the run's folder is
    not written to).

    Example:
        >>> run = load_run("runs/shakespeare")                                          # doctest: +SKIP
        >>> val = open_run_splits("runs/shakespeare", run.train_config, run.vocab).val  # doctest: +SKIP
    """
    data_dir = run_data_dir(run_dir)
    if (data_dir / SPLIT_FILE).exists():
        return open_lm_splits(data_dir, config, vocab)
    return load_lm_splits(config, vocab)


def prepare_lm_splits(config: TrainConfig, data_dir: str | Path, vocab: Vocab | None = None) -> LMSplits:
    """`load_lm_splits` into a new run's `data_dir`, once per job: under `torchrun`, rank 0 writes the
    files while the other ranks wait, then each of them maps what rank 0 wrote.

    Joins the process group early for that (`trainer.init_distributed`); the trainer reuses it.
    A data error on rank 0 ends every rank (the others with a line pointing to rank 0's).

    Example:
        >>> data = prepare_lm_splits(config, "runs/shakespeare/data")   # doctest: +SKIP
    """
    dist = Distributed.from_env()
    if not dist.enabled:
        return load_lm_splits(config, vocab, data_dir=data_dir)
    device = select_device(config.device)
    init_distributed(device)
    splits: LMSplits | None = None
    error: Exception | None = None
    if dist.is_main:
        try:
            splits = load_lm_splits(config, vocab, data_dir=data_dir)
        except Exception as e:  # every rank must reach the all_reduce below, or the others wait forever
            error = e
    flag = torch.tensor([0.0 if error is None else 1.0], device=device if device.type == "cuda" else "cpu")
    torch.distributed.all_reduce(flag)
    if error is not None:
        raise error
    if flag.item():
        raise DataError(f"data: rank 0 could not prepare the data in {data_dir} (its error says why)")
    return splits if splits is not None else open_lm_splits(data_dir, config, vocab)


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
        # memory-mapped ids are uint16/uint32: the embedding and the loss want int64
        xt = torch.from_numpy(x.astype(np.int64, copy=False)).to(device, non_blocking=True)
        yt = torch.from_numpy(y.astype(np.int64, copy=False)).to(device, non_blocking=True)
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
        cls,
        config: TrainConfig,
        model_options: dict[str, Any] | None = None,
        vocab: Vocab | None = None,
        data_dir: str | Path | None = None,
    ) -> LMTask:
        """Load the data named by `config` and build the task; `model_options` are `ModelConfig`
        fields other than vocab_size (which comes from the data). The token and split files go
        to `data_dir` (a temporary folder when None; see `load_lm_splits`)."""
        data = load_lm_splits(config, vocab, data_dir=data_dir)
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
        # memory-mapped ids are uint16/uint32: the embedding and the loss want int64
        xt = torch.from_numpy(x[rows].astype(np.int64, copy=False)).to(self.device, non_blocking=True)
        yt = torch.from_numpy(y[rows].astype(np.int64, copy=False)).to(self.device, non_blocking=True)
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
