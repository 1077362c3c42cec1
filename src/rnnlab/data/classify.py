"""Many-to-one classification data: labelled texts from CSV/TSV, a label vocabulary, padding, batching.

A classification file holds one example per line, `label<TAB>text` (or comma-separated), with an
optional header row, like the SST-2 files (`label<TAB>sentence`). `load_classification` reads
the texts and labels, `LabelVocab` maps labels to class ids, and a text vocabulary
(`words.WordVocab`, or `text.CharVocab`) encodes each text to an id array. Those arrays have
different lengths: `BucketBatcher` groups examples of similar length into batches (seeded,
resumable), and `pad_batch` turns a batch into one `(B, T_max)` array plus the true lengths, which
the model uses for packed sequences or a mask.

`pad_batch`, `length_mask` and `BucketBatcher` serve every task with variable-length examples
(tagging, sequence-to-sequence), and `read_rows` every delimited file.

Example:
    >>> texts, labels = load_classification("train.tsv")              # doctest: +SKIP
    >>> label_vocab = LabelVocab.from_labels(labels)                   # doctest: +SKIP
    >>> vocab = WordVocab.build(map(tokenize, texts), min_freq=2)      # doctest: +SKIP
    >>> seqs = [vocab.encode(tokenize(t)) for t in texts]              # doctest: +SKIP
    >>> y = label_vocab.encode(labels)                                 # doctest: +SKIP
    >>> batcher = BucketBatcher([len(s) for s in seqs], batch_size=32, seed=0)   # doctest: +SKIP
    >>> for idx in batcher:                                            # doctest: +SKIP
    ...     ids, lengths = pad_batch([seqs[i] for i in idx], vocab.pad_id)
    ...     targets = y[idx]
"""

from __future__ import annotations

import csv
import io
import os
import zlib
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .text import DataError, read_text

# ---------------------------------------------------------------------------------------------
# delimited files


def detect_delimiter(path: str | os.PathLike[str], text: str, fallback: str | None = None) -> str:
    """The field delimiter of a delimited file: by extension (.tsv/.tab, .csv), else by its first line.

    Args:
        path: the file (only its extension is used).
        text: its content.
        fallback: what to return when the first line has neither (e.g. "," for a file that may
            hold a single column); None: that is an error.

    Returns:
        "\\t" or "," (or `fallback`).

    Raises:
        DataError: the extension is neither, the first non-empty line has no tab and no comma,
            and there is no fallback.

    Example:
        >>> detect_delimiter("data.txt", "1\\tgood film\\n")
        '\\t'
    """
    suffix = Path(path).suffix.lower()
    if suffix in (".tsv", ".tab"):
        return "\t"
    if suffix == ".csv":
        return ","
    first = next((line for line in text.split("\n") if line.strip()), "")
    # a tab wins: text fields are full of commas, and a TSV file never quotes them
    if "\t" in first:
        return "\t"
    if "," in first:
        return ","
    if fallback is not None:
        return fallback
    raise DataError(
        f"data: cannot tell the delimiter of {path}: its first line has no tab and no comma; "
        f"expected tab- or comma-separated columns (name the file .tsv or .csv)"
    )


