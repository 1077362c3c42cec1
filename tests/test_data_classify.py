"""Tests for rnnlab.data.classify: labelled texts from CSV/TSV, LabelVocab, padding, BucketBatcher."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from rnnlab.data.classify import (
    BucketBatcher,
    LabelVocab,
    detect_delimiter,
    length_mask,
    load_classification,
    pad_batch,
    read_rows,
)
from rnnlab.data.text import DataError
from rnnlab.data.words import WordVocab, tokenize

SST2 = Path(__file__).resolve().parents[2] / "shared" / "data" / "sst2"


def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


# ---------------------------------------------------------------------------------------------
# reading rows


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("a.tsv", "1,2,3\n", "\t"),  # the extension decides
        ("a.csv", "1\t2\n", ","),
        ("a.txt", "1\tgood, fine\n", "\t"),  # a tab in the first line wins over commas
        ("a.txt", "\n1,good\n", ","),
        ("A.TSV", "x", "\t"),
    ],
)
def test_detect_delimiter(name, text, expected):
    assert detect_delimiter(name, text) == expected


def test_detect_delimiter_fails_clearly():
    with pytest.raises(DataError, match=r"cannot tell the delimiter of a\.txt: its first line has no tab and no comma"):
        detect_delimiter("a.txt", "just words\n")


def test_read_rows_csv_quoting_and_line_numbers(tmp_path):
    p = write(tmp_path, "a.csv", 'label,text\n\n1,"hello, world"\n0,"two\nlines"\n1,"say ""hi"""\n')
    delimiter, rows = read_rows(p)
    assert delimiter == ","
    assert rows == [
        (1, ["label", "text"]),
        (3, ["1", "hello, world"]),
        (4, ["0", "two\nlines"]),  # the line the record starts on
        (6, ["1", 'say "hi"']),
    ]


def test_read_rows_csv_error_has_line_number(tmp_path):
    p = write(tmp_path, "a.csv", '1,ok\n0,"unterminated\n')
    with pytest.raises(DataError, match=re.escape(f"data: {p} line 2: ")):
        read_rows(p)


def test_read_rows_bad_delimiter(tmp_path):
    p = write(tmp_path, "a.tsv", "1\ta\n")
    with pytest.raises(ValueError, match="delimiter: expected one character"):
        read_rows(p, delimiter="::")


# ---------------------------------------------------------------------------------------------
# load_classification


def test_tsv_with_header(tmp_path):
    p = write(tmp_path, "train.tsv", "label\tsentence\n0\tbad film\n1\tgreat film\n\n")
    assert load_classification(p) == (["bad film", "great film"], ["0", "1"])


def test_tsv_without_header(tmp_path):
    p = write(tmp_path, "train.tsv", "0\tbad film\n1\tgreat film\n")
    assert load_classification(p) == (["bad film", "great film"], ["0", "1"])


@pytest.mark.parametrize(
    ("text", "header"),
    [
        ("pos\tgood\nneg\tbad\n", False),  # string labels, no header
        ("Class\tText\npos\tgood\nneg\tbad\n", True),  # known header names (any case)
        ("stars\treview\n1\tbad\n5\tgood\n", True),  # non-integer over integer labels
        ("x\tsentence\npos\tgood\n", True),  # a known text header alone is enough
    ],
)
def test_header_detection(tmp_path, text, header):
    p = write(tmp_path, "d.tsv", text)
    texts, _ = load_classification(p)
    n_rows = text.count("\n")
    assert len(texts) == n_rows - (1 if header else 0)


def test_header_forced_and_column_names(tmp_path):
    p = write(tmp_path, "d.csv", 'id,text,label\n7,"a, b",x\n8,c,y\n')
    assert load_classification(p, label_column="label", text_column="text") == (["a, b", "c"], ["x", "y"])
    assert load_classification(p, label_column=-1, text_column=1, header=True) == (["a, b", "c"], ["x", "y"])
    _texts, labels = load_classification(p, label_column=2, header=False)
    assert labels == ["label", "x", "y"]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"label_column": "lbl"}, r"no column named 'lbl' in the header; columns are \['label', 'text'\]"),
        ({"label_column": 5}, r"label_column=5 is out of range: .* has 2 columns"),
    ],
)
def test_bad_columns(tmp_path, kwargs, match):
    p = write(tmp_path, "d.tsv", "label\ttext\n1\ta\n")
    with pytest.raises(DataError, match=match):
        load_classification(p, **kwargs)


