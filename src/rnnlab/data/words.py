"""Token vocabularies for words (and, for sequence-to-sequence and tagging, for characters).

A word-level language model follows PyTorch's `word_language_model` example: the text is split
into tokens, every line end becomes an `<eos>` token, and the ids of the whole text form one
stream that `text.StreamBatcher` cuts into truncated-BPTT batches. Unlike that example, the
vocabulary comes from the training text only: words seen fewer than `min_freq` times, or past the
`max_size` most frequent, become `<unk>`, so validation text with unseen words still encodes.

Tokenisation keeps any script: a word is a run of letters, digits, `_` and combining marks
(so Devanagari or Thai vowel signs stay inside their word), and every other non-space character
is a token of its own, with its combining marks, emoji modifiers and zero-width-joiner sequences
attached (so "❤️", "👍🏽" and "👨‍👩‍👧" are one token each). Scripts written without spaces (Chinese,
Japanese) give one token per run of characters between spaces or punctuation.

The same `WordVocab` class serves other tasks: with `level="char"` its tokens are single
characters (sequence-to-sequence at character level, the character inputs of a tagger), and its
special tokens are chosen per task (`<pad>`, `<unk>`, `<bos>`, `<eos>`).
"""

from __future__ import annotations

import functools
import re
import sys
import unicodedata
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from .text import CharVocab, DataError

PAD = "<pad>"
UNK = "<unk>"
BOS = "<bos>"
EOS = "<eos>"

# ---------------------------------------------------------------------------------------------
# tokenisation


@functools.cache
def _mark_class() -> str:
    """A regex character class body for every combining mark (Unicode category M*).

    Python's `\\w` matches letters and digits but not combining marks, so without this "हिन्दी"
    would fall apart at each vowel sign. Built once, lazily: planes 2-13 hold only ideographs or
    nothing, so scanning planes 0-1 and 14 finds every mark (about 70 ms).
    """
    ranges: list[tuple[int, int]] = []
    for lo, hi in ((0, 0x1FFFF), (0xE0000, min(0xE0FFF, sys.maxunicode))):
        start = None
        for cp in range(lo, hi + 2):
            is_mark = cp <= hi and unicodedata.category(chr(cp)).startswith("M")
            if is_mark and start is None:
                start = cp
            elif not is_mark and start is not None:
                ranges.append((start, cp - 1))
                start = None
    return "".join(f"\\U{a:08x}-\\U{b:08x}" if a != b else f"\\U{a:08x}" for a, b in ranges)


@functools.cache
def _token_re() -> re.Pattern[str]:
    marks = _mark_class()
    ext = f"[{marks}\\U0001F3FB-\\U0001F3FF]"  # combining marks and emoji skin-tone modifiers
    sym = f"[^\\w\\s]{ext}*"
    return re.compile(
        "|".join(
            [
                re.escape(UNK),  # corpora like Penn Treebank already contain the literal <unk>
                f"[\\w{marks}]+",  # a word: letters, digits, _ and combining marks
                "[\\U0001F1E6-\\U0001F1FF]{2}",  # a flag: a pair of regional indicators
                f"{sym}(?:\\u200d{sym})*",  # any other character, with its ZWJ sequence
                "\\n",  # line ends are found here so `tokenize` can turn them into a token
            ]
        )
    )


_ASCII_TOKEN_RE = re.compile(re.escape(UNK) + r"|\w+|[^\w\s]|\n")


def tokenize(text: str, *, lower: bool = False, newline: str | None = None) -> list[str]:
    """Split `text` into word and punctuation tokens, in any script.

    Args:
        text: the text.
        lower: lowercase the text first.
        newline: if given, every "\\n" becomes this token (e.g. "<eos>", as PyTorch's
            word_language_model does at each line end); if None, line ends are plain whitespace.

    Returns:
        The tokens, in order. A literal "<unk>" in the text stays one token.

    Example:
        >>> tokenize("Hello, world!\\nΚαλημέρα 世界 🙂", newline="<eos>")
        ['Hello', ',', 'world', '!', '<eos>', 'Καλημέρα', '世界', '🙂']
    """
    if not isinstance(text, str):
        raise TypeError(f"text: expected str, got {type(text).__name__}")
    if lower:
        text = text.lower()
    # ASCII text has no combining marks or emoji: the simple pattern is about 3x faster
    pattern = _ASCII_TOKEN_RE if text.isascii() else _token_re()
    tokens = pattern.findall(text)
    if newline is None:
        return [t for t in tokens if t != "\n"]
    return [newline if t == "\n" else t for t in tokens]


