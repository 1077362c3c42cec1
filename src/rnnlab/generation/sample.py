"""Sampling text from a language model: temperature, top-k, greedy, priming, streaming.

The model is fed its own samples one step at a time with the recurrent state carried, so
generation costs one small forward pass per character.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable
from typing import Any

import numpy as np

from ..config import SampleConfig
from ..data.text import CharVocab, DataError
from ..data.words import EOS, UNK, WordVocab
from ..scratch.losses import softmax


class PrimeError(DataError):
    """The prime text cannot be encoded with the model's vocabulary."""


class WordCodec:
    """Makes a `WordVocab` look like a `CharVocab` to `generation.sample.sample_lm`.

    Words are joined by spaces and `<eos>` is a line end; a piece of a stream is decoded `after`
    the id written before it, so streamed pieces add up to the final text. For a prime, an unknown
    word is an error, skipped, or mapped to `<unk>` (with `--unknown map`; `--replacement` is for
    character models).

    Example:
        >>> codec = WordCodec(WordVocab.from_text("the cat\\n"))
        >>> ids = codec.encode_lossy("the cat", "skip")[0]
        >>> codec.decode(ids), codec.decode(ids[1:], after=int(ids[0]))
        ('the cat', ' cat')
    """

    unit = "word"  # what the sampler's messages call a token
    map_to = UNK  # what --unknown map puts in place of an unknown prime word

    def __init__(self, vocab: WordVocab, per_line: bool = False) -> None:
        self.vocab = vocab
        self.itos = vocab.itos
        self.boundary_id = vocab.eos_id if per_line else None
        self.banned_ids = () if vocab.pad_id is None else (vocab.pad_id,)  # padding is never text

    def __len__(self) -> int:
        return len(self.vocab)

    def __contains__(self, token: object) -> bool:
        return True  # the replacement of --unknown map is <unk>, always there

    def encode_lossy(
        self, text: str, unknown: str = "skip", replacement: str | None = None
    ) -> tuple[np.ndarray, list[str]]:
        tokens = self.vocab.tokenize(text, newline=self.vocab.eos_id is not None)
        bad = list(dict.fromkeys(t for t in tokens if t not in self.vocab.stoi))
        if unknown == "skip":
            tokens = [t for t in tokens if t in self.vocab.stoi]
        ids = self.vocab.encode(tokens) if tokens else np.zeros(0, dtype=np.int64)
        return ids, bad

    def decode(self, ids: Any, after: int | None = None) -> str:
        """The text of `ids`; `after`: the id written just before them (None: they start the text)."""
        out = []
        line_start = after is None or after == self.boundary_id or self.vocab.itos[after] == EOS
        for i in np.asarray(ids, dtype=np.int64).reshape(-1).tolist():
            tok = self.vocab.itos[i]
            if i == self.boundary_id or tok == EOS:
                out.append("" if self.boundary_id is not None else "\n")
                line_start = True
            else:
                out.append(tok if line_start else " " + tok)
                line_start = False
        return "".join(out)


