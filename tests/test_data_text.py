"""Tests for rnnlab.data.text and rnnlab.data.names: reading, vocabulary, splits, batchers."""

from __future__ import annotations

import itertools
import json
import re
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from rnnlab.data.names import load_census_names, read_lines
from rnnlab.data.text import (
    CharVocab,
    DataError,
    ItemStreamBatcher,
    StreamBatcher,
    iterate_eval_batches,
    read_text,
    split_text,
)

# ---------------------------------------------------------------------------------------------
# read_text


def test_read_text_plain(tmp_path):
    p = tmp_path / "a.txt"
    p.write_bytes(b"hello\nworld\n")
    assert read_text(p) == "hello\nworld\n"
    assert read_text(str(p)) == "hello\nworld\n"


def test_read_text_crlf_and_bom(tmp_path):
    p = tmp_path / "win.txt"
    p.write_bytes(b"\xef\xbb\xbfone\r\ntwo\r\n")
    assert read_text(p) == "one\ntwo\n"


def test_read_text_unicode(tmp_path):
    text = "Καλημέρα κόσμε\n你好，世界\n🙂👍🏽 café\n"
    p = tmp_path / "u.txt"
    p.write_text(text, encoding="utf-8")
    assert read_text(p) == text


def test_read_text_missing(tmp_path):
    p = tmp_path / "nope.txt"
    with pytest.raises(DataError, match=re.escape(f"data: file not found: {p}")):
        read_text(p)


def test_read_text_directory(tmp_path):
    with pytest.raises(DataError, match="got a directory"):
        read_text(tmp_path)


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b"", "file is empty"),
        (b"\xef\xbb\xbf", "file is empty"),
        (b"  \n\t\r\n ", "only whitespace"),
        (b"abc\x00def", r"binary file \(NUL byte at byte offset 3\)"),
        ("héllo".encode("utf-16"), r"is UTF-16 text; convert it to UTF-8, e.g. iconv -f utf-16"),
        ("héllo".encode("utf-16-be"), "binary file"),  # no BOM: only its NULs tell
        (b"\x1f\x8b\x08\x00rest", r"is gzip-compressed; decompress it first, e.g. gunzip -k"),
        (b"abc\xe9def", r"not valid UTF-8 \(byte 0xe9 at byte offset 3\); convert it to UTF-8"),
        (b"\xef\xbb\xbfab\xff", r"byte 0xff at byte offset 5"),  # offsets count the BOM
        (b"ok\xe2\x82", r"byte 0xe2 at byte offset 2"),  # truncated multi-byte sequence
    ],
)
def test_read_text_errors(tmp_path, content, match):
    p = tmp_path / "bad.txt"
    p.write_bytes(content)
    with pytest.raises(DataError, match=match) as info:
        read_text(p)
    msg = str(info.value)
    assert "\n" not in msg and str(p) in msg


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("héllo".encode("utf-16"), "is UTF-16 text"),
        (b"\x1f\x8b\x08\x00rest", "is gzip-compressed"),
        (b"\x00" * 10, r"binary file \(NUL byte at byte offset 0\)"),
    ],
)
def test_the_streaming_reader_names_the_same_formats(tmp_path, content, match):
    from rnnlab.data.corpus import TextStream

    p = tmp_path / "bad.txt"
    p.write_bytes(content)
    with pytest.raises(DataError, match=match):
        list(TextStream(p))


def test_a_device_that_never_ends_is_judged_by_its_start():
    if not Path("/dev/zero").exists():
        pytest.skip("no /dev/zero")
    with pytest.raises(DataError, match=r"/dev/zero looks like a binary file \(NUL byte at byte offset 0\)"):
        read_text("/dev/zero")


def test_data_error_is_value_error():
    assert issubclass(DataError, ValueError)


# ---------------------------------------------------------------------------------------------
# CharVocab

UNICODE_TEXT = "Ελληνικά: αβγ — 中文字符 — emoji 🙂🚀 — ascii abc\n"


def test_vocab_from_text_sorted_unique():
    v = CharVocab.from_text("banana")
    assert v.itos == ["a", "b", "n"]
    assert v.stoi == {"a": 0, "b": 1, "n": 2}
    assert len(v) == 3
    assert v.boundary_id is None