def read_rows(
    path: str | os.PathLike[str], delimiter: str | None = None, *, fallback: str | None = None
) -> tuple[str, list[tuple[int, list[str]]]]:
    """The rows of a delimited UTF-8 file, each with its line number; blank lines are skipped.

    Tab-separated files are split on every tab (TSV has no quoting: a field never holds a tab);
    comma-separated files follow CSV quoting (`"a, b"`, `""` for a quote), and a quoted field may
    span lines, in which case the row's line number is where it starts.

    Args:
        path: the file; read with `read_text` (so UTF-8, BOM and CRLF are handled).
        delimiter: "\\t", ",", or None to detect it (`detect_delimiter`).
        fallback: with delimiter=None, the delimiter of a file whose first line has neither.

    Returns:
        (delimiter, rows): rows as (line number from 1, fields), fields not stripped.

    Raises:
        DataError: as `read_text`, or a CSV quoting error (with its line number).

    Example:
        >>> read_rows("pairs.tsv")                                  # doctest: +SKIP
        ('\\t', [(1, ['abc', 'cba']), (2, ['xy', 'yx'])])
    """
    text = read_text(path)
    if delimiter is None:
        delimiter = detect_delimiter(path, text, fallback)
    if not isinstance(delimiter, str) or len(delimiter) != 1 or delimiter in '\n\r"':
        raise ValueError(f"delimiter: expected one character such as '\\t' or ',', got {delimiter!r}")
    rows: list[tuple[int, list[str]]] = []
    # A byte-order mark inside the text (files joined with `cat`, each with its own) would become part
    # of a label or a value; read_text has already dropped the one at the start.
    if delimiter == "\t":
        for lineno, line in enumerate(text.split("\n"), start=1):
            line = line.lstrip("\ufeff")
            if line.strip():
                rows.append((lineno, line.split("\t")))
        return delimiter, rows
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    start = 1
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            break
        except csv.Error as e:
            raise DataError(f"data: {path} line {reader.line_num}: {e}") from None
        if fields:
            fields[0] = fields[0].lstrip("\ufeff")
        if any(f.strip() for f in fields):
            rows.append((start, fields))
        start = reader.line_num + 1
    return delimiter, rows


def _check_column_count(path: str | os.PathLike[str], rows: list[tuple[int, list[str]]], delimiter: str) -> int:
    """Every row must have as many fields as the first; returns that number."""
    name = "tab" if delimiter == "\t" else repr(delimiter)
    ncols = len(rows[0][1])
    for lineno, fields in rows:
        if len(fields) != ncols:
            raise DataError(
                f"data: {path} line {lineno}: expected {ncols} {name}-separated columns (as on line {rows[0][0]}), "
                f"got {len(fields)}"
            )
    return ncols


def _is_int(s: str) -> bool:
    try:
        int(s)
    except ValueError:
        return False
    return True


# ---------------------------------------------------------------------------------------------
# loading labelled texts

_LABEL_HEADERS = {"label", "labels", "class", "category", "target", "y", "sentiment", "polarity", "tag"}
_TEXT_HEADERS = {"text", "sentence", "content", "review", "document", "comment", "tweet", "body", "question"}


def _resolve_column(
    path: str | os.PathLike[str], column: int | str, header: list[str] | None, ncols: int, arg: str
) -> int:
    if isinstance(column, str):
        if header is None:
            raise DataError(f"data: {arg}={column!r} names a column, but {path} has no header row")
        names = [h.strip() for h in header]
        if column not in names:
            raise DataError(f"data: {path}: no column named {column!r} in the header; columns are {names!r}")
        return names.index(column)
    if isinstance(column, bool) or not isinstance(column, int):
        raise TypeError(f"{arg}: expected a column index or name, got {type(column).__name__}")
    if not -ncols <= column < ncols:
        raise DataError(f"data: {arg}={column} is out of range: {path} has {ncols} columns")
    return column % ncols


