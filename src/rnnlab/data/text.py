"""Character-level text data: reading files, a character vocabulary, splits and batchers.

The pipeline follows char-rnn and nanoGPT: read one UTF-8 file, build a vocabulary of its
characters, encode the whole text to one array of ids, keep the first 90% for training and the
rest for validation, then cut the training ids into `batch_size` parallel contiguous streams so a
recurrent model can carry its hidden state from one batch to the next (truncated BPTT).

Every problem with a user's data raises `DataError`, whose message is one line that a command-line
tool can print as `error: <message>`.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np


class DataError(ValueError):
    """A data file or a piece of text that cannot be used; the message is one printable line.

    Example:
        >>> try:
        ...     read_text("no/such/file.txt")
        ... except DataError as e:
        ...     print(f"error: {e}")
        error: data: file not found: no/such/file.txt
    """


def naming_option(error: DataError, option: str) -> DataError:
    """`error`, said by a reader as "data: ...", said about the option that named the file instead.

    Example:
        >>> str(naming_option(DataError("data: file not found: x.txt"), "--val"))
        '--val: file not found: x.txt'
    """
    return DataError(f"{option}: {str(error).removeprefix('data: ')}")


# ---------------------------------------------------------------------------------------------
# reading a file

_BOM = b"\xef\xbb\xbf"


def _refuse_non_text(path: str | os.PathLike[str], head: bytes) -> None:
    """Name the formats people feed by mistake, so the fix offered is the right one."""
    if head.startswith(b"\x1f\x8b"):
        raise DataError(f"data: {path} is gzip-compressed; decompress it first, e.g. gunzip -k {path}")
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise DataError(
            f"data: {path} is UTF-16 text; convert it to UTF-8, e.g. iconv -f utf-16 -t utf-8 {path} > out.txt"
        )
    nul = head.find(b"\x00")
    if nul >= 0:
        raise DataError(f"data: {path} looks like a binary file (NUL byte at byte offset {nul}); expected UTF-8 text")


def read_text(path: str | os.PathLike[str]) -> str:
    """Read a UTF-8 text file, with a clear one-line `DataError` for every way it can be unusable.

    A leading UTF-8 byte-order mark is dropped and Windows line ends (`\\r\\n`) become `\\n`, so the
    same text gives the same vocabulary on every platform.

    Args:
        path: the file to read.

    Returns:
        The decoded text (never empty, never whitespace only).

    Raises:
        DataError: the file is missing, is a directory, cannot be read, is empty or whitespace
            only, contains NUL bytes (binary, or UTF-16), or is not valid UTF-8.

    Example:
        >>> text = read_text("input.txt")          # doctest: +SKIP
        >>> text[:12]                              # doctest: +SKIP
        'First Citize'
    """
    p = Path(path)
    if not p.exists():
        raise DataError(f"data: file not found: {path}")
    if p.is_dir():
        raise DataError(f"data: expected a text file, got a directory: {path}")
    try:
        with p.open("rb") as f:
            head = f.read(1 << 16)  # a device such as /dev/zero never ends: judge it by its start
            _refuse_non_text(path, head)
            raw = head + f.read()
    except OSError as e:
        raise DataError(f"data: cannot read {path}: {e.strerror or e}") from e

    bom = len(_BOM) if raw.startswith(_BOM) else 0
    raw = raw[bom:]
    if not raw:
        raise DataError(f"data: file is empty: {path}")
    nul = raw.find(b"\x00")
    if nul >= 0:
        # UTF-16 text also lands here: it is full of NULs, and converting it is the same fix.
        raise DataError(
            f"data: {path} looks like a binary file (NUL byte at byte offset {nul + bom}); expected UTF-8 text"
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        offset = e.start + bom  # offsets refer to the file as it is on disk, BOM included
        raise DataError(
            f"data: {path} is not valid UTF-8 (byte 0x{raw[e.start]:02x} at byte offset {offset}); "
            f"convert it to UTF-8, e.g. iconv -f latin1 -t utf-8 {path} > out.txt"
        ) from None
    text = text.replace("\r\n", "\n")
    if not text.strip():
        raise DataError(f"data: file contains only whitespace: {path}")
    return text


# ---------------------------------------------------------------------------------------------
# vocabulary


def _char_repr(c: str) -> str:
    return f"{c!r} (U+{ord(c):04X})"


class CharVocab:
    """A character vocabulary: ids `0..len-1` for single Unicode code points.

    Built with `from_text` for running text (char-rnn), or `from_lines` for one-item-per-line data
    (makemore), which adds one boundary token at id 0 that marks both the start and the end of an
    item, like makemore's '.'. The boundary token is not a character, so no text can collide with
    it; in `itos` and in JSON it is spelled `CharVocab.BOUNDARY` (`"<|boundary|>"`).

    Characters are code points: an emoji built from several code points (a flag, a skin tone, a
    ZWJ sequence) is several tokens, as in Python's own `str`.

    Args:
        chars: distinct single characters in id order (after the boundary token, if any).
        boundary: if True, id 0 is the boundary token and `chars` start at id 1.

    Attributes:
        itos: token string for each id (`itos[0] == BOUNDARY` when there is a boundary).
        stoi: id for each token string.
        boundary_id: 0 for a line vocabulary, None for a plain text vocabulary.

    Example:
        >>> v = CharVocab.from_text("hello")
        >>> v.itos
        ['e', 'h', 'l', 'o']
        >>> v.encode("hole").tolist()
        [1, 3, 2, 0]
        >>> v.decode([1, 0, 2, 2, 3])
        'hello'
    """

    BOUNDARY = "<|boundary|>"

    def __init__(self, chars: Iterable[str], *, boundary: bool = False) -> None:
        chars = list(chars)
        for c in chars:
            if not isinstance(c, str) or len(c) != 1:
                raise ValueError(f"chars: expected single characters, got {c!r}")
        if len(set(chars)) != len(chars):
            dup = sorted({c for c in chars if chars.count(c) > 1})
            raise ValueError(f"chars: expected distinct characters, got duplicates {dup!r}")
        self.boundary_id: int | None = 0 if boundary else None
        self.itos: list[str] = ([self.BOUNDARY] if boundary else []) + chars
        self.stoi: dict[str, int] = {s: i for i, s in enumerate(self.itos)}
        # encode() is vectorised: code points sorted once, then np.searchsorted over the text
        first = 1 if boundary else 0
        cps = np.array([ord(c) for c in chars], dtype=np.int64)
        order = np.argsort(cps, kind="stable")
        self._sorted_cps = cps[order]
        self._sorted_ids = (order + first).astype(np.int64)

    # -- construction ---------------------------------------------------------------------------
    @classmethod
    def from_text(cls, text: str) -> CharVocab:
        """Vocabulary of the distinct characters of `text`, sorted by code point.

        Args:
            text: the training text (any Unicode).

        Example:
            >>> len(CharVocab.from_text("abcabc"))
            3
        """
        if not isinstance(text, str):
            raise TypeError(f"text: expected str, got {type(text).__name__}")
        if not text:
            raise DataError("data: cannot build a vocabulary from empty text")
        return cls(sorted(set(text)))

    @classmethod
    def from_lines(cls, lines: Iterable[str]) -> CharVocab:
        """Vocabulary for one-item-per-line data: the boundary token at id 0, then the characters.

        Args:
            lines: the items (e.g. names), without line ends.

        Example:
            >>> v = CharVocab.from_lines(["emma", "ava"])
            >>> v.itos, v.boundary_id
            (['<|boundary|>', 'a', 'e', 'm', 'v'], 0)
            >>> v.encode_line("ava").tolist()
            [0, 1, 4, 1, 0]
        """
        lines = list(lines)
        for i, line in enumerate(lines):
            if not isinstance(line, str):
                raise TypeError(f"lines[{i}]: expected str, got {type(line).__name__}")
        chars = sorted(set("".join(lines)))
        if not chars:
            raise DataError("data: cannot build a vocabulary: no characters in the given lines")
        return cls(chars, boundary=True)

    # -- encoding -------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.itos)

    def __contains__(self, token: object) -> bool:
        return token in self.stoi

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CharVocab):
            return NotImplemented
        return self.itos == other.itos and self.boundary_id == other.boundary_id

    def __hash__(self) -> int:
        return hash((tuple(self.itos), self.boundary_id))

    def __repr__(self) -> str:
        kind = ", boundary=True" if self.boundary_id is not None else ""
        return f"CharVocab(size={len(self)}{kind})"

    def _lookup(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """ids for every character of `text` and a mask of which were found (ids are junk where not)."""
        # surrogatepass: a lone surrogate (a byte of a command line that was not UTF-8, which Python
        # keeps as U+DC80..U+DCFF) is one more character that no vocabulary holds, not a crash
        cps = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype="<u4").astype(np.int64)
        if len(self._sorted_cps) == 0:
            return np.zeros(len(cps), dtype=np.int64), np.zeros(len(cps), dtype=bool)
        idx = np.searchsorted(self._sorted_cps, cps)
        idx = np.minimum(idx, len(self._sorted_cps) - 1)
        found = self._sorted_cps[idx] == cps
        return self._sorted_ids[idx], found

    def encode(self, text: str) -> np.ndarray:
        """Ids of the characters of `text`; every character must be in the vocabulary.

        Args:
            text: the text to encode.

        Returns:
            int64 array of shape (len(text),).

        Raises:
            DataError: listing (up to 10 of) the unknown characters with their code points.

        Example:
            >>> CharVocab.from_text("ab").encode("abba").tolist()
            [0, 1, 1, 0]
        """
        if not isinstance(text, str):
            raise TypeError(f"text: expected str, got {type(text).__name__}")
        ids, found = self._lookup(text)
        if not found.all():
            unknown = _unique_in_order(text, found)
            shown = ", ".join(_char_repr(c) for c in unknown[:10])
            more = f" and {len(unknown) - 10} more" if len(unknown) > 10 else ""
            raise DataError(
                f"data: {len(unknown)} character(s) not in the vocabulary of {len(self)} tokens: {shown}{more}"
            )
        return ids

    def encode_lossy(
        self, text: str, unknown: str = "skip", replacement: str | None = None
    ) -> tuple[np.ndarray, list[str]]:
        """Encode `text`, dropping or replacing characters the vocabulary lacks (to prime a sampler).

        Args:
            text: the text to encode.
            unknown: "skip" drops unknown characters; "map" replaces each with `replacement`.
            replacement: with unknown="map", a character that is in the vocabulary.

        Returns:
            (ids, unknown_chars): int64 ids of shape (n,), and the distinct unknown characters in
            order of first appearance (empty when everything was known), so the caller can warn.

        Example:
            >>> v = CharVocab.from_text("ab ")
            >>> ids, bad = v.encode_lossy("abc", unknown="map", replacement=" ")
            >>> v.decode(ids), bad
            ('ab ', ['c'])
        """
        if not isinstance(text, str):
            raise TypeError(f"text: expected str, got {type(text).__name__}")
        if unknown not in ("skip", "map"):
            raise ValueError(f"unknown: expected 'skip' or 'map', got {unknown!r}")
        if unknown == "map":
            if replacement is None or replacement not in self.stoi or replacement == self.BOUNDARY:
                raise ValueError(
                    f"replacement: with unknown='map' expected a character in the vocabulary, got {replacement!r}"
                )
        ids, found = self._lookup(text)
        bad = _unique_in_order(text, found)
        if unknown == "skip":
            ids = ids[found]
        else:
            ids = np.where(found, ids, self.stoi[replacement]).astype(np.int64)  # type: ignore[index]
        return ids, bad

    def encode_line(self, line: str) -> np.ndarray:
        """One item framed by boundary tokens, `[boundary, *chars, boundary]` (line vocabularies only).

        Args:
            line: one item, e.g. a name.

        Returns:
            int64 array of shape (len(line) + 2,).

        Example:
            >>> CharVocab.from_lines(["ab"]).encode_line("ba").tolist()
            [0, 2, 1, 0]
        """
        if self.boundary_id is None:
            raise ValueError("encode_line: this vocabulary has no boundary token (build it with from_lines)")
        ids = self.encode(line)
        b = np.array([self.boundary_id], dtype=np.int64)
        return np.concatenate([b, ids, b])

    def decode(self, ids: Iterable[int] | np.ndarray, *, boundary_as: str = "") -> str:
        """Text for a sequence of ids.

        Args:
            ids: token ids, shape (n,).
            boundary_as: what the boundary token becomes (default: nothing; "\\n" gives one item per
                line).

        Example:
            >>> v = CharVocab.from_lines(["emma"])
            >>> v.decode(v.encode_line("emma"))
            'emma'
        """
        arr = np.asarray(list(ids) if not isinstance(ids, np.ndarray) else ids)
        if arr.size and not np.issubdtype(arr.dtype, np.integer):
            raise TypeError(f"ids: expected integers, got dtype {arr.dtype}")
        arr = arr.reshape(-1).astype(np.int64)
        if arr.size and (arr.min() < 0 or arr.max() >= len(self)):
            bad = int(arr[(arr < 0) | (arr >= len(self))][0])
            raise ValueError(f"ids: expected ids in [0, {len(self)}), got {bad}")
        itos = self.itos
        if self.boundary_id is not None:
            itos = [boundary_as, *itos[1:]]
        return "".join(itos[i] for i in arr.tolist())

    # -- serialisation --------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        """A JSON-serialisable dict; tokens are listed in id order.

        Example:
            >>> CharVocab.from_lines(["ab"]).to_json()
            {'type': 'char', 'tokens': ['<|boundary|>', 'a', 'b'], 'boundary_id': 0}
        """
        return {"type": "char", "tokens": list(self.itos), "boundary_id": self.boundary_id}

    @classmethod
    def from_json(cls, obj: Any) -> CharVocab:
        """Rebuild a vocabulary from `to_json()`'s dict, validating it (ids must not silently move).

        Args:
            obj: the dict, e.g. from `json.load` of a checkpoint's `vocab.json`.

        Raises:
            DataError: the dict is not a valid vocabulary.

        Example:
            >>> v = CharVocab.from_text("hello")
            >>> CharVocab.from_json(v.to_json()) == v
            True
        """
        if not isinstance(obj, dict):
            raise DataError(f"vocab: expected a JSON object, got {type(obj).__name__}")
        if obj.get("type", "char") != "char":
            raise DataError(f"vocab: expected type 'char', got {obj.get('type')!r}")
        tokens = obj.get("tokens")
        if not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens):
            raise DataError("vocab: expected 'tokens' to be a list of strings")
        boundary_id = obj.get("boundary_id")
        if boundary_id not in (None, 0):
            raise DataError(f"vocab: expected 'boundary_id' to be 0 or null, got {boundary_id!r}")
        if boundary_id == 0:
            if not tokens or tokens[0] != cls.BOUNDARY:
                first = tokens[0] if tokens else None
                raise DataError(f"vocab: expected token 0 to be {cls.BOUNDARY!r}, got {first!r}")
            tokens = tokens[1:]
        try:
            return cls(tokens, boundary=boundary_id == 0)
        except ValueError as e:
            raise DataError(f"vocab: {e}") from None


def _unique_in_order(text: str, found: np.ndarray) -> list[str]:
    seen: dict[str, None] = {}
    for i in np.flatnonzero(~found).tolist():
        seen.setdefault(text[i], None)
    return list(seen)


# ---------------------------------------------------------------------------------------------
# train/validation split

_Splittable = TypeVar("_Splittable", str, np.ndarray)


def split_text(text: _Splittable, val_fraction: float = 0.1) -> tuple[_Splittable, _Splittable]:
    """The first `1 - val_fraction` of `text` for training, the rest for validation.

    Contiguous rather than shuffled, as in char-rnn and nanoGPT: shuffling characters would leak
    the validation text into training through shared context.

    Args:
        text: a string, or a 1-D array of token ids.
        val_fraction: share of the end of the text kept for validation, 0 < val_fraction < 1.

    Returns:
        (train, val), both non-empty.

    Example:
        >>> split_text("abcdefghij", val_fraction=0.2)
        ('abcdefgh', 'ij')
    """
    if isinstance(val_fraction, bool) or not isinstance(val_fraction, (int, float)):
        raise TypeError(f"val_fraction: expected a number, got {type(val_fraction).__name__}")
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction: expected 0 < val_fraction < 1, got {val_fraction}")
    n = len(text)
    n_train = int(n * (1 - val_fraction))
    if n_train == 0 or n_train == n:
        raise DataError(
            f"data: {n} characters are too few to split with val_fraction={val_fraction}: "
            f"train would get {n_train} and validation {n - n_train}"
        )
    return text[:n_train], text[n_train:]


# ---------------------------------------------------------------------------------------------
# batching for truncated BPTT


def _check_tokens(tokens: np.ndarray | Sequence[int]) -> np.ndarray:
    arr = np.asarray(tokens)
    if arr.ndim != 1:
        raise ValueError(f"tokens: expected a 1-D array, got shape {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"tokens: expected integer ids, got dtype {arr.dtype}")
    return arr


def _check_positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name}: expected an int, got {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{name}: expected a positive int, got {value}")
    return int(value)


class StreamBatcher:
    """Stateful truncated-BPTT batches over one token stream, as in char-rnn.

    The N tokens are cut into `batch_size` contiguous streams of L = (N - 1) // batch_size inputs
    each; batch k holds columns k*T .. k*T+T-1 of every stream. Row b of batch k+1 therefore
    continues exactly where row b of batch k ended, so the final hidden state of one batch is the
    right initial state for the next. The last L mod T positions of each stream (fewer than T)
    are not visited, as in char-rnn. After the last batch the streams wrap around to the start and
    `next_batch` reports `reset=True`: the caller should zero its hidden state then.

    Args:
        tokens: 1-D integer array of token ids, shape (N,).
        batch_size: number of parallel streams B.
        seq_len: BPTT length T (columns per batch).

    Attributes:
        epoch: the epoch the next batch belongs to (0-based).
        position: index of the next batch within its epoch, 0 .. batches_per_epoch-1.
        batches_per_epoch: L // T.

    Example:
        >>> b = StreamBatcher(np.arange(21), batch_size=2, seq_len=5)
        >>> x, y, reset = b.next_batch()
        >>> x.tolist(), reset
        ([[0, 1, 2, 3, 4], [10, 11, 12, 13, 14]], True)
        >>> x, y, reset = b.next_batch()
        >>> x.tolist(), y.tolist(), reset
        ([[5, 6, 7, 8, 9], [15, 16, 17, 18, 19]], [[6, 7, 8, 9, 10], [16, 17, 18, 19, 20]], False)
    """

    def __init__(self, tokens: np.ndarray | Sequence[int], batch_size: int, seq_len: int) -> None:
        self.tokens = _check_tokens(tokens)
        self.batch_size = _check_positive_int("batch_size", batch_size)
        self.seq_len = _check_positive_int("seq_len", seq_len)
        n, B, T = len(self.tokens), self.batch_size, self.seq_len
        if n < B * T + 1:
            raise ValueError(
                f"tokens: need at least batch_size*seq_len+1 = {B}*{T}+1 = {B * T + 1} tokens, "
                f"got {n}; use a smaller batch_size or seq_len, or more data"
            )
        L = (n - 1) // B
        # views, not copies: row b of _x is stream b, and _y is the same stream one token later
        self._x = self.tokens[: B * L].reshape(B, L)
        self._y = self.tokens[1 : B * L + 1].reshape(B, L)
        self.stream_len = L
        self.batches_per_epoch = L // T
        self.epoch = 0
        self.position = 0

    def next_batch(self) -> tuple[np.ndarray, np.ndarray, bool]:
        """The next (x, y, reset).

        Returns:
            x: inputs, shape (B, T), the tokens' dtype.
            y: targets, shape (B, T): `y[b, t]` is the token after `x[b, t]`.
            reset: True when this batch starts the streams from the beginning (the first batch,
                and every batch after a wrap-around): zero the hidden state before using it.
        """
        T = self.seq_len
        reset = self.position == 0
        cols = slice(self.position * T, (self.position + 1) * T)
        x = np.ascontiguousarray(self._x[:, cols])
        y = np.ascontiguousarray(self._y[:, cols])
        self.position += 1
        if self.position == self.batches_per_epoch:
            self.position = 0
            self.epoch += 1
        return x, y, reset

    def state_dict(self) -> dict[str, int]:
        """The data position as plain ints (JSON-friendly), for resuming a run.

        Example:
            >>> b = StreamBatcher(np.arange(100), 2, 5)
            >>> _ = b.next_batch()
            >>> b.state_dict()["position"]
            1
        """
        return {
            "epoch": self.epoch,
            "position": self.position,
            "batch_size": self.batch_size,
            "seq_len": self.seq_len,
            "num_tokens": len(self.tokens),
        }

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Resume at the position saved by `state_dict()`; the layout must be the same.

        Args:
            state: a dict from `state_dict()`.

        Raises:
            ValueError: batch size, sequence length or data length differ from the saved ones,
                or the position is out of range.

        Example:
            >>> a, b = StreamBatcher(np.arange(100), 2, 5), StreamBatcher(np.arange(100), 2, 5)
            >>> _ = a.next_batch()
            >>> b.load_state_dict(a.state_dict())
            >>> bool((a.next_batch()[0] == b.next_batch()[0]).all())
            True
        """
        if not isinstance(state, dict):
            raise TypeError(f"state: expected a dict, got {type(state).__name__}")
        for key in ("epoch", "position", "batch_size", "seq_len", "num_tokens"):
            value = state.get(key)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"state[{key!r}]: expected an int, got {value!r}")
        ours = {"batch_size": self.batch_size, "seq_len": self.seq_len, "num_tokens": len(self.tokens)}
        for key, value in ours.items():
            if state[key] != value:
                raise ValueError(
                    f"state[{key!r}]: the saved data position is for {key}={state[key]}, this batcher has {key}={value}"
                )
        if not 0 <= state["position"] < self.batches_per_epoch or state["epoch"] < 0:
            raise ValueError(
                f"state['position']: expected 0 <= position < {self.batches_per_epoch} and epoch >= 0, "
                f"got position={state['position']}, epoch={state['epoch']}"
            )
        self.epoch = state["epoch"]
        self.position = state["position"]


