"""Task heads on the shared recurrent body: classifier, tagger, forecaster, encoder–decoder.

Every model here puts its own input layer and read-out on `make_rnn` (the body the language
model uses) and runs it on *packed* sequences, so the padding of a batch never changes a result:
a sequence scored alone and the same sequence in a batch padded to a much longer length give the
same numbers (up to float rounding).

    SequenceClassifier   ids (B, T) -> embedding -> RNN (uni/bi) -> final state (or max/mean) -> logits (B, K)
    Tagger               words (B, T) + characters (B, T, C) -> char BiGRU per word ++ word
                         embedding -> BiRNN -> logits (B, T, K)
    Forecaster           values (B, L) -> RNN -> final state -> the next H values (B, H)
    Seq2Seq              source (B, S) -> bidirectional encoder; target (B, T) -> decoder RNN with
                         Luong attention (dot or general) over the encoder outputs -> logits (B, T, V)

Each model is built from a frozen config dataclass (saved as `model_config.json` in the run
folder) and nothing else, so a run folder rebuilds its model exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from ..config import CELLS, _choice, _Config, _number, _plain_numbers, _positive_int
from .models import make_rnn

State = torch.Tensor | tuple[torch.Tensor, torch.Tensor]

POOLINGS = ("last", "max", "mean")
ATTENTIONS = ("general", "dot")


def _bool(name: str, value: object) -> None:
    if not isinstance(value, bool):
        raise ValueError(f"{name}: expected true or false, got {value!r}")


def _nonneg_int(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name}: expected an integer >= 0, got {value!r}")


# ---------------------------------------------------------------------------------------------
# configs


@dataclass(frozen=True)
class ClassifierConfig(_Config):
    """A many-to-one text classifier.

    Args:
        vocab_size: input tokens V (words or characters, `<pad>` included).
        num_classes: K.
        cell: 'rnn', 'lstm' or 'gru'.
        embedding_dim, hidden_size, num_layers: sizes (hidden_size per direction).
        bidirectional: read the text both ways; the representation is then (fwd, bwd) final states.
        dropout: on the embeddings, between layers and before the read-out (training only).
        pooling: 'last' (the final state of each direction), or 'max' / 'mean' over the outputs of
            the real (unpadded) positions.
        pad_id: the padding token (its embedding stays zero).

    Example:
        >>> ClassifierConfig(vocab_size=100, num_classes=2).representation_size
        256
    """

    vocab_size: int
    num_classes: int
    cell: str = "lstm"
    embedding_dim: int = 64
    hidden_size: int = 128
    num_layers: int = 1
    bidirectional: bool = True
    dropout: float = 0.3
    pooling: str = "last"
    pad_id: int = 0

    def __post_init__(self) -> None:
        _plain_numbers(self)  # np.int64(16) is 16, as in ModelConfig
        _positive_int("vocab_size", self.vocab_size)
        if isinstance(self.num_classes, bool) or not isinstance(self.num_classes, int) or self.num_classes < 2:
            raise ValueError(f"num_classes: expected at least 2 classes, got {self.num_classes!r}")
        _choice("cell", self.cell, CELLS)
        for name in ("embedding_dim", "hidden_size", "num_layers"):
            _positive_int(name, getattr(self, name))
        _bool("bidirectional", self.bidirectional)
        _number("dropout", self.dropout, 0.0, 0.99)
        _choice("pooling", self.pooling, POOLINGS)
        _nonneg_int("pad_id", self.pad_id)

    @property
    def representation_size(self) -> int:
        return self.hidden_size * (2 if self.bidirectional else 1)


@dataclass(frozen=True)
class TaggerConfig(_Config):
    """A many-to-many tagger over words and, optionally, their characters.

    Args:
        vocab_size: words W (`<pad>`, `<unk>` included).
        num_tags: K.
        char_vocab_size: characters (`<pad>`, `<unk>` included); 0: no character encoder.
        cell: the cell of the word-level RNN ('rnn', 'lstm', 'gru'); the character encoder is a GRU.
        embedding_dim: word embedding size.
        char_dim: character embedding size. char_hidden: per direction, so each word gets a
            2·char_hidden vector from its characters.
        hidden_size, num_layers: of the word-level RNN (per direction).
        bidirectional: the word-level RNN reads the sentence both ways (the usual tagger).
        dropout: on the word inputs, between layers and before the read-out.
        pad_id, char_pad_id: padding ids.

    Example:
        >>> TaggerConfig(vocab_size=50, num_tags=17, char_vocab_size=30).input_size
        164
    """

    vocab_size: int
    num_tags: int
    char_vocab_size: int = 0
    cell: str = "lstm"
    embedding_dim: int = 100
    char_dim: int = 32
    char_hidden: int = 32
    hidden_size: int = 128
    num_layers: int = 1
    bidirectional: bool = True
    dropout: float = 0.3
    pad_id: int = 0
    char_pad_id: int = 0

    def __post_init__(self) -> None:
        _plain_numbers(self)  # np.int64(16) is 16, as in ModelConfig
        _positive_int("vocab_size", self.vocab_size)
        _positive_int("num_tags", self.num_tags)
        _nonneg_int("char_vocab_size", self.char_vocab_size)
        _choice("cell", self.cell, CELLS)
        for name in ("embedding_dim", "char_dim", "char_hidden", "hidden_size", "num_layers"):
            _positive_int(name, getattr(self, name))
        _bool("bidirectional", self.bidirectional)
        _number("dropout", self.dropout, 0.0, 0.99)
        _nonneg_int("pad_id", self.pad_id)
        _nonneg_int("char_pad_id", self.char_pad_id)

    @property
    def input_size(self) -> int:
        """Features per word fed to the word-level RNN."""
        return self.embedding_dim + (2 * self.char_hidden if self.char_vocab_size else 0)


@dataclass(frozen=True)
class ForecasterConfig(_Config):
    """A many-to-one forecaster of the next `horizon` values of a univariate series.

    Args:
        input_len: L, values the model reads (the window).
        horizon: H, values it predicts at once (a direct multi-output head).
        cell, hidden_size, num_layers, dropout: the recurrent body.
        residual: predict the change from the last input value (the naive forecast) rather than
            the value itself: an untrained model starts at the naive baseline.

    Example:
        >>> ForecasterConfig(input_len=24, horizon=6).horizon
        6
    """

    input_len: int
    horizon: int = 1
    cell: str = "lstm"
    hidden_size: int = 64
    num_layers: int = 1
    dropout: float = 0.0
    residual: bool = True

    def __post_init__(self) -> None:
        _plain_numbers(self)  # np.int64(16) is 16, as in ModelConfig
        _positive_int("input_len", self.input_len)
        _positive_int("horizon", self.horizon)
        _choice("cell", self.cell, CELLS)
        _positive_int("hidden_size", self.hidden_size)
        _positive_int("num_layers", self.num_layers)
        _number("dropout", self.dropout, 0.0, 0.99)
        _bool("residual", self.residual)


@dataclass(frozen=True)
class Seq2SeqConfig(_Config):
    """An encoder–decoder with Luong attention.

    Args:
        src_vocab_size, tgt_vocab_size: vocabularies (with `<pad>`, `<bos>`, `<eos>`, `<unk>`).
        cell: 'rnn', 'lstm' or 'gru', for encoder and decoder.
        embedding_dim: token embedding size (both sides).
        hidden_size: encoder units per direction; the decoder has hidden_size·D units (D = 2 with a
            bidirectional encoder), so each decoder layer starts from the concatenated final
            states of the encoder layer below it, and dot attention compares like with like.
        num_layers: layers of both the encoder and the decoder.
        bidirectional: the encoder reads the source both ways.
        dropout: on embeddings, between layers and before the read-out.
        attention: Luong et al. (2015) global attention score: 'general' (h_t^T W h̄_s) or 'dot'
            (h_t^T h̄_s).
        pad_id, bos_id, eos_id: the special target ids (the source shares `pad_id`).
        longest_target: tokens in the longest training target (without `<eos>`), which decoding
            allows for whatever the source's length; None: not recorded (runs before it was).

    Example:
        >>> Seq2SeqConfig(src_vocab_size=14, tgt_vocab_size=14).decoder_hidden
        256
    """

    src_vocab_size: int
    tgt_vocab_size: int
    cell: str = "gru"
    embedding_dim: int = 64
    hidden_size: int = 128
    num_layers: int = 1
    bidirectional: bool = True
    dropout: float = 0.1
    attention: str = "general"
    pad_id: int = 0
    bos_id: int = 1
    eos_id: int = 2
    longest_target: int | None = None

    def __post_init__(self) -> None:
        _plain_numbers(self)  # np.int64(16) is 16, as in ModelConfig
        _positive_int("src_vocab_size", self.src_vocab_size)
        if self.longest_target is not None:
            _nonneg_int("longest_target", self.longest_target)
        _positive_int("tgt_vocab_size", self.tgt_vocab_size)
        _choice("cell", self.cell, CELLS)
        for name in ("embedding_dim", "hidden_size", "num_layers"):
            _positive_int(name, getattr(self, name))
        _bool("bidirectional", self.bidirectional)
        _number("dropout", self.dropout, 0.0, 0.99)
        _choice("attention", self.attention, ATTENTIONS)
        for name in ("pad_id", "bos_id", "eos_id"):
            _nonneg_int(name, getattr(self, name))
            if getattr(self, name) >= self.tgt_vocab_size:
                raise ValueError(
                    f"{name}: expected an id below tgt_vocab_size={self.tgt_vocab_size}, got {getattr(self, name)}"
                )

    @property
    def decoder_hidden(self) -> int:
        return self.hidden_size * (2 if self.bidirectional else 1)


# ---------------------------------------------------------------------------------------------
# the recurrent body on padded batches


def _lengths_cpu(lengths: torch.Tensor | Any) -> torch.Tensor:
    # pack_padded_sequence wants the lengths on the CPU, as int64
    t = lengths if isinstance(lengths, torch.Tensor) else torch.as_tensor(lengths)
    return t.detach().to("cpu", torch.int64)


class PackedRNN(nn.Module):
    """`make_rnn`'s body run on a right-padded batch through `pack_padded_sequence`.

    Packing means the recurrence of each sequence stops at its own length: the final state is
    the state after its last real token (for the backward direction, after its first), and
    outputs at padded positions are zeros, whatever the padding holds.

    Args:
        cell, input_size, hidden_size, num_layers, dropout, bidirectional: as for `make_rnn`.

    Shapes:
        forward: x (B, T, I), lengths (B,) >= 1, state (L·D, B, H) or a pair, or None
            -> outputs (B, T, D·H) (zeros after each length), final state (L·D, B, H) or a pair.

    Example:
        >>> body = PackedRNN("gru", 4, 8, bidirectional=True)
        >>> out, h = body(torch.randn(2, 5, 4), torch.tensor([5, 2]))
        >>> tuple(out.shape), tuple(h.shape), bool(out[1, 2:].abs().sum() == 0)
        ((2, 5, 16), (2, 2, 8), True)
    """

    def __init__(
        self,
        cell: str,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        dropout: float = 0.0,
        bidirectional: bool = False,
    ) -> None:
        super().__init__()
        self.rnn = make_rnn(cell, input_size, hidden_size, num_layers, dropout, bidirectional)
        self.cell, self.num_layers, self.hidden_size = cell, num_layers, hidden_size
        self.directions = 2 if bidirectional else 1

    def forward(self, x: torch.Tensor, lengths: torch.Tensor, state: State | None = None) -> tuple[torch.Tensor, State]:
        lens = _lengths_cpu(lengths)
        if lens.numel() and int(lens.min()) < 1:
            raise ValueError(f"lengths: expected every sequence to hold at least 1 step, got {int(lens.min())}")
        packed = pack_padded_sequence(x, lens, batch_first=True, enforce_sorted=False)
        out, state = self.rnn(packed, state)
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])
        return out, state

    def top_final(self, state: State) -> torch.Tensor:
        """The top layer's final state, directions concatenated: (B, D·H) (h for an LSTM)."""
        h = state[0] if isinstance(state, tuple) else state
        h = h.view(self.num_layers, self.directions, h.shape[1], self.hidden_size)[-1]  # (D, B, H)
        return torch.cat(list(h), dim=-1)


