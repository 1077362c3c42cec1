"""Corpora larger than memory: streaming vocabularies, token ids on disk (memmap), saved splits.

`encode_to_memmap` reads a UTF-8 text file a chunk at a time (never whole), encodes it with a
character or word vocabulary and writes the token ids to a flat binary file (uint16 when the
vocabulary has at most 65,536 tokens, else uint32) with a small JSON header beside it
(`<out>.json`: dtype, length, sha256 of the source, the vocabulary). `MemmapTokens` opens that
file read-only with `np.memmap`: it acts like a 1-D array of ids, so `text.StreamBatcher` and
`text.iterate_eval_batches` use it directly, and only the pages a batch touches are read.

The streaming reader treats the text exactly as `text.read_text` does (BOM dropped, `\\r\\n` ->
`\\n`, the same errors for NUL bytes and invalid UTF-8), and an incremental decoder carries a
multi-byte character split across two chunks, so the ids do not depend on the chunk size.
`encode_to_memmap(..., cuts=[c])` encodes `text[:c]` and `text[c:]` each on its own (no word spans
the cut: a word-level train/validation split) and records where the cut falls in tokens;
`count_words_streaming(..., stop=c)` counts the words of `text[:c]` (the training vocabulary).

Splits: `make_split` cuts N items (tokens, lines, examples) into named parts, contiguous or
shuffled with a seed; `save_split`/`load_split` keep it as JSON with the sha256 of the source, and
`load_or_make_split` reuses a saved split, refusing (with an explanation) when the source changed.

Example:
    >>> vocab = build_char_vocab_streaming("big.txt")                   # doctest: +SKIP
    >>> tokens = encode_to_memmap("big.txt", vocab, "big.bin")          # doctest: +SKIP
    >>> split = load_or_make_split("big.split.json", "big.txt", len(tokens))   # doctest: +SKIP
    >>> train = tokens[split.part("train")]                              # doctest: +SKIP
    >>> batcher = StreamBatcher(train, batch_size=32, seq_len=128)       # doctest: +SKIP
"""

from __future__ import annotations

import codecs
import contextlib
import hashlib
import json
import math
import os
import re
import tempfile
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .text import CharVocab, DataError, _refuse_non_text
from .words import EOS, WordVocab, tokenize, vocab_from_json

DEFAULT_CHUNK = 1 << 20
_BOM = b"\xef\xbb\xbf"
FORMAT = "rnnlab-tokens"
FORMAT_VERSION = 1

# ---------------------------------------------------------------------------------------------
# checksums and streaming text


def sha256_file(path: str | os.PathLike[str], chunk_bytes: int = DEFAULT_CHUNK) -> str:
    """Hex sha256 of a file's bytes, read in chunks.

    Example:
        >>> sha256_file("input.txt")                    # doctest: +SKIP
        '86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed'
    """
    h = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            while block := f.read(chunk_bytes):
                h.update(block)
    except FileNotFoundError:
        raise DataError(f"data: file not found: {path}") from None
    except IsADirectoryError:
        raise DataError(f"data: expected a file, got a directory: {path}") from None
    except OSError as e:
        raise DataError(f"data: cannot read {path}: {e.strerror or e}") from None
    return h.hexdigest()