class ItemStreamBatcher:
    """`StreamBatcher` over one-item-a-line data that deals the items in a fresh order every epoch.

    The tokens are items separated by a boundary token, `<b> item <b> item <b> ...` (names, one per
    line). Streamed in one fixed order, the same item would follow the same item in every epoch, and
    a model that carries its state across items learns which item comes next (on names: train 1.76,
    test 2.06). Epoch 0 streams the tokens as given; epoch k > 0 streams a permutation of the items
    drawn from (seed, k), so the order needs no saving: `state_dict()` is `StreamBatcher`'s. Every
    epoch has the same length, hence the same batches.

    Args:
        tokens: 1-D integer array `<b> item <b> ... <b>`, shape (N,).
        batch_size: number of parallel streams B.
        seq_len: BPTT length T.
        boundary_id: the token between items.
        seed: seeds the order of every epoch after the first.

    Attributes:
        tokens: the current epoch's stream; epoch, position and batches_per_epoch as in `StreamBatcher`.

    Example:
        >>> b = ItemStreamBatcher(np.array([0, 1, 0, 2, 2, 0, 3, 0]), 1, 3, boundary_id=0, seed=1)
        >>> [b.next_batch()[0].tolist() for _ in range(4)]   # two batches an epoch
        [[[0, 1, 0]], [[2, 2, 0]], [[0, 3, 0]], [[2, 2, 0]]]
        >>> b.epoch_tokens(1).tolist()   # epoch 1: the items 3, 2 2, 1 in a new order
        [0, 3, 0, 2, 2, 0, 1, 0]
    """

    def __init__(
        self, tokens: np.ndarray | Sequence[int], batch_size: int, seq_len: int, *, boundary_id: int, seed: int
    ) -> None:
        self._stream = StreamBatcher(tokens, batch_size, seq_len)
        first = self._stream.tokens
        cuts = np.flatnonzero(first == boundary_id)
        if len(cuts) < 2 or cuts[0] != 0 or cuts[-1] != len(first) - 1:
            raise ValueError(
                f"tokens: expected items between boundary tokens (id {boundary_id}) with one at each end, "
                f"got {len(cuts)} boundaries in {len(first)} tokens, first id {int(first[0])}, last id {int(first[-1])}"
            )
        self._first = first
        # each item runs to and includes its closing boundary; views, not copies
        self._items = [first[a + 1 : b + 1] for a, b in itertools.pairwise(cuts)]
        self.seed = int(seed)
        self._built_epoch = 0
        self.batches_per_epoch = self._stream.batches_per_epoch

    @property
    def tokens(self) -> np.ndarray:
        return self._stream.tokens

    @property
    def epoch(self) -> int:
        return self._stream.epoch

    @property
    def position(self) -> int:
        return self._stream.position

    def epoch_tokens(self, epoch: int) -> np.ndarray:
        """The stream of one epoch: the given order for epoch 0, a permutation of the items after it."""
        if epoch == 0:
            return self._first
        order = np.random.default_rng([self.seed, 2, epoch]).permutation(len(self._items))
        return np.concatenate([self._first[:1], *(self._items[i] for i in order)])

    def _sync(self) -> None:
        # a new epoch (or a resume into one) gets its own order; same length, so the position carries over
        epoch, position = self._stream.epoch, self._stream.position
        if epoch == self._built_epoch:
            return
        B, T = self._stream.batch_size, self._stream.seq_len
        self._stream = StreamBatcher(self.epoch_tokens(epoch), B, T)
        self._stream.epoch, self._stream.position = epoch, position
        self._built_epoch = epoch

    def next_batch(self) -> tuple[np.ndarray, np.ndarray, bool]:
        """The next (x, y, reset), as `StreamBatcher.next_batch`."""
        self._sync()
        return self._stream.next_batch()

    def state_dict(self) -> dict[str, int]:
        """The data position (epoch and batch), as `StreamBatcher.state_dict`."""
        return self._stream.state_dict()

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Resume at a position saved by `state_dict()` (the epoch's order is redrawn from the seed)."""
        self._stream.load_state_dict(state)
        self._sync()


def iterate_eval_batches(
    tokens: np.ndarray | Sequence[int], batch_size: int, seq_len: int
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Batches that score every next-token prediction of `tokens` exactly once.

    The N-1 predictions (input `tokens[i]`, target `tokens[i+1]`) are cut into `batch_size`
    parallel contiguous streams of ceil((N-1)/B) positions each, walked T columns at a time. The
    caller starts from a zero hidden state and CARRIES it from one batch to the next (row b always
    continues row b), so every prediction after the first has its full left context, like
    training. Positions beyond the end of a stream (the final partial chunk, and a shorter last
    stream) are padded with id 0 and mask 0; the mean loss over the split is
    `sum(loss * mask) / sum(mask)`, where `sum(mask) == N - 1`.

    Args:
        tokens: 1-D integer array of token ids, shape (N,), N >= 2.
        batch_size: number of parallel streams B.
        seq_len: columns per batch T.

    Yields:
        x: inputs, shape (B, T).
        y: targets, shape (B, T).
        mask: float32, shape (B, T): 1.0 where (x, y) is a real prediction, 0.0 for padding.

    Example:
        >>> batches = list(iterate_eval_batches(np.arange(8), batch_size=2, seq_len=3))
        >>> [x.tolist() for x, _, _ in batches]
        [[[0, 1, 2], [4, 5, 6]], [[3, 0, 0], [0, 0, 0]]]
        >>> sum(int(m.sum()) for _, _, m in batches)
        7
    """
    arr = _check_tokens(tokens)
    B = _check_positive_int("batch_size", batch_size)
    T = _check_positive_int("seq_len", seq_len)
    n_pred = len(arr) - 1
    if n_pred < 1:
        raise ValueError(f"tokens: need at least 2 tokens to evaluate, got {len(arr)}")
    L = -(-n_pred // B)
    n_batches = -(-L // T)
    # cell (b, j) of a (B, n_batches*T) grid holds prediction b*L + j; cells past the end of
    # stream b (j >= L) or past the data are padding. Built one batch of columns at a time, so
    # memory stays O(B*T) and a memory-mapped split is read a batch at a time, never whole.
    rows = np.arange(B)[:, None] * L
    for k in range(n_batches):
        cols = np.arange(k * T, (k + 1) * T)[None, :]
        pos = rows + cols
        valid = (cols < L) & (pos < n_pred)
        src = np.minimum(pos, n_pred - 1)
        yield (
            np.where(valid, arr[src], 0).astype(arr.dtype),
            np.where(valid, arr[src + 1], 0).astype(arr.dtype),
            valid.astype(np.float32),
        )