def test_vocab_unicode_round_trip():
    v = CharVocab.from_text(UNICODE_TEXT)
    assert v.itos == sorted(set(UNICODE_TEXT))
    ids = v.encode(UNICODE_TEXT)
    assert ids.dtype == np.int64 and ids.shape == (len(UNICODE_TEXT),)
    assert v.decode(ids) == UNICODE_TEXT
    assert v.decode(ids.tolist()) == UNICODE_TEXT
    assert [v.itos[i] for i in ids] == list(UNICODE_TEXT)


def test_vocab_encode_empty():
    v = CharVocab.from_text("ab")
    assert v.encode("").shape == (0,)
    assert v.decode([]) == ""


def test_vocab_encode_unknown_lists_chars():
    v = CharVocab.from_text("abc")
    with pytest.raises(DataError, match=r"2 character\(s\) not in the vocabulary of 3 tokens") as info:
        v.encode("abxcé")
    msg = str(info.value)
    assert "'x' (U+0078)" in msg and "'é' (U+00E9)" in msg and "\n" not in msg


def test_vocab_encode_unknown_newline_is_one_line():
    v = CharVocab.from_text("abc")
    with pytest.raises(DataError, match=re.escape("'\\n' (U+000A)")) as info:
        v.encode("a\nb")
    assert "\n" not in str(info.value)


def test_vocab_encode_unknown_caps_at_ten():
    v = CharVocab.from_text("a")
    with pytest.raises(DataError, match=r"25 character.*and 15 more"):
        v.encode("abcdefghijklmnopqrstuvwxyz" + "z")


def test_vocab_encode_lossy_skip_and_map():
    v = CharVocab.from_text("ab ")
    ids, bad = v.encode_lossy("a🙂bxa🙂")
    assert v.decode(ids) == "aba"
    assert bad == ["🙂", "x"]
    ids, bad = v.encode_lossy("a🙂b", unknown="map", replacement=" ")
    assert v.decode(ids) == "a b"
    assert bad == ["🙂"]
    ids, bad = v.encode_lossy("abba")
    assert v.decode(ids) == "abba" and bad == []


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"unknown": "drop"}, "unknown: expected 'skip' or 'map', got 'drop'"),
        ({"unknown": "map"}, "replacement: .* got None"),
        ({"unknown": "map", "replacement": "z"}, "replacement: .* got 'z'"),
    ],
)
def test_vocab_encode_lossy_bad_args(kwargs, match):
    with pytest.raises(ValueError, match=match):
        CharVocab.from_text("ab").encode_lossy("abc", **kwargs)


def test_vocab_decode_out_of_range():
    v = CharVocab.from_text("ab")
    with pytest.raises(ValueError, match=r"ids: expected ids in \[0, 2\), got 5"):
        v.decode([0, 5])
    with pytest.raises(ValueError, match="got -1"):
        v.decode(np.array([-1]))


def test_vocab_from_lines_boundary():
    v = CharVocab.from_lines(["emma", "ava", "zoë"])
    assert v.boundary_id == 0
    assert v.itos[0] == CharVocab.BOUNDARY == "<|boundary|>"
    assert v.itos[1:] == sorted(set("emmaavazoë"))
    framed = v.encode_line("ava")
    assert framed[0] == framed[-1] == 0
    assert 0 not in framed[1:-1]
    assert v.decode(framed) == "ava"
    assert v.decode(framed, boundary_as="\n") == "\nava\n"
    # the boundary is not a character: no text can encode to id 0
    with pytest.raises(DataError, match="not in the vocabulary"):
        v.encode(CharVocab.BOUNDARY)


def test_vocab_encode_line_needs_boundary():
    with pytest.raises(ValueError, match="no boundary token"):
        CharVocab.from_text("ab").encode_line("ab")