def load_classification(
    path: str | os.PathLike[str],
    *,
    label_column: int | str = 0,
    text_column: int | str = 1,
    delimiter: str | None = None,
    header: bool | None = None,
    label_vocab: LabelVocab | None = None,
) -> tuple[list[str], list[str]]:
    """Read labelled texts from a CSV/TSV file, `label<TAB>text` by default.

    Args:
        path: the file.
        label_column, text_column: 0-based column indices, or column names from the header row.
        delimiter: "\\t", ",", or None: by extension (.tsv/.csv), else sniffed from the first line.
        header: whether the first row is a header; None: detected (the first row is a header when
            its label cell reads like a column name, e.g. "label", or its text cell does, e.g.
            "sentence", or its label is not an integer while every other label is, or occurs
            nowhere else while every other label recurs and its text is one word). A two-column
            header that names the text first and the label second (`sentence<TAB>label`) swaps the
            default columns.
        label_vocab: the training labels; when given, a label not in it is an error naming the
            label and its line (use this when loading evaluation data).

    Returns:
        (texts, labels): the stripped text and label of every row, in file order.

    Raises:
        DataError: a row with a different number of columns than the first (with its line
            number), an empty label or text, an unknown label (with `label_vocab`), no rows.

    Example:
        >>> texts, labels = load_classification("../shared/data/sst2/dev.tsv")   # doctest: +SKIP
        >>> len(texts), labels[0], texts[0]                                        # doctest: +SKIP
        (872, '0', 'one long string of cliches .')
    """
    delimiter, rows = read_rows(path, delimiter)
    if not rows:
        raise DataError(f"data: no rows in {path}")
    ncols = _check_column_count(path, rows, delimiter)
    if ncols < 2:
        raise DataError(
            f"data: {path} line {rows[0][0]}: expected at least 2 columns (label and text), got 1; "
            f"is the delimiter {delimiter!r} right?"
        )
    if header is None:
        if isinstance(label_column, str) or isinstance(text_column, str):
            header = True
        else:
            li, ti = label_column % ncols, text_column % ncols
            first = rows[0][1]
            if (label_column, text_column) == (0, 1) and ncols == 2:
                a, b = first[0].strip().lower(), first[1].strip().lower()
                if a in _TEXT_HEADERS and b in _LABEL_HEADERS:  # `sentence<TAB>label`, as GLUE has it
                    label_column, text_column, li, ti = 1, 0, 1, 0
            rest = [fields[li].strip() for _, fields in rows[1:]]
            counts = Counter(rest)
            header = (
                first[li].strip().lower() in _LABEL_HEADERS
                or first[ti].strip().lower() in _TEXT_HEADERS
                or (bool(rest) and not _is_int(first[li].strip()) and all(_is_int(r) for r in rest))
                # a first "label" seen nowhere else while every other label recurs, above a text
                # cell of one word: column names (a real first example has a sentence there)
                or (
                    len(rest) >= 10
                    and first[li].strip() not in counts
                    and min(counts.values()) >= 2
                    and len(first[ti].split()) == 1
                )
            )
    header_fields = rows[0][1] if header else None
    li = _resolve_column(path, label_column, header_fields, ncols, "label_column")
    ti = _resolve_column(path, text_column, header_fields, ncols, "text_column")
    if li == ti:
        raise ValueError(f"label_column and text_column: expected two different columns, got {li} for both")
    body = rows[1:] if header else rows
    if not body:
        raise DataError(f"data: no examples in {path} (only a header row)")

    texts: list[str] = []
    labels: list[str] = []
    for lineno, fields in body:
        label, text = fields[li].strip(), fields[ti].strip()
        if not label:
            raise DataError(f"data: {path} line {lineno}: empty label (column {li + 1})")
        if not text:
            raise DataError(f"data: {path} line {lineno}: empty text (column {ti + 1})")
        if label_vocab is not None and label not in label_vocab:
            raise DataError(label_vocab._unknown_message(label, f"{path} line {lineno}"))
        texts.append(text)
        labels.append(label)
    return texts, labels


# ---------------------------------------------------------------------------------------------
# labels


