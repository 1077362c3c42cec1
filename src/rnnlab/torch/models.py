"""The models of `rnnlab.scratch` on PyTorch's own recurrent kernels (cuDNN on a GPU, oneDNN on a CPU).

`LanguageModel` has the same submodules, parameter names and shapes as
`rnnlab.scratch.models.LanguageModel`, is built from the same `ModelConfig`, and with the same seed
starts from the same weights: the initial weights are drawn by the NumPy twin and copied, so a
run is reproducible across engines. `make_rnn` builds the recurrent body alone, for the other
tasks (classification, tagging, forecasting, seq2seq) to put their own heads on.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from torch import nn

from ..config import CELLS, INITS, NONLINEARITIES, ModelConfig
from ..scratch.init import init_recurrent_
from ..scratch.module import Module as _NumpyModule

# The carried recurrent state: h of shape (L·D, B, H), or the pair (h, c) for an LSTM.
State = torch.Tensor | tuple[torch.Tensor, torch.Tensor]


def make_rnn(
    cell: str,
    input_size: int,
    hidden_size: int,
    num_layers: int = 1,
    dropout: float = 0.0,
    bidirectional: bool = False,
    nonlinearity: str = "tanh",
    *,
    init: str = "pytorch",
    forget_bias: float | None = None,
    seed: int | None = None,
) -> nn.RNNBase:
    """A batch-first `nn.RNN`, `nn.LSTM` or `nn.GRU`, initialised like the NumPy engine would.

    Args:
        cell: 'rnn', 'lstm' or 'gru'.
        input_size: features per time step I.
        hidden_size: H, units per layer and direction.
        num_layers: stacked layers.
        dropout: dropout between stacked layers (training only; PyTorch ignores it for one layer).
        bidirectional: run a second direction backwards in time; outputs are (B, T, 2H).
        nonlinearity: 'tanh' or 'relu' (vanilla RNN only).
        init: recurrent initialisation scheme of `rnnlab.scratch.init.init_recurrent_`:
            'pytorch' (PyTorch's own U(±1/√H)), 'normal', 'xavier', 'orthogonal', 'identity'.
        forget_bias: LSTM only: the initial forget-gate bias (b_ih + b_hh), e.g. 1.0.
        seed: with a seed, the weights are exactly those of the NumPy layer built with that seed;
            without one, they come from torch's global generator.

    Returns:
        The module; call it as `out, state = rnn(x, state)` with x of shape (B, T, I).

    Example:
        >>> rnn = make_rnn("gru", 8, 16, num_layers=2, bidirectional=True, seed=0)
        >>> out, h = rnn(torch.zeros(3, 5, 8))
        >>> tuple(out.shape), tuple(h.shape)
        ((3, 5, 32), (4, 3, 16))
    """
    if cell not in CELLS:
        raise ValueError(f"cell: expected one of {', '.join(CELLS)}, got {cell!r}")
    if nonlinearity not in NONLINEARITIES:
        raise ValueError(f"nonlinearity: expected one of {', '.join(NONLINEARITIES)}, got {nonlinearity!r}")
    if init not in INITS:
        raise ValueError(f"init: expected one of {', '.join(INITS)}, got {init!r}")
    for name, value in (("input_size", input_size), ("hidden_size", hidden_size), ("num_layers", num_layers)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name}: expected a positive integer, got {value!r}")
    kwargs = dict(num_layers=num_layers, batch_first=True, bidirectional=bidirectional)
    # PyTorch warns when dropout is set on a single layer, where it does nothing
    kwargs["dropout"] = float(dropout) if num_layers > 1 else 0.0
    if cell == "rnn":
        rnn: nn.RNNBase = nn.RNN(input_size, hidden_size, nonlinearity=nonlinearity, **kwargs)
    elif cell == "lstm":
        rnn = nn.LSTM(input_size, hidden_size, **kwargs)
    else:
        rnn = nn.GRU(input_size, hidden_size, **kwargs)
    if seed is not None or init != "pytorch" or forget_bias is not None:
        init_rnn_(rnn, init, seed=seed, forget_bias=forget_bias)
    return rnn


class _ArrayBag(_NumpyModule):
    """NumPy arrays under PyTorch's names, so the NumPy initialisers can fill a torch module's weights."""

    def __init__(self, arrays: Mapping[str, np.ndarray]) -> None:
        super().__init__()
        for name, value in arrays.items():
            self.register_parameter(name, value)


@torch.no_grad()
def init_rnn_(rnn: nn.RNNBase, scheme: str = "pytorch", *, seed: int | None = None, forget_bias: float | None = None):
    """Initialise a torch recurrent module in place with a scheme of `rnnlab.scratch.init`.

    The values are drawn in NumPy (float64, then cast), in the order the NumPy engine draws them,
    so `init_rnn_(rnn, s, seed=k)` matches `init_recurrent_(numpy_twin, s, default_rng(k))`.

    Args:
        rnn: an `nn.RNN`, `nn.LSTM` or `nn.GRU`.
        scheme: 'pytorch', 'normal', 'xavier', 'orthogonal' or 'identity'.
        seed: seed of the NumPy generator (None: fresh entropy).
        forget_bias: LSTM forget-gate bias, or None.

    Returns:
        The module.

    Example:
        >>> lstm = init_rnn_(nn.LSTM(3, 4), "orthogonal", seed=0, forget_bias=1.0)
        >>> (lstm.bias_ih_l0[4:8] + lstm.bias_hh_l0[4:8]).tolist()
        [1.0, 1.0, 1.0, 1.0]
    """
    names = [name for name, _ in rnn.named_parameters()]
    bag = _ArrayBag({n: np.zeros(tuple(p.shape), dtype=np.float64) for n, p in rnn.named_parameters()})
    init_recurrent_(bag, scheme, np.random.default_rng(seed), forget_bias=forget_bias)
    params = dict(rnn.named_parameters())
    for name in names:
        params[name].copy_(torch.from_numpy(bag.params[name]))
    return rnn


class LanguageModel(nn.Module):
    """Token embedding -> recurrent stack -> dropout -> linear read-out: next-token logits.

    The twin of `rnnlab.scratch.models.LanguageModel`: same submodules (`embedding`, `rnn`,
    `drop`, `head`), same state-dict keys (`embedding.weight`, `rnn.weight_ih_l0` …, `head.weight`,
    `head.bias`), same initial weights for the same seed. With `config.tie_weights` the read-out
    reuses the embedding matrix (`head.weight is embedding.weight`); both keys stay in the state
    dict, holding the same values, so a tied model's weights still load into the NumPy twin.

    Args:
        config: the `ModelConfig`.
        seed: seeds the initial weights (None: fresh entropy).
        dtype: torch.float32 (default) or torch.float64.

    Shapes:
        forward: idx (B, T) int64, state (L, B, H) or a pair of them for LSTM, or None
            -> logits (B, T, V), state.

    Example:
        >>> lm = LanguageModel(ModelConfig(vocab_size=10, hidden_size=8), seed=0)
        >>> logits, state = lm(torch.zeros(2, 5, dtype=torch.long))
        >>> tuple(logits.shape), tuple(state[0].shape)
        ((2, 5, 10), (1, 2, 8))
    """

    def __init__(self, config: ModelConfig, *, seed: int | None = None, dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        if not isinstance(config, ModelConfig):
            raise TypeError(f"config: expected a ModelConfig, got {type(config).__name__}")
        if dtype not in (torch.float32, torch.float64):
            raise TypeError(f"dtype: expected torch.float32 or torch.float64, got {dtype}")
        self.config = config
        self.embedding = nn.Embedding(config.vocab_size, config.embedding_dim)
        self.rnn = make_rnn(
            config.cell,
            config.embedding_dim,
            config.hidden_size,
            config.num_layers,
            config.dropout,
            nonlinearity=config.nonlinearity,
        )
        self.drop = nn.Dropout(config.dropout)
        self.head = nn.Linear(config.hidden_size, config.vocab_size)
        self.to(dtype)  # before the copy, so float64 weights are not rounded through float32
        self._init_like_numpy(seed)
        if config.tie_weights:
            self.head.weight = self.embedding.weight

    @torch.no_grad()
    def _init_like_numpy(self, seed: int | None) -> None:
        # Drawing the initial weights with the NumPy engine makes `seed` mean the same in both engines.
        from ..scratch.models import LanguageModel as NumpyLanguageModel

        weights = NumpyLanguageModel(self.config, dtype=np.float64, seed=seed).state_dict()
        own = dict(self.named_parameters(remove_duplicate=False))
        for name, param in own.items():
            param.copy_(torch.from_numpy(np.asarray(weights[name])))

    def forward(self, idx: torch.Tensor, state: State | None = None) -> tuple[torch.Tensor, State]:
        """Next-token logits for every position of `idx`, and the state after the last one.

        Args:
            idx: token ids, (B, T) int64.
            state: the state returned for the previous chunk (truncated BPTT), or None for zeros.

        Returns:
            logits (B, T, V) and the final state (h of shape (L, B, H), or (h, c) for LSTM).
            An unbatched (T,) idx gives (T, V) logits.

        Raises:
            TypeError, ValueError: idx is not an integer tensor of shape (B, T) or (T,) with T >= 1,
                or (on the CPU, where checking costs no device sync) holds ids outside the vocabulary.
        """
        if not isinstance(idx, torch.Tensor) or idx.dtype.is_floating_point or idx.dtype == torch.bool:
            got = f"dtype {idx.dtype}" if isinstance(idx, torch.Tensor) else type(idx).__name__
            raise TypeError(f"idx: expected a tensor of integer token ids, got {got}")
        if idx.dim() not in (1, 2) or idx.shape[-1] == 0:
            raise ValueError(
                f"idx: expected token ids of shape (B, T) or (T,) with T >= 1, got shape {tuple(idx.shape)}"
            )
        V = self.config.vocab_size
        if idx.device.type == "cpu" and any(int(v) < 0 or int(v) >= V for v in torch.aminmax(idx)):
            bad = idx[(idx < 0) | (idx >= V)].flatten()[0].item()
            raise ValueError(f"idx: expected token ids in [0, {V - 1}], got {bad}")
        x = self.embedding(idx)  # (B, T, E)
        out, state = self.rnn(x, state)  # (B, T, H)
        return self.head(self.drop(out)), state  # (B, T, V)

    def initial_state(self, batch_size: int, device: torch.device | str | None = None) -> State:
        """Zeros of the right shape, dtype and device: (L, B, H), or a pair for LSTM.

        Example:
            >>> lm = LanguageModel(ModelConfig(vocab_size=5, cell="gru", hidden_size=4, num_layers=2))
            >>> tuple(lm.initial_state(3).shape)
            (2, 3, 4)
        """
        ref = self.head.bias
        h = torch.zeros(
            self.config.num_layers, batch_size, self.config.hidden_size, dtype=ref.dtype, device=device or ref.device
        )
        return (h, h.clone()) if self.config.cell == "lstm" else h

    def num_parameters(self) -> int:
        """Distinct trainable values (a tied matrix counts once)."""
        return sum(p.numel() for p in self.parameters())