def _mask(lengths: torch.Tensor, T: int, device: torch.device) -> torch.Tensor:
    """(B, T) bool: True at real positions."""
    return torch.arange(T, device=device)[None, :] < lengths.to(device)[:, None]


# ---------------------------------------------------------------------------------------------
# classification


class SequenceClassifier(nn.Module):
    """Embedding -> recurrent body (uni- or bidirectional, packed) -> pooling -> linear head.

    Args:
        config: a `ClassifierConfig`.

    Shapes:
        forward: ids (B, T) int64 right-padded with `pad_id`, lengths (B,) -> logits (B, K).

    Example:
        >>> m = SequenceClassifier(ClassifierConfig(vocab_size=10, num_classes=3, hidden_size=8))
        >>> tuple(m(torch.tensor([[4, 5, 0]]), torch.tensor([2])).shape)
        (1, 3)
    """

    def __init__(self, config: ClassifierConfig) -> None:
        super().__init__()
        self.config = c = config
        self.embedding = nn.Embedding(
            c.vocab_size, c.embedding_dim, padding_idx=c.pad_id if c.pad_id < c.vocab_size else None
        )
        self.body = PackedRNN(c.cell, c.embedding_dim, c.hidden_size, c.num_layers, c.dropout, c.bidirectional)
        self.drop = nn.Dropout(c.dropout)
        self.head = nn.Linear(c.representation_size, c.num_classes)

    def features(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """The pooled representation (B, D·H) that the head reads."""
        out, state = self.body(self.drop(self.embedding(ids)), lengths)
        if self.config.pooling == "last":
            return self.body.top_final(state)
        mask = _mask(_lengths_cpu(lengths), ids.shape[1], out.device).unsqueeze(-1)  # (B, T, 1)
        if self.config.pooling == "max":
            return out.masked_fill(~mask, float("-inf")).amax(dim=1)
        return (out * mask).sum(1) / mask.sum(1).clamp_min(1)

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.head(self.drop(self.features(ids, lengths)))


# ---------------------------------------------------------------------------------------------
# tagging


class CharEncoder(nn.Module):
    """A vector per word from its characters: char embedding -> BiGRU -> (fwd, bwd) final states.

    Shapes:
        forward: chars (N, C) int64 padded with `pad_id`, lengths (N,) (0 for padding words)
            -> (N, 2·hidden); rows with length 0 are zeros.

    Example:
        >>> enc = CharEncoder(20, 8, 6)
        >>> tuple(enc(torch.tensor([[3, 4, 0], [0, 0, 0]]), torch.tensor([2, 0])).shape)
        (2, 12)
    """

    def __init__(self, vocab_size: int, dim: int, hidden: int, pad_id: int = 0) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, dim, padding_idx=pad_id if pad_id < vocab_size else None)
        self.body = PackedRNN("gru", dim, hidden, bidirectional=True)
        self.out_size = 2 * hidden

    def forward(self, chars: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        lens = _lengths_cpu(lengths)
        out = torch.zeros(chars.shape[0], self.out_size, device=chars.device, dtype=self.embedding.weight.dtype)
        real = torch.nonzero(lens > 0).squeeze(1)
        if real.numel() == 0:
            return out
        idx = real.to(chars.device)
        sub = chars.index_select(0, idx)[:, : int(lens[real].max())]
        _, state = self.body(self.embedding(sub), lens[real])
        final = self.body.top_final(state)
        return out.index_copy(0, idx, final.to(out.dtype))


class Tagger(nn.Module):
    """Word embedding (++ character encoding) -> bidirectional RNN (packed) -> a tag per word.

    Args:
        config: a `TaggerConfig`.

    Shapes:
        forward: words (B, T), lengths (B,), chars (B, T, C) and char_lengths (B, T) (None when
            the config has no character encoder) -> logits (B, T, K).

    Example:
        >>> m = Tagger(TaggerConfig(vocab_size=10, num_tags=4, char_vocab_size=8, hidden_size=8))
        >>> words, lens = torch.tensor([[2, 3]]), torch.tensor([2])
        >>> chars, clens = torch.tensor([[[2, 3], [4, 0]]]), torch.tensor([[2, 1]])
        >>> tuple(m(words, lens, chars, clens).shape)
        (1, 2, 4)
    """

    def __init__(self, config: TaggerConfig) -> None:
        super().__init__()
        self.config = c = config
        self.embedding = nn.Embedding(
            c.vocab_size, c.embedding_dim, padding_idx=c.pad_id if c.pad_id < c.vocab_size else None
        )
        self.chars = (
            CharEncoder(c.char_vocab_size, c.char_dim, c.char_hidden, c.char_pad_id) if c.char_vocab_size else None
        )
        self.body = PackedRNN(c.cell, c.input_size, c.hidden_size, c.num_layers, c.dropout, c.bidirectional)
        self.drop = nn.Dropout(c.dropout)
        self.head = nn.Linear(c.hidden_size * (2 if c.bidirectional else 1), c.num_tags)

    def forward(
        self,
        words: torch.Tensor,
        lengths: torch.Tensor,
        chars: torch.Tensor | None = None,
        char_lengths: torch.Tensor | None = None,
    ) -> torch.Tensor:
        x = self.embedding(words)  # (B, T, E)
        if self.chars is not None:
            if chars is None or char_lengths is None:
                raise ValueError("chars, char_lengths: this tagger reads characters; pass them")
            B, T, C = chars.shape
            vec = self.chars(chars.reshape(B * T, C), char_lengths.reshape(B * T))
            x = torch.cat([x, vec.view(B, T, -1).to(x.dtype)], dim=-1)
        out, _ = self.body(self.drop(x), lengths)
        return self.head(self.drop(out))


# ---------------------------------------------------------------------------------------------
# forecasting


class Forecaster(nn.Module):
    """Values (B, L) -> RNN -> final state -> the next H values, directly (one head for all H).

    Args:
        config: a `ForecasterConfig`.

    Shapes:
        forward: x (B, L) normalised values -> (B, H) normalised predictions.

    Example:
        >>> m = Forecaster(ForecasterConfig(input_len=5, horizon=2, hidden_size=8))
        >>> tuple(m(torch.zeros(3, 5)).shape)
        (3, 2)
    """

    def __init__(self, config: ForecasterConfig) -> None:
        super().__init__()
        self.config = c = config
        self.rnn = make_rnn(c.cell, 1, c.hidden_size, c.num_layers, c.dropout)
        self.drop = nn.Dropout(c.dropout)
        self.head = nn.Linear(c.hidden_size, c.horizon)
        if c.residual:
            # start at the naive forecast (no change): the head learns corrections to it
            nn.init.zeros_(self.head.weight)
            nn.init.zeros_(self.head.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(x.unsqueeze(-1))  # (B, L, H): every window has the same length
        y = self.head(self.drop(out[:, -1]))
        return y + x[:, -1:] if self.config.residual else y


# ---------------------------------------------------------------------------------------------
# sequence to sequence


@dataclass
class EncoderMemory:
    """What the decoder attends to: encoder outputs (B, S, Hd), their mask (B, S) and lengths."""

    outputs: torch.Tensor
    mask: torch.Tensor

    def index_select(self, index: torch.Tensor) -> EncoderMemory:
        return EncoderMemory(self.outputs.index_select(0, index), self.mask.index_select(0, index))


class Seq2Seq(nn.Module):
    """Bidirectional encoder, decoder RNN with Luong global attention (no input feeding).

    Encoder: source embedding -> packed RNN (uni/bidirectional) -> outputs h̄_s (B, S, D·H).
    Decoder: target embedding -> RNN with D·H units, started from the encoder's final states
    (both directions of each layer concatenated) -> h_t; score(h_t, h̄_s) = h_t·W·h̄_s ('general')
    or h_t·h̄_s ('dot'), masked at padded source positions; context c_t = Σ_s a_ts h̄_s;
    h̃_t = tanh(W_c [c_t; h_t]); logits = W_o h̃_t. Without input feeding the decoder RNN runs over
    a whole teacher-forced target in one call; decoding calls `decode` one step at a time.

    Args:
        config: a `Seq2SeqConfig`.

    Shapes:
        forward: src (B, S), src_lengths (B,), tgt_in (B, T) (`<bos>` + target) -> logits (B, T, V).

    Example:
        >>> m = Seq2Seq(Seq2SeqConfig(src_vocab_size=8, tgt_vocab_size=8, hidden_size=8, embedding_dim=4))
        >>> tuple(m(torch.tensor([[4, 5, 6]]), torch.tensor([3]), torch.tensor([[1, 6, 5]])).shape)
        (1, 3, 8)
    """

    def __init__(self, config: Seq2SeqConfig) -> None:
        super().__init__()
        self.config = c = config
        self.src_embedding = nn.Embedding(
            c.src_vocab_size, c.embedding_dim, padding_idx=c.pad_id if c.pad_id < c.src_vocab_size else None
        )
        self.tgt_embedding = nn.Embedding(c.tgt_vocab_size, c.embedding_dim, padding_idx=c.pad_id)
        self.encoder = PackedRNN(c.cell, c.embedding_dim, c.hidden_size, c.num_layers, c.dropout, c.bidirectional)
        Hd = c.decoder_hidden
        self.decoder = make_rnn(c.cell, c.embedding_dim, Hd, c.num_layers, c.dropout)
        self.attn = nn.Linear(Hd, Hd, bias=False) if c.attention == "general" else None
        self.combine = nn.Linear(2 * Hd, Hd, bias=False)
        self.drop = nn.Dropout(c.dropout)
        self.head = nn.Linear(Hd, c.tgt_vocab_size)

    # -- encoder ----------------------------------------------------------------------------------
    def encode(self, src: torch.Tensor, src_lengths: torch.Tensor) -> tuple[EncoderMemory, State]:
        """Encoder outputs and the decoder's initial state.

        Returns:
            memory: outputs (B, S, Hd) and mask (B, S); state: (L, B, Hd), or a pair for an LSTM.
        """
        out, state = self.encoder(self.drop(self.src_embedding(src)), src_lengths)
        mask = _mask(_lengths_cpu(src_lengths), src.shape[1], src.device)
        return EncoderMemory(out, mask), self._bridge(state)

    def _bridge(self, state: State) -> State:
        # (L·D, B, H) -> (L, B, D·H): layer l of the decoder starts from both directions of layer l
        L, D, H = self.config.num_layers, self.encoder.directions, self.config.hidden_size

        def merge(h: torch.Tensor) -> torch.Tensor:
            B = h.shape[1]
            return h.view(L, D, B, H).permute(0, 2, 1, 3).reshape(L, B, D * H).contiguous()

        return (merge(state[0]), merge(state[1])) if isinstance(state, tuple) else merge(state)

    # -- decoder ----------------------------------------------------------------------------------
    def decode(
        self, tgt_in: torch.Tensor, state: State, memory: EncoderMemory
    ) -> tuple[torch.Tensor, State, torch.Tensor]:
        """Logits for every position of `tgt_in` given the previous tokens (teacher forcing, or one step).

        Args:
            tgt_in: (B, T) the previous target tokens (`<bos>` first).
            state: the decoder state (from `encode`, or the previous call).
            memory: from `encode`.

        Returns:
            logits (B, T, V), the new state, attention weights (B, T, S).
        """
        h, state = self.decoder(self.drop(self.tgt_embedding(tgt_in)), state)  # (B, T, Hd)
        keys = self.attn(memory.outputs) if self.attn is not None else memory.outputs  # (B, S, Hd)
        scores = torch.bmm(h, keys.transpose(1, 2))  # (B, T, S)
        scores = scores.masked_fill(~memory.mask.unsqueeze(1), float("-inf"))
        weights = torch.softmax(scores.float(), dim=-1).to(h.dtype)
        context = torch.bmm(weights, memory.outputs)  # (B, T, Hd)
        attended = torch.tanh(self.combine(torch.cat([context, h], dim=-1)))
        return self.head(self.drop(attended)), state, weights

    def forward(self, src: torch.Tensor, src_lengths: torch.Tensor, tgt_in: torch.Tensor) -> torch.Tensor:
        memory, state = self.encode(src, src_lengths)
        logits, _, _ = self.decode(tgt_in, state, memory)
        return logits

    @staticmethod
    def reorder_state(state: State, index: torch.Tensor) -> State:
        """The decoder state of the batch rows `index` (for beam search): index dim 1."""
        if isinstance(state, tuple):
            return tuple(s.index_select(1, index) for s in state)  # type: ignore[return-value]
        return state.index_select(1, index)


class Seq2SeqStepper:
    """Adapts a `Seq2Seq` to `generation.beam`'s step interface for one batch of sources.

    `state` is (decoder state, memory); `step(tokens (N,), state)` returns logits (N, V).

    Example:
        >>> stepper = Seq2SeqStepper(model, src, src_lengths)                  # doctest: +SKIP
        >>> beam_search(stepper.step, stepper.state, stepper.reorder, ...)     # doctest: +SKIP
    """

    def __init__(self, model: Seq2Seq, src: torch.Tensor, src_lengths: torch.Tensor) -> None:
        self.model = model
        memory, dec_state = model.encode(src, src_lengths)
        self.state: tuple[State, EncoderMemory] = (dec_state, memory)

    def step(
        self, tokens: torch.Tensor, state: tuple[State, EncoderMemory]
    ) -> tuple[torch.Tensor, tuple[State, EncoderMemory]]:
        dec_state, memory = state
        logits, dec_state, _ = self.model.decode(tokens.view(-1, 1), dec_state, memory)
        return logits[:, 0].float(), (dec_state, memory)

    @staticmethod
    def reorder(state: tuple[State, EncoderMemory], index: torch.Tensor) -> tuple[State, EncoderMemory]:
        dec_state, memory = state
        return Seq2Seq.reorder_state(dec_state, index), memory.index_select(index)


def masked_token_stats(
    logits: torch.Tensor, targets: torch.Tensor, ignore_index: int, never_right: int | None = None
) -> tuple[torch.Tensor, int, int]:
    """Summed cross-entropy, number of scored tokens, and correct argmax predictions.

    Args:
        logits: (..., V). targets: (...) ids, `ignore_index` where nothing is scored.
        never_right: a target id that is scored but never counts as correct (`<unk>`, which stands
            for a token the model cannot write); None: none.

    Example:
        >>> loss, n, ok = masked_token_stats(torch.zeros(1, 2, 3), torch.tensor([[1, -100]]), -100)
        >>> round(loss.item(), 4), n, ok
        (1.0986, 1, 0)
    """
    flat_logits = logits.float().reshape(-1, logits.shape[-1])
    flat = targets.reshape(-1)
    loss = F.cross_entropy(flat_logits, flat, ignore_index=ignore_index, reduction="sum")
    keep = flat != ignore_index
    right = keep if never_right is None else keep & (flat != never_right)
    correct = int(((flat_logits.argmax(-1) == flat) & right).sum().item())
    return loss, int(keep.sum().item()), correct


def count_parameters(model: nn.Module) -> int:
    """Trainable values of a model."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


__all__ = [
    "ATTENTIONS",
    "POOLINGS",
    "CharEncoder",
    "ClassifierConfig",
    "EncoderMemory",
    "Forecaster",
    "ForecasterConfig",
    "PackedRNN",
    "Seq2Seq",
    "Seq2SeqConfig",
    "Seq2SeqStepper",
    "SequenceClassifier",
    "Tagger",
    "TaggerConfig",
    "count_parameters",
    "masked_token_stats",
]