def sample_next(
    logits: np.ndarray,
    rng: np.random.Generator,
    temperature: float = 1.0,
    top_k: int | None = None,
    greedy: bool = False,
    top_p: float | None = None,
) -> np.ndarray:
    """Draw one token per row of `logits` (B, V).

    Args:
        logits: (B, V) unnormalised log-probabilities.
        rng: the generator; one uniform number is drawn per row (none when greedy).
        temperature: divides the logits first.
        top_k: keep only the k most likely tokens, and any tied with the k-th, as Hugging Face's
            TopKLogitsWarper does (None: all).
        greedy: take the argmax (ignores everything else).
        top_p: nucleus sampling: keep the most likely tokens whose probabilities add up to at
            least top_p (always at least one), after temperature and top-k (None: all).

    Returns:
        (B,) int64 token ids.

    Example:
        >>> sample_next(np.array([[0.0, 5.0, 1.0]]), np.random.default_rng(0), greedy=True)
        array([1])
    """
    logits = np.asarray(logits, dtype=np.float64)
    if logits.ndim != 2 or logits.shape[1] == 0:
        raise ValueError(f"logits: expected shape (B, V) with V >= 1, got {logits.shape}")
    if np.isnan(logits).any():  # -inf is fine: a token that must not be drawn
        raise ValueError("logits: expected numbers, got NaN (did the model diverge?)")
    if greedy:
        return logits.argmax(axis=-1)
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng: expected a numpy.random.Generator, got {type(rng).__name__}")
    if isinstance(temperature, bool) or not (isinstance(temperature, numbers.Real) and 0 < temperature < np.inf):
        raise ValueError(f"temperature: expected a finite number > 0, got {temperature!r}")
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or top_k < 1):
        raise ValueError(f"top_k: expected a positive integer or None, got {top_k!r}")
    if top_p is not None and (isinstance(top_p, bool) or not (isinstance(top_p, numbers.Real) and 0 < top_p <= 1)):
        raise ValueError(f"top_p: expected a number in (0, 1] or None, got {top_p!r}")
    top = logits.max(axis=-1, keepdims=True)  # (B, 1)
    if np.isneginf(top).any():
        raise ValueError("logits: a row is -inf everywhere, so no token can be drawn")
    # Shift by the row maximum before dividing: the best token sits at exactly 0, and a tiny
    # temperature can only push the others down to -inf (the greedy limit), never make inf/inf.
    # A row with +inf logits draws among those tokens only.
    with np.errstate(over="ignore", invalid="ignore"):
        shifted = np.where(np.isposinf(top), np.where(np.isposinf(logits), 0.0, -np.inf), logits - top)
        z = shifted / float(temperature)
    if top_k is not None and top_k < z.shape[-1]:
        kth = np.partition(z, -top_k, axis=-1)[:, -top_k][:, None]
        z = np.where(z < kth, -np.inf, z)
    p = softmax(z, axis=-1)
    if top_p is not None and top_p < 1.0:
        order = np.argsort(-p, axis=-1, kind="stable")
        sorted_p = np.take_along_axis(p, order, axis=-1)
        # keep a token if the tokens more likely than it add up to less than top_p
        keep_sorted = (np.cumsum(sorted_p, axis=-1) - sorted_p) < top_p
        keep = np.zeros_like(keep_sorted)
        np.put_along_axis(keep, order, keep_sorted, axis=-1)
        p = np.where(keep, p, 0.0)
        p /= p.sum(axis=-1, keepdims=True)
    # inverse-CDF draw, one uniform per row
    u = rng.random((p.shape[0], 1))
    idx = (np.cumsum(p, axis=-1) < u).sum(axis=-1)
    return np.minimum(idx, p.shape[-1] - 1)


PRIME_CHUNK_LOGITS = 1 << 22  # about this many logits (16 MB in float32) per chunk of the prime fed at a time


def _shown_token(t: str) -> str:
    """An unknown prime token for a message: with its code points, so that a word that looks like a
    known one (é precomposed, or e + a combining accent) shows why not; a byte of a command line that
    was not UTF-8 (kept by Python as a lone surrogate, U+DC80..U+DCFF) as that byte."""
    if len(t) == 1 and 0xDC80 <= ord(t) <= 0xDCFF:
        return f"byte 0x{ord(t) - 0xDC00:02X} (not UTF-8)"
    if t.isascii() and len(t) > 1:
        return repr(t)
    return f"{t!r} ({' '.join(f'U+{ord(c):04X}' for c in t)})"


