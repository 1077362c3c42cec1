"""Tests for rnnlab.data.corpus: streaming text, token files on disk (memmap), saved splits."""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from rnnlab.data.corpus import (
    MemmapTokens,
    Split,
    TextStream,
    build_char_vocab_streaming,
    build_word_vocab_streaming,
    count_words_streaming,
    encode_to_memmap,
    header_path,
    load_or_make_split,
    load_split,
    make_split,
    save_split,
    sha256_file,
)
from rnnlab.data.text import CharVocab, DataError, StreamBatcher, iterate_eval_batches, read_text
from rnnlab.data.words import WordVocab, tokenize

SHAKESPEARE = Path(__file__).resolve().parents[2] / "shared" / "data" / "tinyshakespeare.txt"

# Greek (2 bytes), CJK (3 bytes), emoji (4 bytes), CRLF line ends: every chunk size below cuts
# some character and some "\r\n" in two
MIXED = "Καλημέρα κόσμε!\r\n你好，世界。\r\nemoji 🙂👍🏽 ❤️ 👨‍👩‍👧\r\nplain ascii line\r\n\r\nend"
CHUNKS = [1, 2, 3, 5, 7, 64, 1 << 20]


def write_bytes(tmp_path, data: bytes, name="t.txt"):
    p = tmp_path / name
    p.write_bytes(data)
    return p


# ---------------------------------------------------------------------------------------------
# streaming text


@pytest.mark.parametrize("chunk", CHUNKS)
@pytest.mark.parametrize("bom", [False, True])
def test_text_stream_equals_read_text(tmp_path, chunk, bom):
    data = (b"\xef\xbb\xbf" if bom else b"") + MIXED.encode("utf-8")
    p = write_bytes(tmp_path, data)
    stream = TextStream(p, chunk_chars=chunk)
    assert "".join(stream) == read_text(p)
    assert stream.sha256 == hashlib.sha256(data).hexdigest() and stream.num_bytes == len(data)


def test_text_stream_lone_cr_at_the_end(tmp_path):
    p = write_bytes(tmp_path, b"a\r\nb\r")
    assert "".join(TextStream(p, chunk_chars=1)) == read_text(p) == "a\nb\r"


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\xef\xbb\xbf",
        b" \n\t\r\n",
        b"abc\x00def",
        "Καλη".encode() + b"\x00",
        b"caf\xe9 au lait",  # latin-1
        "ok €".encode()[:-1],  # a multi-byte character cut off at the end of the file
        b"\xef\xbb\xbfgood\xff",
        "你好".encode() + b"\x80abc",
    ],
)
@pytest.mark.parametrize("chunk", [1, 4, 1 << 20])
def test_text_stream_errors_match_read_text(tmp_path, data, chunk):
    p = write_bytes(tmp_path, data)
    with pytest.raises(DataError) as expected:
        read_text(p)
    with pytest.raises(DataError, match=re.escape(str(expected.value))):
        "".join(TextStream(p, chunk_chars=chunk))


def test_text_stream_missing_and_directory(tmp_path):
    with pytest.raises(DataError, match="data: file not found"):
        list(TextStream(tmp_path / "nope.txt"))
    with pytest.raises(DataError, match="got a directory"):
        list(TextStream(tmp_path))
    with pytest.raises(ValueError, match="chunk_chars: expected a positive int"):
        TextStream(tmp_path / "x", chunk_chars=0)


def test_sha256_file(tmp_path):
    p = write_bytes(tmp_path, b"x" * 100_000)
    assert sha256_file(p, chunk_bytes=999) == hashlib.sha256(b"x" * 100_000).hexdigest()
    with pytest.raises(DataError, match="file not found"):
        sha256_file(tmp_path / "nope")


# ---------------------------------------------------------------------------------------------
# streaming vocabularies


