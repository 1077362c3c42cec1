"""Tests of rnnlab.generation.beam: greedy and beam search on toy decoders and on a Seq2Seq model."""

from __future__ import annotations

import math

import pytest
import torch

from rnnlab.generation.beam import Hypothesis, beam_search, greedy_search, length_normalized
from rnnlab.torch.heads import Seq2Seq, Seq2SeqConfig, Seq2SeqStepper

BOS, EOS = 0, 1
TINY_P = 1e-9


def table_decoder(tables: torch.Tensor):
    """A decoder whose next-token distribution depends on the input and the last token only.

    tables: (B, V, V) probabilities, tables[b, last, next]. The state is the input index of
    each row, so `reorder` is a plain index_select and inputs of a batch stay apart.
    """
    logp = torch.log(tables.clamp_min(TINY_P))

    def step(tokens: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return logp[state, tokens], state

    def reorder(state: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        return state.index_select(0, index)

    return step, reorder, torch.arange(tables.shape[0])


def trap() -> torch.Tensor:
    """Greedy takes token 2 (p 0.6), after which every continuation is poor (p 0.5 · 0.5 ...);
    token 3 (p 0.4) is followed by <eos> with p 0.99: the best sequence, 3 <eos>, has p 0.396."""
    V = 4
    t = torch.full((V, V), TINY_P)
    t[BOS, 2], t[BOS, 3] = 0.6, 0.4
    t[2, EOS], t[2, 2] = 0.5, 0.5
    t[3, EOS], t[3, 2] = 0.99, 0.01
    t[EOS, EOS] = 1.0
    return t / t.sum(-1, keepdim=True)


def sequence_log_prob(tables: torch.Tensor, tokens: list[int]) -> float:
    prev, total = BOS, 0.0
    for tok in tokens:
        total += math.log(max(float(tables[prev, tok]), TINY_P))
        prev = tok
    return total


# ---------------------------------------------------------------------------------------------
# toy decoders


def test_beam_finds_the_more_probable_sequence_that_greedy_misses():
    tables = trap()[None]
    step, reorder, state = table_decoder(tables)
    greedy = greedy_search(step, state, batch_size=1, bos_id=BOS, eos_id=EOS, max_len=6)[0]
    assert greedy.tokens == [2, 1] and greedy.log_prob == pytest.approx(math.log(0.3), abs=1e-5)
    best = beam_search(step, state, reorder, batch_size=1, bos_id=BOS, eos_id=EOS, beam_size=2, max_len=6, alpha=0.0)[
        0
    ][0]
    assert best.tokens == [3, 1] and best.finished
    assert best.log_prob == pytest.approx(math.log(0.396), abs=1e-5)
    assert best.log_prob > greedy.log_prob
    # the reported log-probability is the sequence's under the decoder
    assert best.log_prob == pytest.approx(sequence_log_prob(tables[0], best.tokens), abs=1e-5)


def test_beam_size_1_is_greedy_on_random_decoders():
    gen = torch.Generator().manual_seed(0)
    tables = torch.softmax(3 * torch.randn(6, 7, 7, generator=gen), dim=-1)
    step, reorder, state = table_decoder(tables)
    greedy = greedy_search(step, state, batch_size=6, bos_id=BOS, eos_id=EOS, max_len=8)
    beam = beam_search(step, state, reorder, batch_size=6, bos_id=BOS, eos_id=EOS, beam_size=1, max_len=8)
    for g, b in zip(greedy, beam, strict=True):
        assert b[0].tokens == g.tokens and b[0].finished == g.finished
        assert b[0].log_prob == pytest.approx(g.log_prob, abs=1e-5)


def test_batched_search_equals_one_input_at_a_time():
    gen = torch.Generator().manual_seed(1)
    tables = torch.softmax(2 * torch.randn(5, 6, 6, generator=gen), dim=-1)
    step, reorder, state = table_decoder(tables)
    batched = beam_search(
        step, state, reorder, batch_size=5, bos_id=BOS, eos_id=EOS, beam_size=3, max_len=[4, 5, 6, 7, 8], n_best=3
    )
    for b in range(5):
        s1, r1, st1 = table_decoder(tables[b : b + 1])
        alone = beam_search(s1, st1, r1, batch_size=1, bos_id=BOS, eos_id=EOS, beam_size=3, max_len=4 + b, n_best=3)[0]
        assert [h.tokens for h in alone] == [h.tokens for h in batched[b]]


def test_n_best_are_distinct_and_ranked_by_normalised_score():
    gen = torch.Generator().manual_seed(2)
    tables = torch.softmax(torch.randn(1, 6, 6, generator=gen), dim=-1)
    step, reorder, state = table_decoder(tables)
    hyps = beam_search(
        step, state, reorder, batch_size=1, bos_id=BOS, eos_id=EOS, beam_size=4, max_len=6, n_best=4, alpha=0.7
    )[0]
    assert len(hyps) == 4
    assert len({tuple(h.tokens) for h in hyps}) == 4
    scores = [h.score for h in hyps]
    assert scores == sorted(scores, reverse=True)
    for h in hyps:
        assert h.score == pytest.approx(length_normalized(h.log_prob, len(h.tokens), 0.7))
        assert h.log_prob == pytest.approx(sequence_log_prob(tables[0], h.tokens), abs=1e-4)


def test_length_normalisation_changes_the_winner():
    # <eos> at once: p 0.4, score log 0.4 = -0.92; or 2 <eos>: p 0.3, but per token log(0.3) / 2 = -0.60
    t = torch.full((4, 4), TINY_P)
    t[BOS, EOS], t[BOS, 2] = 0.4, 0.6
    t[2, 2], t[2, EOS] = 0.5, 0.5
    t[3, EOS] = 1.0
    t[EOS, EOS] = 1.0
    t = t / t.sum(-1, keepdim=True)
    step, reorder, state = table_decoder(t[None])

    def best(alpha: float) -> Hypothesis:
        return beam_search(
            step, state, reorder, batch_size=1, bos_id=BOS, eos_id=EOS, beam_size=3, max_len=3, alpha=alpha
        )[0][0]

    assert best(0.0).tokens == [EOS]  # raw probability favours the short output
    assert best(1.0).tokens == [2, EOS]  # per-token log-probability the longer one
    assert best(1.0).finished


def test_max_len_cuts_unfinished_hypotheses():
    t = torch.full((3, 3), TINY_P)
    t[:, 2] = 1.0  # never ends
    t = t / t.sum(-1, keepdim=True)
    step, reorder, state = table_decoder(t[None])
    hyp = beam_search(step, state, reorder, batch_size=1, bos_id=BOS, eos_id=EOS, beam_size=2, max_len=4)[0][0]
    assert hyp.tokens == [2, 2, 2, 2] and not hyp.finished and hyp.without_eos() == [2, 2, 2, 2]
    g = greedy_search(step, state, batch_size=1, bos_id=BOS, eos_id=EOS, max_len=4)[0]
    assert g.tokens == [2, 2, 2, 2] and not g.finished


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"beam_size": 0}, "beam_size: expected a positive integer"),
        ({"beam_size": 2, "n_best": 3}, "n_best: expected an integer in"),
        ({"alpha": -1.0}, "alpha: expected a finite number >= 0"),
        ({"max_len": [3, 4]}, "max_len: expected one limit per input"),
        ({"max_len": 0}, "max_len: expected limits >= 1"),
        ({"batch_size": 0}, "batch_size: expected a positive integer"),
    ],
)
def test_bad_arguments(kwargs, message):
    step, reorder, state = table_decoder(trap()[None])
    args = {"batch_size": 1, "bos_id": BOS, "eos_id": EOS, "beam_size": 2, "max_len": 5} | kwargs
    with pytest.raises(ValueError, match=message):
        beam_search(step, state, reorder, **args)