def encode_prime(vocab: CharVocab, config: SampleConfig, *, per_line: bool = False) -> tuple[np.ndarray, str | None]:
    """Encode `config.prime`; returns ids and a warning line when characters were skipped or mapped.

    Raises `PrimeError` naming the unknown characters when `config.unknown` is 'error', and for a
    line break in the prime of a `per_line` model.
    """
    if not isinstance(config, SampleConfig):
        raise TypeError(f"config: expected a SampleConfig, got {type(config).__name__}")
    if per_line and ("\n" in config.prime or "\r" in config.prime):
        # a word model would read the break as an item's end and carry on past it
        raise PrimeError(f"prime: a per-line model's prime is the start of one item (one line), got {config.prime!r}")
    if isinstance(vocab, WordVocab):
        vocab = WordCodec(vocab)
    if not (callable(getattr(vocab, "encode_lossy", None)) and callable(getattr(vocab, "decode", None))):
        raise TypeError(f"vocab: expected a CharVocab, WordVocab or WordCodec, got {type(vocab).__name__}")
    if not config.prime:
        return np.zeros(0, dtype=np.int64), None
    ids, unknown = vocab.encode_lossy(config.prime, unknown="skip")
    if not len(ids) and not unknown:  # a word model's prime of blanks: nothing to prime with
        return ids, f"prime: {config.prime!r} holds no {getattr(vocab, 'unit', 'character')}; sampling starts unprimed"
    if not unknown:
        return ids, None
    # a word vocabulary (`WordCodec`) says so; its unknown words map to <unk>
    unit, map_to = getattr(vocab, "unit", "character"), getattr(vocab, "map_to", None)
    shown = ", ".join(_shown_token(t) for t in unknown[:10])
    shown += " …" if len(unknown) > 10 else ""
    if config.unknown == "error":
        how = (
            "--unknown map to replace them with " + map_to
            if map_to
            else "--unknown map --replacement C to replace them"
        )
        raise PrimeError(
            f"prime: {len(unknown)} {unit}(s) not in the model's vocabulary: {shown}; nothing was generated "
            f"(use --unknown skip to drop them, or {how})"
        )
    if config.unknown == "map":
        if map_to is None and config.replacement is None:
            raise PrimeError(
                f"replacement: a character model maps unknown prime characters ({shown}) to a character of its "
                "own: give one (replacement=C; on the command line --replacement C)"
            )
        if map_to is None and config.replacement not in vocab:
            raise PrimeError(f"replacement: {config.replacement!r} is not in the model's vocabulary either")
        ids, _ = vocab.encode_lossy(config.prime, unknown="map", replacement=config.replacement)
        return ids, f"prime: replaced {shown} with {map_to or config.replacement!r} (not in the model's vocabulary)"
    return ids, f"prime: skipped {shown} (not in the model's vocabulary)"