def detokenize(tokens: Iterable[str], *, newline: str | None = EOS, level: str = "word") -> str:
    """Readable text for tokens: words joined by spaces (characters by nothing), `newline` as "\\n".

    Not the exact inverse of `tokenize` (the spaces between words and punctuation are lost);
    meant for showing samples and predictions.

    Example:
        >>> detokenize(["Hello", ",", "world", "<eos>", "bye"])
        'Hello , world\\nbye'
    """
    sep = " " if level == "word" else ""
    lines: list[list[str]] = [[]]
    for t in tokens:
        if newline is not None and t == newline:
            lines.append([])
        else:
            lines[-1].append(t)
    return "\n".join(sep.join(line) for line in lines)


# ---------------------------------------------------------------------------------------------
# vocabulary

_LEVELS = ("word", "char")


class WordVocab:
    """A vocabulary of string tokens: the special tokens first, then the ordinary tokens.

    Ordinary tokens are words (`level="word"`, split by `tokenize`) or single characters
    (`level="char"`). Ids are `0..len-1`; the specials take the first ids in the order given, so
    with the default specials `<pad>` is 0 (what `pad_batch` pads with), `<unk>` is 1 and `<eos>`
    is 2. Encoding maps a token the vocabulary lacks to `<unk>` (a DataError if there is no
    `<unk>`).

    Args:
        tokens: the ordinary tokens in id order (after the specials); distinct, none a special.
        specials: the special tokens, in id order.
        level: "word" or "char": how `tokenize`/`encode_text` split text.
        lower: lowercase text before splitting it (a word-level setting saved with the vocab).

    Attributes:
        itos: token for each id. stoi: id for each token.
        pad_id, unk_id, bos_id, eos_id: the id of `<pad>`, `<unk>`, `<bos>`, `<eos>`, or None.

    Example:
        >>> v = WordVocab.from_text("the cat sat\\nthe dog\\n")
        >>> v.itos
        ['<pad>', '<unk>', '<eos>', 'the', 'cat', 'dog', 'sat']
        >>> v.encode_text("the bird sat\\n").tolist()
        [3, 1, 6, 2]
        >>> v.decode_text([3, 4, 2, 3, 5])
        'the cat\\nthe dog'
    """

    def __init__(
        self,
        tokens: Iterable[str],
        *,
        specials: Sequence[str] = (PAD, UNK, EOS),
        level: str = "word",
        lower: bool = False,
    ) -> None:
        tokens, specials = list(tokens), list(specials)
        if level not in _LEVELS:
            raise ValueError(f"level: expected 'word' or 'char', got {level!r}")
        for t in [*specials, *tokens]:
            if not isinstance(t, str) or not t:
                raise ValueError(f"tokens: expected non-empty strings, got {t!r}")
        if level == "char":
            bad = [t for t in tokens if len(t) != 1]
            if bad:
                raise ValueError(f"tokens: with level='char' expected single characters, got {bad[0]!r}")
        every = specials + tokens
        if len(set(every)) != len(every):
            dup = sorted({t for t in every if every.count(t) > 1})
            raise ValueError(f"tokens: expected distinct tokens (specials included), got duplicates {dup!r}")
        self.level = level
        self.lower = bool(lower)
        self.specials: list[str] = specials
        self.itos: list[str] = every
        self.stoi: dict[str, int] = {t: i for i, t in enumerate(every)}
        self.pad_id: int | None = self.stoi.get(PAD) if PAD in specials else None
        self.unk_id: int | None = self.stoi.get(UNK) if UNK in specials else None
        self.bos_id: int | None = self.stoi.get(BOS) if BOS in specials else None
        self.eos_id: int | None = self.stoi.get(EOS) if EOS in specials else None

    # -- construction ---------------------------------------------------------------------------
    @classmethod
    def from_counts(
        cls,
        counts: Mapping[str, int],
        *,
        min_freq: int = 1,
        max_size: int | None = None,
        specials: Sequence[str] = (PAD, UNK, EOS),
        level: str = "word",
        lower: bool = False,
    ) -> WordVocab:
        """Vocabulary of the tokens counted at least `min_freq` times, most frequent first.

        Args:
            counts: token -> count (e.g. a `collections.Counter`). Specials in it are ignored.
            min_freq: keep tokens seen at least this often; the rest become `<unk>`.
            max_size: keep at most this many ordinary tokens (specials not counted), or None.
            specials, level, lower: as for the constructor.

        Ties in frequency are broken by the token's text, so the ids are reproducible.

        Example:
            >>> WordVocab.from_counts({"a": 3, "b": 1, "c": 3}, min_freq=2).itos
            ['<pad>', '<unk>', '<eos>', 'a', 'c']
        """
        if isinstance(min_freq, bool) or not isinstance(min_freq, int) or min_freq < 1:
            raise ValueError(f"min_freq: expected an int >= 1, got {min_freq!r}")
        if max_size is not None and (isinstance(max_size, bool) or not isinstance(max_size, int) or max_size < 1):
            raise ValueError(f"max_size: expected an int >= 1 or None, got {max_size!r}")
        special_set = set(specials)
        kept = [(t, c) for t, c in counts.items() if c >= min_freq and t not in special_set]
        kept.sort(key=lambda tc: (-tc[1], tc[0]))
        if max_size is not None:
            kept = kept[:max_size]
        if not kept:
            most = max(counts.values(), default=0)
            raise DataError(
                f"data: no token is frequent enough for the vocabulary: min_freq={min_freq}, "
                f"but the most frequent of {len(counts)} distinct tokens occurs {most} time(s)"
            )
        return cls([t for t, _ in kept], specials=specials, level=level, lower=lower)

    @classmethod
    def build(
        cls,
        token_lists: Iterable[Sequence[str]],
        *,
        min_freq: int = 1,
        max_size: int | None = None,
        specials: Sequence[str] = (PAD, UNK, EOS),
        level: str = "word",
        lower: bool = False,
    ) -> WordVocab:
        """Vocabulary of already tokenised sequences (sentences of a tagger, target sides of pairs).

        Example:
            >>> WordVocab.build([["a", "b"], ["b"]], specials=("<pad>", "<unk>")).itos
            ['<pad>', '<unk>', 'b', 'a']
        """
        counts: Counter[str] = Counter()
        for seq in token_lists:
            counts.update(seq)
        return cls.from_counts(
            counts, min_freq=min_freq, max_size=max_size, specials=specials, level=level, lower=lower
        )

    @classmethod
    def from_text(
        cls,
        text: str,
        *,
        min_freq: int = 1,
        max_size: int | None = None,
        lower: bool = False,
        newline: bool = True,
    ) -> WordVocab:
        """Word vocabulary of a training text for a language model: `<pad>`, `<unk>`, `<eos>`, words.

        Args:
            text: the training text.
            min_freq, max_size: as for `from_counts`.
            lower: lowercase the text (saved with the vocabulary, so `encode_text` does the same).
            newline: line ends are `<eos>` tokens (word_language_model); False: plain whitespace.

        Example:
            >>> WordVocab.from_text("a b a\\n", min_freq=2).itos
            ['<pad>', '<unk>', '<eos>', 'a']
        """
        counts = Counter(tokenize(text, lower=lower, newline=EOS if newline else None))
        return cls.from_counts(counts, min_freq=min_freq, max_size=max_size, lower=lower)

    # -- encoding -------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.itos)

    def __contains__(self, token: object) -> bool:
        return token in self.stoi

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, WordVocab):
            return NotImplemented
        return (self.itos, self.specials, self.level, self.lower) == (
            other.itos,
            other.specials,
            other.level,
            other.lower,
        )

    def __hash__(self) -> int:
        return hash((tuple(self.itos), len(self.specials), self.level, self.lower))

    def __repr__(self) -> str:
        return f"WordVocab(size={len(self)}, level={self.level!r}, specials={self.specials!r})"

    def tokenize(self, text: str, *, newline: bool = False) -> list[str]:
        """Split `text` as this vocabulary expects: words (`tokenize`) or characters.

        Args:
            text: the text.
            newline: every "\\n" becomes `<eos>` (requires `<eos>` among the specials).

        Example:
            >>> WordVocab(["a"], level="char", specials=("<pad>",)).tokenize("ab c")
            ['a', 'b', ' ', 'c']
        """
        if newline and self.eos_id is None:
            raise ValueError("newline: this vocabulary has no <eos> token to stand for line ends")
        if self.level == "word":
            return tokenize(text, lower=self.lower, newline=EOS if newline else None)
        if not isinstance(text, str):
            raise TypeError(f"text: expected str, got {type(text).__name__}")
        if self.lower:
            text = text.lower()
        return [EOS if newline and c == "\n" else c for c in text]

    def encode(self, tokens: Iterable[str]) -> np.ndarray:
        """Ids of `tokens`; a token the vocabulary lacks becomes `<unk>`.

        Args:
            tokens: already split tokens.

        Returns:
            int64 array of shape (len(tokens),).

        Raises:
            DataError: a token is unknown and there is no `<unk>` (names up to 10 of them).

        Example:
            >>> v = WordVocab(["cat"])
            >>> v.encode(["cat", "dog"]).tolist()
            [3, 1]
        """
        if isinstance(tokens, str):
            raise TypeError("tokens: expected a sequence of tokens, got a str (use encode_text for raw text)")
        stoi, unk = self.stoi, self.unk_id
        if unk is not None:
            return np.fromiter((stoi.get(t, unk) for t in tokens), dtype=np.int64)
        tokens = list(tokens)
        ids = [stoi.get(t, -1) for t in tokens]
        if -1 in ids:
            unknown = list(dict.fromkeys(t for t, i in zip(tokens, ids, strict=True) if i < 0))
            shown = ", ".join(repr(t) for t in unknown[:10])
            more = f" and {len(unknown) - 10} more" if len(unknown) > 10 else ""
            raise DataError(
                f"data: {len(unknown)} token(s) not in the vocabulary of {len(self)} tokens, which has no {UNK}: "
                f"{shown}{more}"
            )
        return np.asarray(ids, dtype=np.int64)

    def encode_text(self, text: str, *, newline: bool | None = None) -> np.ndarray:
        """Ids of raw text: `encode(tokenize(text))`.

        Args:
            text: the text.
            newline: line ends become `<eos>`; default: when the vocabulary has `<eos>`.

        Example:
            >>> WordVocab.from_text("hi there\\n").encode_text("hi\\nthere").tolist()
            [3, 2, 4]
        """
        if newline is None:
            newline = self.eos_id is not None
        return self.encode(self.tokenize(text, newline=newline))

    def decode(self, ids: Iterable[int] | np.ndarray, *, skip_specials: bool = False) -> list[str]:
        """Tokens for `ids`.

        Args:
            ids: token ids, shape (n,).
            skip_specials: drop `<pad>`, `<bos>` and the other special tokens (but keep `<unk>`,
                and `<eos>` when it stands for line ends).

        Example:
            >>> v = WordVocab(["a", "b"], specials=("<pad>", "<bos>", "<eos>", "<unk>"))
            >>> v.decode([1, 4, 5, 2, 0], skip_specials=True)
            ['a', 'b']
        """
        arr = np.asarray(list(ids) if not isinstance(ids, np.ndarray) else ids)
        if arr.size and not np.issubdtype(arr.dtype, np.integer):
            raise TypeError(f"ids: expected integers, got dtype {arr.dtype}")
        arr = arr.reshape(-1).astype(np.int64)
        if arr.size and (arr.min() < 0 or arr.max() >= len(self)):
            bad = int(arr[(arr < 0) | (arr >= len(self))][0])
            raise ValueError(f"ids: expected ids in [0, {len(self)}), got {bad}")
        out = [self.itos[i] for i in arr.tolist()]
        if skip_specials:
            keep = {UNK}
            if self.eos_id is not None and self.bos_id is None:
                keep.add(EOS)  # without <bos>, <eos> marks line ends (language model), not the end
            drop = set(self.specials) - keep
            out = [t for t in out if t not in drop]
        return out

    def decode_text(self, ids: Iterable[int] | np.ndarray) -> str:
        """Readable text for `ids` (see `detokenize`); `<pad>` and `<bos>` vanish.

        `<eos>` is a line end in a vocabulary without `<bos>` (a language model); with `<bos>`
        (sequence-to-sequence) it ends the sequence, so a decoder's output is cut at its first `<eos>`.

        Example:
            >>> v = WordVocab.from_text("a b\\n")
            >>> v.decode_text(v.encode_text("a b\\nb a"))
            'a b\\nb a'
            >>> s2s = WordVocab(["x", "y"], specials=("<pad>", "<bos>", "<eos>", "<unk>"), level="char")
            >>> s2s.decode_text([1, 4, 5, 2, 4, 0])
            'xy'
        """
        tokens = self.decode(ids)
        if self.bos_id is not None and EOS in tokens:
            tokens = tokens[: tokens.index(EOS)]
        tokens = [t for t in tokens if t not in (PAD, BOS)]
        return detokenize(tokens, newline=EOS, level=self.level)

    # -- serialisation --------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        """A JSON-serialisable dict; tokens (specials included) in id order.

        Example:
            >>> WordVocab(["a"], specials=("<unk>",)).to_json()
            {'type': 'word', 'level': 'word', 'lower': False, 'specials': ['<unk>'], 'tokens': ['<unk>', 'a']}
        """
        return {
            "type": "word",
            "level": self.level,
            "lower": self.lower,
            "specials": list(self.specials),
            "tokens": list(self.itos),
        }

    @classmethod
    def from_json(cls, obj: Any) -> WordVocab:
        """Rebuild a vocabulary from `to_json()`'s dict, validating it.

        Raises:
            DataError: the dict is not a valid word vocabulary.

        Example:
            >>> v = WordVocab.from_text("x y\\n")
            >>> WordVocab.from_json(v.to_json()) == v
            True
        """
        if not isinstance(obj, dict):
            raise DataError(f"vocab: expected a JSON object, got {type(obj).__name__}")
        if obj.get("type") != "word":
            raise DataError(f"vocab: expected type 'word', got {obj.get('type')!r}")
        tokens, specials = obj.get("tokens"), obj.get("specials")
        for key, value in (("tokens", tokens), ("specials", specials)):
            if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
                raise DataError(f"vocab: expected {key!r} to be a list of strings")
        if tokens[: len(specials)] != specials:
            raise DataError(f"vocab: expected the tokens to start with the specials {specials!r}")
        level, lower = obj.get("level", "word"), obj.get("lower", False)
        if not isinstance(lower, bool):
            raise DataError(f"vocab: expected 'lower' to be true or false, got {lower!r}")
        try:
            return cls(tokens[len(specials) :], specials=specials, level=level, lower=lower)
        except ValueError as e:
            raise DataError(f"vocab: {e}") from None


def vocab_from_json(obj: Any) -> CharVocab | WordVocab:
    """Rebuild a `CharVocab` or a `WordVocab` from its `to_json()` dict, by its "type".

    Example:
        >>> vocab_from_json(WordVocab(["a"]).to_json())
        WordVocab(size=4, level='word', specials=['<pad>', '<unk>', '<eos>'])
    """
    kind = obj.get("type", "char") if isinstance(obj, dict) else None
    if kind == "word":
        return WordVocab.from_json(obj)
    if kind == "char":
        return CharVocab.from_json(obj)
    raise DataError(f"vocab: expected type 'char' or 'word', got {kind!r}")
