"""Sequence-to-sequence data: synthetic tasks (reverse, sort) and user TSV files of pairs.

An encoder reads the source; a decoder, fed `<bos>` and then the target one token at a time
(teacher forcing), predicts the target followed by `<eos>`. So every pair becomes
`src` (source ids), `tgt_in` = `<bos> + target` and `tgt_out` = `target + <eos>`; `collate_pairs`
pads a batch of them. The vocabularies have `<pad>`=0, `<bos>`=1, `<eos>`=2, `<unk>`=3, and work
at character level (each character a token, for the synthetic tasks and e.g. transliteration)
or word level (`words.tokenize`, e.g. translation).

Example:
    >>> pairs = make_task("reverse", 1000, seed=0)                         # doctest: +SKIP
    >>> src_vocab, tgt_vocab = build_seq2seq_vocabs(pairs, level="char")   # doctest: +SKIP
    >>> encoded = encode_pairs(pairs, src_vocab, tgt_vocab)                # doctest: +SKIP
    >>> batch = collate_pairs(encoded[:32], src_vocab, tgt_vocab)          # doctest: +SKIP
    >>> batch["src"].shape, batch["tgt_in"].shape                          # doctest: +SKIP
    ((32, 10), (32, 11))
"""

from __future__ import annotations

import os
import string
from collections.abc import Sequence

import numpy as np

from .classify import pad_batch, read_rows
from .text import DataError
from .words import BOS, EOS, PAD, UNK, WordVocab

SPECIALS = (PAD, BOS, EOS, UNK)
"""The special tokens of sequence-to-sequence vocabularies, in id order: `<pad>`=0, `<bos>`=1, `<eos>`=2, `<unk>`=3."""

TASKS = ("reverse", "sort")
"""The built-in synthetic tasks."""

ALPHABETS = {"digits": string.digits, "letters": string.ascii_lowercase}
"""Named alphabets for the synthetic tasks."""


def make_task(
    task: str,
    n: int,
    *,
    seed: int = 0,
    min_len: int = 1,
    max_len: int = 10,
    alphabet: str = "digits",
) -> list[tuple[str, str]]:
    """Random (source, target) pairs of a synthetic task.

    `reverse`: the target is the source backwards ("123" -> "321"). `sort`: the target is the
    source's characters in alphabet order ("312" -> "123"). Lengths are uniform in
    [min_len, max_len]; characters uniform over the alphabet. The same arguments give the same
    pairs on every platform (NumPy's PCG64 generator).

    Args:
        task: "reverse" or "sort".
        n: number of pairs.
        seed: random seed (use different seeds for train and validation sets).
        min_len, max_len: source length range, inclusive.
        alphabet: "digits", "letters", or the characters themselves (e.g. "abc").

    Returns:
        n (source, target) string pairs.

    Example:
        >>> make_task("sort", 2, seed=0, max_len=5)
        [('52300', '00235'), ('0186', '0168')]
    """
    if task not in TASKS:
        raise ValueError(f"task: expected one of {', '.join(TASKS)}, got {task!r}")
    for name, value in (("n", n), ("min_len", min_len), ("max_len", max_len)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name}: expected a positive int, got {value!r}")
    if min_len > max_len:
        raise ValueError(f"min_len, max_len: expected min_len <= max_len, got {min_len} > {max_len}")
    chars = ALPHABETS.get(alphabet, alphabet)
    if not isinstance(chars, str) or len(chars) < 2 or len(set(chars)) != len(chars):
        raise ValueError(f"alphabet: expected 'digits', 'letters' or at least 2 distinct characters, got {alphabet!r}")
    rng = np.random.default_rng(seed)
    lengths = rng.integers(min_len, max_len + 1, size=n)
    rank = {c: i for i, c in enumerate(chars)}
    pairs = []
    for length in lengths.tolist():
        src = "".join(chars[i] for i in rng.integers(0, len(chars), size=length).tolist())
        tgt = src[::-1] if task == "reverse" else "".join(sorted(src, key=rank.__getitem__))
        pairs.append((src, tgt))
    return pairs


def load_pairs(path: str | os.PathLike[str], *, delimiter: str | None = "\t") -> list[tuple[str, str]]:
    """(source, target) pairs from a file of `source<TAB>target` lines.

    Args:
        path: the file (UTF-8; blank lines skipped; no header).
        delimiter: "\\t" (default), ",", or None to detect it by extension / first line.

    Returns:
        The stripped (source, target) pairs, in file order.

    Raises:
        DataError: a line without exactly 2 columns or with an empty side (with its line
            number), or no pairs.

    Example:
        >>> load_pairs("en-fr.tsv")[:1]                             # doctest: +SKIP
        [('I am cold.', "J'ai froid.")]
    """
    delimiter, rows = read_rows(path, delimiter)
    if not rows:
        raise DataError(f"data: no pairs in {path}")
    name = "tab" if delimiter == "\t" else repr(delimiter)
    pairs = []
    for lineno, fields in rows:
        if len(fields) != 2:
            raise DataError(
                f"data: {path} line {lineno}: expected 2 {name}-separated columns (source, target), got {len(fields)}"
            )
        src, tgt = fields[0].strip(), fields[1].strip()
        if not src or not tgt:
            side = "source" if not src else "target"
            raise DataError(f"data: {path} line {lineno}: empty {side}")
        pairs.append((src, tgt))
    return pairs


