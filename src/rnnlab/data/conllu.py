"""Many-to-many tagging data: part-of-speech tagged sentences from CoNLL-U files (Universal Dependencies).

A CoNLL-U file holds one word per line, 10 tab-separated columns
(ID FORM LEMMA UPOS XPOS FEATS HEAD DEPREL DEPS MISC), comment lines starting with `#`, and a blank
line after each sentence. A tagger reads the words (FORM) and predicts one tag per word: the
universal tag (UPOS, 17 classes) by default, or the treebank's own tag (XPOS). Multiword tokens
(ID `3-4`, e.g. "don't" over "do" + "n't") and empty nodes (ID `3.1`) carry no tag of their own
and are skipped, as taggers evaluated on UD do.

Inputs for the model: word ids (`WordVocab` with `<pad>` and `<unk>`) and, optionally, the
characters of every word (`char_ids`, `pad_char_batch`) so a character-level encoder can build
vectors for unseen words. Targets: tag ids (`LabelVocab`), padded with an ignore index.

Example:
    >>> train = read_conllu("en_ewt-ud-train.conllu")                       # doctest: +SKIP
    >>> words, tags = train[0]                                             # doctest: +SKIP
    >>> word_vocab, tag_vocab, char_vocab = build_tagging_vocabs(train)    # doctest: +SKIP
    >>> dev = read_conllu("en_ewt-ud-dev.conllu", tag_vocab=tag_vocab)      # doctest: +SKIP
    >>> x, y = encode_tagging(dev, word_vocab, tag_vocab)                  # doctest: +SKIP
    >>> ids, lengths = pad_batch(x[:32], word_vocab.pad_id)                # doctest: +SKIP
    >>> tags, _ = pad_batch(y[:32], IGNORE_INDEX)                          # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from .classify import LabelVocab
from .text import DataError, read_text
from .words import PAD, UNK, WordVocab

COLUMNS = ("id", "form", "lemma", "upos", "xpos", "feats", "head", "deprel", "deps", "misc")
"""The 10 CoNLL-U columns, in file order."""

TAG_COLUMNS = tuple(c for c in COLUMNS if c not in ("id", "form"))
"""The columns a tagger can predict: all but the token id and the word itself."""

IGNORE_INDEX = -100
"""Pad tag targets with this (PyTorch's `cross_entropy` default `ignore_index`)."""


def _is_number(s: str) -> bool:
    """ASCII digits only: str.isdigit() also accepts '²', which int() then refuses."""
    return s.isascii() and s.isdigit()


def read_conllu(
    path: str | os.PathLike[str],
    column: str = "upos",
    *,
    tag_vocab: LabelVocab | None = None,
) -> list[tuple[list[str], list[str]]]:
    """The tagged sentences of a CoNLL-U file, strictly parsed.

    Args:
        path: the .conllu file (UTF-8).
        column: the tag column: "upos" (default), "xpos", or another column name from `COLUMNS`
            (e.g. "deprel"); not "id" or "form".
        tag_vocab: the training tags; when given, a tag not in it is an error naming the tag and
            its line (use this when loading evaluation data).

    Returns:
        One (words, tags) pair per sentence, in file order: the FORM and the chosen tag of every
        word (multiword-token lines and empty nodes skipped).

    Raises:
        DataError: with the file and line number, for a line without exactly 10 tab-separated
            columns, a word ID that is not the next integer (1, 2, ...), a bad multiword range, an
            empty FORM, a tag that is empty or "_" (no tag), an unknown tag (with `tag_vocab`),
            and for a file with no sentences.

    Example:
        >>> read_conllu("tiny.conllu")[0]                       # doctest: +SKIP
        (['Hello', 'world', '!'], ['INTJ', 'NOUN', 'PUNCT'])
    """
    if column not in COLUMNS or column in ("id", "form"):
        names = ", ".join(repr(c) for c in COLUMNS[2:])
        raise ValueError(f"column: expected one of {names}, got {column!r}")
    col = COLUMNS.index(column)
    text = read_text(path)

    sentences: list[tuple[list[str], list[str]]] = []
    words: list[str] = []
    tags: list[str] = []
    pending: tuple[int, int] | None = None  # (last word ID of an open multiword range, its line)

    def where(lineno: int) -> str:
        return f"data: {path} line {lineno}"

    # split on "\n" only: str.splitlines would also split on \x1c, \u2028 ... and skew line numbers
    lines = text.split("\n")
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            if pending is not None:
                raise DataError(
                    f"{where(pending[1])}: the sentence ends before word {pending[0]} of this multiword range"
                )
            if words:
                sentences.append((words, tags))
                words, tags = [], []
            continue
        if line.startswith("#"):
            continue
        fields = line.split("\t")
        if len(fields) != 10:
            raise DataError(f"{where(lineno)}: expected 10 tab-separated columns, got {len(fields)}")
        wid = fields[0]
        if "-" in wid:
            # a multiword token, e.g. "3-4  don't": its words follow on their own lines
            lo, _, hi = wid.partition("-")
            if not (_is_number(lo) and _is_number(hi) and int(lo) == len(words) + 1 and int(hi) > int(lo)):
                raise DataError(
                    f"{where(lineno)}: expected a multiword range starting at word {len(words) + 1} "
                    f"(like {len(words) + 1}-{len(words) + 2}), got ID {wid!r}"
                )
            pending = (int(hi), lineno)
            continue
        if "." in wid:
            # an empty node (enhanced dependencies), e.g. "8.1": not a word of the sentence
            major, _, minor = wid.partition(".")
            if not (_is_number(major) and _is_number(minor) and int(major) == len(words)):
                raise DataError(
                    f"{where(lineno)}: expected an empty node ID like {len(words)}.1 (after word {len(words)}), got {wid!r}"
                )
            continue
        if not _is_number(wid) or int(wid) != len(words) + 1:
            raise DataError(f"{where(lineno)}: expected word ID {len(words) + 1}, got {wid!r}")
        form, tag = fields[1], fields[col].strip()
        if not form:
            raise DataError(f"{where(lineno)}: empty FORM (column 2)")
        # in FEATS and MISC "_" is the empty value; a LEMMA may be "_" (the underscore's own, or one
        # the treebank leaves unspecified, as EWT does for its "goeswith" parts)
        if not tag or (tag == "_" and column not in ("feats", "misc", "lemma")):
            hint = "; this treebank has no XPOS tags: tag UPOS (--column upos)" if column == "xpos" else ""
            raise DataError(f"{where(lineno)}: no {column.upper()} tag (column {col + 1} is {tag or 'empty'!r}){hint}")
        if tag_vocab is not None and tag not in tag_vocab:
            raise DataError(tag_vocab._unknown_message(tag, f"{path} line {lineno}", kind="tag"))
        words.append(form)
        tags.append(tag)
        if pending is not None and len(words) >= pending[0]:
            pending = None
    if pending is not None:
        raise DataError(f"{where(pending[1])}: the file ends before word {pending[0]} of this multiword range")
    if words:  # the last sentence may lack its closing blank line
        sentences.append((words, tags))
    if not sentences:
        raise DataError(f"data: no sentences in {path} (expected CoNLL-U: 10 tab-separated columns per word)")
    return sentences


def build_tagging_vocabs(
    sentences: Sequence[tuple[Sequence[str], Sequence[str]]],
    *,
    min_freq: int = 1,
    max_size: int | None = None,
    lower: bool = False,
) -> tuple[WordVocab, LabelVocab, WordVocab]:
    """The word, tag and character vocabularies of training sentences.

    Args:
        sentences: (words, tags) pairs, e.g. from `read_conllu` on the training file.
        min_freq, max_size: for the word vocabulary (rarer words become `<unk>`); the character
            vocabulary keeps every character.
        lower: lowercase words (saved with the vocabulary; the characters keep their case).

    Returns:
        (word_vocab, tag_vocab, char_vocab): words with `<pad>`=0 and `<unk>`=1; the tags; the
        characters of the words with `<pad>`=0 and `<unk>`=1.

    Example:
        >>> w, t, c = build_tagging_vocabs([(["a", "b"], ["X", "Y"])])
        >>> w.itos, t.itos, c.itos
        (['<pad>', '<unk>', 'a', 'b'], ['X', 'Y'], ['<pad>', '<unk>', 'a', 'b'])
    """
    if not sentences:
        raise DataError("data: cannot build tagging vocabularies: no sentences")
    specials = (PAD, UNK)
    word_vocab = WordVocab.build(
        ([w.lower() for w in words] if lower else words for words, _ in sentences),
        min_freq=min_freq,
        max_size=max_size,
        specials=specials,
        lower=lower,
    )
    tag_vocab = LabelVocab.from_labels(t for _, tags in sentences for t in tags)
    char_vocab = WordVocab.build((w for words, _ in sentences for w in words), specials=specials, level="char")
    return word_vocab, tag_vocab, char_vocab


def encode_tagging(
    sentences: Sequence[tuple[Sequence[str], Sequence[str]]],
    word_vocab: WordVocab,
    tag_vocab: LabelVocab,
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Word ids and tag ids of every sentence.

    Words are looked up as they are (lowercased first if the vocabulary was built with
    `lower=True`); unknown words become `<unk>`, unknown tags are a DataError (load evaluation data
    with `read_conllu(..., tag_vocab=...)` to get the line number).

    Returns:
        (word_ids, tag_ids): lists of int64 arrays, each of shape (T_sentence,).

    Example:
        >>> w, t, _ = build_tagging_vocabs([(["a", "b"], ["X", "Y"])])
        >>> x, y = encode_tagging([(["b", "zzz"], ["Y", "X"])], w, t)
        >>> x[0].tolist(), y[0].tolist()
        ([3, 1], [1, 0])
    """
    word_ids, tag_ids = [], []
    for words, tags in sentences:
        if len(words) != len(tags):
            raise ValueError(f"sentences: expected one tag per word, got {len(words)} words and {len(tags)} tags")
        word_ids.append(word_vocab.encode([w.lower() for w in words] if word_vocab.lower else words))
        tag_ids.append(tag_vocab.encode(tags))
    return word_ids, tag_ids


def char_ids(
    words: Sequence[str], char_vocab: WordVocab, *, max_word_len: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The characters of each word of one sentence as ids, right-padded with `<pad>`.

    Args:
        words: the T words.
        char_vocab: a character vocabulary with `<pad>` (and `<unk>` for unseen characters).
        max_word_len: keep at most this many characters of a word (the first ones); None: all.

    Returns:
        ids: int64, shape (T, C) with C the longest (cut) word.
        lengths: int64, shape (T,): characters per word.

    Example:
        >>> _, _, c = build_tagging_vocabs([(["ab", "b"], ["X", "Y"])])
        >>> ids, lengths = char_ids(["ab", "b", "c"], c)
        >>> ids.tolist(), lengths.tolist()
        ([[3, 2], [2, 0], [1, 0]], [2, 1, 1])
    """
    if char_vocab.pad_id is None or char_vocab.level != "char":
        raise ValueError("char_vocab: expected a character vocabulary (level='char') with <pad>")
    if len(words) == 0:
        raise ValueError("words: expected at least one word")
    if max_word_len is not None and (
        isinstance(max_word_len, bool) or not isinstance(max_word_len, int) or max_word_len < 1
    ):
        raise ValueError(f"max_word_len: expected an int >= 1 or None, got {max_word_len!r}")
    cut = [w[:max_word_len] if max_word_len is not None else w for w in words]
    lengths = np.array([len(w) for w in cut], dtype=np.int64)
    out = np.full((len(cut), max(int(lengths.max()), 1)), char_vocab.pad_id, dtype=np.int64)
    for i, w in enumerate(cut):
        out[i, : len(w)] = char_vocab.encode(list(w))
    return out, lengths


def pad_char_batch(
    sentences: Sequence[Sequence[str]], char_vocab: WordVocab, *, max_word_len: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Character ids of a batch of sentences, padded over words and over characters.

    Args:
        sentences: B sentences, each a list of words.
        char_vocab, max_word_len: as for `char_ids`.

    Returns:
        ids: int64, shape (B, T_max, C_max), `<pad>` where there is no character.
        lengths: int64, shape (B, T_max): characters per word, 0 for padding words.

    Example:
        >>> _, _, c = build_tagging_vocabs([(["ab", "b"], ["X", "Y"])])
        >>> ids, lengths = pad_char_batch([["ab", "b"], ["b"]], c)
        >>> ids.shape, lengths.tolist()
        ((2, 2, 2), [[2, 1], [1, 0]])
    """
    if len(sentences) == 0:
        raise ValueError("sentences: expected at least one sentence")
    per = [char_ids(words, char_vocab, max_word_len=max_word_len) for words in sentences]
    T = max(ids.shape[0] for ids, _ in per)
    C = max(ids.shape[1] for ids, _ in per)
    out = np.full((len(per), T, C), char_vocab.pad_id, dtype=np.int64)
    lengths = np.zeros((len(per), T), dtype=np.int64)
    for b, (ids, lens) in enumerate(per):
        out[b, : ids.shape[0], : ids.shape[1]] = ids
        lengths[b, : len(lens)] = lens
    return out, lengths