@pytest.mark.parametrize("vocab", [CharVocab.from_text(UNICODE_TEXT), CharVocab.from_lines(["emma", "小明"])])
def test_vocab_json_round_trip(vocab):
    obj = json.loads(json.dumps(vocab.to_json()))
    assert obj["tokens"] == vocab.itos  # id order
    back = CharVocab.from_json(obj)
    assert back == vocab
    assert back.boundary_id == vocab.boundary_id
    sample = "emma" if vocab.boundary_id == 0 else "abc"
    assert back.encode(sample).tolist() == vocab.encode(sample).tolist()


def test_vocab_from_json_keeps_given_order():
    v = CharVocab.from_json({"type": "char", "tokens": ["b", "a"], "boundary_id": None})
    assert v.encode("ab").tolist() == [1, 0]


@pytest.mark.parametrize(
    ("obj", "match"),
    [
        ([], "expected a JSON object"),
        ({"type": "bpe", "tokens": ["a"]}, "expected type 'char'"),
        ({"tokens": "ab"}, "list of strings"),
        ({"tokens": ["a", "a"]}, "duplicates"),
        ({"tokens": ["ab"]}, "single characters"),
        ({"tokens": ["a"], "boundary_id": 3}, "'boundary_id' to be 0 or null"),
        ({"tokens": ["a", "b"], "boundary_id": 0}, "token 0 to be '<|boundary|>'"),
    ],
)
def test_vocab_from_json_errors(obj, match):
    with pytest.raises(DataError, match=re.escape(match) if "|" in match else match):
        CharVocab.from_json(obj)


def test_vocab_empty_errors():
    with pytest.raises(DataError, match="empty text"):
        CharVocab.from_text("")
    with pytest.raises(DataError, match="no characters"):
        CharVocab.from_lines(["", ""])


# ---------------------------------------------------------------------------------------------
# split_text


def test_split_text_convention():
    text = "".join(chr(ord("a") + i % 26) for i in range(1000))
    train, val = split_text(text)
    assert train + val == text
    assert len(train) == 900 and len(val) == 100
    arr = np.arange(50)
    tr, va = split_text(arr, val_fraction=0.2)
    assert tr.tolist() == list(range(40)) and va.tolist() == list(range(40, 50))


@pytest.mark.parametrize("frac", [0, 1, -0.1, 1.5, float("nan")])
def test_split_text_bad_fraction(frac):
    with pytest.raises(ValueError, match="val_fraction: expected 0 < val_fraction < 1"):
        split_text("abcdef", val_fraction=frac)


def test_split_text_bad_fraction_type():
    with pytest.raises(TypeError, match="val_fraction: expected a number"):
        split_text("abcdef", val_fraction="0.1")


@pytest.mark.parametrize(("text", "frac"), [("abc", 1e-17), ("a", 0.5), ("abcdef", 0.99)])
def test_split_text_too_short(text, frac):
    with pytest.raises(DataError, match="too few to split"):
        split_text(text, val_fraction=frac)


# ---------------------------------------------------------------------------------------------
# StreamBatcher


def test_stream_batcher_shapes_and_shift():
    b = StreamBatcher(np.arange(1000), batch_size=4, seq_len=16)
    x, y, reset = b.next_batch()
    assert x.shape == y.shape == (4, 16)
    assert reset
    assert (y == x + 1).all()


@pytest.mark.parametrize(("n", "B", "T"), [(1000, 4, 16), (101, 10, 10), (57, 3, 5), (11, 1, 10)])
def test_stream_batcher_continuity(n, B, T):
    b = StreamBatcher(np.arange(n), batch_size=B, seq_len=T)
    L = (n - 1) // B
    assert b.batches_per_epoch == L // T >= 1
    prev = None
    for k in range(b.batches_per_epoch):
        x, y, reset = b.next_batch()
        assert reset == (k == 0)
        assert (y == x + 1).all()
        # rows are contiguous streams
        assert (np.diff(x, axis=1) == 1).all()
        assert (x[:, 0] == np.arange(B) * L + k * T).all()
        if prev is not None:
            # row b of batch k+1 starts where row b of batch k ended
            assert (x[:, 0] == prev[:, -1] + 1).all()
        prev = x