def build_seq2seq_vocabs(
    pairs: Sequence[tuple[str, str]],
    *,
    level: str = "char",
    min_freq: int = 1,
    max_size: int | None = None,
    lower: bool = False,
    shared: bool = False,
) -> tuple[WordVocab, WordVocab]:
    """Source and target vocabularies of training pairs, with `<pad>`, `<bos>`, `<eos>`, `<unk>`.

    Args:
        pairs: (source, target) strings.
        level: "char" (every character a token) or "word" (`words.tokenize`).
        min_freq, max_size: rarer tokens become `<unk>`.
        lower: lowercase both sides.
        shared: one vocabulary for both sides (returned twice), e.g. for the synthetic tasks.

    Example:
        >>> src, tgt = build_seq2seq_vocabs([("ab", "ba")], shared=True)
        >>> src.itos
        ['<pad>', '<bos>', '<eos>', '<unk>', 'a', 'b']
    """
    if not pairs:
        raise DataError("data: cannot build vocabularies: no pairs")
    probe = WordVocab(["x"], specials=SPECIALS, level=level, lower=lower)  # only for its tokenize()
    src_tokens = [probe.tokenize(s) for s, _ in pairs]
    tgt_tokens = [probe.tokenize(t) for _, t in pairs]
    kwargs = {"min_freq": min_freq, "max_size": max_size, "specials": SPECIALS, "level": level, "lower": lower}
    if shared:
        vocab = WordVocab.build(src_tokens + tgt_tokens, **kwargs)
        return vocab, vocab
    return WordVocab.build(src_tokens, **kwargs), WordVocab.build(tgt_tokens, **kwargs)


def encode_pairs(
    pairs: Sequence[tuple[str, str]], src_vocab: WordVocab, tgt_vocab: WordVocab
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Token ids of every pair: (source ids, target ids), without `<bos>`/`<eos>` (see `collate_pairs`).

    Example:
        >>> src, tgt = build_seq2seq_vocabs([("ab", "ba")], shared=True)
        >>> [(s.tolist(), t.tolist()) for s, t in encode_pairs([("abc", "b")], src, tgt)]
        [([4, 5, 3], [5])]
    """
    for name, v in (("src_vocab", src_vocab), ("tgt_vocab", tgt_vocab)):
        missing = [s for s in SPECIALS if s not in v.specials]
        if missing:
            raise ValueError(f"{name}: expected the specials {list(SPECIALS)!r}, missing {missing!r}")
    return [(src_vocab.encode_text(s, newline=False), tgt_vocab.encode_text(t, newline=False)) for s, t in pairs]


def collate_pairs(
    batch: Sequence[tuple[np.ndarray, np.ndarray]], src_vocab: WordVocab, tgt_vocab: WordVocab
) -> dict[str, np.ndarray]:
    """Pad a batch of encoded pairs for teacher forcing.

    Args:
        batch: (source ids, target ids) pairs from `encode_pairs`.
        src_vocab, tgt_vocab: the vocabularies (for `<pad>`, `<bos>`, `<eos>`).

    Returns:
        A dict of int64 arrays:
            src (B, S) source ids padded with `<pad>`; src_lengths (B,);
            tgt_in (B, T) `<bos>` + target, padded with `<pad>`;
            tgt_out (B, T) target + `<eos>`, padded with `<pad>` (use it as the loss's ignore_index);
            tgt_lengths (B,) = target length + 1.

    Example:
        >>> src, tgt = build_seq2seq_vocabs([("ab", "ba")], shared=True)
        >>> b = collate_pairs(encode_pairs([("ab", "ba"), ("a", "a")], src, tgt), src, tgt)
        >>> b["src"].tolist(), b["tgt_in"].tolist(), b["tgt_out"].tolist()
        ([[4, 5], [4, 0]], [[1, 5, 4], [1, 4, 0]], [[5, 4, 2], [4, 2, 0]])
    """
    if len(batch) == 0:
        raise ValueError("batch: expected at least one pair")
    bos = np.array([tgt_vocab.bos_id], dtype=np.int64)
    eos = np.array([tgt_vocab.eos_id], dtype=np.int64)
    src, src_lengths = pad_batch([s for s, _ in batch], src_vocab.pad_id)
    tgt_in, tgt_lengths = pad_batch([np.concatenate([bos, t]) for _, t in batch], tgt_vocab.pad_id)
    tgt_out, _ = pad_batch([np.concatenate([t, eos]) for _, t in batch], tgt_vocab.pad_id)
    return {"src": src, "src_lengths": src_lengths, "tgt_in": tgt_in, "tgt_out": tgt_out, "tgt_lengths": tgt_lengths}
