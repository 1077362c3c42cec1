"""Gradient check of a whole recurrent layer: every parameter, the input and the initial state.

The loss is a fixed random projection of everything the layer returns,
L = Σ out ⊙ R_out + Σ h_n ⊙ R_h (+ Σ c_n ⊙ R_c), so every output element reaches the loss with a
different weight and no gradient path can cancel out by symmetry.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .gradcheck import max_abs_error, numerical_gradient, relative_error
from .recurrent import GRU, LSTM, RNN, RNNBase

CELLS = ("rnn_tanh", "rnn_relu", "lstm", "gru")


def make_layer(cell: str, input_size: int, hidden_size: int, **kwargs) -> RNNBase:
    """Build `RNN` (tanh or relu), `LSTM` or `GRU` from a cell name in `CELLS`.

    Example:
        >>> make_layer("rnn_relu", 3, 4).nonlinearity
        'relu'
    """
    if cell in ("rnn", "rnn_tanh"):
        return RNN(input_size, hidden_size, nonlinearity="tanh", **kwargs)
    if cell == "rnn_relu":
        return RNN(input_size, hidden_size, nonlinearity="relu", **kwargs)
    if cell == "lstm":
        return LSTM(input_size, hidden_size, **kwargs)
    if cell == "gru":
        return GRU(input_size, hidden_size, **kwargs)
    raise ValueError(f"cell: expected one of {', '.join(CELLS)}, got {cell!r}")


@dataclass(frozen=True)
class GradcheckResult:
    """Per tensor: norm-wise relative error (see `relative_error`) and largest absolute error."""

    relative: dict[str, float]
    absolute: dict[str, float]

    @property
    def worst(self) -> float:
        return max(self.relative.values())


def check_recurrent_gradients(
    cell: str,
    num_layers: int = 1,
    bidirectional: bool = False,
    *,
    truncated: bool = False,
    seq_len: int = 5,
    batch_size: int = 3,
    input_size: int = 4,
    hidden_size: int = 5,
    eps: float = 1e-6,
    seed: int = 0,
) -> GradcheckResult:
    """Compare `backward` with central differences in float64 for one layer configuration.

    Args:
        cell: 'rnn_tanh', 'rnn_relu', 'lstm' or 'gru'.
        num_layers, bidirectional: as in the layer.
        truncated: check one chunk of truncated BPTT: a first chunk runs forward, its final state is
            carried (as a constant) into the checked chunk, and the chunk's final state does not
            reach the loss, exactly as a TBPTT trainer does.
        seq_len, batch_size, input_size, hidden_size: problem size (small: the check costs two
            forward passes per scalar parameter).

    Returns:
        `GradcheckResult` with an entry per parameter name, plus 'input', and 'h_0' (and 'c_0')
        unless `truncated`: there the initial state is the carried constant, which gets no gradient.

    Example:
        >>> check_recurrent_gradients("gru", num_layers=2).worst < 1e-6
        True
    """
    rng = np.random.default_rng(seed)
    layer = make_layer(
        cell, input_size, hidden_size, num_layers=num_layers, bidirectional=bidirectional, dtype=np.float64, seed=seed
    )
    is_lstm = cell == "lstm"
    n_state = num_layers * (2 if bidirectional else 1)
    x = rng.standard_normal((seq_len, batch_size, input_size))
    if truncated:
        previous = rng.standard_normal((seq_len, batch_size, input_size))
        _, carried = layer.forward(previous)
        layer.backward(None)  # discard the first chunk: nothing flows back across the boundary
        state = [np.array(s) for s in carried] if is_lstm else [carried]
    else:
        state = [rng.standard_normal((n_state, batch_size, hidden_size)) for _ in range(2 if is_lstm else 1)]
    out_shape = (seq_len, batch_size, hidden_size * (2 if bidirectional else 1))
    r_out = rng.standard_normal(out_shape)
    r_state = [rng.standard_normal(state[0].shape) for _ in state]

    def loss(keep_cache: bool = False) -> float:
        hx = tuple(state) if is_lstm else state[0]
        out, final = layer.forward(x, hx)
        finals = list(final) if is_lstm else [final]
        value = float((out * r_out).sum())
        if not truncated:
            value += sum(float((f * r).sum()) for f, r in zip(finals, r_state, strict=True))
        if not keep_cache:
            layer._cache = None
        return value

    layer.zero_grad()
    loss(keep_cache=True)
    dstate = None if truncated else (tuple(r_state) if is_lstm else r_state[0])
    dx, dinit = layer.backward(r_out, dstate)
    analytic = dict(layer.grads)
    analytic["input"] = dx
    names = ["h_0", "c_0"] if is_lstm else ["h_0"]
    for name, g in zip(names, dinit if is_lstm else [dinit], strict=True):
        analytic[name] = g

    targets = dict(layer.params)
    targets["input"] = x
    if not truncated:
        targets.update(zip(names, state, strict=True))
    rel, absolute = {}, {}
    for name, arr in targets.items():
        numeric = numerical_gradient(loss, arr, eps=eps)
        rel[name] = relative_error(analytic[name], numeric)
        absolute[name] = max_abs_error(analytic[name], numeric)
    return GradcheckResult(rel, absolute)
