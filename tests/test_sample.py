"""Tests of rnnlab.generation.sample: drawing tokens, priming, and generating text."""

from __future__ import annotations

import re

import numpy as np
import pytest

from rnnlab.config import ModelConfig, SampleConfig
from rnnlab.data.text import CharVocab, DataError
from rnnlab.data.words import WordVocab
from rnnlab.generation.sample import PrimeError, encode_prime, sample_lm, sample_next
from rnnlab.scratch.losses import softmax
from rnnlab.scratch.models import LanguageModel

TEXT = "Καλημέρα café 🙂 naïve"


@pytest.fixture(scope="module")
def vocab() -> CharVocab:
    return CharVocab.from_text(TEXT)


@pytest.fixture(scope="module")
def line_vocab() -> CharVocab:
    return CharVocab.from_lines(["anna", "bob", "zoë"])


def _model(vocab: CharVocab, seed: int = 0) -> LanguageModel:
    return LanguageModel(ModelConfig(vocab_size=len(vocab), hidden_size=16, embedding_dim=8), seed=seed)


# ---------------------------------------------------------------------------------------------
# sample_next


def test_sample_next_greedy_is_argmax() -> None:
    logits = np.random.default_rng(0).standard_normal((50, 9))
    rng = np.random.default_rng(1)
    np.testing.assert_array_equal(sample_next(logits, rng, greedy=True), logits.argmax(-1))
    np.testing.assert_array_equal(sample_next(logits, rng, top_k=1), logits.argmax(-1))
    np.testing.assert_array_equal(sample_next(logits, rng, temperature=1e-4), logits.argmax(-1))


def test_sample_next_top_k_restricts_the_support() -> None:
    logits = np.tile(np.array([[0.0, 3.0, 1.0, 2.5, -1.0, 2.9]]), (4000, 1))
    drawn = sample_next(logits, np.random.default_rng(0), top_k=3)
    assert set(drawn.tolist()) == {1, 3, 5}


def test_sample_next_matches_the_softmax_distribution() -> None:
    base = np.array([0.0, 1.0, 2.0, -1.0])
    n = 40_000
    for temperature in (0.5, 1.0, 2.0):
        drawn = sample_next(np.tile(base, (n, 1)), np.random.default_rng(7), temperature=temperature)
        freq = np.bincount(drawn, minlength=4) / n
        np.testing.assert_allclose(freq, softmax(base / temperature), atol=0.01)


@pytest.mark.parametrize(
    ("logits", "temperature", "expected"),
    [
        ([[0.5, 2.0, 1.0, -1.0]], 5e-324, 1),  # logits / T overflows: the greedy limit, not token 0
        ([[1.7e308, 8.5e307, 0.0]], 0.5, 0),  # huge logits
        ([[0.0, np.inf, 1.0]], 1.0, 1),  # +inf: that token
    ],
)
def test_sample_next_extreme_values_draw_the_right_token(logits, temperature, expected) -> None:
    with np.errstate(over="raise", invalid="raise", divide="raise"):  # no NaN on the way
        draws = {
            int(sample_next(np.array(logits), np.random.default_rng(s), temperature=temperature)[0]) for s in range(20)
        }
    assert draws == {expected}


def test_sample_next_refuses_a_row_with_no_possible_token() -> None:
    with pytest.raises(ValueError, match=r"^logits: a row is -inf everywhere, so no token can be drawn$"):
        sample_next(np.array([[0.0, 1.0], [-np.inf, -np.inf]]), np.random.default_rng(0))
    assert (
        sample_next(
            np.array([[0.0, 9.0]]), np.random.default_rng(0), temperature=np.float32(0.5), top_p=np.float32(0.9)
        )[0]
        == 1
    )


def test_sample_next_same_seed_same_draws() -> None:
    logits = np.random.default_rng(0).standard_normal((100, 12))
    a = sample_next(logits, np.random.default_rng(5))
    b = sample_next(logits, np.random.default_rng(5))
    np.testing.assert_array_equal(a, b)
    assert a.dtype.kind == "i" and a.min() >= 0 and a.max() < 12


# ---------------------------------------------------------------------------------------------
# encode_prime


def test_encode_prime_known_characters(vocab: CharVocab) -> None:
    ids, warning = encode_prime(vocab, SampleConfig(prime="café 🙂"))
    assert vocab.decode(ids) == "café 🙂" and warning is None
    ids, warning = encode_prime(vocab, SampleConfig())
    assert ids.shape == (0,) and warning is None