def test_stream_batcher_wrap_around_sets_reset():
    b = StreamBatcher(np.arange(101), batch_size=2, seq_len=10)
    assert b.batches_per_epoch == 5
    first, _, reset0 = b.next_batch()
    assert reset0 and b.epoch == 0 and b.position == 1
    resets = [b.next_batch()[2] for _ in range(4)]
    assert resets == [False] * 4
    assert b.epoch == 1 and b.position == 0
    again, _, reset = b.next_batch()
    assert reset
    assert (again == first).all()


def test_stream_batcher_targets_cover_next_token():
    rng = np.random.default_rng(0)
    tokens = rng.integers(0, 50, size=500)
    b = StreamBatcher(tokens, batch_size=3, seq_len=7)
    L = (len(tokens) - 1) // 3
    x, y, _ = b.next_batch()
    for row in range(3):
        start = row * L
        assert (x[row] == tokens[start : start + 7]).all()
        assert (y[row] == tokens[start + 1 : start + 8]).all()


def test_stream_batcher_state_dict_resume():
    tokens = np.random.default_rng(1).integers(0, 30, size=777)
    a = StreamBatcher(tokens, batch_size=5, seq_len=9)
    for _ in range(23):  # past one epoch
        a.next_batch()
    sd = a.state_dict()
    assert all(type(v) is int for v in sd.values())
    json.dumps(sd)
    b = StreamBatcher(tokens, batch_size=5, seq_len=9)
    b.load_state_dict(json.loads(json.dumps(sd)))
    assert (b.epoch, b.position) == (a.epoch, a.position)
    for _ in range(40):
        xa, ya, ra = a.next_batch()
        xb, yb, rb = b.next_batch()
        assert (xa == xb).all() and (ya == yb).all() and ra == rb


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"batch_size": 4}, "state\\['batch_size'\\]: .*batch_size=4, this batcher has batch_size=5"),
        ({"seq_len": 8}, "state\\['seq_len'\\]"),
        ({"num_tokens": 10}, "state\\['num_tokens'\\]"),
        ({"position": 999}, "state\\['position'\\]: expected 0 <= position"),
        ({"epoch": "1"}, "state\\['epoch'\\]: expected an int"),
    ],
)
def test_stream_batcher_load_state_mismatch(change, match):
    b = StreamBatcher(np.arange(777), batch_size=5, seq_len=9)
    sd = {**b.state_dict(), **change}
    with pytest.raises(ValueError, match=match):
        b.load_state_dict(sd)


def test_stream_batcher_too_short():
    with pytest.raises(ValueError, match=r"need at least batch_size\*seq_len\+1 = 4\*8\+1 = 33 tokens, got 32"):
        StreamBatcher(np.arange(32), batch_size=4, seq_len=8)
    StreamBatcher(np.arange(33), batch_size=4, seq_len=8)  # exactly enough


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"batch_size": 0}, ValueError, "batch_size: expected a positive int, got 0"),
        ({"seq_len": -1}, ValueError, "seq_len: expected a positive int, got -1"),
        ({"seq_len": 2.5}, TypeError, "seq_len: expected an int, got float"),
        ({"tokens": np.zeros((2, 50), dtype=np.int64)}, ValueError, "tokens: expected a 1-D array"),
        ({"tokens": np.zeros(50)}, TypeError, "tokens: expected integer ids, got dtype float64"),
    ],
)
def test_stream_batcher_bad_args(kwargs, exc, match):
    args = {"tokens": np.arange(100), "batch_size": 2, "seq_len": 4, **kwargs}
    with pytest.raises(exc, match=match):
        StreamBatcher(**args)


# ---------------------------------------------------------------------------------------------
# ItemStreamBatcher


def _items_stream(n_items: int, seed: int = 0) -> np.ndarray:
    """<b> item <b> item ... <b> with boundary 0 and items of 1-6 distinct tokens (ids from 1)."""
    rng = np.random.default_rng(seed)
    parts, next_id = [[0]], 1
    for _ in range(n_items):
        k = int(rng.integers(1, 7))
        parts.append([*range(next_id, next_id + k), 0])
        next_id += k
    return np.array([t for p in parts for t in p])


def _split_items(tokens: np.ndarray) -> list[tuple[int, ...]]:
    cuts = np.flatnonzero(tokens == 0)
    assert cuts[0] == 0 and cuts[-1] == len(tokens) - 1
    return [tuple(tokens[a + 1 : b].tolist()) for a, b in itertools.pairwise(cuts)]