def test_column_name_without_header(tmp_path):
    p = write(tmp_path, "d.tsv", "1\ta\n")
    with pytest.raises(DataError, match=r"label_column='label' names a column, but .* has no header row"):
        load_classification(p, label_column="label", header=False)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("label\ttext\n1\tok\n0\tbad\tfilm\n", r"line 3: expected 2 tab-separated columns \(as on line 1\), got 3"),
        ("1\tok\n\n0\n", r"line 3: expected 2 tab-separated columns \(as on line 1\), got 1"),
        ("1\tok\n\t no label\n", r"line 2: empty label \(column 1\)"),
        ("1\tok\n0\t  \n", r"line 2: empty text \(column 2\)"),
        ("only\nwords\n", r"line 1: expected at least 2 columns \(label and text\), got 1"),
        ("label\ttext\n", r"no examples in .* \(only a header row\)"),
        ("\n\n", "file contains only whitespace"),
    ],
)
def test_format_errors_name_the_line(tmp_path, text, match):
    p = write(tmp_path, "d.tsv", text)
    with pytest.raises(DataError, match=re.escape(f"data: {p}") + ".*" + match if "line" in match else match):
        load_classification(p)


def test_csv_wrong_column_count(tmp_path):
    p = write(tmp_path, "d.csv", "1,fine\n0,not, quoted\n")
    with pytest.raises(
        DataError, match=re.escape(f"data: {p} line 2: expected 2 ','-separated columns (as on line 1), got 3")
    ):
        load_classification(p)


def test_unknown_label_at_evaluation(tmp_path):
    train = write(tmp_path, "train.tsv", "label\ttext\npos\tgood\nneg\tbad\n")
    dev = write(tmp_path, "dev.tsv", "label\ttext\npos\tfine\nneutral\tmeh\n")
    vocab = LabelVocab.from_labels(load_classification(train)[1])
    with pytest.raises(
        DataError,
        match=re.escape(f"data: {dev} line 3: unknown label 'neutral', not among the 2 training labels ('neg', 'pos')"),
    ):
        load_classification(dev, label_vocab=vocab)


def test_unicode_texts(tmp_path):
    rows = ["1\tΚαλή ταινία 🙂", "0\t很无聊的电影", "2\tकहानी अच्छी है 👍🏽"]
    p = write(tmp_path, "u.tsv", "\n".join(rows) + "\n")
    texts, labels = load_classification(p)
    assert texts == [r.split("\t")[1] for r in rows] and labels == ["1", "0", "2"]
    v = WordVocab.build(map(tokenize, texts))
    for t in texts:
        assert v.decode(v.encode(tokenize(t))) == tokenize(t)


def test_crlf_and_bom(tmp_path):
    p = tmp_path / "w.tsv"
    p.write_bytes(b"\xef\xbb\xbflabel\ttext\r\n1\tyes\r\n0\tno\r\n")
    assert load_classification(p) == (["yes", "no"], ["1", "0"])


# ---------------------------------------------------------------------------------------------
# LabelVocab


def test_label_vocab_numeric_and_text_order():
    assert LabelVocab.from_labels(["10", "2", "0", "2"]).itos == ["0", "2", "10"]
    assert LabelVocab.from_labels(["1", "0"]).encode(["0", "1", "1"]).tolist() == [0, 1, 1]
    v = LabelVocab.from_labels(["pos", "neg", "-1"])
    assert v.itos == ["-1", "neg", "pos"]
    assert v.decode(np.array([2, 0])) == ["pos", "-1"]
    with pytest.raises(ValueError, match=r"ids: expected ids in \[0, 3\), got 3"):
        v.decode([3])


def test_label_vocab_unicode_and_json_round_trip():
    v = LabelVocab.from_labels(["θετικό", "αρνητικό", "中性", "🙂"])
    back = LabelVocab.from_json(json.loads(json.dumps(v.to_json())))
    assert back == v and back.encode(["🙂"]).tolist() == v.encode(["🙂"]).tolist()


def test_label_vocab_unknown_label_messages():
    v = LabelVocab(["a", "b"])
    with pytest.raises(DataError, match=re.escape("data: dev.tsv line 7: unknown label 'c'")):
        v.encode(["a", "c"], lines=[6, 7], source="dev.tsv")
    with pytest.raises(DataError, match=re.escape("data: labels[1]: unknown label 'c'")):
        v.encode(["a", "c"])


