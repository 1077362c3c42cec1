"""Tests for rnnlab.data.seq2seq: synthetic tasks, TSV pairs, vocabularies, teacher-forcing batches."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from rnnlab.data.classify import BucketBatcher
from rnnlab.data.seq2seq import (
    SPECIALS,
    build_seq2seq_vocabs,
    collate_pairs,
    encode_pairs,
    load_pairs,
    make_task,
)
from rnnlab.data.text import DataError
from rnnlab.data.words import WordVocab

# ---------------------------------------------------------------------------------------------
# synthetic tasks


@pytest.mark.parametrize("alphabet", ["digits", "letters", "xyz"])
def test_reverse_task(alphabet):
    pairs = make_task("reverse", 200, seed=1, min_len=2, max_len=7, alphabet=alphabet)
    allowed = {"digits": set("0123456789"), "letters": set("abcdefghijklmnopqrstuvwxyz"), "xyz": set("xyz")}[alphabet]
    assert len(pairs) == 200
    for src, tgt in pairs:
        assert 2 <= len(src) <= 7 and tgt == src[::-1] and set(src) <= allowed
    assert {len(s) for s, _ in pairs} == set(range(2, 8))


def test_sort_task_uses_the_alphabet_order():
    for src, tgt in make_task("sort", 100, seed=0):
        assert tgt == "".join(sorted(src))
    for src, tgt in make_task("sort", 50, seed=0, alphabet="cba"):
        assert tgt == "".join(sorted(src, key="cba".index))


def test_tasks_are_seeded():
    assert make_task("reverse", 20, seed=3) == make_task("reverse", 20, seed=3)
    assert make_task("reverse", 20, seed=3) != make_task("reverse", 20, seed=4)


@pytest.mark.parametrize(
    ("args", "kwargs", "match"),
    [
        (("copy", 5), {}, "task: expected one of reverse, sort, got 'copy'"),
        (("sort", 0), {}, "n: expected a positive int"),
        (("sort", 5), {"min_len": 4, "max_len": 3}, "min_len <= max_len"),
        (("sort", 5), {"alphabet": "a"}, "at least 2 distinct characters"),
        (("sort", 5), {"alphabet": "aab"}, "at least 2 distinct characters"),
    ],
)
def test_task_errors(args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_task(*args, **kwargs)


# ---------------------------------------------------------------------------------------------
# user pairs


def write(tmp_path, text, name="pairs.tsv"):
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def test_load_pairs_unicode(tmp_path):
    text = "I am cold.\tJ'ai froid.\n\nGood morning\tΚαλημέρα\nhello\t你好 🙂\n"
    p = write(tmp_path, text)
    assert load_pairs(p) == [("I am cold.", "J'ai froid."), ("Good morning", "Καλημέρα"), ("hello", "你好 🙂")]


def test_load_pairs_csv(tmp_path):
    p = write(tmp_path, 'src,tgt\n"a, b",c\n', name="p.csv")
    assert load_pairs(p, delimiter=None) == [("src", "tgt"), ("a, b", "c")]


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("a\tb\nc\td\te\n", r"line 2: expected 2 tab-separated columns \(source, target\), got 3"),
        ("a\tb\n\nno tab here\n", r"line 3: expected 2 tab-separated columns \(source, target\), got 1"),
        ("a\tb\n \tb\n", "line 2: empty source"),
        ("a\tb\nc\t\n", "line 2: empty target"),
    ],
)
def test_load_pairs_errors_name_the_line(tmp_path, text, match):
    p = write(tmp_path, text)
    with pytest.raises(DataError, match=re.escape(f"data: {p} ") + match):
        load_pairs(p)


# ---------------------------------------------------------------------------------------------
# vocabularies and batches


def test_char_vocabs_have_the_specials_first():
    src, tgt = build_seq2seq_vocabs(make_task("reverse", 100, seed=0), shared=True)
    assert src is tgt and src.itos[:4] == list(SPECIALS)
    assert (src.pad_id, src.bos_id, src.eos_id, src.unk_id) == (0, 1, 2, 3)
    assert sorted(src.itos[4:]) == list("0123456789")


def test_word_vocabs_are_separate():
    pairs = [("the cat", "le chat"), ("the dog", "le chien")]
    src, tgt = build_seq2seq_vocabs(pairs, level="word")
    assert src.itos[4:] == ["the", "cat", "dog"] and tgt.itos[4:] == ["le", "chat", "chien"]
    ((s, t),) = encode_pairs([("the bird", "le chat")], src, tgt)
    assert s.tolist() == [4, src.unk_id] and t.tolist() == [4, 5]


def test_collate_pairs_for_teacher_forcing():
    src, tgt = build_seq2seq_vocabs([("ab", "ba")], shared=True)
    batch = collate_pairs(encode_pairs([("ab", "ba"), ("a", "a")], src, tgt), src, tgt)
    assert batch["src"].tolist() == [[4, 5], [4, 0]] and batch["src_lengths"].tolist() == [2, 1]
    assert batch["tgt_in"].tolist() == [[1, 5, 4], [1, 4, 0]]
    assert batch["tgt_out"].tolist() == [[5, 4, 2], [4, 2, 0]]
    assert batch["tgt_lengths"].tolist() == [3, 2]
    # the decoder input is the output shifted right by one, behind <bos>
    assert (batch["tgt_in"][:, 1:] == batch["tgt_out"][:, :-1])[batch["tgt_out"][:, :-1] != 2].all()


@pytest.mark.parametrize(
    "pair",
    [("Καλημέρα κόσμε", "κόσμε Καλημέρα"), ("你好世界", "界世好你"), ("🙂👍🏽❤️", "❤️👍🏽🙂"), ("हिन्दी", "दी")],
)
def test_unicode_char_round_trip(pair):
    src, tgt = build_seq2seq_vocabs([pair])
    ((s, t),) = encode_pairs([pair], src, tgt)
    assert "".join(src.decode(s)) == pair[0] and "".join(tgt.decode(t)) == pair[1]
    assert src.decode_text(s) == pair[0]
    for v in (src, tgt):
        assert WordVocab.from_json(json.loads(json.dumps(v.to_json(), ensure_ascii=False))) == v


def test_decode_text_stops_at_eos():
    _, tgt = build_seq2seq_vocabs([("ab", "ba")], shared=True)
    predicted = [tgt.bos_id, tgt.stoi["b"], tgt.stoi["a"], tgt.eos_id, tgt.stoi["a"], tgt.pad_id]
    assert tgt.decode_text(predicted) == "ba"
    assert tgt.decode(predicted, skip_specials=True) == ["b", "a", "a"]


def test_encode_pairs_needs_the_specials():
    v = WordVocab(["a"], specials=("<pad>", "<unk>"), level="char")
    with pytest.raises(ValueError, match=r"src_vocab: expected the specials .* missing \['<bos>', '<eos>'\]"):
        encode_pairs([("a", "a")], v, v)


def test_build_vocabs_needs_pairs():
    with pytest.raises(DataError, match="no pairs"):
        build_seq2seq_vocabs([])


def test_bucketed_batches_of_a_task():
    pairs = make_task("sort", 300, seed=0, max_len=12)
    src, tgt = build_seq2seq_vocabs(pairs, shared=True)
    encoded = encode_pairs(pairs, src, tgt)
    batcher = BucketBatcher([len(s) for s, _ in encoded], batch_size=16, seed=0)
    for idx in batcher:
        batch = collate_pairs([encoded[i] for i in idx], src, tgt)
        assert batch["src"].shape[0] == len(idx)
        assert (batch["src_lengths"] == batch["tgt_lengths"] - 1).all()  # sorting keeps the length
        assert np.all(np.diff(batch["src_lengths"]) <= 0)