class TextStream:
    """Iterate over a UTF-8 file as decoded text chunks, without reading it whole.

    Gives the same text as `read_text`, in pieces: the BOM is dropped, `\\r\\n` becomes `\\n` (also
    when the two fall into different chunks), a character split across chunks is decoded whole,
    and NUL bytes, invalid UTF-8, an empty or whitespace-only file raise the same `DataError`s,
    with byte offsets into the file. After a full iteration, `sha256` and `num_bytes` describe the
    file as read.

    Args:
        path: the file.
        chunk_chars: bytes read per step (as many characters for ASCII text); memory is O(this).

    Example:
        >>> stream = TextStream("big.txt", chunk_chars=1 << 16)          # doctest: +SKIP
        >>> n_chars = sum(len(piece) for piece in stream)                  # doctest: +SKIP
        >>> stream.sha256                                                  # doctest: +SKIP
        '86c4e6...'
    """

    def __init__(self, path: str | os.PathLike[str], chunk_chars: int = DEFAULT_CHUNK) -> None:
        if isinstance(chunk_chars, bool) or not isinstance(chunk_chars, int) or chunk_chars < 1:
            raise ValueError(f"chunk_chars: expected a positive int, got {chunk_chars!r}")
        self.path = path
        self.chunk_chars = chunk_chars
        self.sha256: str | None = None
        self.num_bytes: int | None = None

    def __iter__(self) -> Iterator[str]:
        path = self.path
        p = Path(path)
        if not p.exists():
            raise DataError(f"data: file not found: {path}")
        if p.is_dir():
            raise DataError(f"data: expected a text file, got a directory: {path}")
        h = hashlib.sha256()
        decoder = codecs.getincrementaldecoder("utf-8")("strict")
        fed = 0  # bytes given to the decoder so far (file offset of the next byte)
        pending_cr = False
        seen_text = False
        try:
            f = open(path, "rb")  # closed in the finally below: a with block cannot span the yields
        except OSError as e:
            raise DataError(f"data: cannot read {path}: {e.strerror or e}") from None
        try:
            head = f.read(3)
            h.update(head)
            _refuse_non_text(path, head)
            if head == _BOM:
                fed = 3  # dropped, as read_text does; offsets still count it
                head = b""
            blocks: Iterator[bytes] = iter(lambda: f.read(self.chunk_chars), b"")
            first = True
            while True:
                if first:
                    block, first = head, False
                else:
                    block = next(blocks, None)
                    if block is None:
                        break
                    h.update(block)
                piece = self._decode(decoder, block, fed, final=False)
                fed += len(block)
                if pending_cr:
                    piece = "\r" + piece
                pending_cr = piece.endswith("\r")
                if pending_cr:
                    piece = piece[:-1]  # a "\r\n" may be cut between this chunk and the next
                piece = piece.replace("\r\n", "\n")
                if piece:
                    seen_text = seen_text or not piece.isspace()
                    yield piece
            tail = self._decode(decoder, b"", fed, final=True) + ("\r" if pending_cr else "")
            if tail:
                seen_text = seen_text or not tail.isspace()
                yield tail
        except OSError as e:
            raise DataError(f"data: cannot read {path}: {e.strerror or e}") from None
        finally:
            f.close()
        if fed == 0 or (fed == 3 and head == b""):
            raise DataError(f"data: file is empty: {path}")
        if not seen_text:
            raise DataError(f"data: file contains only whitespace: {path}")
        self.sha256 = h.hexdigest()
        self.num_bytes = fed

    def _decode(self, decoder: codecs.IncrementalDecoder, block: bytes, fed: int, *, final: bool) -> str:
        buffered = decoder.getstate()[0]  # the start of a character cut at the previous chunk's end
        start = fed - len(buffered)  # file offset of buffered + block
        try:
            piece = decoder.decode(block, final=final)
        except UnicodeDecodeError as e:
            data = buffered + block
            offset = start + e.start
            raise DataError(
                f"data: {self.path} is not valid UTF-8 (byte 0x{data[e.start]:02x} at byte offset {offset}); "
                f"convert it to UTF-8, e.g. iconv -f latin1 -t utf-8 {self.path} > out.txt"
            ) from None
        nul = piece.find("\x00")
        if nul >= 0:
            offset = start + len(piece[:nul].encode("utf-8"))
            raise DataError(
                f"data: {self.path} looks like a binary file (NUL byte at byte offset {offset}); expected UTF-8 text"
            )
        return piece