def test_encode_prime_unknown_is_an_error(vocab: CharVocab) -> None:
    with pytest.raises(PrimeError) as exc:
        encode_prime(vocab, SampleConfig(prime="caféx€x"))
    msg = str(exc.value)
    assert isinstance(exc.value, DataError) and isinstance(exc.value, ValueError)
    assert "2 character(s)" in msg and "'x' (U+0078)" in msg and "'€' (U+20AC)" in msg
    assert "nothing was generated" in msg and "\n" not in msg


def test_encode_prime_skip_and_map(vocab: CharVocab) -> None:
    ids, warning = encode_prime(vocab, SampleConfig(prime="cxafé€", unknown="skip"))
    assert vocab.decode(ids) == "café"
    assert warning is not None and "skipped" in warning and "U+0078" in warning and "U+20AC" in warning
    ids, warning = encode_prime(vocab, SampleConfig(prime="cxafé€", unknown="map", replacement=" "))
    assert vocab.decode(ids) == "c afé "
    assert warning is not None and "replaced" in warning and "' '" in warning


def test_encode_prime_replacement_must_be_in_the_vocabulary(vocab: CharVocab) -> None:
    with pytest.raises(PrimeError, match="replacement"):
        encode_prime(vocab, SampleConfig(prime="x", unknown="map", replacement="Q"))
    # a character model needs one; a word model maps to <unk> and needs none
    with pytest.raises(
        PrimeError, match=r"^replacement: a character model maps unknown prime characters \('x' \(U\+0078\)\)"
    ):
        encode_prime(vocab, SampleConfig(prime="x", unknown="map"))
    words = WordVocab.from_text("the cat\n")
    ids, warning = encode_prime(words, SampleConfig(prime="the dog", unknown="map"))
    assert words.decode(ids) == ["the", "<unk>"] and warning is not None and "<unk>" in warning


def test_encode_prime_many_unknown_characters_are_elided(vocab: CharVocab) -> None:
    with pytest.raises(PrimeError) as exc:
        encode_prime(vocab, SampleConfig(prime="0123456789ABCDEF"))
    assert "16 character(s)" in str(exc.value) and "…" in str(exc.value)
    assert "'A'" not in str(exc.value)  # only the first 10 are listed


# ---------------------------------------------------------------------------------------------
# sample_lm


def test_sample_lm_plain_text(vocab: CharVocab) -> None:
    model = _model(vocab)
    cfg = SampleConfig(length=30, num_samples=3, seed=1, prime="café")
    samples = sample_lm(model, vocab, cfg)
    assert len(samples) == 3
    for s in samples:
        assert s.startswith("café") and len(s) == 4 + 30
        assert set(s) <= set(vocab.itos)
    assert sample_lm(model, vocab, cfg) == samples  # same seed, same text
    assert sample_lm(model, vocab, cfg.replace(seed=2)) != samples
    assert len(set(samples)) > 1  # the rows are independent draws


def test_sample_lm_without_prime_starts_each_sample_from_its_own_character(vocab: CharVocab) -> None:
    (s,) = sample_lm(_model(vocab), vocab, SampleConfig(length=20, seed=3))
    assert len(s) == 20 and set(s) <= set(vocab.itos)  # the random first character is one of the 20
    firsts = {t[0] for t in sample_lm(_model(vocab), vocab, SampleConfig(length=5, num_samples=30, seed=3))}
    assert len(firsts) > 1  # not one start shared by the whole batch


def test_sample_lm_streams_the_first_sample(vocab: CharVocab) -> None:
    pieces: list[str] = []
    samples = sample_lm(
        _model(vocab), vocab, SampleConfig(length=25, num_samples=2, seed=4, prime="Κα"), on_text=pieces.append
    )
    assert pieces[0] == "Κα"
    assert "".join(pieces) == samples[0]


def test_sample_lm_greedy_ignores_the_seed(vocab: CharVocab) -> None:
    model = _model(vocab)
    a = sample_lm(model, vocab, SampleConfig(length=30, greedy=True, prime="na", seed=1))
    b = sample_lm(model, vocab, SampleConfig(length=30, greedy=True, prime="na", seed=2))
    c = sample_lm(model, vocab, SampleConfig(length=30, top_k=1, prime="na", seed=3))
    assert a == b == c


