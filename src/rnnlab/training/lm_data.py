"""Language-model data: splits, memory-mapped token files and a run's `data/` folder, without torch.

The torch trainer's language-model task builds its data here, and `rnnlab eval` reopens the split
of any run here (a NumPy run's included), so scoring works on a machine without torch. Data follow
the NumPy trainer (`rnnlab.training.lm`) exactly, so both engines train and score on the same split: running text keeps its first 90% for training and the rest for validation (a
word-level cut moves to the next space or line end, so no word is cut in two); one-item-per-line
data (`per_line`) are shuffled with the seed and split by whole lines, an optional `test_size`
lines held out first as a test split.

Running text is never read whole: it is streamed (`data.corpus.TextStream`) to build the
vocabulary, then encoded once into memory-mapped token ids, and training and evaluation read
only the pages their batches touch, so a corpus may be larger than memory. Each run keeps its
data in its own folder, `RUN/data/`:

    tokens.bin, tokens.bin.json   the token ids (uint16; uint32 past 65,536 vocabulary entries), their
                                  header (length, vocabulary, source sha256); running text only
    lines.txt                     the items, one a line, of per-line data read from a file (the
                                  split's indices point into them)
    split.json                    which tokens (running text) or which lines, in training order
                                  (per-line data), went to train/val/test, with the sha256 of
                                  the source (`data.corpus.save_split`)

Inside the run folder rather than in a cache keyed by the source's checksum: a run folder is
then self-contained (copy or delete it and its data go with it), there is no shared cache to
invalidate or to race on, and the folder says exactly what the run trained on. The price is one
encoded copy per run. The files are written when the run starts (`lm_task.prepare_lm_splits`; under
torchrun rank 0 writes them while the other ranks wait, then every rank maps the same file);
`--resume`, `rnnlab eval` and anything else that reopens the run (`open_run_splits`) use the
saved split as it is, never recomputed, after checking that the source still has the recorded
sha256: a changed data file is a one-line `DataError` naming the file and both checksums. A source
that is gone (a deleted or moved file, a URL offline) is not needed: the token file or `lines.txt`
holds the data. (A run folder written before runs kept their data has no `data/`: its split is
rebuilt from its options.)
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
import weakref
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..config import TrainConfig
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
from ..data.text import CharVocab, DataError, split_text
from ..data.words import WordVocab
from .checkpoint import BEST_DIR, write_text_atomic
from .lm import LMData, _encode_lines, check_lm_data

Vocab = CharVocab | WordVocab
DATA_DIR = "data"  # RUN/data/: the run's token file and split
TOKENS_FILE = "tokens.bin"
SPLIT_FILE = "split.json"
LINES_FILE = "lines.txt"
CENSUS = "census first names (package 'names')"
CHUNK_CHARS = DEFAULT_CHUNK  # bytes per read when streaming running text (memory is O(this))


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
    check_lm_data(splits, config)


def _settings(config: TrainConfig, per_line: bool) -> dict[str, Any]:
    """What a saved split was made with, besides its source (checked when it is reopened)."""
    out: dict[str, Any] = {"per_line": per_line, "level": config.level, "val_fraction": config.val_fraction}
    if per_line:
        out.update(test_size=config.test_size, seed=config.seed)
    return out


def _sha256_lines(lines: list[str]) -> str:
    # the embedded names are no file: their checksum is over the items themselves
    return hashlib.sha256("\n".join(lines).encode("utf-8")).hexdigest()


def _lines_source(config: TrainConfig, path: Path | None = None) -> tuple[list[str], str, str, str]:
    """(lines, name, source, sha256) of per-line data: the census names, or the file `config.data`
    (`path`: that file, already resolved)."""
    if config.data is None:
        lines = load_census_names()
        return lines, CENSUS, CENSUS, _sha256_lines(lines)
    if path is None:
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
    (data_dir / SPLIT_FILE).unlink(missing_ok=True)
    if config.data is None:  # the census names ship with the package
        (data_dir / LINES_FILE).unlink(missing_ok=True)
    else:  # the items themselves, so the run scores and resumes without its source
        # reading drops one leading byte-order mark: an item that starts with U+FEFF gets one more
        bom = "\ufeff" if lines[0].startswith("\ufeff") else ""
        write_text_atomic(data_dir / LINES_FILE, bom + "\n".join(lines) + "\n")
        split.extra["lines_sha256"] = _sha256_lines(lines)
    save_split(data_dir / SPLIT_FILE, split)
    return replace(splits, data_dir=data_dir)


def _saved_lines(data_dir: Path, split: Split, gone: DataError) -> list[str]:
    """The items a per-line run kept in `data_dir` (its source being gone: `gone`), checked."""
    path = data_dir / LINES_FILE
    if not path.exists() or "lines_sha256" not in split.extra:
        raise gone  # a run saved before runs kept their lines: only the source will do
    lines = read_lines(path)
    if _sha256_lines(lines) != split.extra["lines_sha256"]:
        raise DataError(f"data: {path} does not hold the lines the run's split was made from; train a new run")
    return lines


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
        (data_dir / LINES_FILE).unlink(missing_ok=True)  # nor a per-line run's items
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
    the split, so a run never resumes or scores on data other than its own; for running text, a
    source that is gone (a URL offline, a deleted file) is not needed: the token file, which
    records the source's sha256, holds the data.

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
        try:
            path = None if config.data is None else resolve_data(config.data)
        except DataError as gone:  # a source that is gone, not one that changed: the run kept its lines
            lines, name = _saved_lines(data_dir, split, gone), str(config.data)
            source, sha = str(data_dir / LINES_FILE), split.source_sha256
        else:
            lines, name, source, sha = _lines_source(config, path)
        if sha != split.source_sha256:
            raise _changed(source, split_path, split.source_sha256, sha)
        if split.kind != "indices" or split.num_items != len(lines):
            raise DataError(f"data: {split_path} does not describe the {len(lines)} lines of {source}")
        return replace(_encode_line_parts(config, vocab, lines, split, name), data_dir=data_dir)
    try:
        path = resolve_data(config.data)  # type: ignore[arg-type]
    except DataError:
        path = None  # the source is gone (a URL offline, a deleted file): the token file holds its data
    if path is not None:
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