class LabelVocab:
    """Class labels <-> class ids `0..K-1`; no unknown class: an unseen label is an error.

    Built from the training labels. When every label is an integer they are sorted numerically
    (so the labels "0".."K-1" get the ids 0..K-1), otherwise as strings. Tags of a tagger use the
    same class.

    Args:
        labels: the distinct labels in id order.

    Example:
        >>> v = LabelVocab.from_labels(["pos", "neg", "pos"])
        >>> v.itos, v.encode(["pos", "neg"]).tolist(), v.decode([0])
        (['neg', 'pos'], [1, 0], ['neg'])
    """

    def __init__(self, labels: Iterable[str]) -> None:
        labels = list(labels)
        for lab in labels:
            if not isinstance(lab, str) or not lab:
                raise ValueError(f"labels: expected non-empty strings, got {lab!r}")
        if len(set(labels)) != len(labels):
            dup = sorted({lab for lab in labels if labels.count(lab) > 1})
            raise ValueError(f"labels: expected distinct labels, got duplicates {dup!r}")
        if not labels:
            raise ValueError("labels: expected at least one label")
        self.itos: list[str] = labels
        self.stoi: dict[str, int] = {lab: i for i, lab in enumerate(labels)}

    @classmethod
    def from_labels(cls, labels: Iterable[str]) -> LabelVocab:
        """The distinct `labels`, numerically sorted when all are integers, else sorted as text.

        Example:
            >>> LabelVocab.from_labels(["10", "2", "1"]).itos
            ['1', '2', '10']
        """
        distinct = set(labels)
        if not distinct:
            raise DataError("data: cannot build a label vocabulary: no labels")
        if all(isinstance(lab, str) and _is_int(lab) for lab in distinct):
            return cls(sorted(distinct, key=lambda s: (int(s), s)))
        return cls(sorted(distinct))

    def __len__(self) -> int:
        return len(self.itos)

    def __contains__(self, label: object) -> bool:
        return label in self.stoi

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LabelVocab):
            return NotImplemented
        return self.itos == other.itos

    def __hash__(self) -> int:
        return hash(tuple(self.itos))

    def __repr__(self) -> str:
        return f"LabelVocab({self.itos!r})" if len(self) <= 10 else f"LabelVocab(size={len(self)})"

    def _unknown_message(self, label: str, where: str, kind: str = "label") -> str:
        known = ", ".join(repr(lab) for lab in self.itos[:20]) + (", ..." if len(self) > 20 else "")
        return f"data: {where}: unknown {kind} {label!r}, not among the {len(self)} training {kind}s ({known})"

    def encode(
        self,
        labels: Iterable[str],
        *,
        lines: Sequence[int] | None = None,
        source: str | os.PathLike[str] | None = None,
    ) -> np.ndarray:
        """Class ids of `labels`.

        Args:
            labels: the labels.
            lines, source: where each label came from (line numbers, file), for the error message.

        Returns:
            int64 array of shape (len(labels),).

        Raises:
            DataError: a label not in the vocabulary, named with its line when `lines` is given.

        Example:
            >>> LabelVocab(["a", "b"]).encode(["b", "c"], lines=[1, 2], source="dev.tsv")
            Traceback (most recent call last):
            ...
            rnnlab.data.text.DataError: data: dev.tsv line 2: unknown label 'c', not among the 2 training labels ('a', 'b')
        """
        if isinstance(labels, str):
            raise TypeError("labels: expected a sequence of labels, got a str")
        labels = list(labels)
        if lines is not None and len(lines) != len(labels):
            raise ValueError(f"lines: expected {len(labels)} line numbers, got {len(lines)}")
        out = np.empty(len(labels), dtype=np.int64)
        for k, lab in enumerate(labels):
            i = self.stoi.get(lab)
            if i is None:
                where = f"{source or 'labels'}" + (f" line {lines[k]}" if lines is not None else f"[{k}]")
                raise DataError(self._unknown_message(lab, where))
            out[k] = i
        return out

    def decode(self, ids: Iterable[int] | np.ndarray) -> list[str]:
        """Labels of class ids.

        Example:
            >>> LabelVocab(["neg", "pos"]).decode(np.array([1, 1, 0]))
            ['pos', 'pos', 'neg']
        """
        arr = np.asarray(list(ids) if not isinstance(ids, np.ndarray) else ids).reshape(-1)
        if arr.size and not np.issubdtype(arr.dtype, np.integer):
            raise TypeError(f"ids: expected integers, got dtype {arr.dtype}")
        if arr.size and (arr.min() < 0 or arr.max() >= len(self)):
            bad = int(arr[(arr < 0) | (arr >= len(self))][0])
            raise ValueError(f"ids: expected ids in [0, {len(self)}), got {bad}")
        return [self.itos[i] for i in arr.tolist()]

    def to_json(self) -> dict[str, Any]:
        """A JSON-serialisable dict.

        Example:
            >>> LabelVocab(["0", "1"]).to_json()
            {'type': 'label', 'labels': ['0', '1']}
        """
        return {"type": "label", "labels": list(self.itos)}

    @classmethod
    def from_json(cls, obj: Any) -> LabelVocab:
        """Rebuild from `to_json()`'s dict, validating it.

        Raises:
            DataError: not a valid label vocabulary.

        Example:
            >>> LabelVocab.from_json({"type": "label", "labels": ["neg", "pos"]}).itos
            ['neg', 'pos']
        """
        if not isinstance(obj, dict):
            raise DataError(f"vocab: expected a JSON object, got {type(obj).__name__}")
        if obj.get("type") != "label":
            raise DataError(f"vocab: expected type 'label', got {obj.get('type')!r}")
        labels = obj.get("labels")
        if not isinstance(labels, list) or not all(isinstance(lab, str) for lab in labels):
            raise DataError("vocab: expected 'labels' to be a list of strings")
        try:
            return cls(labels)
        except ValueError as e:
            raise DataError(f"vocab: {e}") from None