def test_sample_lm_greedy_without_a_prime_is_deterministic(vocab: CharVocab) -> None:
    # char-rnn's argmax of the uniform first draw: the vocabulary's first token
    model = _model(vocab)
    runs = [sample_lm(model, vocab, SampleConfig(length=30, greedy=True, num_samples=2, seed=s)) for s in (None, 5)]
    assert runs[0] == runs[1] and runs[0][0] == runs[0][1] and runs[0][0][0] == vocab.itos[0]


def test_a_long_prime_is_fed_in_chunks_with_the_same_result(vocab: CharVocab, monkeypatch) -> None:
    from rnnlab.generation import sample as sample_module

    prime = (TEXT + " ") * 60  # 1,320 characters
    config = SampleConfig(length=40, prime=prime, seed=11, num_samples=3)
    model = _model(vocab)
    forward = model.forward
    calls: list[int] = []
    monkeypatch.setattr(model, "forward", lambda idx, state: calls.append(idx.shape[1]) or forward(idx, state))
    whole = sample_lm(model, vocab, config)  # the default budget takes this prime in one piece
    assert calls[0] == len(prime)
    calls.clear()
    monkeypatch.setattr(sample_module, "PRIME_CHUNK_LOGITS", 3 * len(vocab) * 100)  # 100 tokens a chunk
    assert sample_lm(model, vocab, config) == whole
    assert calls[:14] == [100] * 13 + [20]


def test_a_prime_byte_that_is_not_utf8_is_an_unknown_character(vocab: CharVocab) -> None:
    # a command line's invalid byte reaches Python as a lone surrogate (U+DCFF for 0xFF)
    config = SampleConfig(length=5, prime="caf\udcffé", unknown="skip", seed=0)
    ids, warning = encode_prime(vocab, config)
    assert vocab.decode(ids) == "café"
    assert warning == "prime: skipped byte 0xFF (not UTF-8) (not in the model's vocabulary)"
    with pytest.raises(PrimeError, match=r"1 character\(s\) not in the model's vocabulary: byte 0xFF \(not UTF-8\)"):
        encode_prime(vocab, SampleConfig(length=5, prime="caf\udcffé"))


def test_sample_lm_per_line_stops_at_the_boundary(line_vocab: CharVocab) -> None:
    model = _model(line_vocab, seed=2)
    samples = sample_lm(model, line_vocab, SampleConfig(length=15, num_samples=40, seed=0), per_line=True)
    assert len(samples) == 40
    assert all(len(s) <= 15 and set(s) <= set("anbozë") for s in samples)
    assert all(CharVocab.BOUNDARY not in s for s in samples)
    # an untrained model draws the boundary (1 of 7 tokens) now and then: some items end early,
    # but never before their first token (no item of the data is empty)
    assert any(len(s) < 15 for s in samples) and all(len(s) >= 1 for s in samples)
    greedy_end = _model(line_vocab, seed=2)
    greedy_end.head.params["bias"][line_vocab.boundary_id] = 50.0  # the boundary is always the likeliest
    ends = sample_lm(greedy_end, line_vocab, SampleConfig(length=15, num_samples=5, seed=0), per_line=True)
    assert [len(s) for s in ends] == [1] * 5


def test_sample_lm_per_line_with_prime(line_vocab: CharVocab) -> None:
    samples = sample_lm(
        _model(line_vocab), line_vocab, SampleConfig(length=10, num_samples=5, seed=0, prime="zo"), per_line=True
    )
    assert all(s.startswith("zo") and len(s) <= 12 for s in samples)


def test_sample_lm_unknown_prime_raises_before_generating(vocab: CharVocab) -> None:
    pieces: list[str] = []
    with pytest.raises(PrimeError):
        sample_lm(_model(vocab), vocab, SampleConfig(prime="xyz"), on_text=pieces.append)
    assert pieces == []


def test_word_prime_messages_show_code_points_and_blank_primes() -> None:
    words = WordVocab.from_text("e\u0301te cat\n")  # e + a combining accent
    with pytest.raises(PrimeError, match=re.escape("'\u00e9te' (U+00E9 U+0074 U+0065)")):  # precomposed é: another word
        encode_prime(words, SampleConfig(prime="\u00e9te"))
    ids, warning = encode_prime(words, SampleConfig(prime="   "))
    assert len(ids) == 0 and warning == "prime: '   ' holds no word; sampling starts unprimed"