def _cut_at(pieces: Iterable[str], cuts: Sequence[int]) -> Iterator[str | None]:
    """The text of `pieces`, cut at the character offsets `cuts` (ascending): None marks each cut.

    Raises:
        ValueError: a cut lies beyond the end of the text.
    """
    k, pos = 0, 0
    for piece in pieces:
        while k < len(cuts) and cuts[k] <= pos + len(piece):
            head, piece = piece[: cuts[k] - pos], piece[cuts[k] - pos :]
            if head:
                yield head
            pos += len(head)
            k += 1
            yield None
        if piece:
            yield piece
            pos += len(piece)
    if k < len(cuts):
        raise ValueError(f"cuts: expected offsets within the text's {pos} characters, got {cuts[k]}")


def _head(pieces: Iterable[str], stop: int) -> Iterator[str]:
    """The first `stop` characters of the text of `pieces` (all of it if shorter), as `text[:stop]`."""
    left = stop
    for piece in pieces:
        if left <= 0:
            return
        yield piece[:left]
        left -= len(piece)


def _word_pieces(stream: Iterable[str | None]) -> Iterator[str | None]:
    """Re-cut text chunks at whitespace, so no word (or emoji sequence) is split between two pieces.

    A None in `stream` (a cut, from `_cut_at`) is passed on after the text before it: no word spans it.
    """
    carry = ""
    for piece in stream:
        if piece is None:
            if carry:
                yield carry
            carry = ""
            yield None
            continue
        text = carry + piece
        i = len(text)
        while i > 0 and not text[i - 1].isspace():
            i -= 1
        carry = text[i:]
        if i:
            yield text[:i]
    if carry:
        yield carry


# ---------------------------------------------------------------------------------------------
# streaming vocabularies


def build_char_vocab_streaming(path: str | os.PathLike[str], *, chunk_chars: int = DEFAULT_CHUNK) -> CharVocab:
    """The character vocabulary of a file (as `CharVocab.from_text(read_text(path))`), in one streaming pass.

    Example:
        >>> build_char_vocab_streaming("big.txt")          # doctest: +SKIP
        CharVocab(size=65)
    """
    chars: set[str] = set()
    for piece in TextStream(path, chunk_chars):
        chars.update(piece)
    return CharVocab(sorted(chars))


def count_words_streaming(
    path: str | os.PathLike[str],
    *,
    lower: bool = False,
    newline: bool = True,
    stop: int | None = None,
    chunk_chars: int = DEFAULT_CHUNK,
) -> Counter[str]:
    """How often each token of `tokenize` occurs in a file (or its first `stop` characters), streaming.

    Args:
        path: the UTF-8 text file.
        lower, newline: as for `WordVocab.from_text` (newline: line ends count as `<eos>`).
        stop: count only the first `stop` characters, as `read_text(path)[:stop]` (a training
            split); None: the whole file.
        chunk_chars: bytes read per step (see `TextStream`).

    Returns:
        token -> count; `counts.total()` is the number of tokens.

    Example:
        >>> count_words_streaming("big.txt").most_common(2)        # doctest: +SKIP
        [('the', 27643), (',', 21421)]
    """
    if stop is not None and (isinstance(stop, bool) or not isinstance(stop, int) or stop < 0):
        raise ValueError(f"stop: expected None or an int >= 0, got {stop!r}")
    counts: Counter[str] = Counter()
    pieces: Iterable[str] = TextStream(path, chunk_chars)
    if stop is not None:
        pieces = _head(pieces, stop)
    for piece in _word_pieces(pieces):
        assert piece is not None  # no cuts were asked for
        counts.update(tokenize(piece, lower=lower, newline=EOS if newline else None))
    return counts


def build_word_vocab_streaming(
    path: str | os.PathLike[str],
    *,
    min_freq: int = 1,
    max_size: int | None = None,
    lower: bool = False,
    newline: bool = True,
    stop: int | None = None,
    chunk_chars: int = DEFAULT_CHUNK,
) -> WordVocab:
    """The word vocabulary of a file (as `WordVocab.from_text(read_text(path), ...)`), in one streaming pass.

    Memory grows with the number of distinct words, not with the file.

    Args:
        path: the UTF-8 text file.
        min_freq, max_size, lower, newline: as for `WordVocab.from_text`.
        stop: build it from the first `stop` characters only (a training split:
            `WordVocab.from_text(read_text(path)[:stop])`); None: the whole file.
        chunk_chars: bytes read per step (see `TextStream`).

    Example:
        >>> build_word_vocab_streaming("big.txt", min_freq=3)      # doctest: +SKIP
        WordVocab(size=33278, level='word', specials=['<pad>', '<unk>', '<eos>'])
    """
    counts = count_words_streaming(path, lower=lower, newline=newline, stop=stop, chunk_chars=chunk_chars)
    return WordVocab.from_counts(counts, min_freq=min_freq, max_size=max_size, lower=lower)