@pytest.mark.parametrize("chunk", [1, 3, 1 << 20])
def test_build_vocabs_streaming(tmp_path, chunk):
    p = write_bytes(tmp_path, (MIXED + " Plain\r\n" + MIXED).encode())
    text = read_text(p)
    assert build_char_vocab_streaming(p, chunk_chars=chunk) == CharVocab.from_text(text)
    assert build_word_vocab_streaming(p, chunk_chars=chunk) == WordVocab.from_text(text)
    assert build_word_vocab_streaming(p, chunk_chars=chunk, min_freq=2, lower=True, newline=False) == (
        WordVocab.from_text(text, min_freq=2, lower=True, newline=False)
    )


# ---------------------------------------------------------------------------------------------
# token files


@pytest.mark.parametrize("chunk", CHUNKS)
def test_encode_to_memmap_char(tmp_path, chunk):
    src = write_bytes(tmp_path, MIXED.encode())
    vocab = CharVocab.from_text(read_text(src))
    tokens = encode_to_memmap(src, vocab, tmp_path / "out" / "t.bin", chunk_chars=chunk)
    assert tokens.dtype == np.uint16
    assert np.asarray(tokens).tolist() == vocab.encode(read_text(src)).tolist()
    assert tokens.vocab == vocab
    header = json.loads(header_path(tmp_path / "out" / "t.bin").read_text(encoding="utf-8"))
    assert header["length"] == len(tokens) == len(read_text(src))
    assert header["source_sha256"] == hashlib.sha256(MIXED.encode()).hexdigest() == tokens.source_sha256
    assert not list((tmp_path / "out").glob(".*"))  # no temporary files left behind