@pytest.mark.parametrize(
    ("obj", "match"),
    [
        ("x", "expected a JSON object, got str"),
        ({"type": "word", "labels": []}, "expected type 'label', got 'word'"),
        ({"type": "label", "labels": [1, 2]}, "'labels' to be a list of strings"),
        ({"type": "label", "labels": ["a", "a"]}, "duplicates"),
        ({"type": "label", "labels": []}, "at least one label"),
    ],
)
def test_label_vocab_from_json_errors(obj, match):
    with pytest.raises(DataError, match="vocab: .*" + match):
        LabelVocab.from_json(obj)


# ---------------------------------------------------------------------------------------------
# padding


def test_pad_batch():
    ids, lengths = pad_batch([np.array([5, 6, 7]), [8], np.array([], dtype=np.int64)], pad_id=0)
    assert ids.tolist() == [[5, 6, 7], [8, 0, 0], [0, 0, 0]]
    assert ids.dtype == np.int64 and lengths.tolist() == [3, 1, 0]
    ids, lengths = pad_batch([[1, 2, 3, 4], [5]], pad_id=-100, max_len=2)
    assert ids.tolist() == [[1, 2], [5, -100]] and lengths.tolist() == [2, 1]
    assert length_mask(lengths).tolist() == [[True, True], [True, False]]
    assert length_mask([1, 0], max_len=3).tolist() == [[True, False, False], [False, False, False]]


@pytest.mark.parametrize(
    ("seqs", "kwargs", "error", "match"),
    [
        ([], {}, ValueError, "at least one sequence"),
        ([[[1, 2]]], {}, ValueError, r"seqs\[0\]: expected a 1-D sequence of ids, got shape \(1, 2\)"),
        ([[1], [0.5]], {}, TypeError, r"seqs\[1\]: expected integer ids, got dtype float64"),
        ([[1]], {"max_len": 0}, ValueError, "max_len: expected an int >= 1"),
    ],
)
def test_pad_batch_errors(seqs, kwargs, error, match):
    with pytest.raises(error, match=match):
        pad_batch(seqs, 0, **kwargs)


# ---------------------------------------------------------------------------------------------
# BucketBatcher


def _lengths(n=103, seed=0):
    return np.random.default_rng(seed).integers(1, 60, size=n)


def test_bucket_batcher_covers_every_example_once_per_epoch():
    lengths = _lengths()
    b = BucketBatcher(lengths, batch_size=8, seed=3, pool_batches=4)
    assert len(b) == b.batches_per_epoch == 13
    for epoch in range(3):
        batches = list(b)
        assert b.epoch == epoch + 1 and b.position == 0
        assert sorted(np.concatenate(batches).tolist()) == list(range(103))
        assert sorted(len(x) for x in batches)[1:] == [8] * 12
        for idx in batches:  # longest first, for pack_padded_sequence(enforce_sorted=True)
            assert (np.diff(lengths[idx]) <= 0).all()


def test_bucket_batcher_seeded_and_varies_by_epoch():
    lengths = _lengths()
    a = [x.tolist() for x in BucketBatcher(lengths, 8, seed=1).epoch_batches(0)]
    assert a == [x.tolist() for x in BucketBatcher(lengths, 8, seed=1).epoch_batches(0)]
    assert a != [x.tolist() for x in BucketBatcher(lengths, 8, seed=2).epoch_batches(0)]
    assert a != [x.tolist() for x in BucketBatcher(lengths, 8, seed=1).epoch_batches(1)]


def test_bucket_batcher_pads_less_than_random_batches():
    lengths = _lengths(2000)
    b = BucketBatcher(lengths, 32, seed=0)
    bucketed = sum(len(idx) * lengths[idx].max() for idx in b.epoch_batches(0))
    perm = np.random.default_rng(0).permutation(len(lengths))
    random = sum(len(idx) * lengths[idx].max() for idx in np.array_split(perm, len(b)))
    assert bucketed < 0.75 * random


def test_bucket_batcher_resumes_exactly():
    lengths = _lengths()
    a = BucketBatcher(lengths, 8, seed=5)
    for _ in range(20):  # into the second epoch
        a.next_batch()
    state = json.loads(json.dumps(a.state_dict()))
    b = BucketBatcher(lengths, 8, seed=5)
    b.load_state_dict(state)
    for _ in range(30):
        assert a.next_batch().tolist() == b.next_batch().tolist()
    assert (a.epoch, a.position) == (b.epoch, b.position)