def test_item_stream_batcher_deals_the_items_in_a_new_order_every_epoch():
    tokens = _items_stream(40)
    b = ItemStreamBatcher(tokens, 3, 5, boundary_id=0, seed=7)
    orders = [_split_items(b.epoch_tokens(k)) for k in range(4)]
    assert orders[0] == _split_items(tokens)  # epoch 0: as given
    for k in range(1, 4):
        assert sorted(orders[k]) == sorted(orders[0]) and len(b.epoch_tokens(k)) == len(tokens)
    assert len({tuple(o) for o in orders}) == 4  # four different orders
    # the batches of epoch k are StreamBatcher's batches over that epoch's stream
    for k in range(3):
        ref = StreamBatcher(b.epoch_tokens(k), 3, 5)
        for j in range(b.batches_per_epoch):
            x, y, reset = b.next_batch()
            rx, ry, rreset = ref.next_batch()
            assert (x == rx).all() and (y == ry).all() and reset == rreset == (j == 0)
    assert b.epoch == 3
    # the order comes from the seed alone
    other = ItemStreamBatcher(tokens, 3, 5, boundary_id=0, seed=7)
    assert (other.epoch_tokens(2) == b.epoch_tokens(2)).all()
    assert not (ItemStreamBatcher(tokens, 3, 5, boundary_id=0, seed=8).epoch_tokens(2) == b.epoch_tokens(2)).all()


def test_item_stream_batcher_resumes_inside_a_reshuffled_epoch():
    tokens = _items_stream(30, seed=1)
    a = ItemStreamBatcher(tokens, 2, 4, boundary_id=0, seed=3)
    for _ in range(2 * a.batches_per_epoch + 3):  # into epoch 2
        a.next_batch()
    b = ItemStreamBatcher(tokens, 2, 4, boundary_id=0, seed=3)
    b.load_state_dict(a.state_dict())
    assert (b.epoch, b.position) == (2, 3)
    for _ in range(a.batches_per_epoch + 2):  # and on into epoch 3
        xa, ya, ra = a.next_batch()
        xb, yb, rb = b.next_batch()
        assert (xa == xb).all() and (ya == yb).all() and ra == rb


def test_item_stream_batcher_needs_boundaries_at_both_ends():
    with pytest.raises(
        ValueError, match=r"tokens: expected items between boundary tokens \(id 0\) with one at each end, "
    ):
        ItemStreamBatcher(np.array([5, 1, 2, 0, 3, 4, 0, 6]), 1, 2, boundary_id=0, seed=0)


# ---------------------------------------------------------------------------------------------
# iterate_eval_batches


@pytest.mark.parametrize(
    ("n", "B", "T"),
    [(2, 1, 1), (8, 2, 3), (100, 4, 7), (101, 4, 25), (1000, 7, 13), (10, 16, 4), (37, 3, 100), (64, 1, 8)],
)
def test_eval_batches_cover_every_prediction_once(n, B, T):
    rng = np.random.default_rng(n * 31 + B)
    tokens = rng.integers(0, 5, size=n)  # repeated values: compare multisets, not sets
    batches = list(iterate_eval_batches(tokens, B, T))
    assert all(x.shape == y.shape == m.shape == (B, T) for x, y, m in batches)
    assert all(m.dtype == np.float32 and set(np.unique(m)) <= {0.0, 1.0} for _, _, m in batches)
    assert sum(m.sum() for _, _, m in batches) == n - 1
    got = Counter()
    for x, y, m in batches:
        keep = m == 1
        got.update(zip(x[keep].tolist(), y[keep].tolist(), strict=True))
    want = Counter(zip(tokens[:-1].tolist(), tokens[1:].tolist(), strict=True))
    assert got == want