@pytest.mark.parametrize("chunk", [1, 5, 1 << 20])
def test_encode_to_memmap_words(tmp_path, chunk):
    src = write_bytes(tmp_path, MIXED.encode())
    text = read_text(src)
    vocab = WordVocab.from_text(text[: len(text) // 2])  # words of the second half become <unk>
    tokens = encode_to_memmap(src, vocab, tmp_path / "w.bin", chunk_chars=chunk)
    assert np.asarray(tokens).tolist() == vocab.encode_text(text).tolist()
    assert (np.asarray(tokens) == vocab.unk_id).any()
    assert MemmapTokens(tmp_path / "w.bin").vocab == vocab


@pytest.mark.parametrize("chunk", [1, 3, 7, 1 << 20])
def test_encode_to_memmap_cuts_encode_each_segment_on_its_own(tmp_path, chunk):
    src = write_bytes(tmp_path, MIXED.encode())
    text = read_text(src)
    # cuts inside a word ("Καλη|μέρα", "pla|in"), at a space, inside "\r\n" -> "\n", at both ends
    cuts = [0, 4, text.index(" "), text.index("ascii") - 3, len(text)]
    words = WordVocab.from_text(text)
    tokens = encode_to_memmap(src, words, tmp_path / "w.bin", chunk_chars=chunk, cuts=cuts)
    bounds = [0, *cuts, len(text)]
    segments = [words.encode_text(text[a:b]) for a, b in itertools.pairwise(bounds)]
    assert np.asarray(tokens).tolist() == np.concatenate(segments).tolist()
    assert tokens.header["cuts"] == cuts
    assert tokens.header["token_cuts"] == np.cumsum([len(s) for s in segments])[:-1].tolist()
    assert np.asarray(tokens).tolist() != words.encode_text(text).tolist()  # the cuts mattered
    chars = CharVocab.from_text(text)
    by_char = encode_to_memmap(src, chars, tmp_path / "c.bin", chunk_chars=chunk, cuts=cuts)
    assert np.asarray(by_char).tolist() == chars.encode(text).tolist() and by_char.header["token_cuts"] == cuts
    assert "cuts" not in encode_to_memmap(src, chars, tmp_path / "n.bin").header


@pytest.mark.parametrize(("cuts", "match"), [([5, 2], "ascending"), ([-1], "ascending"), ([10**6], "within the")])
def test_encode_to_memmap_bad_cuts(tmp_path, cuts, match):
    src = write_bytes(tmp_path, b"abc abc")
    with pytest.raises(ValueError, match=f"cuts: expected .*{match}"):
        encode_to_memmap(src, CharVocab.from_text("abc "), tmp_path / "t.bin", cuts=cuts)
    assert not (tmp_path / "t.bin").exists() and not list(tmp_path.glob(".t.bin*"))


@pytest.mark.parametrize("chunk", [1, 5, 1 << 20])
def test_word_counts_and_vocab_of_the_first_characters(tmp_path, chunk):
    src = write_bytes(tmp_path, (MIXED * 3).encode())
    text = read_text(src)
    for stop in (0, 1, 9, len(text) // 2, len(text), len(text) + 5):
        counts = count_words_streaming(src, stop=stop, chunk_chars=chunk)
        assert counts == Counter(tokenize(text[:stop], newline="<eos>"))
        if counts:
            assert build_word_vocab_streaming(src, stop=stop, chunk_chars=chunk) == WordVocab.from_text(text[:stop])
    with pytest.raises(ValueError, match="stop: expected None or an int >= 0, got -1"):
        count_words_streaming(src, stop=-1)


def test_large_vocabulary_uses_uint32(tmp_path):
    words = [f"w{i}" for i in range(70_000)]
    src = write_bytes(tmp_path, " ".join(words[-5:]).encode())
    tokens = encode_to_memmap(src, WordVocab(words), tmp_path / "big.bin")
    assert tokens.dtype == np.uint32 and np.asarray(tokens).tolist() == [70_000 - 5 + 3 + i for i in range(5)]
    assert (tmp_path / "big.bin").stat().st_size == 5 * 4


def test_unknown_character_names_the_line(tmp_path):
    src = write_bytes(tmp_path, "abc\nabc\nab🙂c\n".encode())
    vocab = CharVocab.from_text("abc\n")
    with pytest.raises(
        DataError, match=re.escape(f"data: {src} line 3: character '🙂' (U+1F642) is not in the vocabulary of 4 tokens")
    ):
        encode_to_memmap(src, vocab, tmp_path / "t.bin", chunk_chars=3)
    assert not (tmp_path / "t.bin").exists() and not list(tmp_path.glob(".t.bin*"))


def test_memmap_tokens_is_a_read_only_array(tmp_path):
    src = write_bytes(tmp_path, ("hello world\n" * 50).encode())
    vocab = CharVocab.from_text(read_text(src))
    tokens = encode_to_memmap(src, vocab, tmp_path / "t.bin")
    ids = vocab.encode(read_text(src))
    assert len(tokens) == len(ids) and tokens.shape == (len(ids),) and tokens.ndim == 1
    assert tokens[3] == ids[3] and tokens[10:20].tolist() == ids[10:20].tolist()
    assert np.shares_memory(np.asarray(tokens), tokens.array)  # a view, not a copy
    with pytest.raises(ValueError, match="read-only"):
        np.asarray(tokens)[0] = 1
    assert "MemmapTokens(" in repr(tokens)


def test_stream_batcher_and_eval_batches_take_a_memmap(tmp_path):
    src = write_bytes(tmp_path, MIXED.encode() * 20)
    vocab = CharVocab.from_text(read_text(src))
    tokens = encode_to_memmap(src, vocab, tmp_path / "t.bin", chunk_chars=7)
    ids = vocab.encode(read_text(src))
    on_disk, in_memory = StreamBatcher(tokens, 4, 8), StreamBatcher(ids, 4, 8)
    assert np.shares_memory(on_disk.tokens, tokens.array)  # batches read from the file, no copy
    for _ in range(on_disk.batches_per_epoch + 2):
        (x1, y1, r1), (x2, y2, r2) = on_disk.next_batch(), in_memory.next_batch()
        assert x1.tolist() == x2.tolist() and y1.tolist() == y2.tolist() and r1 == r2
    for (x1, y1, m1), (x2, y2, m2) in zip(
        iterate_eval_batches(tokens, 3, 16), iterate_eval_batches(ids, 3, 16), strict=True
    ):
        assert x1.tolist() == x2.tolist() and y1.tolist() == y2.tolist() and (m1 == m2).all()


@pytest.mark.parametrize(
    ("damage", "match"),
    [
        (lambda b, h: h.unlink(), r"header not found: .*t\.bin\.json"),
        (lambda b, h: b.write_bytes(b.read_bytes()[:-2]), r"has \d+ bytes, but its header says \d+ uint16 tokens"),
        (lambda b, h: h.write_text("{not json"), "cannot read the header"),
        (lambda b, h: h.write_text('{"format": "other"}'), "is not a token header"),
        (
            lambda b, h: h.write_text(h.read_text().replace('"uint16"', '"float32"')),
            "expected dtype 'uint16' or 'uint32'",
        ),
        (lambda b, h: h.write_text(h.read_text().replace('"version": 1', '"version": 9')), "format version 9"),
        (lambda b, h: b.unlink(), "token file not found"),
    ],
)
def test_memmap_tokens_detects_damage(tmp_path, damage, match):
    src = write_bytes(tmp_path, b"abcabc")
    encode_to_memmap(src, CharVocab.from_text("abc"), tmp_path / "t.bin")
    damage(tmp_path / "t.bin", header_path(tmp_path / "t.bin"))
    with pytest.raises(DataError, match=match):
        MemmapTokens(tmp_path / "t.bin")


def test_check_source(tmp_path):
    src = write_bytes(tmp_path, b"abcabc")
    tokens = encode_to_memmap(src, CharVocab.from_text("abc"), tmp_path / "t.bin")
    tokens.check_source(src)
    src.write_bytes(b"abcabd")
    with pytest.raises(DataError, match=re.escape(f"data: {src} has changed since {tmp_path / 't.bin'} was encoded")):
        tokens.check_source(src)


def test_reencoding_replaces_both_files(tmp_path):
    src = write_bytes(tmp_path, b"abc")
    encode_to_memmap(src, CharVocab.from_text("abc"), tmp_path / "t.bin")
    src.write_bytes(b"abcabcabc")
    assert len(encode_to_memmap(src, CharVocab.from_text("abc"), tmp_path / "t.bin")) == 9
    assert len(MemmapTokens(tmp_path / "t.bin")) == 9


# ---------------------------------------------------------------------------------------------
# splits


def test_make_split_offsets():
    s = make_split(100)
    assert s.kind == "offsets" and s.parts == {"train": (0, 80), "val": (80, 90), "test": (90, 100)}
    assert s.part("val") == slice(80, 90)
    parts = s.apply(np.arange(100))
    assert parts["test"].tolist() == list(range(90, 100))
    with pytest.raises(KeyError, match="no part named 'dev'"):
        s.part("dev")


def test_make_split_indices_cover_everything_once():
    s = make_split(101, {"train": 0.7, "val": 0.15, "test": 0.15}, shuffle=True, seed=3)
    all_idx = np.concatenate([s.part(k) for k in ("train", "val", "test")])
    assert sorted(all_idx.tolist()) == list(range(101))
    assert [len(s.part(k)) for k in ("train", "val", "test")] == [71, 15, 15]
    assert (
        make_split(101, shuffle=True, seed=3).part("val").tolist()
        != make_split(101, shuffle=True, seed=4).part("val").tolist()
    )
    items = [f"item{i}" for i in range(101)]
    assert s.apply(items)["val"] == [items[i] for i in s.part("val").tolist()]


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "match"),
    [
        ((5,), {}, DataError, r"5 items are too few to split as .*: train 5, val 0, test 0"),
        ((10, {"a": 0.5, "b": 0.6}), {}, ValueError, "summing to 1"),
        ((10, {"a": 1.5, "b": -0.5}), {}, ValueError, r"fractions\['a'\]: expected a share in \[0, 1\]"),
        ((10, {"a b": 1.0}), {}, ValueError, "part names like 'train'"),
        ((0,), {}, ValueError, "num_items: expected a positive int"),
    ],
)
def test_make_split_errors(args, kwargs, error, match):
    with pytest.raises(error, match=match):
        make_split(*args, **kwargs)


@pytest.mark.parametrize("shuffle", [False, True])
def test_save_and_load_split(tmp_path, shuffle):
    src = write_bytes(tmp_path, b"1\n2\n3\n" * 10)
    s = make_split(30, shuffle=shuffle, seed=9)
    save_split(tmp_path / "split.json", s, source=src)
    back = load_split(tmp_path / "split.json", source=src)
    assert back.kind == s.kind and back.seed == s.seed and back.fractions == s.fractions
    assert back.source_sha256 == sha256_file(src)
    for name in s.parts:
        assert np.arange(30)[back.part(name)].tolist() == np.arange(30)[s.part(name)].tolist()


def test_a_split_keeps_the_order_of_its_indices(tmp_path):
    # make_split sorts each part; a split made elsewhere may keep a meaningful order (training order)
    s = Split(5, "indices", {"train": np.array([3, 0, 4]), "val": np.array([2, 1])}, {"train": 0.6, "val": 0.4})
    save_split(tmp_path / "split.json", s)
    back = load_split(tmp_path / "split.json")
    assert back.part("train").tolist() == [3, 0, 4] and back.apply(list("abcde"))["val"] == ["c", "b"]


def test_load_or_make_split_reuses_and_detects_a_changed_source(tmp_path):
    src = write_bytes(tmp_path, b"a\nb\nc\n" * 10)
    path = tmp_path / "runs" / "split.json"
    first = load_or_make_split(path, src, 30, shuffle=True, seed=1)
    assert path.exists()
    again = load_or_make_split(path, src, 30, shuffle=True, seed=1)
    assert again.part("test").tolist() == first.part("test").tolist()
    with pytest.raises(DataError, match=r"made with seed=1, this run asks for seed=2; delete .* to make a new split"):
        load_or_make_split(path, src, 30, shuffle=True, seed=2)
    with pytest.raises(DataError, match="made with num_items=30, this run asks for num_items=31"):
        load_or_make_split(path, src, 31, shuffle=True, seed=1)
    src.write_bytes(b"a\nb\nX\n" * 10)
    with pytest.raises(
        DataError,
        match=re.escape(f"data: {src} has changed since the split {path} was made")
        + r" \(sha256 [0-9a-f]{12}\.\.\. then, [0-9a-f]{12}\.\.\. now\); .*restore the original file, or delete",
    ):
        load_or_make_split(path, src, 30, shuffle=True, seed=1)


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("{", "cannot read the split file"),
        ('{"type": "vocab"}', "expected a JSON object with type 'split'"),
        ('{"type": "split", "num_items": 0, "kind": "offsets", "parts": {}}', "positive int num_items"),
        (
            '{"type": "split", "num_items": 5, "kind": "offsets", "parts": {"a": [0, 9]}}',
            r"expected \[start, stop\] within \[0, 5\]",
        ),
        (
            '{"type": "split", "num_items": 5, "kind": "indices", "parts": {"a": [0, 5]}}',
            r"indices out of range \[0, 5\)",
        ),
        ('{"type": "split", "num_items": 5, "kind": "indices", "parts": {"a": "0"}}', "expected a list of ints"),
    ],
)
def test_load_split_errors(tmp_path, content, match):
    p = tmp_path / "s.json"
    p.write_text(content)
    with pytest.raises(DataError, match=match):
        load_split(p)
    with pytest.raises(DataError, match="split file not found"):
        load_split(tmp_path / "none.json")


def test_split_apply_checks_the_length():
    with pytest.raises(ValueError, match="the split is for 10 items, got 9"):
        make_split(10).apply(list(range(9)))
    assert isinstance(make_split(10), Split)


# ---------------------------------------------------------------------------------------------
# the real corpus


@pytest.mark.skipif(not SHAKESPEARE.exists(), reason="../shared/data/tinyshakespeare.txt not available")
def test_tiny_shakespeare_on_disk(tmp_path):
    vocab = build_char_vocab_streaming(SHAKESPEARE, chunk_chars=1 << 16)
    assert len(vocab) == 65
    tokens = encode_to_memmap(SHAKESPEARE, vocab, tmp_path / "ts.bin", chunk_chars=1 << 16)
    assert len(tokens) == 1_115_394 and tokens.dtype == np.uint16
    split = load_or_make_split(tmp_path / "split.json", SHAKESPEARE, len(tokens), {"train": 0.9, "val": 0.1})
    train = split.apply(tokens)["train"]
    x, _, _ = StreamBatcher(train, batch_size=8, seq_len=32).next_batch()
    assert vocab.decode(x[0][:14]) == "First Citizen:"