def test_bucket_batcher_iter_after_resume_finishes_the_epoch():
    b = BucketBatcher(_lengths(), 8, seed=5)
    b.load_state_dict({**b.state_dict(), "position": 10})
    assert len(list(b)) == 3 and b.epoch == 1


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"seed": 6}, r"state\['seed'\]: the saved data position is for seed=6, this batcher has seed=5"),
        ({"batch_size": 4}, r"state\['batch_size'\]"),
        ({"num_examples": 50}, r"state\['num_examples'\]"),
        ({"fingerprint": 123}, "examples of other lengths"),
        ({"position": 13}, r"state\['position'\]: expected an int in \[0, 13\), got 13"),
        ({"epoch": -1}, r"state\['epoch'\]: expected an int >= 0"),
    ],
)
def test_bucket_batcher_refuses_a_foreign_state(change, match):
    b = BucketBatcher(_lengths(), 8, seed=5)
    with pytest.raises(ValueError, match=match):
        b.load_state_dict({**b.state_dict(), **change})


def test_bucket_batcher_eval_mode_and_drop_last():
    b = BucketBatcher([5, 1, 4, 2, 3], batch_size=2, shuffle=False)
    assert [x.tolist() for x in b] == [[0, 2], [4, 3], [1]]
    assert [x.tolist() for x in b] == [[0, 2], [4, 3], [1]]  # the same every epoch
    d = BucketBatcher(_lengths(), 8, seed=0, drop_last=True)
    batches = list(d)
    assert len(batches) == 12 and all(len(x) == 8 for x in batches)


@pytest.mark.parametrize(
    ("args", "kwargs", "match"),
    [
        (([], 2), {}, "non-empty 1-D array"),
        (([1, 2], 0), {}, "batch_size: expected a positive int"),
        (([1, 2], 2), {"seed": -1}, "seed: expected an int >= 0"),
        (([1, 2], 3), {"drop_last": True}, "expected at most 2"),
    ],
)
def test_bucket_batcher_bad_arguments(args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        BucketBatcher(*args, **kwargs)


# ---------------------------------------------------------------------------------------------
# the real data set


@pytest.mark.skipif(not (SST2 / "train.tsv").exists(), reason="../shared/data/sst2 not available")
def test_sst2():
    texts, labels = load_classification(SST2 / "train.tsv")
    assert len(texts) == 67_349 and texts[0] == "hide new secretions from the parental units"
    label_vocab = LabelVocab.from_labels(labels)
    assert label_vocab.itos == ["0", "1"]
    dev_texts, dev_labels = load_classification(SST2 / "dev.tsv", label_vocab=label_vocab)
    assert len(dev_texts) == 872  # its header is label<TAB>content
    vocab = WordVocab.build((tokenize(t) for t in texts), min_freq=2)
    seqs = [vocab.encode(tokenize(t)) for t in dev_texts]
    y = label_vocab.encode(dev_labels)
    b = BucketBatcher([len(s) for s in seqs], batch_size=32, shuffle=False)
    idx = b.next_batch()
    ids, lengths = pad_batch([seqs[i] for i in idx], vocab.pad_id)
    assert ids.shape == (32, lengths.max()) and (ids[length_mask(lengths)] != vocab.pad_id).all()
    assert set(y[idx].tolist()) <= {0, 1}


def test_a_sentence_label_header_swaps_the_columns(tmp_path):
    path = tmp_path / "glue.tsv"
    path.write_text("sentence\tlabel\ngood fun\t1\nawful\t0\n", encoding="utf-8")
    assert load_classification(path) == (["good fun", "awful"], ["1", "0"])


def test_an_unknown_header_is_found_by_its_lone_label(tmp_path):
    rows = [("pos" if k % 2 else "neg", f"text number {k}") for k in range(12)]
    path = tmp_path / "intents.tsv"
    path.write_text("intent\tutterance\n" + "".join(f"{a}\t{b}\n" for a, b in rows), encoding="utf-8")
    texts, labels = load_classification(path)
    assert len(texts) == 12 and set(labels) == {"pos", "neg"}
    # a real first example with a rare label has a sentence for its text: it stays an example
    path.write_text("neutral\tthe film was fine I guess\n" + "".join(f"{a}\t{b}\n" for a, b in rows), encoding="utf-8")
    texts, labels = load_classification(path)
    assert len(texts) == 13 and labels[0] == "neutral"


def test_a_byte_order_mark_inside_the_file_is_not_part_of_a_label(tmp_path):
    part = "\ufeffneg\tbad\r\npos\tgood\r\n"
    path = tmp_path / "joined.tsv"
    path.write_bytes((part + part).encode("utf-8"))
    assert load_classification(path)[1] == ["neg", "pos", "neg", "pos"]
    csv_path = tmp_path / "joined.csv"
    csv_path.write_bytes((part + part).replace("\t", ",").encode("utf-8"))
    assert load_classification(csv_path)[1] == ["neg", "pos", "neg", "pos"]