@pytest.mark.parametrize(("n", "B", "T"), [(100, 4, 7), (1000, 7, 13), (10, 16, 4)])
def test_eval_batches_rows_are_contiguous_streams(n, B, T):
    # with tokens = arange, a row's real inputs across all batches must be one unbroken run,
    # so carrying the hidden state from batch to batch is correct
    batches = list(iterate_eval_batches(np.arange(n), B, T))
    x = np.concatenate([b[0] for b in batches], axis=1)
    y = np.concatenate([b[1] for b in batches], axis=1)
    m = np.concatenate([b[2] for b in batches], axis=1)
    seen = []
    for row in range(B):
        real = m[row] == 1
        # padding only at the end of a row
        assert not np.any(np.diff(real.astype(int)) > 0)
        xs = x[row][real]
        assert (np.diff(xs) == 1).all()
        assert (y[row][real] == xs + 1).all()
        seen.extend(xs.tolist())
    assert sorted(seen) == list(range(n - 1))


def _eval_batches_whole_grid(tokens, B, T):
    # the earlier implementation, which built the (B, n_batches*T) grid at once: the reference
    arr = np.asarray(tokens)
    n_pred = len(arr) - 1
    L = -(-n_pred // B)
    width = -(-L // T) * T
    pos = np.arange(B)[:, None] * L + np.arange(width)[None, :]
    valid = (np.arange(width)[None, :] < L) & (pos < n_pred)
    src = np.minimum(pos, n_pred - 1)
    xs, ys = np.where(valid, arr[src], 0).astype(arr.dtype), np.where(valid, arr[src + 1], 0).astype(arr.dtype)
    ms = valid.astype(np.float32)
    return [(xs[:, k : k + T], ys[:, k : k + T], ms[:, k : k + T]) for k in range(0, width, T)]


@pytest.mark.parametrize(("n", "B", "T"), [(2, 1, 1), (2, 5, 3), (100, 4, 7), (1000, 7, 13), (10, 16, 4), (64, 8, 8)])
@pytest.mark.parametrize("dtype", [np.int64, np.uint16])
def test_eval_batches_are_built_a_batch_at_a_time_with_the_same_values(n, B, T, dtype):
    tokens = np.random.default_rng(n).integers(0, 60, n).astype(dtype)
    got = list(iterate_eval_batches(tokens, B, T))
    want = _eval_batches_whole_grid(tokens, B, T)
    assert len(got) == len(want)
    for (x, y, m), (wx, wy, wm) in zip(got, want, strict=True):
        assert x.dtype == dtype and y.dtype == dtype and m.dtype == np.float32
        assert x.flags.c_contiguous and np.array_equal(x, wx) and np.array_equal(y, wy) and np.array_equal(m, wm)


def test_eval_batches_errors():
    with pytest.raises(ValueError, match="need at least 2 tokens to evaluate, got 1"):
        list(iterate_eval_batches(np.array([3]), 2, 4))
    with pytest.raises(ValueError, match="batch_size: expected a positive int"):
        list(iterate_eval_batches(np.arange(10), 0, 4))


# ---------------------------------------------------------------------------------------------
# names data set and line files


def test_load_census_names():
    pytest.importorskip("names")
    names = load_census_names()
    assert len(names) > 4000
    assert len(set(names)) == len(names)
    assert all(n.isalpha() and n.islower() and n.isascii() for n in names)
    assert names[0] == "mary"
    assert {"james", "linda", "zoe"} <= set(names)


def test_load_census_names_not_installed(monkeypatch):
    monkeypatch.setitem(sys.modules, "names", None)  # makes `import names` fail
    with pytest.raises(DataError, match=re.escape("pip install names==0.3.0, or pass --data FILE")) as info:
        load_census_names()
    assert str(info.value).startswith("no --data given and the 'names' package")


def test_read_lines(tmp_path):
    p = tmp_path / "names.txt"
    p.write_bytes(b"\xef\xbb\xbf emma \r\n\r\nolivia\n  \nzo\xc3\xab\n")
    assert read_lines(p) == ["emma", "olivia", "zoë"]


def test_read_lines_errors(tmp_path):
    with pytest.raises(DataError, match="data: file not found"):
        read_lines(tmp_path / "missing.txt")
    p = tmp_path / "blank.txt"
    p.write_text("\n \n\t\n")
    with pytest.raises(DataError, match="only whitespace"):
        read_lines(p)
