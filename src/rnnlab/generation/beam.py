"""Greedy and beam-search decoding for any step-by-step decoder (sequence-to-sequence models).

A decoder is given to these functions as two callables, so a hand-made toy decoder and a trained
`rnnlab.torch.heads.Seq2Seq` are searched by the same code:

    step(tokens, state) -> (logits, state)   tokens (N,) int64, the last token of each of N rows;
                                             logits (N, V) for the next token (log-probabilities
                                             or unnormalised scores: log-softmax is applied here)
    reorder(state, index) -> state           the state of rows `index` (N',), in that order

Beam search is batched: the B inputs' K beams are the B·K rows of one `step` call. At each step
every alive beam is extended by every token; for each input the 2K best extensions (by summed
log-probability) are examined in order: one ending in `<eos>` within the K best becomes a finished
hypothesis, the best K others fill the beams of the next step. An input is done once it holds K
finished hypotheses none of its alive beams beats, or at `max_len` (its alive beams are then cut
there and ranked with the finished ones, `finished=False`). Hypotheses are ranked by the
length-normalised score `log p(y) / |y|^alpha` (|y| counts `<eos>`): alpha 0 ranks by raw
probability, which favours short outputs; alpha 1 by mean log-probability per token.

Beam size 1 is greedy decoding.

Example:
    >>> stepper = Seq2SeqStepper(model, src, src_lengths)                              # doctest: +SKIP
    >>> hyps = beam_search(stepper.step, stepper.state, stepper.reorder, batch_size=len(src),
    ...                    bos_id=1, eos_id=2, beam_size=5, max_len=30)                # doctest: +SKIP
    >>> hyps[0][0].tokens, hyps[0][0].log_prob                                         # doctest: +SKIP
    ([7, 5, 9, 2], -0.0132)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

StepFn = Callable[[torch.Tensor, Any], tuple[torch.Tensor, Any]]
ReorderFn = Callable[[Any, torch.Tensor], Any]


@dataclass(frozen=True)
class Hypothesis:
    """One decoded output.

    Attributes:
        tokens: the generated ids, `<bos>` excluded, ending with `<eos>` when finished.
        log_prob: the summed log-probability of `tokens` under the model.
        score: `log_prob / len(tokens) ** alpha`, what the beam ranks by.
        finished: whether it ended with `<eos>` (False: cut at `max_len`).
    """

    tokens: list[int]
    log_prob: float
    score: float
    finished: bool

    def without_eos(self) -> list[int]:
        """The tokens without the closing `<eos>`."""
        return self.tokens[:-1] if self.finished else list(self.tokens)


def length_normalized(log_prob: float, length: int, alpha: float) -> float:
    """`log_prob / length ** alpha` (length at least 1).

    Example:
        >>> length_normalized(-4.0, 4, 1.0), length_normalized(-4.0, 4, 0.0)
        (-1.0, -4.0)
    """
    return log_prob / (max(length, 1) ** alpha)


def _max_lens(max_len: int | Sequence[int], batch_size: int) -> list[int]:
    if isinstance(max_len, int) and not isinstance(max_len, bool):
        lens = [max_len] * batch_size
    else:
        lens = [int(m) for m in max_len]
        if len(lens) != batch_size:
            raise ValueError(f"max_len: expected one limit per input ({batch_size}), got {len(lens)}")
    if any(m < 1 for m in lens):
        raise ValueError(f"max_len: expected limits >= 1, got {min(lens)}")
    return lens


def _check_common(batch_size: int, bos_id: int, eos_id: int) -> None:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size: expected a positive integer, got {batch_size!r}")
    for name, value in (("bos_id", bos_id), ("eos_id", eos_id)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{name}: expected a token id >= 0, got {value!r}")


@torch.no_grad()
def greedy_search(
    step: StepFn,
    state: Any,
    *,
    batch_size: int,
    bos_id: int,
    eos_id: int,
    max_len: int | Sequence[int],
    device: torch.device | str = "cpu",
) -> list[Hypothesis]:
    """The most likely token at every step, for a batch of B inputs at once.

    Args:
        step: the decoder step (see the module docstring); `state` holds B rows.
        state: the initial state for the B inputs.
        batch_size: B.
        bos_id, eos_id: the start token fed first, and the token that ends an output.
        max_len: the most tokens to generate (`<eos>` included), for all or per input.
        device: where the token tensors go.

    Returns:
        B hypotheses, in input order.

    Example:
        >>> table = torch.log(torch.tensor([[0.0, 0.1, 0.9], [0.0, 1.0, 0.0], [0.0, 0.6, 0.4]]))
        >>> step = lambda tok, s: (table[tok], s)
        >>> greedy_search(step, None, batch_size=1, bos_id=0, eos_id=1, max_len=5)[0].tokens
        [2, 1]
    """
    _check_common(batch_size, bos_id, eos_id)
    limits = _max_lens(max_len, batch_size)
    tokens = torch.full((batch_size,), bos_id, dtype=torch.long, device=device)
    out: list[list[int]] = [[] for _ in range(batch_size)]
    logp = [0.0] * batch_size
    done = [False] * batch_size
    for t in range(max(limits)):
        logits, state = step(tokens, state)
        lp = torch.log_softmax(logits.float(), dim=-1)
        best = lp.argmax(dim=-1)
        best_lp = lp.gather(1, best[:, None])[:, 0].tolist()
        best_list = best.tolist()
        for b in range(batch_size):
            if done[b]:
                continue
            out[b].append(best_list[b])
            logp[b] += best_lp[b]
            if best_list[b] == eos_id or t + 1 >= limits[b]:
                done[b] = True
        if all(done):
            break
        tokens = best
    return [
        Hypothesis(seq, lp_, length_normalized(lp_, len(seq), 1.0), bool(seq) and seq[-1] == eos_id)
        for seq, lp_ in zip(out, logp, strict=True)
    ]


@torch.no_grad()
def beam_search(
    step: StepFn,
    state: Any,
    reorder: ReorderFn,
    *,
    batch_size: int,
    bos_id: int,
    eos_id: int,
    beam_size: int = 5,
    max_len: int | Sequence[int] = 50,
    alpha: float = 1.0,
    n_best: int = 1,
    device: torch.device | str = "cpu",
) -> list[list[Hypothesis]]:
    """Batched beam search with length normalisation.

    Args:
        step, reorder: the decoder (see the module docstring).
        state: the initial state for the B inputs (B rows); it is expanded to B·K rows with
            `reorder(state, [0,..,0, 1,..,1, ...])`.
        batch_size: B.
        bos_id, eos_id: start and end tokens.
        beam_size: K, hypotheses kept per input (1: greedy).
        max_len: the most tokens to generate (`<eos>` included), for all or per input.
        alpha: length-normalisation exponent: hypotheses rank by log p / length**alpha.
        n_best: hypotheses returned per input (at most `beam_size`).
        device: where the token tensors go.

    Returns:
        For each input, its `n_best` hypotheses, best first.

    Raises:
        ValueError: a bad argument (names it, with what was expected).

    Example:
        >>> # greedy takes 2 (p 0.6), then can only stop at p 0.5: 0.30 in all; beam finds 3, <eos> (0.4 · 0.99)
        >>> table = torch.log(torch.tensor([[1e-9, 1e-9, 0.6, 0.4], [1e-9, 1.0, 1e-9, 1e-9],
        ...                                 [1e-9, 0.5, 0.5, 1e-9], [1e-9, 0.99, 0.01, 1e-9]]))
        >>> step = lambda tok, s: (table[tok], s)
        >>> reorder = lambda s, idx: s
        >>> beam_search(step, None, reorder, batch_size=1, bos_id=0, eos_id=1, beam_size=2, max_len=3, alpha=0)[0][0].tokens
        [3, 1]
    """
    _check_common(batch_size, bos_id, eos_id)
    if isinstance(beam_size, bool) or not isinstance(beam_size, int) or beam_size < 1:
        raise ValueError(f"beam_size: expected a positive integer, got {beam_size!r}")
    if isinstance(n_best, bool) or not isinstance(n_best, int) or not 1 <= n_best <= beam_size:
        raise ValueError(f"n_best: expected an integer in [1, beam_size={beam_size}], got {n_best!r}")
    if not isinstance(alpha, (int, float)) or isinstance(alpha, bool) or not math.isfinite(alpha) or alpha < 0:
        raise ValueError(f"alpha: expected a finite number >= 0, got {alpha!r}")
    limits = _max_lens(max_len, batch_size)
    B, K = batch_size, beam_size
    state = reorder(state, torch.arange(B, device=device).repeat_interleave(K))
    tokens = torch.full((B * K,), bos_id, dtype=torch.long, device=device)
    # at the start the K beams of an input are identical: keep only the first alive, or the
    # search would return K copies of the same hypothesis
    scores = torch.full((B, K), float("-inf"), device=device)
    scores[:, 0] = 0.0
    seqs: list[list[list[int]]] = [[[] for _ in range(K)] for _ in range(B)]
    finished: list[list[Hypothesis]] = [[] for _ in range(B)]  # ended with <eos>
    cut: list[list[Hypothesis]] = [[] for _ in range(B)]  # still going at max_len
    done = [False] * B

    for t in range(max(limits)):
        logits, state = step(tokens, state)
        lp = torch.log_softmax(logits.float(), dim=-1)  # (B·K, V)
        V = lp.shape[-1]
        cand = (scores.view(B * K, 1) + lp).view(B, K * V)
        top_scores, top_idx = cand.topk(min(2 * K, K * V), dim=1)  # (B, 2K), best first
        top_scores_l, top_idx_l = top_scores.tolist(), top_idx.tolist()
        next_rows = list(range(B * K))  # default for finished inputs: keep their rows in place
        next_tokens = [eos_id] * (B * K)
        next_scores = torch.full((B, K), float("-inf"), device=device)
        new_seqs: list[list[list[int]]] = [[[] for _ in range(K)] for _ in range(B)]
        for b in range(B):
            if done[b]:
                continue
            last_step = t + 1 >= limits[b]
            k = 0
            best_alive = float("-inf")
            for rank, (s, flat) in enumerate(zip(top_scores_l[b], top_idx_l[b], strict=True)):
                if s == float("-inf"):
                    break
                beam, tok = divmod(flat, V)
                seq = [*seqs[b][beam], tok]
                if tok == eos_id:
                    # only an <eos> among the K best extensions ends a hypothesis (a worse one is
                    # beaten by K beams still alive, so it could only crowd out better endings)
                    if rank < K:
                        finished[b].append(Hypothesis(seq, s, length_normalized(s, len(seq), alpha), True))
                    continue
                if k < K:
                    if last_step:  # cut here: an unfinished hypothesis
                        cut[b].append(Hypothesis(seq, s, length_normalized(s, len(seq), alpha), False))
                    else:
                        new_seqs[b][k] = seq
                        next_scores[b, k] = s
                        next_rows[b * K + k] = b * K + beam
                        next_tokens[b * K + k] = tok
                        best_alive = max(best_alive, s)
                    k += 1
                if k >= K:
                    break
            finished[b] = sorted(finished[b], key=lambda h: h.score, reverse=True)[:K]
            # done when K outputs are finished and no alive beam scores better than the worst of
            # them now: log-probabilities only fall as beams grow (exact for alpha 0; with
            # alpha > 0 a heuristic, as in other beam searches)
            enough = len(finished[b]) >= K and finished[b][-1].score >= length_normalized(best_alive, t + 1, alpha)
            if last_step or k == 0 or enough:
                done[b] = True
        if all(done):
            break
        seqs = new_seqs
        scores = next_scores
        index = torch.tensor(next_rows, dtype=torch.long, device=device)
        state = reorder(state, index)
        tokens = torch.tensor(next_tokens, dtype=torch.long, device=device)

    # beams cut at max_len compete with the finished ones on the same score
    return [sorted(finished[b] + cut[b], key=lambda h: h.score, reverse=True)[:n_best] for b in range(B)]