# ---------------------------------------------------------------------------------------------
# a Seq2Seq model


@pytest.fixture(scope="module")
def model() -> Seq2Seq:
    torch.manual_seed(0)
    return Seq2Seq(
        Seq2SeqConfig(
            src_vocab_size=10, tgt_vocab_size=10, cell="lstm", hidden_size=8, embedding_dim=4, num_layers=2, dropout=0.0
        )
    ).eval()


def _batch() -> tuple[torch.Tensor, torch.Tensor]:
    src = torch.tensor([[4, 5, 6, 7, 8], [9, 4, 0, 0, 0], [5, 5, 5, 0, 0]])
    return src, torch.tensor([5, 2, 3])


def test_seq2seq_beam_1_equals_greedy_and_log_probs_match_the_model(model):
    src, lengths = _batch()
    stepper = Seq2SeqStepper(model, src, lengths)
    common = {"batch_size": 3, "bos_id": 1, "eos_id": 2, "max_len": 7}
    greedy = greedy_search(stepper.step, stepper.state, **common)
    beam1 = beam_search(stepper.step, stepper.state, stepper.reorder, beam_size=1, **common)
    assert [b[0].tokens for b in beam1] == [g.tokens for g in greedy]
    beam4 = beam_search(stepper.step, stepper.state, stepper.reorder, beam_size=4, alpha=0.0, **common)
    with torch.no_grad():
        for i, hyp in enumerate(h[0] for h in beam4):
            tgt_in = torch.tensor([[1, *hyp.tokens[:-1]]])
            logp = torch.log_softmax(model(src[i : i + 1, : lengths[i]], lengths[i : i + 1], tgt_in)[0], -1)
            teacher = float(logp[torch.arange(len(hyp.tokens)), torch.tensor(hyp.tokens)].sum())
            assert hyp.log_prob == pytest.approx(teacher, abs=1e-4)
            # with alpha 0 the beam's best is at least as probable as the greedy output here
            assert hyp.log_prob >= greedy[i].log_prob - 1e-6 or not greedy[i].finished