# ---------------------------------------------------------------------------------------------
# padding


def pad_batch(
    seqs: Sequence[np.ndarray | Sequence[int]], pad_id: int = 0, *, max_len: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Stack variable-length id sequences into one right-padded array.

    Args:
        seqs: B sequences of ids, each of shape (T_b,).
        pad_id: the id written after the end of each sequence (`vocab.pad_id`, or e.g. -100 for
            targets that a loss should ignore).
        max_len: cut sequences longer than this (their length is then `max_len`); None: no cut.

    Returns:
        ids: int64, shape (B, T_max) with T_max the longest (cut) length.
        lengths: int64, shape (B,): the true length of each row. With PyTorch,
            `pack_padded_sequence(emb, lengths, batch_first=True, enforce_sorted=False)`, or the mask
            `length_mask(lengths)`.

    Example:
        >>> ids, lengths = pad_batch([[5, 6, 7], [8]], pad_id=0)
        >>> ids.tolist(), lengths.tolist()
        ([[5, 6, 7], [8, 0, 0]], [3, 1])
    """
    if len(seqs) == 0:
        raise ValueError("seqs: expected at least one sequence")
    if max_len is not None and (isinstance(max_len, bool) or not isinstance(max_len, int) or max_len < 1):
        raise ValueError(f"max_len: expected an int >= 1 or None, got {max_len!r}")
    arrays = []
    for i, s in enumerate(seqs):
        a = np.asarray(s)
        if a.ndim != 1:
            raise ValueError(f"seqs[{i}]: expected a 1-D sequence of ids, got shape {a.shape}")
        if a.size and not np.issubdtype(a.dtype, np.integer):
            raise TypeError(f"seqs[{i}]: expected integer ids, got dtype {a.dtype}")
        arrays.append(a[:max_len] if max_len is not None else a)
    lengths = np.array([len(a) for a in arrays], dtype=np.int64)
    out = np.full((len(arrays), int(lengths.max())), pad_id, dtype=np.int64)
    for i, a in enumerate(arrays):
        out[i, : len(a)] = a
    return out, lengths


def length_mask(lengths: np.ndarray | Sequence[int], max_len: int | None = None) -> np.ndarray:
    """Boolean mask of the real (not padded) positions: `mask[b, t] = t < lengths[b]`.

    Args:
        lengths: shape (B,).
        max_len: number of columns T; default `max(lengths)`.

    Returns:
        bool array of shape (B, T).

    Example:
        >>> length_mask([3, 1]).astype(int).tolist()
        [[1, 1, 1], [1, 0, 0]]
    """
    lengths = np.asarray(lengths, dtype=np.int64).reshape(-1)
    T = int(lengths.max(initial=0)) if max_len is None else int(max_len)
    return np.arange(T)[None, :] < lengths[:, None]


# ---------------------------------------------------------------------------------------------
# batching by length


class BucketBatcher:
    """Seeded, resumable batches of example indices, grouping examples of similar length.

    Each epoch (training, `shuffle=True`): the indices are shuffled with a generator seeded by
    `(seed, epoch)`, cut into pools of `pool_batches * batch_size`, each pool is sorted by length
    and cut into batches, and the batches are shuffled. Padding stays small while every epoch
    sees a different mix. With `shuffle=False` (evaluation) the examples are sorted by length
    once and cut into batches: deterministic, every example exactly once.

    Within every batch the indices are in order of decreasing length, as
    `pack_padded_sequence(..., enforce_sorted=True)` wants. Examples of equal length (e.g. time
    series windows) make this a seeded shuffler.

    Because an epoch's batches depend only on `(seed, epoch)`, `state_dict()` (epoch and position)
    resumes exactly.

    Args:
        lengths: the length of every example, shape (N,).
        batch_size: examples per batch.
        seed: the random seed (shuffle=True).
        shuffle: shuffle (training) or not (evaluation).
        pool_batches: batches per sorting pool (larger: less padding, less randomness).
        drop_last: drop the one smaller batch of an epoch (when N is not a multiple of batch_size).

    Attributes:
        epoch: the epoch of the next batch (0-based).
        position: the index of the next batch within its epoch.
        batches_per_epoch: number of batches in one epoch.

    Example:
        >>> b = BucketBatcher([5, 1, 4, 2, 3], batch_size=2, shuffle=False)
        >>> [idx.tolist() for idx in b]
        [[0, 2], [4, 3], [1]]
        >>> b.epoch
        1
    """

    def __init__(
        self,
        lengths: np.ndarray | Sequence[int],
        batch_size: int,
        *,
        seed: int = 0,
        shuffle: bool = True,
        pool_batches: int = 50,
        drop_last: bool = False,
    ) -> None:
        arr = np.asarray(lengths)
        if arr.ndim != 1 or arr.size == 0:
            raise ValueError(f"lengths: expected a non-empty 1-D array, got shape {arr.shape}")
        if not np.issubdtype(arr.dtype, np.integer):
            raise TypeError(f"lengths: expected integers, got dtype {arr.dtype}")
        for name, value in (("batch_size", batch_size), ("pool_batches", pool_batches)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name}: expected a positive int, got {value!r}")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"seed: expected an int >= 0, got {seed!r}")
        if drop_last and len(arr) < batch_size:
            raise ValueError(
                f"batch_size: with drop_last=True expected at most {len(arr)} (the number of examples), got {batch_size}"
            )
        self.lengths = arr.astype(np.int64)
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.shuffle = bool(shuffle)
        self.pool_batches = int(pool_batches)
        self.drop_last = bool(drop_last)
        n = len(arr)
        self.batches_per_epoch = n // self.batch_size if drop_last else -(-n // self.batch_size)
        # identifies the data in state_dict, so a resume on different data is refused
        self._fingerprint = zlib.crc32(self.lengths.tobytes())
        self.epoch = 0
        self.position = 0
        self._cache: tuple[int, list[np.ndarray]] | None = None

    def epoch_batches(self, epoch: int) -> list[np.ndarray]:
        """All the batches of `epoch`, each an int64 index array (a pure function of seed and epoch)."""
        if self._cache is not None and self._cache[0] == epoch:
            return self._cache[1]
        n, B = len(self.lengths), self.batch_size
        if not self.shuffle:
            order = np.argsort(-self.lengths, kind="stable")
            batches = [order[i : i + B] for i in range(0, n, B)]
        else:
            rng = np.random.default_rng([self.seed, epoch])
            perm = rng.permutation(n)
            pool = B * self.pool_batches
            batches = []
            for start in range(0, n, pool):
                chunk = perm[start : start + pool]
                chunk = chunk[np.argsort(-self.lengths[chunk], kind="stable")]
                batches.extend(chunk[i : i + B] for i in range(0, len(chunk), B))
            # the only short batch is the very last one; drop it before shuffling the order
            if self.drop_last and len(batches[-1]) < B:
                batches.pop()
            batches = [batches[i] for i in rng.permutation(len(batches))]
        if self.drop_last:
            batches = [b for b in batches if len(b) == B]
        batches = [b.astype(np.int64) for b in batches]
        self._cache = (epoch, batches)
        return batches

    def next_batch(self) -> np.ndarray:
        """The next batch: int64 example indices, shape (b,), b <= batch_size, longest first."""
        batch = self.epoch_batches(self.epoch)[self.position]
        self.position += 1
        if self.position == self.batches_per_epoch:
            self.position = 0
            self.epoch += 1
        return batch

    def __iter__(self) -> Iterator[np.ndarray]:
        """The remaining batches of the current epoch (all of it, unless resumed mid-epoch)."""
        epoch = self.epoch
        while self.epoch == epoch:
            yield self.next_batch()

    def __len__(self) -> int:
        return self.batches_per_epoch

    def state_dict(self) -> dict[str, Any]:
        """The position as JSON-friendly values, for resuming exactly.

        Example:
            >>> b = BucketBatcher([3, 1, 2], batch_size=2, seed=1)
            >>> _ = b.next_batch()
            >>> b.state_dict()["position"]
            1
        """
        return {
            "epoch": self.epoch,
            "position": self.position,
            "batch_size": self.batch_size,
            "seed": self.seed,
            "shuffle": self.shuffle,
            "pool_batches": self.pool_batches,
            "drop_last": self.drop_last,
            "num_examples": len(self.lengths),
            "fingerprint": self._fingerprint,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Resume at the position saved by `state_dict()`; settings and data must be the same.

        Raises:
            ValueError: a setting, the number of examples or their lengths differ, or the position
                is out of range.

        Example:
            >>> a, b = BucketBatcher([3, 1, 2, 5], 2, seed=7), BucketBatcher([3, 1, 2, 5], 2, seed=7)
            >>> _ = a.next_batch()
            >>> b.load_state_dict(a.state_dict())
            >>> a.next_batch().tolist() == b.next_batch().tolist()
            True
        """
        if not isinstance(state, dict):
            raise TypeError(f"state: expected a dict, got {type(state).__name__}")
        ours = self.state_dict()
        for key in ours:
            if key not in state:
                raise ValueError(f"state: missing {key!r}")
        for key in ("batch_size", "seed", "shuffle", "pool_batches", "drop_last", "num_examples"):
            if state[key] != ours[key]:
                raise ValueError(
                    f"state[{key!r}]: the saved data position is for {key}={state[key]!r}, this batcher has {key}={ours[key]!r}"
                )
        if state["fingerprint"] != ours["fingerprint"]:
            raise ValueError(
                "state['fingerprint']: the saved data position is for examples of other lengths (the data changed)"
            )
        epoch, position = state["epoch"], state["position"]
        if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
            raise ValueError(f"state['epoch']: expected an int >= 0, got {epoch!r}")
        if isinstance(position, bool) or not isinstance(position, int) or not 0 <= position < self.batches_per_epoch:
            raise ValueError(f"state['position']: expected an int in [0, {self.batches_per_epoch}), got {position!r}")
        self.epoch, self.position = epoch, position