def sample_lm(
    model,
    vocab: CharVocab,
    config: SampleConfig,
    *,
    per_line: bool = False,
    on_text: Callable[[str], None] | None = None,
) -> list[str]:
    """Generate `config.num_samples` texts (prime included) from a language model, in one batch.

    Args:
        model: a `rnnlab.scratch.models.LanguageModel`, or a torch one wrapped in
            `rnnlab.torch.NumpyBridge` (anything with `forward(idx, state)` taking and returning
            NumPy arrays): both engines share this sampler, so the same seed draws the same text
            (in float32, until a draw falls within the engines' ~1e-6 rounding difference of a
            boundary between two tokens; see docs/torch-training.md).
        vocab: the model's vocabulary.
        config: sampling options; raises `PrimeError` for an unknown prime character unless
            `config.unknown` says to skip or map it. Without a prime (plain text), each sample starts
            from a token drawn uniformly (greedy: the vocabulary's first), the first of its `length`.
        per_line: the model was trained on one item per line: every sample starts at the boundary
            token and ends at the next one.
        on_text: called with each new piece of text of the first sample as it is generated
            (streaming), the prime first.

    Returns:
        The samples as strings (without boundary tokens).

    Example:
        >>> sample_lm(lm, vocab, SampleConfig(length=100, prime="ROMEO:"))   # doctest: +SKIP
    """
    if (
        model is None
        or not callable(getattr(model, "forward", None))
        or not callable(getattr(model, "eval", None))
        or hasattr(model, "register_buffer")  # a torch nn.Module: it takes tensors, not these arrays
    ):
        raise TypeError(
            f"model: expected a NumPy LanguageModel or a torch one wrapped in rnnlab.torch.NumpyBridge, got {type(model).__name__}"
        )
    if isinstance(vocab, WordVocab):  # as `training.lm_run.load_run` gives it for a word model
        vocab = WordCodec(vocab, per_line)
    if per_line and getattr(vocab, "boundary_id", None) is None:
        raise ValueError("per_line: expected a vocabulary with a boundary token (a per-line model's), got none")
    prime, _ = encode_prime(vocab, config, per_line=per_line)
    rng = np.random.default_rng(config.seed)
    n = config.num_samples
    # tokens never to generate: a word vocabulary's <pad> (`WordCodec`)
    banned = list(getattr(vocab, "banned_ids", ()))
    length = config.length
    if per_line:
        start = np.tile(np.concatenate([[vocab.boundary_id], prime]).astype(np.int64), (n, 1))
    elif len(prime):
        start = np.tile(prime, (n, 1))
    else:
        # no prime for plain text: each sample starts from a token of its own, drawn uniformly (as
        # char-rnn does), which is the first of its `length`; greedy takes the argmax of that
        # uniform distribution, the first token, as char-rnn does, so that it stays deterministic
        allowed = np.setdiff1d(np.arange(len(vocab)), banned)
        start = np.full((n, 1), allowed[0]) if config.greedy else rng.choice(allowed, size=(n, 1))
        length -= 1
    was_training = bool(getattr(model, "training", False))
    model.eval()
    try:
        new: list[list[int]] = [[] for _ in range(n)]  # generated tokens; the start is kept once, in `start`
        finished = np.zeros(n, dtype=bool)
        if on_text is not None:
            on_text(vocab.decode(start[0]))
        # the prime in chunks, the state carried: memory stays bounded for a prime of any length
        # (chunks sized so that their logits stay near PRIME_CHUNK_LOGITS numbers)
        chunk = int(np.clip(PRIME_CHUNK_LOGITS // (n * len(vocab)), 64, 8192))
        state = None
        for i in range(0, start.shape[1], chunk):
            logits, state = model.forward(start[:, i : i + chunk], state)  # (n, chunk, V)
        last = logits[:, -1]
        for k in range(length):
            # an item is never empty in the training data (blank lines are dropped), so an unprimed
            # per-line sample does not end before its first token either
            ban = banned + ([vocab.boundary_id] if per_line and k == 0 and not len(prime) else [])
            if ban:
                last = last.copy()
                last[:, ban] = -np.inf
            nxt = sample_next(last, rng, config.temperature, config.top_k, config.greedy, top_p=config.top_p)  # (n,)
            for i, tok in enumerate(nxt):
                if not finished[i]:
                    if per_line and tok == vocab.boundary_id:
                        finished[i] = True
                    else:
                        new[i].append(int(tok))
            if on_text is not None and not finished[0]:
                piece = [int(nxt[0])]
                before = new[0][-2] if len(new[0]) > 1 else int(start[0, -1])
                on_text(vocab.decode(piece, after=before) if isinstance(vocab, WordCodec) else vocab.decode(piece))
            if finished.all():
                break
            logits, state = model.forward(nxt[:, None], state)
            last = logits[:, -1]
        rnn = getattr(model, "rnn", None)
        if rnn is not None and hasattr(rnn, "_cache"):  # the NumPy engine keeps activations for a backward
            rnn._cache = None
    finally:
        if was_training:  # a sample in the middle of training leaves the model as it found it, even on an error
            model.train()
    return [vocab.decode(np.concatenate([start[i], np.asarray(new[i], dtype=np.int64)])) for i in range(n)]
