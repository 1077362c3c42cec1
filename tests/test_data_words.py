"""Tests for rnnlab.data.words: tokenisation in any script, WordVocab, word-level LM data."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from rnnlab.data import words as words_mod
from rnnlab.data.text import CharVocab, DataError, StreamBatcher, read_text
from rnnlab.data.words import EOS, PAD, UNK, WordVocab, detokenize, tokenize, vocab_from_json

SHAKESPEARE = Path(__file__).resolve().parents[2] / "shared" / "data" / "tinyshakespeare.txt"

# ---------------------------------------------------------------------------------------------
# tokenize


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Hello, world!", ["Hello", ",", "world", "!"]),
        ("don't stop", ["don", "'", "t", "stop"]),
        ("x=3.14_y", ["x", "=", "3", ".", "14_y"]),
        ("Καλημέρα, κόσμε!", ["Καλημέρα", ",", "κόσμε", "!"]),
        ("你好，世界。", ["你好", "，", "世界", "。"]),
        ("हिन्दी भाषा", ["हिन्दी", "भाषा"]),  # vowel signs are combining marks, not \w
        ("café naïve", ["café", "naïve"]),
        ("e\u0301te\u0301", ["e\u0301te\u0301"]),  # decomposed accents stay in the word
        ("I ❤️ it", ["I", "❤️", "it"]),  # heart + variation selector
        ("ok👍🏽!", ["ok", "👍🏽", "!"]),  # skin tone modifier
        ("👨‍👩‍👧 family", ["👨‍👩‍👧", "family"]),  # zero-width-joiner sequence
        ("🇬🇷🇫🇷", ["🇬🇷", "🇫🇷"]),  # flags: pairs of regional indicators
        ("a <unk> b", ["a", "<unk>", "b"]),  # Penn Treebank style pre-unked text
        ("  \t\n ", []),
    ],
)
def test_tokenize(text, expected):
    assert tokenize(text) == expected


def test_tokenize_newline_token_and_lower():
    assert tokenize("A b\n\nC\n", newline=EOS) == ["A", "b", EOS, EOS, "C", EOS]
    assert tokenize("A b\nC", lower=True) == ["a", "b", "c"]


def test_tokenize_ascii_fast_path_matches_full_pattern():
    text = "It's 3 o'clock -- <unk> said: \"hi\"\n\ta_b (x+y)=z; 42%!\n"
    assert text.isascii()
    assert words_mod._ASCII_TOKEN_RE.findall(text) == words_mod._token_re().findall(text)


def test_tokenize_rejects_non_str():
    with pytest.raises(TypeError, match="expected str"):
        tokenize(b"bytes")  # type: ignore[arg-type]


def test_detokenize():
    assert detokenize(["a", ",", "b", EOS, "c"]) == "a , b\nc"
    assert detokenize([*list("ab"), EOS, "c"], level="char") == "ab\nc"


# ---------------------------------------------------------------------------------------------
# WordVocab


def test_from_text_ids_and_specials():
    v = WordVocab.from_text("the cat sat\nthe dog\n")
    assert v.itos[:3] == [PAD, UNK, EOS]
    assert (v.pad_id, v.unk_id, v.eos_id, v.bos_id) == (0, 1, 2, None)
    # most frequent first, ties by text: the (2), <eos> is special, then cat, dog, sat (1 each)
    assert v.itos[3:] == ["the", "cat", "dog", "sat"]
    assert v.encode_text("the bird sat\n").tolist() == [3, 1, 6, 2]


def test_min_freq_and_max_size():
    text = "a a a b b c\n"
    assert WordVocab.from_text(text, min_freq=2).itos[3:] == ["a", "b"]
    assert WordVocab.from_text(text, max_size=1).itos[3:] == ["a"]
    assert WordVocab.from_text(text, min_freq=3).encode(["a", "b", "c"]).tolist() == [3, 1, 1]


def test_from_counts_nothing_frequent_enough():
    with pytest.raises(DataError, match=r"no token is frequent enough.*min_freq=5.*occurs 2 time\(s\)"):
        WordVocab.from_counts({"a": 2, "b": 1}, min_freq=5)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"min_freq": 0}, "min_freq: expected an int >= 1"),
        ({"max_size": 0}, "max_size: expected an int >= 1 or None"),
    ],
)
def test_from_counts_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        WordVocab.from_counts({"a": 1}, **kwargs)


def test_encode_without_unk_is_an_error():
    v = WordVocab(["a", "b"], specials=(PAD,))
    assert v.encode(["b", "a"]).tolist() == [2, 1]
    with pytest.raises(
        DataError, match=r"2 token\(s\) not in the vocabulary of 3 tokens, which has no <unk>: 'x', 'y'"
    ):
        v.encode(["a", "x", "y", "x"])


def test_encode_rejects_a_plain_string():
    with pytest.raises(TypeError, match="use encode_text"):
        WordVocab(["a"]).encode("a b")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("args", "kwargs", "match"),
    [
        (["a", "a"], {}, r"duplicates \['a'\]"),
        (["<unk>"], {}, r"duplicates \['<unk>'\]"),
        ([""], {}, "non-empty strings"),
        (["ab"], {"level": "char"}, "single characters"),
        (["a"], {"level": "byte"}, "level: expected 'word' or 'char'"),
    ],
)
def test_constructor_errors(args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        WordVocab(args, **kwargs)


def test_decode_and_skip_specials():
    v = WordVocab(["a", "b"], specials=(PAD, "<bos>", EOS, UNK))
    assert v.decode([1, 4, 3, 5, 2, 0]) == ["<bos>", "a", UNK, "b", EOS, PAD]
    assert v.decode(np.array([1, 4, 3, 5, 2, 0]), skip_specials=True) == ["a", UNK, "b"]
    lm = WordVocab.from_text("a b\n")
    assert lm.decode([3, 2, 4], skip_specials=True) == ["a", EOS, "b"]  # <eos> = line end in an LM
    with pytest.raises(ValueError, match=r"ids: expected ids in \[0, 6\), got 9"):
        v.decode([9])


@pytest.mark.parametrize(
    "text",
    [
        "The quick brown fox .\nJumps over !\n",
        "Καλημέρα κόσμε\nΓειά σου\n",
        "你好 世界\n日本語 テキスト\n",
        "emoji 🙂 👍🏽 ❤️ 👨‍👩‍👧 🇬🇷\n",
        "हिन्दी भाषा\n",
    ],
)
def test_unicode_round_trip(text):
    v = WordVocab.from_text(text)
    ids = v.encode_text(text)
    assert UNK not in v.decode(ids)
    assert v.decode(ids) == tokenize(text, newline=EOS)
    # words are separated by single spaces in the text, so decoding gives it back
    assert v.decode_text(ids) == text
    back = WordVocab.from_json(json.loads(json.dumps(v.to_json(), ensure_ascii=False)))
    assert back == v and back.encode_text(text).tolist() == ids.tolist()


def test_lower_is_saved_with_the_vocab():
    v = WordVocab.from_text("Hello hello HELLO\n", lower=True)
    assert v.itos[3:] == ["hello"]
    back = WordVocab.from_json(v.to_json())
    assert back.lower and back.encode_text("HeLLo\n").tolist() == [3, 2]


def test_char_level():
    v = WordVocab.build([list("abca")], specials=(PAD, UNK), level="char")
    assert v.itos == [PAD, UNK, "a", "b", "c"]
    assert v.tokenize("ab c") == ["a", "b", " ", "c"]
    assert v.encode_text("abz").tolist() == [2, 3, 1]
    assert v.decode_text([2, 3, 4]) == "abc"
    with pytest.raises(ValueError, match="no <eos> token"):
        v.tokenize("a\nb", newline=True)


@pytest.mark.parametrize(
    ("obj", "match"),
    [
        ([], "expected a JSON object, got list"),
        ({"type": "char", "tokens": []}, "expected type 'word', got 'char'"),
        ({"type": "word", "tokens": "abc", "specials": []}, "'tokens' to be a list of strings"),
        ({"type": "word", "tokens": ["a"], "specials": [1]}, "'specials' to be a list of strings"),
        ({"type": "word", "tokens": ["a", "<pad>"], "specials": ["<pad>"]}, "start with the specials"),
        ({"type": "word", "tokens": ["<pad>", "a", "a"], "specials": ["<pad>"]}, "duplicates"),
        ({"type": "word", "tokens": ["<pad>"], "specials": ["<pad>"], "lower": "yes"}, "'lower' to be true or false"),
        ({"type": "word", "tokens": ["<pad>", "ab"], "specials": ["<pad>"], "level": "char"}, "single characters"),
    ],
)
def test_from_json_errors(obj, match):
    with pytest.raises(DataError, match=re.escape("vocab: ") + ".*" + match):
        WordVocab.from_json(obj)


def test_vocab_from_json_dispatches():
    assert vocab_from_json(CharVocab.from_text("ab").to_json()) == CharVocab.from_text("ab")
    assert vocab_from_json(WordVocab(["x"]).to_json()) == WordVocab(["x"])
    with pytest.raises(DataError, match="expected type 'char' or 'word', got 'label'"):
        vocab_from_json({"type": "label"})


# ---------------------------------------------------------------------------------------------
# a word-level language model's data path, on the real corpus


@pytest.mark.skipif(not SHAKESPEARE.exists(), reason="../shared/data/tinyshakespeare.txt not available")
def test_word_lm_on_tiny_shakespeare():
    text = read_text(SHAKESPEARE)
    n_train = int(len(text) * 0.9)
    train, val = text[:n_train], text[n_train:]
    v = WordVocab.from_text(train, min_freq=2)
    train_ids, val_ids = v.encode_text(train), v.encode_text(val)
    assert 5_000 < len(v) < 15_000
    assert 0 < (val_ids == v.unk_id).mean() < 0.1
    assert (train_ids == v.eos_id).sum() == train.count("\n")
    x, y, reset = StreamBatcher(train_ids, batch_size=4, seq_len=16).next_batch()
    assert reset and x.shape == (4, 16) and (x[:, 1:] == y[:, :-1]).all()
    assert v.decode_text(train_ids[:4]) == "First Citizen :\n"