# ---------------------------------------------------------------------------------------------
# token ids on disk


def header_path(bin_path: str | os.PathLike[str]) -> Path:
    """The JSON header beside a token file: `tokens.bin` -> `tokens.bin.json`."""
    p = Path(bin_path)
    return p.with_name(p.name + ".json")


def set_default_mode(fd: int) -> None:
    """Give a file from `tempfile.mkstemp` (0600) the permissions any new file gets (0666 less the umask)."""
    umask = os.umask(0)
    os.umask(umask)
    with contextlib.suppress(OSError):
        os.fchmod(fd, 0o666 & ~umask)


def _atomic_write_text(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    set_default_mode(fd)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        raise naming_file(e, path) from None


def naming_file(e: BaseException, path: str | os.PathLike[str]) -> BaseException:
    """An OSError of a write (a full disk, a file-size limit) with the file it was writing."""
    if isinstance(e, OSError) and e.filename is None and e.errno is not None:
        return OSError(e.errno, e.strerror, str(path))
    return e


def encode_to_memmap(
    text_path: str | os.PathLike[str],
    vocab: CharVocab | WordVocab,
    out_path: str | os.PathLike[str],
    *,
    chunk_chars: int = DEFAULT_CHUNK,
    newline: bool | None = None,
    cuts: Sequence[int] = (),
) -> MemmapTokens:
    """Encode a text file chunk by chunk into a binary file of token ids, plus its JSON header.

    Args:
        text_path: the UTF-8 source text.
        vocab: a `CharVocab` (every character must be in it) or a `WordVocab` (unknown words
            become `<unk>`).
        out_path: the token file to write (e.g. "train.bin"); the header goes to
            `header_path(out_path)`. Both are written to temporary files first and renamed, so a
            crash never leaves a half-written pair that looks complete.
        chunk_chars: bytes read per step (see `TextStream`).
        newline: word vocabularies: line ends become `<eos>`; default: when it has `<eos>`.
        cuts: ascending character offsets into the text where it is cut into segments that are
            encoded on their own, so that no word spans a cut: the ids equal the concatenated
            `vocab.encode_text(text[a:b])` of the segments (a word-level train/validation split).
            The header then records `cuts` and `token_cuts`, the token offset of each cut.

    Returns:
        The written tokens, opened as `MemmapTokens`.

    Raises:
        DataError: as `read_text`; a character not in a `CharVocab` (with its line number).
        ValueError: `cuts` not ascending, or beyond the end of the text.

    Example:
        >>> tokens = encode_to_memmap("input.txt", vocab, "input.bin")      # doctest: +SKIP
        >>> len(tokens), tokens.dtype                                         # doctest: +SKIP
        (1115394, dtype('uint16'))
    """
    if not isinstance(vocab, (CharVocab, WordVocab)):
        raise TypeError(f"vocab: expected a CharVocab or a WordVocab, got {type(vocab).__name__}")
    out = Path(out_path)
    if out.is_dir():
        raise ValueError(f"out_path: expected a file path, got a directory: {out_path}")
    cuts = list(cuts)
    if any(isinstance(c, bool) or not isinstance(c, (int, np.integer)) or c < 0 for c in cuts) or cuts != sorted(cuts):
        raise ValueError(f"cuts: expected ascending character offsets >= 0, got {cuts!r}")
    cuts = [int(c) for c in cuts]
    out.parent.mkdir(parents=True, exist_ok=True)
    dtype = np.dtype(np.uint16) if len(vocab) <= 1 << 16 else np.dtype(np.uint32)
    stream = TextStream(text_path, chunk_chars)
    pieces: Iterator[str | None] = _cut_at(stream, cuts)
    if isinstance(vocab, WordVocab):
        if newline is None:
            newline = vocab.eos_id is not None
        pieces = _word_pieces(pieces)

    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    set_default_mode(fd)
    length = 0
    token_cuts: list[int] = []
    lines_before = 0  # line ends in the text already encoded, for error messages
    try:
        with os.fdopen(fd, "wb") as f:
            for piece in pieces:
                if piece is None:
                    token_cuts.append(length)
                    continue
                if isinstance(vocab, WordVocab):
                    ids = vocab.encode_text(piece, newline=newline)
                else:
                    ids, bad = vocab.encode_lossy(piece)
                    if bad:
                        pos = piece.index(bad[0])
                        line = lines_before + piece.count("\n", 0, pos) + 1
                        raise DataError(
                            f"data: {text_path} line {line}: character {bad[0]!r} (U+{ord(bad[0]):04X}) "
                            f"is not in the vocabulary of {len(vocab)} tokens"
                        )
                    lines_before += piece.count("\n")
                ids.astype(dtype).tofile(f)
                length += len(ids)
        if length == 0:
            raise DataError(f"data: no tokens in {text_path}")
        header = {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "dtype": dtype.name,
            "length": length,
            "source": str(text_path),
            "source_sha256": stream.sha256,
            "source_bytes": stream.num_bytes,
            "newline": bool(newline) if isinstance(vocab, WordVocab) else None,
            "vocab": vocab.to_json(),
        }
        if cuts:
            header.update(cuts=cuts, token_cuts=token_cuts)
        # an old header must not outlive the file it describes, even if we crash before the new one
        header_path(out).unlink(missing_ok=True)
        os.replace(tmp, out)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        raise naming_file(e, out) from None
    _atomic_write_text(header_path(out), json.dumps(header, ensure_ascii=False, indent=1) + "\n")
    return MemmapTokens(out)


class MemmapTokens:
    """Token ids written by `encode_to_memmap`, opened read-only with `np.memmap`.

    Acts as a 1-D integer array: `len()`, indexing and slicing (slices are memmap views, read
    from disk on use), `np.asarray(tokens)` (a view, no copy), so `text.StreamBatcher(tokens, ...)`
    and `text.iterate_eval_batches(tokens, ...)` take it as it is.

    Args:
        path: the token file (its header is `header_path(path)`).

    Attributes:
        array: the `np.memmap`, shape (length,). header: the JSON header as a dict.
        vocab: the vocabulary (`CharVocab` or `WordVocab`). source_sha256: checksum of the source.

    Raises:
        DataError: a missing or invalid header, or a token file whose size does not match it.

    Example:
        >>> tokens = MemmapTokens("train.bin")                               # doctest: +SKIP
        >>> batcher = StreamBatcher(tokens, batch_size=32, seq_len=128)      # doctest: +SKIP
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        hp = header_path(self.path)
        if not self.path.exists():
            raise DataError(f"data: token file not found: {path}")
        try:
            header = json.loads(hp.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise DataError(f"data: header not found: {hp} (written by encode_to_memmap beside {path})") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise DataError(f"data: cannot read the header {hp}: {e}") from None
        if not isinstance(header, dict) or header.get("format") != FORMAT:
            raise DataError(f"data: {hp} is not a token header (expected format {FORMAT!r})")
        if header.get("version") != FORMAT_VERSION:
            raise DataError(f"data: {hp} has format version {header.get('version')!r}, expected {FORMAT_VERSION}")
        dtype_name, length = header.get("dtype"), header.get("length")
        if dtype_name not in ("uint16", "uint32"):
            raise DataError(f"data: {hp}: expected dtype 'uint16' or 'uint32', got {dtype_name!r}")
        if isinstance(length, bool) or not isinstance(length, int) or length < 1:
            raise DataError(f"data: {hp}: expected a positive int length, got {length!r}")
        dtype = np.dtype(dtype_name)
        size = self.path.stat().st_size
        if size != length * dtype.itemsize:
            raise DataError(
                f"data: {path} has {size} bytes, but its header says {length} {dtype_name} tokens "
                f"({length * dtype.itemsize} bytes); the file is truncated or not the one the header describes"
            )
        self.header: dict[str, Any] = header
        self.vocab = vocab_from_json(header.get("vocab"))
        self.source_sha256: str | None = header.get("source_sha256")
        self.array = np.memmap(self.path, dtype=dtype, mode="r", shape=(length,))

    # -- the array protocol ---------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.array)

    def __getitem__(self, index: Any) -> Any:
        return self.array[index]

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        if copy:
            return np.array(self.array, dtype=dtype)
        arr = self.array.view(np.ndarray)  # plain ndarray over the same mapped memory
        return arr if dtype is None else arr.astype(dtype)

    @property
    def dtype(self) -> np.dtype:
        return self.array.dtype

    @property
    def shape(self) -> tuple[int, ...]:
        return self.array.shape

    @property
    def ndim(self) -> int:
        return 1

    def __repr__(self) -> str:
        return f"MemmapTokens({str(self.path)!r}, length={len(self)}, dtype={self.dtype.name})"

    def check_source(self, source: str | os.PathLike[str]) -> None:
        """Raise DataError if `source` is not the file these tokens were encoded from (by sha256)."""
        now = sha256_file(source)
        if now != self.source_sha256:
            raise DataError(
                f"data: {source} has changed since {self.path} was encoded from it "
                f"(sha256 {str(self.source_sha256)[:12]}... then, {now[:12]}... now); encode it again"
            )


# ---------------------------------------------------------------------------------------------
# saved splits

_PART_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")


@dataclass(eq=False)
class Split:
    """Named parts of N items: contiguous ranges (`offsets`) or index arrays (`indices`).

    Attributes:
        num_items: N.
        kind: "offsets" (each part a range `[start, stop)`, in order) or "indices" (each part an
            int64 index array: sorted by `make_split`, the items shuffled with `seed` first; a
            split made elsewhere may keep a meaningful order, e.g. the order training reads the
            items in, and saving and loading keep it).
        parts: part name -> (start, stop) or index array.
        fractions: the requested share of each part.
        seed: the shuffle seed ("indices"), else None.
        source: the file the items come from, and source_sha256 its checksum (set by `save_split`).

    Example:
        >>> s = make_split(10, {"train": 0.8, "val": 0.2})
        >>> s.parts, s.part("val")
        ({'train': (0, 8), 'val': (8, 10)}, slice(8, 10, None))
    """

    num_items: int
    kind: str
    parts: dict[str, Any]
    fractions: dict[str, float]
    seed: int | None = None
    source: str | None = None
    source_sha256: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def part(self, name: str) -> slice | np.ndarray:
        """An index for part `name`: a slice ("offsets") or an int64 index array ("indices")."""
        if name not in self.parts:
            raise KeyError(f"split: no part named {name!r}; parts are {list(self.parts)!r}")
        p = self.parts[name]
        return slice(*p) if self.kind == "offsets" else p

    def apply(self, items: Any) -> dict[str, Any]:
        """Every part of `items` (an array, a MemmapTokens, or a list), by name.

        Example:
            >>> make_split(4, {"a": 0.5, "b": 0.5}).apply(list("wxyz"))
            {'a': ['w', 'x'], 'b': ['y', 'z']}
        """
        if len(items) != self.num_items:
            raise ValueError(f"items: the split is for {self.num_items} items, got {len(items)}")
        out = {}
        for name in self.parts:
            idx = self.part(name)
            if isinstance(idx, slice) or isinstance(items, np.ndarray):
                out[name] = items[idx]
            elif isinstance(items, MemmapTokens):
                out[name] = items.array[idx]
            else:
                out[name] = [items[i] for i in idx.tolist()]
        return out

    def to_json(self) -> dict[str, Any]:
        parts = {k: list(v) if self.kind == "offsets" else v.tolist() for k, v in self.parts.items()}
        return {
            "type": "split",
            "num_items": self.num_items,
            "kind": self.kind,
            "fractions": self.fractions,
            "seed": self.seed,
            "source": self.source,
            "source_sha256": self.source_sha256,
            "parts": parts,
            **({"extra": self.extra} if self.extra else {}),
        }

    @classmethod
    def from_json(cls, obj: Any, where: str = "split") -> Split:
        if not isinstance(obj, dict) or obj.get("type") != "split":
            raise DataError(f"data: {where}: expected a JSON object with type 'split'")
        n, kind, parts = obj.get("num_items"), obj.get("kind"), obj.get("parts")
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise DataError(f"data: {where}: expected a positive int num_items, got {n!r}")
        if kind not in ("offsets", "indices") or not isinstance(parts, dict) or not parts:
            raise DataError(f"data: {where}: expected kind 'offsets' or 'indices' and a non-empty 'parts' object")
        out: dict[str, Any] = {}
        for name, p in parts.items():
            if not isinstance(p, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in p):
                raise DataError(f"data: {where}: part {name!r}: expected a list of ints")
            if kind == "offsets":
                if len(p) != 2 or not 0 <= p[0] <= p[1] <= n:
                    raise DataError(f"data: {where}: part {name!r}: expected [start, stop] within [0, {n}], got {p}")
                out[name] = (p[0], p[1])
            else:
                arr = np.asarray(p, dtype=np.int64)
                if arr.size and (arr.min() < 0 or arr.max() >= n):
                    raise DataError(f"data: {where}: part {name!r}: indices out of range [0, {n})")
                out[name] = arr
        fractions = obj.get("fractions") or {}
        return cls(
            num_items=n,
            kind=kind,
            parts=out,
            fractions=dict(fractions),
            seed=obj.get("seed"),
            source=obj.get("source"),
            source_sha256=obj.get("source_sha256"),
            extra=dict(obj.get("extra") or {}),
        )


def make_split(
    num_items: int,
    fractions: Mapping[str, float] | None = None,
    *,
    shuffle: bool = False,
    seed: int = 0,
) -> Split:
    """Cut `num_items` items into named parts.

    Args:
        num_items: N, e.g. `len(tokens)` or the number of examples.
        fractions: part name -> share, summing to 1, in order (default train 0.8, val 0.1, test
            0.1). Every part after the first gets `round(N * share)` items, the first the rest;
            a part with a positive share must not come out empty.
        shuffle: False: contiguous ranges in the given order (text, time series: no leakage
            through shared context). True: items shuffled with `seed` first (independent
            examples), each part's indices then sorted.
        seed: the shuffle seed (recorded either way only when shuffle=True).

    Example:
        >>> make_split(10, shuffle=True, seed=0).part("test").tolist()
        [1]
    """
    if fractions is None:
        fractions = {"train": 0.8, "val": 0.1, "test": 0.1}
    if isinstance(num_items, bool) or not isinstance(num_items, (int, np.integer)) or num_items < 1:
        raise ValueError(f"num_items: expected a positive int, got {num_items!r}")
    if not fractions:
        raise ValueError("fractions: expected at least one part")
    for name, frac in fractions.items():
        if not isinstance(name, str) or not _PART_NAME.match(name):
            raise ValueError(f"fractions: expected part names like 'train', got {name!r}")
        if isinstance(frac, bool) or not isinstance(frac, (int, float)) or not 0 <= frac <= 1:
            raise ValueError(f"fractions[{name!r}]: expected a share in [0, 1], got {frac!r}")
    total = sum(fractions.values())
    if not math.isclose(total, 1.0, abs_tol=1e-9):
        raise ValueError(f"fractions: expected shares summing to 1, got {total}")
    n = int(num_items)
    names = list(fractions)
    sizes = [round(n * fractions[k]) for k in names[1:]]
    sizes.insert(0, n - sum(sizes))
    empty = [k for k, s in zip(names, sizes, strict=True) if fractions[k] > 0 and s <= 0]
    if empty:
        shown = ", ".join(f"{k} {s}" for k, s in zip(names, sizes, strict=True))
        raise DataError(f"data: {n} items are too few to split as {dict(fractions)}: {shown}")
    bounds = np.concatenate([[0], np.cumsum(sizes)]).tolist()
    if not shuffle:
        parts: dict[str, Any] = {k: (bounds[i], bounds[i + 1]) for i, k in enumerate(names)}
        return Split(n, "offsets", parts, dict(fractions))
    perm = np.random.default_rng(seed).permutation(n)
    parts = {k: np.sort(perm[bounds[i] : bounds[i + 1]]).astype(np.int64) for i, k in enumerate(names)}
    return Split(n, "indices", parts, dict(fractions), seed=int(seed))


def save_split(path: str | os.PathLike[str], split: Split, source: str | os.PathLike[str] | None = None) -> None:
    """Write `split` as JSON (atomically), recording the sha256 of `source` so a change is noticed.

    Args:
        path: the JSON file to write.
        split: from `make_split`.
        source: the data file the items come from; None keeps what `split` already records.

    Example:
        >>> save_split("data.split.json", make_split(1000), source="data.txt")    # doctest: +SKIP
    """
    if source is not None:
        split.source = str(source)
        split.source_sha256 = sha256_file(source)
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    _atomic_write_text(p, json.dumps(split.to_json()) + "\n")


def load_split(path: str | os.PathLike[str], source: str | os.PathLike[str] | None = None) -> Split:
    """Read a split saved by `save_split`; with `source`, check that the data has not changed.

    Raises:
        DataError: the file is missing or invalid, or `source`'s sha256 differs from the one
            recorded (the split may no longer fit the data).

    Example:
        >>> split = load_split("data.split.json", source="data.txt")     # doctest: +SKIP
    """
    try:
        obj = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"data: split file not found: {path}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DataError(f"data: cannot read the split file {path}: {e}") from None
    split = Split.from_json(obj, where=str(path))
    if source is not None and split.source_sha256 is not None:
        now = sha256_file(source)
        if now != split.source_sha256:
            raise DataError(
                f"data: {source} has changed since the split {path} was made "
                f"(sha256 {split.source_sha256[:12]}... then, {now[:12]}... now); the saved split may no "
                f"longer fit: restore the original file, or delete {path} to make a new split"
            )
    return split


def load_or_make_split(
    path: str | os.PathLike[str],
    source: str | os.PathLike[str],
    num_items: int,
    fractions: Mapping[str, float] | None = None,
    *,
    shuffle: bool = False,
    seed: int = 0,
) -> Split:
    """The saved split at `path` if there is one (checked against `source`), else a new one, saved.

    Rerunning with the same arguments uses the same split. A saved split whose source changed, or
    that was made with other settings (items, fractions, shuffle, seed), is a DataError telling
    what differs, never silently replaced.

    Example:
        >>> split = load_or_make_split("runs/x/split.json", "data.txt", len(tokens))   # doctest: +SKIP
    """
    new = make_split(num_items, fractions, shuffle=shuffle, seed=seed)
    if not Path(path).exists():
        save_split(path, new, source)
        return new
    old = load_split(path, source)
    wanted = {"num_items": new.num_items, "fractions": new.fractions, "shuffle": new.kind == "indices"}
    saved = {"num_items": old.num_items, "fractions": old.fractions, "shuffle": old.kind == "indices"}
    if shuffle:
        wanted["seed"], saved["seed"] = new.seed, old.seed
    for key in wanted:
        if wanted[key] != saved[key]:
            raise DataError(
                f"data: the split {path} was made with {key}={saved[key]!r}, this run asks for {key}={wanted[key]!r}; "
                f"delete {path} to make a new split, or use the same settings"
            )
    return old
