"""Tests for rnnlab.data.conllu: strict CoNLL-U parsing, tagging vocabularies, character inputs."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from rnnlab.data.classify import LabelVocab, pad_batch
from rnnlab.data.conllu import (
    IGNORE_INDEX,
    build_tagging_vocabs,
    char_ids,
    encode_tagging,
    pad_char_batch,
    read_conllu,
)
from rnnlab.data.text import DataError
from rnnlab.data.words import PAD, UNK, WordVocab

EWT = Path(__file__).resolve().parents[2] / "shared" / "data" / "ud-en-ewt"


def row(i, form, upos, xpos="_"):
    return "\t".join([str(i), form, form.lower(), upos, xpos, "_", "0", "dep", "_", "_"])


SAMPLE = "\n".join(
    [
        "# newdoc id = test",
        "# sent_id = 1",
        "# text = I don't know.",
        row(1, "I", "PRON", "PRP"),
        "\t".join(["2-3", "don't", "_", "_", "_", "_", "_", "_", "_", "_"]),
        row(2, "do", "AUX", "VBP"),
        row(3, "n't", "PART", "RB"),
        row(4, "know", "VERB", "VB"),
        "\t".join(["4.1", "know", "know", "VERB", "VB", "_", "_", "_", "3:conj", "_"]),
        row(5, ".", "PUNCT", "."),
        "",
        "# sent_id = 2",
        row(1, "Γειά", "INTJ", "UH"),
        row(2, "你好", "INTJ", "UH"),
        row(3, "🙂", "SYM", "NFP"),
        "",
    ]
)


def write(tmp_path, text, name="t.conllu"):
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def test_read_upos_skips_comments_multiword_tokens_and_empty_nodes(tmp_path):
    p = write(tmp_path, SAMPLE)
    assert read_conllu(p) == [
        (["I", "do", "n't", "know", "."], ["PRON", "AUX", "PART", "VERB", "PUNCT"]),
        (["Γειά", "你好", "🙂"], ["INTJ", "INTJ", "SYM"]),
    ]


def test_read_xpos_and_other_columns(tmp_path):
    p = write(tmp_path, SAMPLE)
    assert read_conllu(p, column="xpos")[0][1] == ["PRP", "VBP", "RB", "VB", "."]
    assert read_conllu(p, column="deprel")[1][1] == ["dep", "dep", "dep"]
    with pytest.raises(ValueError, match=r"column: expected one of 'lemma', 'upos', 'xpos'.*got 'form'"):
        read_conllu(p, column="form")


def test_last_sentence_without_blank_line_and_extra_blank_lines(tmp_path):
    p = write(tmp_path, "\n\n" + row(1, "a", "X") + "\n\n\n\n" + row(1, "b", "Y") + "\n" + row(2, "c", "Z"))
    assert read_conllu(p) == [(["a"], ["X"]), (["b", "c"], ["Y", "Z"])]


def test_crlf_file(tmp_path):
    p = tmp_path / "w.conllu"
    p.write_bytes((row(1, "a", "X") + "\r\n" + row(2, "b", "Y") + "\r\n\r\n").encode())
    assert read_conllu(p) == [(["a", "b"], ["X", "Y"])]


def _lines_with(bad_line: str, at: int = 3) -> str:
    lines = ["# sent_id = 1", row(1, "a", "X", "x"), row(2, "b", "Y", "y"), row(3, "c", "Z", "z"), ""]
    lines.insert(at, bad_line)
    return "\n".join(lines)


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        ("3\tc\tc\tZ\tz\t_\t0\tdep", "expected 10 tab-separated columns, got 8"),
        ("3 c c Z z _ 0 dep _ _", "expected 10 tab-separated columns, got 1"),
        ("\t".join(["3", "c", "c", "Z", "z", "_", "0", "dep", "_", "_", "extra"]), "got 11"),
        (row(4, "c", "Z"), "expected word ID 3, got '4'"),
        (row(1, "c", "Z"), "expected word ID 3, got '1'"),
        (row("x", "c", "Z"), "expected word ID 3, got 'x'"),
        (
            "\t".join(["4-5", "cd", *["_"] * 8]),
            r"expected a multiword range starting at word 3 \(like 3-4\), got ID '4-5'",
        ),
        ("\t".join(["3-3", "cd", *["_"] * 8]), "got ID '3-3'"),
        ("\t".join(["1.1", "e", *["_"] * 8]), r"expected an empty node ID like 2\.1 \(after word 2\), got '1\.1'"),
        (row(3, "", "Z"), r"empty FORM \(column 2\)"),
        (row(3, "c", "_"), r"no UPOS tag \(column 4 is '_'\)"),
        (row(3, "c", ""), r"no UPOS tag \(column 4 is 'empty'\)"),
    ],
)
def test_syntax_errors_name_file_and_line(tmp_path, bad, match):
    p = write(tmp_path, _lines_with(bad), name="en_ewt-ud-train.conllu")
    with pytest.raises(DataError, match=re.escape(f"data: {p} line 4: ") + ".*" + match):
        read_conllu(p)


def test_missing_xpos_explains(tmp_path):
    p = write(tmp_path, row(1, "a", "X") + "\n")
    with pytest.raises(
        DataError,
        match=r"line 1: no XPOS tag \(column 5 is '_'\); this treebank has no XPOS tags: tag UPOS \(--column upos\)",
    ):
        read_conllu(p, column="xpos")


def test_no_sentences(tmp_path):
    p = write(tmp_path, "# only a comment\n\n")
    with pytest.raises(DataError, match=re.escape(f"data: no sentences in {p}")):
        read_conllu(p)


def test_unknown_tag_at_evaluation(tmp_path):
    train = read_conllu(write(tmp_path, SAMPLE))
    _, tag_vocab, _ = build_tagging_vocabs(train)
    dev = write(tmp_path, "# c\n" + row(1, "a", "VERB") + "\n" + row(2, "b", "NEWTAG") + "\n", name="dev.conllu")
    with pytest.raises(
        DataError, match=re.escape(f"data: {dev} line 3: unknown tag 'NEWTAG', not among the 7 training tags")
    ):
        read_conllu(dev, tag_vocab=tag_vocab)


def test_vocabs_and_encoding(tmp_path):
    train = read_conllu(write(tmp_path, SAMPLE))
    word_vocab, tag_vocab, char_vocab = build_tagging_vocabs(train)
    assert word_vocab.itos[:2] == [PAD, UNK] and "你好" in word_vocab
    assert tag_vocab.itos == ["AUX", "INTJ", "PART", "PRON", "PUNCT", "SYM", "VERB"]
    assert char_vocab.level == "char" and {"Γ", "你", "🙂"} <= set(char_vocab.itos)
    x, y = encode_tagging([*train, (["unseen", "I"], ["PRON", "PRON"])], word_vocab, tag_vocab)
    assert [len(s) for s in x] == [5, 3, 2]
    assert x[2].tolist() == [word_vocab.unk_id, word_vocab.stoi["I"]]
    assert tag_vocab.decode(y[1]) == ["INTJ", "INTJ", "SYM"]
    tags, lengths = pad_batch(y, IGNORE_INDEX)
    assert tags.shape == (3, 5) and (tags[2, 2:] == IGNORE_INDEX).all() and lengths.tolist() == [5, 3, 2]
    # the vocabularies survive JSON
    assert WordVocab.from_json(json.loads(json.dumps(word_vocab.to_json()))) == word_vocab
    assert WordVocab.from_json(json.loads(json.dumps(char_vocab.to_json()))) == char_vocab
    assert LabelVocab.from_json(json.loads(json.dumps(tag_vocab.to_json()))) == tag_vocab


def test_lowercased_words():
    word_vocab, _, char_vocab = build_tagging_vocabs([(["The", "the", "THE"], ["D", "D", "D"])], lower=True)
    assert word_vocab.itos == [PAD, UNK, "the"]
    assert "T" in char_vocab  # characters keep their case
    x, _ = encode_tagging([(["tHe"], ["D"])], word_vocab, LabelVocab(["D"]))
    assert x[0].tolist() == [2]


def test_char_ids_unicode_and_padding():
    _, _, c = build_tagging_vocabs([(["Γειά", "你好", "🙂👍🏽"], ["A", "B", "C"])])
    ids, lengths = char_ids(["Γειά", "你", "🙂👍🏽", "z"], c)
    assert ids.shape == (4, 4) and lengths.tolist() == [4, 1, 3, 1]  # 👍🏽 is two code points
    assert c.decode(ids[0]) == list("Γειά")
    assert ids[1, 1:].tolist() == [c.pad_id] * 3
    assert ids[3, 0] == c.unk_id
    cut, cut_lengths = char_ids(["Γειά"], c, max_word_len=2)
    assert cut.shape == (1, 2) and cut_lengths.tolist() == [2]


def test_pad_char_batch():
    _, _, c = build_tagging_vocabs([(["ab", "c"], ["X", "Y"])])
    ids, lengths = pad_char_batch([["ab", "c"], ["abc"], ["a", "b", "c"]], c)
    assert ids.shape == (3, 3, 3)
    assert lengths.tolist() == [[2, 1, 0], [3, 0, 0], [1, 1, 1]]
    assert (ids[lengths == 0] == c.pad_id).all()
    assert c.decode(ids[1, 0]) == ["a", "b", "c"]


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda c: char_ids([], c), "at least one word"),
        (lambda c: char_ids(["a"], c, max_word_len=0), "max_word_len"),
        (lambda c: char_ids(["a"], WordVocab(["a"])), "level='char'"),
        (lambda c: pad_char_batch([], c), "at least one sentence"),
    ],
)
def test_char_errors(call, match):
    _, _, c = build_tagging_vocabs([(["a"], ["X"])])
    with pytest.raises(ValueError, match=match):
        call(c)


# ---------------------------------------------------------------------------------------------
# the real treebank


@pytest.mark.skipif(not (EWT / "en_ewt-ud-train.conllu").exists(), reason="../shared/data/ud-en-ewt not available")
def test_ud_english_ewt():
    train = read_conllu(EWT / "en_ewt-ud-train.conllu")
    assert len(train) == 12_544 and sum(len(w) for w, _ in train) == 204_577
    word_vocab, tag_vocab, char_vocab = build_tagging_vocabs(train, min_freq=2)
    assert len(tag_vocab) == 17 and "NOUN" in tag_vocab
    dev = read_conllu(EWT / "en_ewt-ud-dev.conllu", tag_vocab=tag_vocab)
    assert len(dev) == 2_001 and sum(len(w) for w, _ in dev) == 25_147
    xpos = read_conllu(EWT / "en_ewt-ud-dev.conllu", column="xpos")
    assert [len(w) for w, _ in xpos] == [len(w) for w, _ in dev]
    x, _y = encode_tagging(dev, word_vocab, tag_vocab)
    unk_rate = np.mean(np.concatenate(x) == word_vocab.unk_id)
    assert 0 < unk_rate < 0.15
    chars, _char_lengths = pad_char_batch([w for w, _ in dev[:8]], char_vocab)
    assert chars.shape[:2] == (8, max(len(w) for w, _ in dev[:8]))


def test_a_superscript_digit_is_not_a_word_id(tmp_path):
    p = write(tmp_path, row(1, "a", "X") + "\n" + row("\u00b2", "b", "X") + "\n")
    with pytest.raises(DataError, match=re.escape(f"data: {p} line 2: expected word ID 2, got '\u00b2'")):
        read_conllu(p)


def test_feats_and_misc_take_underscore_as_their_empty_value(tmp_path):
    p = write(tmp_path, row(1, "a", "X") + "\n")
    assert read_conllu(p, column="feats") == [(["a"], ["_"])]
    assert read_conllu(p, column="misc") == [(["a"], ["_"])]


def test_lemma_may_be_an_underscore(tmp_path):
    # EWT leaves the lemma of "goeswith" parts unspecified ("_"): --column lemma reads the file
    p = write(
        tmp_path,
        row(1, "a", "X") + "\n" + "\t".join(["2", "Rice@ENRON", "_", "X", "GW", "_", "1", "goeswith", "_", "_"]) + "\n",
    )
    assert read_conllu(p, column="lemma") == [(["a", "Rice@ENRON"], ["a", "_"])]


@pytest.mark.parametrize("end", ["\n\n" + row(1, "x", "X") + "\n", "\n"])
def test_a_multiword_range_whose_words_never_come(tmp_path, end):
    text = row(1, "I", "PRON") + "\n" + "\t".join(["2-3", "gonna", *["_"] * 8]) + "\n" + row(2, "gon", "VERB") + end
    p = write(tmp_path, text)
    with pytest.raises(
        DataError, match=re.escape(f"data: {p} line 2: the ") + ".* ends before word 3 of this multiword range"
    ):
        read_conllu(p)
