"""Models assembled from the NumPy layers. Same names and state-dict keys as `rnnlab.torch.models`."""

from __future__ import annotations

import numpy as np

from ..config import ModelConfig
from .gradcheck_recurrent import make_layer
from .init import init_recurrent_
from .layers import ONE_HOT_MAX_VOCAB, Dropout, Embedding, Linear, check_indices
from .module import Module, as_numeric_array, check_dtype, check_seed

State = np.ndarray | tuple[np.ndarray, np.ndarray]  # (L, B, H), or (h, c) for LSTM


class LanguageModel(Module):
    """Token embedding -> recurrent stack -> dropout -> linear read-out: next-token logits.

    State-dict keys: `embedding.weight`, `rnn.weight_ih_l0` …, `head.weight`, `head.bias`
    (the PyTorch twin uses the same submodule names, so one state dict serves both engines). With
    `config.tie_weights`, `head.weight` is the embedding array itself: both keys stay in the state
    dict, as in PyTorch, and `params`, `grads` and the optimisers hold it once.

    Args:
        config: the `ModelConfig`.
        dtype: np.float32 (default) or np.float64.
        seed: seeds initialisation and dropout.

    Example:
        >>> lm = LanguageModel(ModelConfig(vocab_size=10, hidden_size=8), seed=0)
        >>> logits, state = lm.forward(np.zeros((2, 5), dtype=np.int64))   # (B, T)
        >>> logits.shape
        (2, 5, 10)
    """

    def __init__(self, config: ModelConfig, *, dtype: object = np.float32, seed: int | None = None) -> None:
        super().__init__()
        if not isinstance(config, ModelConfig):
            raise TypeError(f"config: expected a ModelConfig, got {type(config).__name__}")
        self.config = config
        self.dtype = check_dtype(dtype)
        self.rng = np.random.default_rng(check_seed(seed))
        seeds = self.rng.integers(0, 2**31, size=3)
        cell = f"rnn_{config.nonlinearity}" if config.cell == "rnn" else config.cell
        self.embedding = Embedding(config.vocab_size, config.embedding_dim, dtype=dtype, seed=int(seeds[0]))
        self.rnn = make_layer(
            cell,
            config.embedding_dim,
            config.hidden_size,
            num_layers=config.num_layers,
            dropout=config.dropout,
            batch_first=True,
            dtype=dtype,
            seed=int(seeds[1]),
        )
        self.drop = Dropout(config.dropout)
        self.head = Linear(config.hidden_size, config.vocab_size, dtype=dtype, seed=int(seeds[2]))
        for name, child in (("embedding", self.embedding), ("rnn", self.rnn), ("head", self.head)):
            self.register_module(name, child)
        self.register_module("drop", self.drop)
        if config.init != "pytorch" or config.forget_bias is not None:
            init_recurrent_(self.rnn, config.init, self.rng, forget_bias=config.forget_bias)
        # A small vocabulary's lookup is folded into the first layer's input projection: W_ih e_id + b
        # is a column of W_ih Eᵀ + b (G, V), so no embedded input is formed and the backward pass
        # needs no input-gradient product (RNNBase._forward_tokens). The same maths, 7-8% less time
        # per training step of a character model for every cell, and ~2% more for LSTM, whose step
        # product then takes the one-hot too (vocabulary 65, embedding 64, hidden 256, batch 32 x 64,
        # paired runs on a 2-core AMD EPYC). A one-hot input much wider than the embedding would cost
        # more than it saves.
        self._lookup_in_rnn = config.vocab_size <= min(ONE_HOT_MAX_VOCAB, 2 * config.embedding_dim)
        self._folded = False  # whether the last forward folded it
        if config.tie_weights:
            # One (V, H) matrix is both the embedding and the read-out (Press & Wolf, 2017), so it gets
            # the read-out's scale, U(±1/√H), rather than the embedding's N(0, 1), which would start
            # with huge logits. Its gradient sums both uses; the optimisers see it once.
            bound = 1.0 / np.sqrt(config.hidden_size)
            self.embedding.params["weight"][...] = self.rng.uniform(
                -bound, bound, (config.vocab_size, config.hidden_size)
            )
            self.head.tie_parameter("weight", self.embedding, "weight")

    def forward(self, idx: np.ndarray, state: State | None = None) -> tuple[np.ndarray, State]:
        """idx (B, T) token ids; state from the previous chunk or None. Returns (logits (B, T, V), state).

        An unbatched (T,) idx gives (T, V) logits, as in PyTorch.
        """
        ids = as_numeric_array("idx", idx)
        if ids.ndim not in (1, 2) or ids.shape[-1] == 0:
            raise ValueError(f"idx: expected token ids of shape (B, T) or (T,) with T >= 1, got shape {ids.shape}")
        try:
            # the folded lookup costs one (G, E) x (E, V) product a call: not worth it for a few tokens
            folded = self._lookup_in_rnn and ids.size >= self.config.vocab_size
            if folded:
                out, state = self.rnn._forward_tokens(  # (B, T, H)
                    check_indices(ids, self.config.vocab_size), self.embedding.params["weight"], state
                )
            else:
                out, state = self.rnn.forward(self.embedding.forward(ids), state)  # (B, T, E) -> (B, T, H)
            self._folded = folded  # for backward: set once the layer holds this call's cache
        except (TypeError, ValueError) as e:  # the embedding's own words for what the caller calls idx
            if not str(e).startswith("indices: "):
                raise
            raise type(e)("idx: " + str(e).removeprefix("indices: ")) from None
        out = self.drop.forward(out, self.rng)
        return self.head.forward(out), state  # (B, T, V)

    __call__ = forward

    def backward(self, dlogits: np.ndarray) -> None:
        """Accumulate gradients of every parameter from dlogits (B, T, V); the carried state gets none."""
        dout = self.drop.backward(self.head.backward(dlogits))
        dx, _ = self.rnn.backward(dout)
        if self._folded:
            self.embedding.grads["weight"] += dx  # (V, E): the table's gradient (see __init__)
        else:
            self.embedding.backward(dx)

    def initial_state(self, batch_size: int) -> State:
        """Zeros of the right shape: (L, B, H), or a pair for LSTM."""
        h = np.zeros((self.config.num_layers, batch_size, self.config.hidden_size), dtype=self.dtype)
        return (h, h.copy()) if self.config.cell == "lstm" else h
