"""Vanilla RNN, LSTM and GRU in NumPy, with exact backpropagation through time.

The equations, gate order, parameter names and shapes are PyTorch's (`torch.nn.RNN/LSTM/GRU`),
so a state dict moves between the two engines unchanged:

    RNN   h_t = act(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh),                act = tanh | relu
    LSTM  [i, f, g, o] = [σ, σ, tanh, σ](W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)
          c_t = f ⊙ c_{t-1} + i ⊙ g
          h_t = o ⊙ tanh(c_t)
    GRU   [r, z] = σ(W_i[r,z] x_t + b_i[r,z] + W_h[r,z] h_{t-1} + b_h[r,z])
          n = tanh(W_in x_t + b_in + r ⊙ (W_hn h_{t-1} + b_hn))
          h_t = (1 - z) ⊙ n + z ⊙ h_{t-1}

Why it is fast although it is plain NumPy: only the recurrent product W_hh h_{t-1} has to be
done step by step. The input projection of all T steps is one (T·B, I) × (I, G) matrix product
before the loop, and in the backward pass the weight gradients of all T steps and the bias come
out of one product after the loop (dW = Σ_t dG_t z_tᵀ = dG Zᵀ, z_t = [x_t; 1; h_{t-1}]). The
loop writes into buffers that each layer keeps from call to call (`Workspace`), so a training
loop allocates almost nothing after its first step.

Truncated BPTT is the same code: run `forward` on a chunk with the state carried from the last
chunk, `backward` with no final-state gradient, and start the next chunk from `h_n` (a plain
array: nothing flows back across the boundary).
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np

from .module import Module, as_numeric_array, check_dtype, check_seed

MODES = ("RNN_TANH", "RNN_RELU", "LSTM", "GRU")
GATES = {"RNN_TANH": 1, "RNN_RELU": 1, "LSTM": 4, "GRU": 3}


# ---------------------------------------------------------------------------------------------
# Kernels: one layer, one direction, feature-major. Inside the engine a sequence is (T, F, B):
# the step product is then W_hh (G, H) @ h_{t-1} (H, B), which BLAS runs faster than the
# batch-major h (B, H) @ W_hhᵀ for the small B of RNN training, and every gate is a contiguous
# (H, B) block. `xg` is the input projection W_ih x_t + b for every step in processing order (a
# reversed view for the backward direction). Each forward returns the hidden states hs (T+1, H, B)
# with hs[0] = h0, and a cache. Each backward takes W_hhᵀ as a contiguous (H, G) array, writes the
# gradient of the input projection into dGi (T, G, B) and that of the recurrent pre-activation into
# dGh (T, G, B) (the same array except for GRU, whose b_hn sits inside r ⊙ (·)), both given in
# processing order, and returns the gradient of the initial state. `ws` is an optional `Workspace`
# whose buffers replace fresh allocations.
#
# σ(x) = 1 / (1 + e^(-x)) and, for LSTM's cell candidate g, tanh(x) = 2 σ(2x) - 1: the gate rows of
# W_ih, W_hh and the biases come in pre-scaled by -1 (σ rows) or -2 (LSTM's g rows), which is exact
# in floating point, so all four LSTM gates (GRU: r and z) take one exp, one add and one division
# over a contiguous block per step. NumPy's float32 exp costs less than its tanh (2.4 against 3.7 ns
# a number on an AMD EPYC Zen 3), and the gates are a tenth of an LSTM training step. An
# overflowing exp gives inf and then the exact limit 0, so the loops run with overflow warnings off.
# The price: 2σ(2x) - 1 cancels for small |x|, so g keeps an absolute error of ~6e-8 (float32)
# rather than a relative one; np.tanh on the g rows instead cost 6-7% of an LSTM LM step (paired
# rounds, 2026-11-30), and outputs still match PyTorch to 1e-7 in absolute terms.
# ---------------------------------------------------------------------------------------------


def _gate_scale(mode: str, H: int, dtype: np.dtype) -> np.ndarray | None:
    """Per-row factor applied to the weights so that 1 / (1 + exp(product)) gives σ (see above)."""
    if mode == "LSTM":  # i f g o
        s = np.full(4 * H, -1.0, dtype=dtype)
        s[2 * H : 3 * H] = -2.0
        return s
    if mode == "GRU":  # r z n: n stays a tanh of its unscaled pre-activation
        s = np.full(3 * H, -1.0, dtype=dtype)
        s[2 * H :] = 1.0
        return s
    return None


class Workspace:
    """Named scratch arrays kept from one call to the next.

    A training step needs tens of megabytes of temporaries (gate activations, gate gradients, the
    input projection). Freshly allocated, arrays that big come from new pages of memory, and the
    first write to each page costs a page fault: up to a third of a step on a small machine, and
    how much of it a run pays depends on the allocator's history, not on our code. Reusing the
    buffers makes a training loop allocate almost nothing after its first step.

    Example:
        >>> ws = Workspace()
        >>> a = ws.empty("acts", (64, 1024, 32), np.float32)
        >>> a is ws.empty("acts", (64, 1024, 32), np.float32)   # same shape: the same buffer
        True
    """

    def __init__(self) -> None:
        self._arrays: dict[str, np.ndarray] = {}

    def empty(self, name: str, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        """An uninitialised array of this shape and dtype, reused when `name` asked for the same before."""
        a = self._arrays.get(name)
        if a is None or a.shape != shape or a.dtype != dtype:
            a = np.empty(shape, dtype=dtype)
            self._arrays[name] = a
        return a

    def clear(self) -> None:
        """Drop every buffer (the memory goes back once nothing else refers to it)."""
        self._arrays.clear()


_FRESH = None  # no workspace: every buffer freshly allocated


def _empty(ws: Workspace | None, name: str, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    return np.empty(shape, dtype=dtype) if ws is None else ws.empty(name, shape, dtype)


def _swap_time_feature(dst: np.ndarray, src: np.ndarray) -> None:
    """dst (F, T, B) = src (T, F, B) with the first two axes swapped: whole B-rows move.

    Each B-row is copied as one item of a void dtype (one memcpy) rather than B floats: NumPy's
    transposing copy runs its inner loop over the 32 numbers of a row, 65,536 times for an LSTM's
    gate gradients (H 256, T 64), and took 6.1 ms there against 3.3 ms this way (AMD EPYC Zen 3).
    """
    row = np.dtype((np.void, src.shape[2] * src.itemsize))
    try:
        dst_rows, src_rows = dst.view(row)[..., 0], src.view(row)[..., 0]  # (F, T), (T, F)
    except ValueError:  # a layout whose rows are not contiguous: the element-wise copy
        np.copyto(dst, src.transpose(1, 0, 2))
        return
    np.copyto(dst_rows, src_rows.T)


def rnn_forward(
    xg: np.ndarray, h0: np.ndarray, W_hh: np.ndarray, relu: bool, ws: Workspace | None = _FRESH
) -> tuple[np.ndarray, bool]:
    """Elman RNN: h_t = act(xg_t + W_hh h_{t-1}), with both biases folded into xg."""
    T, H, B = xg.shape
    hs = _empty(ws, "hs", (T + 1, H, B), xg.dtype)  # (T+1, H, B)
    hs[0] = h0
    for t in range(T):
        a = hs[t + 1]  # (H, B)
        np.matmul(W_hh, hs[t], out=a)
        a += xg[t]
        if relu:
            np.maximum(a, 0, out=a)
        else:
            np.tanh(a, out=a)
    return hs, relu


def rnn_backward(
    dhs: np.ndarray,
    dhT: np.ndarray | None,
    hs: np.ndarray,
    cache: bool,
    W_hhT: np.ndarray,
    dG: np.ndarray,
    ws: Workspace | None = _FRESH,
) -> tuple[np.ndarray]:
    """dpre_t = dh_t ⊙ act'(pre_t), dh_{t-1} = W_hhᵀ dpre_t, with act' read off the stored outputs."""
    relu = cache
    T, H, B = dhs.shape
    dh = np.zeros((H, B), dtype=dhs.dtype) if dhT is None else dhT.copy()  # (H, B)
    for t in range(T - 1, -1, -1):
        dh += dhs[t]
        h = hs[t + 1]  # (H, B)
        da = dG[t]  # (H, B)
        if relu:
            np.multiply(dh, h > 0, out=da)
        else:
            np.multiply(h, h, out=da)  # tanh' = 1 - h²
            np.subtract(1, da, out=da)
            da *= dh
        np.matmul(W_hhT, da, out=dh)  # (H, B)
    return (dh,)


def lstm_forward(
    xg: np.ndarray | None,
    h0: np.ndarray,
    c0: np.ndarray,
    W_hh: np.ndarray,
    ws: Workspace | None = _FRESH,
    zs: np.ndarray | None = None,
) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """LSTM steps, gates i, f, g, o; xg and W_hh arrive with the σ rows scaled by -1, the g rows by -2.

    Either xg (T, G, B) is the input projection of every step, or xg is None, zs (T+1, H+I, B)
    holds z_t = [h_{t-1}; x_t] (x_t filled in, h written by the loop) and W_hh is [W_hh | W_ih]
    (G, H+I): each step's product then does the input projection too. That pays for a small
    input, a token lookup's one-hot (`RNNBase._forward_tokens`): ~2% of an LSTM LM step against
    a product before the loop and an add in it (for the smaller RNN product it costs more than it
    saves). hs is then a view of the top H rows of zs.
    """
    G = W_hh.shape[0]
    H = G // 4
    dt = W_hh.dtype
    if zs is None:
        T, _, B = xg.shape
        hs = _empty(ws, "hs", (T + 1, H, B), dt)  # (T+1, H, B)
    else:
        T, B = zs.shape[0] - 1, zs.shape[2]
        hs = zs[:, :H]  # (T+1, H, B), a view
    hs[0] = h0
    cs = _empty(ws, "cs", (T + 1, H, B), dt)  # (T+1, H, B)
    tcs = _empty(ws, "tcs", (T, H, B), dt)  # tanh(c_t)
    acts = _empty(ws, "acts", (T, G, B), dt)  # gate activations [i f g o]
    cs[0] = c0
    tmp = _empty(ws, "tmp", (H, B), dt)
    with np.errstate(over="ignore"):
        for t in range(T):
            a = acts[t]  # (4H, B)
            if zs is None:
                np.matmul(W_hh, hs[t], out=a)
                a += xg[t]
            else:
                np.matmul(W_hh, zs[t], out=a)  # [W_hh | W_ih] [h_{t-1}; x_t]
            np.exp(a, out=a)  # [i f o] = 1 / (1 + e^(-x)), g = 2 / (1 + e^(-2x)) - 1
            a += 1
            np.divide(1, a, out=a)  # np.reciprocal's quotient, at 0.17 rather than 0.30 ns a number
            i, f, g, o = a[:H], a[H : 2 * H], a[2 * H : 3 * H], a[3 * H :]
            g *= 2
            g -= 1
            c = cs[t + 1]  # (H, B)
            np.multiply(f, cs[t], out=c)
            np.multiply(i, g, out=tmp)
            c += tmp
            np.tanh(c, out=tcs[t])
            np.multiply(o, tcs[t], out=hs[t + 1])
    return hs, (cs, tcs, acts)


def lstm_backward(
    dhs: np.ndarray,
    dhT: np.ndarray | None,
    dcT: np.ndarray | None,
    hs: np.ndarray,
    cache: tuple[np.ndarray, np.ndarray, np.ndarray],
    W_hhT: np.ndarray,
    dG: np.ndarray,
    ws: Workspace | None = _FRESH,
) -> tuple[np.ndarray, np.ndarray]:
    """Backward through c_t = f c_{t-1} + i g and h_t = o tanh(c_t), then the gate nonlinearities."""
    cs, tcs, acts = cache
    T, H, B = dhs.shape
    G = 4 * H
    dt = dhs.dtype
    dh = np.zeros((H, B), dtype=dt) if dhT is None else dhT.copy()  # (H, B)
    dc = np.zeros((H, B), dtype=dt) if dcT is None else dcT.copy()  # (H, B)
    deriv = _empty(ws, "deriv", (G, B), dt)
    tmp = _empty(ws, "tmp", (H, B), dt)
    for t in range(T - 1, -1, -1):
        dh += dhs[t]
        a = acts[t]
        i, f, g, o = a[:H], a[H : 2 * H], a[2 * H : 3 * H], a[3 * H :]
        tc = tcs[t]
        d = dG[t]  # (4H, B): activation gradients first, then times the gate derivatives
        di, df, dg, do = d[:H], d[H : 2 * H], d[2 * H : 3 * H], d[3 * H :]
        np.multiply(dh, tc, out=do)
        np.multiply(tc, tc, out=tmp)  # dc += dh ⊙ o ⊙ (1 - tanh²(c))
        np.subtract(1, tmp, out=tmp)
        tmp *= o
        tmp *= dh
        dc += tmp
        np.multiply(dc, g, out=di)
        np.multiply(dc, cs[t], out=df)
        np.multiply(dc, i, out=dg)
        # gate derivatives: σ' = a(1 - a) on i, f, o; tanh' = 1 - a² on g, i.e. (1 - a)(a + [g row])
        np.subtract(1, a, out=deriv)
        deriv[: 2 * H] *= a[: 2 * H]
        deriv[3 * H :] *= o
        np.add(g, 1, out=tmp)
        deriv[2 * H : 3 * H] *= tmp
        d *= deriv
        dc *= f
        np.matmul(W_hhT, d, out=dh)  # (H, B)
    return (dh, dc)


def gru_forward(
    xg: np.ndarray, h0: np.ndarray, W_hh: np.ndarray, b_hh: np.ndarray | None, ws: Workspace | None = _FRESH
) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]:
    """GRU steps, gates r, z, n with b_hn inside the reset product; r, z rows arrive scaled by -1."""
    T, G, B = xg.shape
    H = G // 3
    dt = xg.dtype
    hs = _empty(ws, "hs", (T + 1, H, B), dt)  # (T+1, H, B)
    acts = _empty(ws, "acts", (T, G, B), dt)  # [r z n]
    ghn = _empty(ws, "ghn", (T, H, B), dt)  # W_hn h_{t-1} + b_hn, needed for dr
    gh = _empty(ws, "gh", (G, B), dt)
    b = None if b_hh is None else b_hh[:, None]
    hs[0] = h0
    with np.errstate(over="ignore"):
        for t in range(T):
            np.matmul(W_hh, hs[t], out=gh)  # (3H, B)
            if b is not None:
                gh += b
            a = acts[t]
            rz = a[: 2 * H]
            np.add(xg[t, : 2 * H], gh[: 2 * H], out=rz)
            np.exp(rz, out=rz)  # σ = 1 / (1 + e^(-x))
            rz += 1
            np.divide(1, rz, out=rz)
            r, z, n = a[:H], a[H : 2 * H], a[2 * H :]
            ghn[t] = gh[2 * H :]
            np.multiply(r, ghn[t], out=n)
            n += xg[t, 2 * H :]
            np.tanh(n, out=n)
            h = hs[t + 1]  # h = n + z ⊙ (h_{t-1} - n)
            np.subtract(hs[t], n, out=h)
            h *= z
            h += n
    return hs, (acts, ghn)


def gru_backward(
    dhs: np.ndarray,
    dhT: np.ndarray | None,
    hs: np.ndarray,
    cache: tuple[np.ndarray, np.ndarray],
    W_hhT: np.ndarray,
    dGi: np.ndarray,
    dGh: np.ndarray,
    ws: Workspace | None = _FRESH,
) -> tuple[np.ndarray]:
    """Backward through h = (1-z) n + z h_{t-1}, n = tanh(xn + r ⊙ ghn), [r z] = σ(·)."""
    acts, ghn = cache
    T, H, B = dhs.shape
    dt = dhs.dtype
    dh = np.zeros((H, B), dtype=dt) if dhT is None else dhT.copy()
    tmp = _empty(ws, "tmp", (H, B), dt)
    dhh = _empty(ws, "dhh", (H, B), dt)
    for t in range(T - 1, -1, -1):
        dh += dhs[t]
        a = acts[t]
        r, z, n = a[:H], a[H : 2 * H], a[2 * H :]
        di = dGi[t]
        dr, dz, dn = di[:H], di[H : 2 * H], di[2 * H :]
        np.subtract(1, z, out=dn)  # dn_pre = dh ⊙ (1 - z) ⊙ (1 - n²)
        dn *= dh
        np.multiply(n, n, out=tmp)
        np.subtract(1, tmp, out=tmp)
        dn *= tmp
        np.subtract(hs[t], n, out=dz)  # dz_pre = dh ⊙ (h_{t-1} - n) ⊙ z (1 - z)
        dz *= dh
        np.subtract(1, z, out=tmp)
        tmp *= z
        dz *= tmp
        np.multiply(dn, ghn[t], out=dr)  # dr_pre = dn_pre ⊙ ghn ⊙ r (1 - r)
        np.subtract(1, r, out=tmp)
        tmp *= r
        dr *= tmp
        dgh = dGh[t]
        dgh[: 2 * H] = di[: 2 * H]
        np.multiply(dn, r, out=dgh[2 * H :])
        np.matmul(W_hhT, dgh, out=dhh)  # (H, B)
        dh *= z
        dh += dhh
    return (dh,)


# ---------------------------------------------------------------------------------------------
# One direction of one layer: input projection, kernel, and the weight gradients of all steps as
# one matrix product (dW = Σ_t dG_t z_tᵀ = dG Zᵀ with time and batch flattened together).
# ---------------------------------------------------------------------------------------------


@dataclass
class _DirCache:
    x: np.ndarray  # (T, I, B) layer input, original time order
    hs: np.ndarray  # (T+1, H, B) hidden states in processing order
    kernel_cache: object
    reverse: bool


def direction_forward(
    mode: str,
    x: np.ndarray,
    state: tuple[np.ndarray, ...],
    W_ih: np.ndarray,
    W_hh: np.ndarray,
    b_ih: np.ndarray | None,
    b_hh: np.ndarray | None,
    reverse: bool,
    ws: Workspace | None = _FRESH,
    stack_input: bool = False,
) -> tuple[np.ndarray, tuple[np.ndarray, ...], _DirCache]:
    """Run one direction of one layer over x (T, I, B); returns outputs (T, H, B), final state, cache.

    With a workspace `ws` the outputs and the cache live in its buffers until the next call. With
    `stack_input` (LSTM, no bias to add), each step's product does the input projection too, as
    [W_hh | W_ih] [h_{t-1}; x_t] (see `lstm_forward`).
    """
    T, I, B = x.shape
    G, H = W_hh.shape
    dt = x.dtype
    scale = _gate_scale(mode, H, dt)
    # b_ih None with b_hh given: the input bias is already inside W_ih x (a token lookup's table, see
    # RNNBase._forward_tokens); GRU still needs b_hh, whose b_hn sits inside r ⊙ (·)
    assert b_hh is None or b_ih is not None or mode == "GRU"
    if scale is not None:
        b_ih = None if b_ih is None else b_ih * scale
        b_hh = None if b_hh is None else b_hh * scale
    if stack_input:
        assert b_ih is None and mode == "LSTM"
        W_cat = _empty(ws, "W_cat", (G, H + I), dt)  # (G, H+I)
        W_cat[:, :H], W_cat[:, H:] = W_hh, W_ih
        if scale is not None:
            W_cat *= scale[:, None]
        zs = _empty(ws, "zs", (T + 1, H + I, B), dt)  # (T+1, H+I, B): z_t = [h_{t-1}; x_t]
        zs[:T, H:] = x[::-1] if reverse else x
        zs[T, H:] = 0
        xg_p, W_hh = None, W_cat
    else:
        zs = None
        if scale is not None:  # gate rows pre-scaled by -1 or -2 (see above)
            W_ih = np.multiply(W_ih, scale[:, None], out=_empty(ws, "W_ih_s", W_ih.shape, dt))
            W_hh = np.multiply(W_hh, scale[:, None], out=_empty(ws, "W_hh_s", W_hh.shape, dt))
        xg_p = _input_projection(mode, x, W_ih, b_ih, b_hh, reverse, ws)
    if mode == "LSTM":
        hs, kc = lstm_forward(xg_p, state[0], state[1], W_hh, ws, zs)
        final = (hs[-1], kc[0][-1])
    elif mode == "GRU":
        hs, kc = gru_forward(xg_p, state[0], W_hh, b_hh, ws)
        final = (hs[-1],)
    else:
        hs, kc = rnn_forward(xg_p, state[0], W_hh, mode == "RNN_RELU", ws)
        final = (hs[-1],)
    out = hs[1:][::-1] if reverse else hs[1:]  # (T, H, B) original order
    return out, final, _DirCache(x, hs, kc, reverse)


def _input_projection(
    mode: str,
    x: np.ndarray,
    W_ih: np.ndarray,
    b_ih: np.ndarray | None,
    b_hh: np.ndarray | None,
    reverse: bool,
    ws: Workspace | None,
) -> np.ndarray:
    """xg (T, G, B) = W_ih x_t + b for every step, in processing order."""
    T, _, B = x.shape
    G = W_ih.shape[0]
    dt = x.dtype
    xg = np.matmul(W_ih, x, out=_empty(ws, "xg", (T, G, B), dt))  # (T, G, B)
    if b_ih is not None:
        # outside GRU the two biases only ever appear summed; GRU's b_hn sits inside r ⊙ (·).
        # Broadcast to a whole (G, B) block first: adding a (G, 1) column runs a B-wide inner loop per row.
        b = b_ih if mode == "GRU" else b_ih + b_hh
        bias = _empty(ws, "bias", (G, B), dt)
        bias[...] = b[:, None]
        xg += bias
    return xg[::-1] if reverse else xg  # processing order, a view


def direction_backward(
    mode: str,
    dout: np.ndarray,
    dfinal: tuple[np.ndarray | None, ...],
    cache: _DirCache,
    W_ih: np.ndarray,
    W_hh: np.ndarray,
    has_bias: bool,
    ws: Workspace | None = _FRESH,
    need_dx: bool = True,
) -> tuple[np.ndarray | None, dict[str, np.ndarray], tuple[np.ndarray, ...]]:
    """Backward of `direction_forward` with unscaled weights; returns dx (T, I, B), grads, initial-state grads.

    With a workspace `ws`, dx and the gradients live in its buffers until the next call. With
    `need_dx` False, dx is None and its product is skipped (a token lookup's one-hot input has none).
    """
    x, hs, kc, reverse = cache.x, cache.hs, cache.kernel_cache, cache.reverse
    T, I, B = x.shape
    G, H = W_hh.shape
    dt = x.dtype
    dout_p = dout[::-1] if reverse else dout  # processing order
    # The kernels write each step's gate gradients into a contiguous (G, B) block of (T, G, B)
    # buffers (processing order: a reversed view for the backward direction); one transposing copy
    # afterwards turns them into (G, T, B), i.e. (G, T·B) matrices for the weight gradients. Writing
    # each step straight into (G, T, B) instead scatters G rows of B numbers, T·B apart, every step:
    # measured 5.5 ms per LSTM backward (H 256, B 32, T 64), against 2.6 ms for block writes + copy.
    dGs = _empty(ws, "dGs", (T, G, B), dt)
    dGhs = _empty(ws, "dGhs", (T, G, B), dt) if mode == "GRU" else dGs
    dGs_p, dGhs_p = (dGs[::-1], dGhs[::-1]) if reverse else (dGs, dGhs)  # processing order, views
    # (H, G) contiguous: the step product runs ~10% faster than on the transposed view of W_hh
    W_hhT = _empty(ws, "W_hhT", (H, G), dt)
    W_hhT[...] = W_hh.T
    if mode == "LSTM":
        dstate = lstm_backward(dout_p, dfinal[0], dfinal[1], hs, kc, W_hhT, dGs_p, ws)
    elif mode == "GRU":
        dstate = gru_backward(dout_p, dfinal[0], hs, kc, W_hhT, dGs_p, dGhs_p, ws)
    else:
        dstate = rnn_backward(dout_p, dfinal[0], hs, kc, W_hhT, dGs_p, ws)
    dGi = _empty(ws, "dGi", (G, T, B), dt)
    _swap_time_feature(dGi, dGs)
    dGh = dGi
    if mode == "GRU":
        dGh = _empty(ws, "dGh", (G, T, B), dt)
        _swap_time_feature(dGh, dGhs)
    dGi2 = dGi.reshape(G, T * B)  # (G, T·B) original order, a view
    dGh2 = dGh.reshape(G, T * B)
    # Every weight gradient is a product with Z = [x; 1; h_prev] (I+1+H, T·B): dW_ih, the bias and
    # dW_hh come out of one GEMM as column blocks of dG Zᵀ (GRU: two, as its dGh differs), which is
    # faster than three products and a row sum over the same gate gradients.
    Z = _empty(ws, "Z", (I + 1 + H, T, B), dt)  # (I+1+H, T, B)
    _swap_time_feature(Z[:I], x)
    Z[I] = 1
    _swap_time_feature(Z[I + 1 :], hs[:-1][::-1] if reverse else hs[:-1])
    Z2 = Z.reshape(I + 1 + H, T * B)
    if dGh is dGi:
        dW = np.matmul(dGi2, Z2.T, out=_empty(ws, "dW", (G, I + 1 + H), dt))  # (G, I+1+H)
        dW_ih, db_ih, db_hh, dW_hh = dW[:, :I], dW[:, I], dW[:, I], dW[:, I + 1 :]
    else:
        dWi = np.matmul(dGi2, Z2[: I + 1].T, out=_empty(ws, "dWi", (G, I + 1), dt))  # (G, I+1)
        dWh = np.matmul(dGh2, Z2[I:].T, out=_empty(ws, "dWh", (G, 1 + H), dt))  # (G, 1+H)
        dW_ih, db_ih, db_hh, dW_hh = dWi[:, :I], dWi[:, I], dWh[:, 0], dWh[:, 1:]
    grads = {"weight_ih": dW_ih, "weight_hh": dW_hh}
    if has_bias:
        grads["bias_ih"] = db_ih
        grads["bias_hh"] = db_hh
    if not need_dx:
        return None, grads, dstate
    dx = np.matmul(W_ih.T, dGi2, out=_empty(ws, "dx", (I, T * B), dt))  # (I, T·B)
    return dx.reshape(I, T, B).transpose(1, 0, 2), grads, dstate  # dx (T, I, B), a view


# ---------------------------------------------------------------------------------------------
# Layers with PyTorch's contract.
# ---------------------------------------------------------------------------------------------


def _feature_major(x: np.ndarray) -> np.ndarray:
    """(T, B, F) -> a contiguous (T, F, B) copy, never a view of `x` (the layer keeps it for backward).

    A batch-first array seen time-major is first made contiguous as (T, B, F): that copy moves whole
    rows, and the swap of the last two axes after it stays in cache. The one-step permutation
    (B, T, F) -> (T, F, B) walks memory with a stride of T·F and is about 4x slower. For B = 1 the
    swap alone would be a view, and a caller that then edits its input in place would change the
    gradients.
    """
    if not x.flags.c_contiguous:
        x = np.ascontiguousarray(x)
    return np.array(x.transpose(0, 2, 1), order="C", copy=True)


def _empty_input_error(shape: tuple[int, ...]) -> ValueError:
    return ValueError(f"input: expected at least one time step and one sequence, got shape {shape}")


def _as_float_array(name: str, value: object, dtype: np.dtype) -> np.ndarray:
    return as_numeric_array(name, value).astype(dtype, copy=False)


class RNNBase(Module):
    """Multi-layer, optionally bidirectional recurrent layer; see `RNN`, `LSTM` and `GRU`.

    Parameters per layer k and direction (suffix `_reverse` for the backward one), PyTorch's
    names and shapes with G = 1, 4 or 3 gate blocks:
    `weight_ih_l{k}` (G·H, I_k), `weight_hh_l{k}` (G·H, H), `bias_ih_l{k}` (G·H,), `bias_hh_l{k}` (G·H,),
    where I_0 = input_size and I_k = H · num_directions above. Initialised U(±1/√H) as PyTorch.
    """

    def __init__(
        self,
        mode: str,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        *,
        dtype: object = np.float32,
        seed: int | None = None,
    ) -> None:
        super().__init__()
        assert mode in MODES
        for name, v in (("input_size", input_size), ("hidden_size", hidden_size), ("num_layers", num_layers)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"{name}: expected a positive integer, got {v!r}")
        if isinstance(dropout, bool) or not (isinstance(dropout, numbers.Real) and 0.0 <= dropout < 1.0):
            raise ValueError(f"dropout: expected a number in [0, 1), got {dropout!r}")
        self.mode = mode
        self.input_size = int(input_size)
        self.hidden_size = int(hidden_size)
        self.num_layers = int(num_layers)
        self.bias = bool(bias)
        self.batch_first = bool(batch_first)
        self.dropout = float(dropout)
        self.bidirectional = bool(bidirectional)
        self.num_directions = 2 if bidirectional else 1
        self.dtype = check_dtype(dtype)
        self.rng = np.random.default_rng(check_seed(seed))
        self._cache: dict | None = None
        # one set of reusable buffers per layer and direction (see `Workspace`)
        self._workspaces = [Workspace() for _ in range(self.num_layers * self.num_directions)]

        G, H = GATES[mode] * self.hidden_size, self.hidden_size
        k = 1.0 / np.sqrt(H)
        for layer in range(self.num_layers):
            layer_in = self.input_size if layer == 0 else H * self.num_directions
            for suffix in self._suffixes(layer):
                shapes = {"weight_ih": (G, layer_in), "weight_hh": (G, H)}
                if self.bias:
                    shapes.update(bias_ih=(G,), bias_hh=(G,))
                for base, shape in shapes.items():
                    w = self.rng.uniform(-k, k, size=shape).astype(self.dtype)
                    self.register_parameter(base + suffix, w)

    def _suffixes(self, layer: int) -> list[str]:
        return [f"_l{layer}", f"_l{layer}_reverse"][: self.num_directions]

    def _weights(self, suffix: str):
        p = self._params
        b_ih = p.get("bias_ih" + suffix)
        b_hh = p.get("bias_hh" + suffix)
        return p["weight_ih" + suffix], p["weight_hh" + suffix], b_ih, b_hh

    # -- state handling ---------------------------------------------------------------------------
    def _state_shape(self, batch: int | None) -> tuple[int, ...]:
        n = self.num_layers * self.num_directions
        return (n, self.hidden_size) if batch is None else (n, batch, self.hidden_size)

    def _check_state(self, name: str, value: object, batch: int | None) -> np.ndarray:
        expected = self._state_shape(batch)
        if value is None:
            return np.zeros(expected, dtype=self.dtype)
        arr = _as_float_array(name, value, self.dtype)
        if arr.shape != expected:
            raise ValueError(f"{name}: expected shape {expected}, got {arr.shape}")
        return arr

    def _split_state(self, hx, batch):
        """Normalise the user's state to a tuple of arrays of shape (L·D, B, H)."""
        if self.mode == "LSTM":
            if hx is None:
                hx = (None, None)
            if not (isinstance(hx, (tuple, list)) and len(hx) == 2):
                raise TypeError(f"hx: expected a tuple (h_0, c_0) for LSTM, got {type(hx).__name__}")
            states = (self._check_state("h_0", hx[0], batch), self._check_state("c_0", hx[1], batch))
        else:
            states = (self._check_state("hx", hx, batch),)
        return tuple(s if s.ndim == 3 else s[:, None, :] for s in states)

    # -- forward / backward -----------------------------------------------------------------------
    def forward(self, input: np.ndarray, hx=None):
        """Run the whole sequence and keep what `backward` needs.

        Args:
            input: (T, B, input_size), or (B, T, input_size) with batch_first, or (T, input_size)
                unbatched. Integer or float arrays are converted to the layer's dtype.
            hx: initial state (L·D, B, H) (LSTM: a tuple (h_0, c_0)); zeros if None. Unbatched: (L·D, H).

        Returns:
            `(output, h_n)`, or `(output, (h_n, c_n))` for LSTM; output (T, B, D·H) (batch_first:
            (B, T, D·H)), h_n and c_n (L·D, B, H).

        Example:
            >>> m = LSTM(8, 16, num_layers=2, batch_first=True)
            >>> out, (h_n, c_n) = m.forward(np.zeros((4, 10, 8)))
            >>> out.shape, h_n.shape
            ((4, 10, 16), (2, 4, 16))
        """
        x = _as_float_array("input", input, self.dtype)
        if x.ndim not in (2, 3):
            raise ValueError(f"input: expected a 2-D (unbatched) or 3-D array, got shape {x.shape}")
        unbatched = x.ndim == 2
        if unbatched:
            x = x[:, None, :]
        elif self.batch_first:
            x = x.transpose(1, 0, 2)
        T, B, I = x.shape  # from here on time-major
        if I != self.input_size:
            layout = (
                "(T, input_size)" if unbatched else "(B, T, input_size)" if self.batch_first else "(T, B, input_size)"
            )
            raise ValueError(
                f"input: expected last dimension input_size={self.input_size} in {layout}, got shape {tuple(np.shape(input))}"
            )
        if T == 0 or B == 0:
            raise _empty_input_error(tuple(np.shape(input)))
        states = self._split_state(hx, None if unbatched else B)
        return self._forward_layers(_feature_major(x), states, unbatched, None)

    def _forward_tokens(self, ids: np.ndarray, table: np.ndarray, hx=None):
        """`forward(table[ids], hx)`, with the lookup folded into the first layer's input projection.

        W_ih table[id] + b is a column of P = W_ih tableᵀ + b (G, V), so the first layer's input is
        the one-hot of the ids (T, V, B) and its weights P: the embedded input is never formed, and
        the backward pass needs no product for it: d table = dPᵀ W_ih and dW_ih = dP table, with dP
        (G, V) coming out of the weight-gradient product in place of dW_ih (the one-hot rows take the
        place of the input rows, as many of them as the input has for a small table). `backward`
        then returns (d table (V, I), state gradients) in place of (dinput, ...). For
        `LanguageModel`, whose embedding feeds the layer; the caller has checked the ids.

        Args:
            ids: integer ids in [0, V), (B, T) with batch_first, else (T, B); (T,) unbatched.
            table: (V, input_size) rows looked up; kept by reference until `backward`.
            hx: as for `forward`.
        """
        unbatched = ids.ndim == 1
        ids_tb = ids[:, None] if unbatched else (ids.T if self.batch_first else ids)  # (T, B)
        T, B = ids_tb.shape
        V, I = table.shape
        if T == 0 or B == 0:  # as `forward` says it of the looked-up input
            raise _empty_input_error((T, I) if unbatched else (B, T, I) if self.batch_first else (T, B, I))
        states = self._split_state(hx, None if unbatched else B)
        onehot = np.zeros((T, V, B), dtype=self.dtype)  # (T, V, B)
        onehot[np.arange(T)[:, None], ids_tb, np.arange(B)] = 1
        return self._forward_layers(onehot, states, unbatched, table)

    def _forward_layers(self, layer_input: np.ndarray, states, unbatched: bool, table: np.ndarray | None):
        """The stack over a feature-major (T, I, B) input (or the one-hot of tokens looked up in `table`)."""
        T, _, B = layer_input.shape
        caches, masks, finals = [], [], []
        for layer in range(self.num_layers):
            outs = []
            for d, suffix in enumerate(self._suffixes(layer)):
                idx = layer * self.num_directions + d
                W_ih, W_hh, b_ih, b_hh = self._weights(suffix)
                lookup = layer == 0 and table is not None
                if lookup:
                    W_ih = W_ih @ table.T  # P (G, V)
                    if b_ih is not None:  # both biases inside P, except GRU's b_hh (b_hn sits inside r ⊙ (·))
                        W_ih += (b_ih if self.mode == "GRU" else b_ih + b_hh)[:, None]
                        b_ih, b_hh = None, (b_hh if self.mode == "GRU" else None)
                state = tuple(np.ascontiguousarray(st[idx].T) for st in states)  # (H, B)
                out, final, cache = direction_forward(
                    self.mode,
                    layer_input,
                    state,
                    W_ih,
                    W_hh,
                    b_ih,
                    b_hh,
                    d == 1,
                    self._workspaces[idx],
                    stack_input=lookup and self.mode == "LSTM",  # the one-hot goes through each step's product
                )
                outs.append(out)
                finals.append(final)
                caches.append(cache)
            if self.num_directions == 2:
                layer_out = np.concatenate(outs, axis=1)
            else:  # the last layer's output is copied below anyway
                layer_out = outs[0] if layer == self.num_layers - 1 else np.ascontiguousarray(outs[0])
            if self.dropout > 0 and self.training and layer < self.num_layers - 1:
                # inverted dropout between layers, as PyTorch: scale at train time, identity at eval
                mask = (self.rng.random(layer_out.shape) >= self.dropout).astype(self.dtype) / (1 - self.dropout)
                layer_out = layer_out * mask
                masks.append(mask)
            else:
                masks.append(None)
            layer_input = layer_out  # (T, D·H, B)
        self._cache = {"caches": caches, "masks": masks, "unbatched": unbatched, "shape": (T, B), "table": table}

        # a copy in every case (for B = 1 the transpose is already contiguous): the layer's buffers are reused
        output = layer_input.transpose(0, 2, 1).copy()  # (T, B, D·H)
        h_n = [np.stack([f[j].T for f in finals]) for j in range(len(states))]  # each (L·D, B, H)
        if unbatched:
            output, h_n = output[:, 0, :], [h[:, 0, :] for h in h_n]
        elif self.batch_first:
            output = output.transpose(1, 0, 2)
        return (output, tuple(h_n)) if self.mode == "LSTM" else (output, h_n[0])

    def backward(self, dout: np.ndarray | None, dstate=None):
        """Backpropagate through the last `forward`, accumulating parameter gradients in `grads`.

        Args:
            dout: gradient of the loss with respect to `output`, same shape; None means zeros.
            dstate: gradient with respect to the final state `h_n` (LSTM: `(dh_n, dc_n)`, either may
                be None); None means the final state does not reach the loss (truncated BPTT).

        Returns:
            `(dinput, dh_0)`, or `(dinput, (dh_0, dc_0))` for LSTM, shaped like `input` and `hx`.

        Example:
            >>> m = GRU(8, 16, batch_first=True)
            >>> x = np.random.default_rng(0).standard_normal((4, 10, 8))
            >>> out, h_n = m.forward(x)
            >>> dx, dh0 = m.backward(np.ones_like(out))
            >>> m.grads["weight_hh_l0"].shape == m.params["weight_hh_l0"].shape
            True
        """
        if self._cache is None:
            raise RuntimeError("backward called before forward (or twice for one forward)")
        cache = self._cache  # dropped only once the arguments are checked: a corrected call may follow
        T, B = cache["shape"]
        unbatched = cache["unbatched"]
        L, D, H = self.num_layers, self.num_directions, self.hidden_size
        out_shape = (T, B, D * H)
        if dout is None:
            g = np.zeros(out_shape, dtype=self.dtype)
        else:
            g = _as_float_array("dout", dout, self.dtype)
            expected = (T, D * H) if unbatched else (B, T, D * H) if self.batch_first else out_shape
            if g.shape != expected:
                raise ValueError(f"dout: expected the shape of output {expected}, got {g.shape}")
            g = g[:, None, :] if unbatched else (g.transpose(1, 0, 2) if self.batch_first else g)
        n_state = 2 if self.mode == "LSTM" else 1
        if dstate is None:
            dfin = [None] * n_state
        elif self.mode == "LSTM":
            if not (isinstance(dstate, (tuple, list)) and len(dstate) == 2):
                raise TypeError(f"dstate: expected a tuple (dh_n, dc_n) for LSTM, got {type(dstate).__name__}")
            dfin = list(dstate)
        else:
            dfin = [dstate]
        dfin = [
            None if v is None else self._check_state(name, v, None if unbatched else B)
            for name, v in zip(("dh_n", "dc_n"), dfin, strict=False)
        ]
        dfin = [None if v is None else (v[:, None, :] if v.ndim == 2 else v) for v in dfin]
        self._cache = None

        dinit = [np.zeros((L * D, B, H), dtype=self.dtype) for _ in range(n_state)]
        table = cache["table"]
        dtable = None if table is None else np.zeros(table.shape, dtype=self.dtype)  # (V, I)
        g = _feature_major(g)  # (T, D·H, B)
        for layer in range(L - 1, -1, -1):
            mask = cache["masks"][layer]
            if mask is not None:
                g = g * mask
            dx = None
            lookup = layer == 0 and table is not None
            for d, suffix in enumerate(self._suffixes(layer)):
                idx = layer * D + d
                W_ih, W_hh, _, _ = self._weights(suffix)
                dfinal = tuple(None if v is None else np.ascontiguousarray(v[idx].T) for v in dfin)
                g_d = g[:, d * H : (d + 1) * H] if D == 2 else g
                dxd, grads, dst = direction_backward(
                    self.mode,
                    g_d,
                    dfinal,
                    cache["caches"][idx],
                    W_ih,
                    W_hh,
                    self.bias,
                    self._workspaces[idx],
                    not lookup,
                )
                if lookup:  # grads["weight_ih"] is dP (G, V), P = W_ih tableᵀ + b
                    dtable += grads["weight_ih"].T @ W_ih  # (V, I)
                    grads = {**grads, "weight_ih": grads["weight_ih"] @ table}  # (G, I)
                for base, val in grads.items():
                    self._grads[base + suffix] += val
                for j in range(n_state):
                    dinit[j][idx] = dst[j].T
                if not lookup:
                    dx = dxd if dx is None else dx + dxd
            g = dx  # (T, I, B)
        if dtable is not None:  # after `_forward_tokens`: the table's gradient in place of the input's
            dinput = dtable
        else:
            dinput = g.transpose(0, 2, 1).copy()  # (T, B, I), never a view of a reused buffer
            if unbatched:
                dinput = dinput[:, 0, :]
            elif self.batch_first:
                dinput = dinput.transpose(1, 0, 2)
        if unbatched:
            dinit = [v[:, 0, :] for v in dinit]
        return (dinput, tuple(dinit)) if self.mode == "LSTM" else (dinput, dinit[0])

    __call__ = forward

    def extra_repr(self) -> str:
        """The constructor arguments, as in `repr`; the optional ones only where not the default."""
        s = f"{self.input_size}, {self.hidden_size}, num_layers={self.num_layers}"
        if self.mode == "RNN_RELU":
            s += ", nonlinearity='relu'"
        if not self.bias:
            s += ", bias=False"
        if self.dropout:
            s += f", dropout={self.dropout}"
        return s + f", bidirectional={self.bidirectional}, batch_first={self.batch_first}, dtype={self.dtype}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.extra_repr()})"


class RNN(RNNBase):
    """Elman RNN, `h_t = tanh|relu(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)`, PyTorch's `nn.RNN` contract.

    Args:
        input_size, hidden_size, num_layers, nonlinearity ('tanh' or 'relu'), bias, batch_first,
        dropout, bidirectional: as `torch.nn.RNN`.
        dtype: np.float32 (default) or np.float64.
        seed: seeds the initialisation and the dropout masks.

    Example:
        >>> rnn = RNN(10, 20, num_layers=2)
        >>> out, h_n = rnn.forward(np.random.randn(5, 3, 10))   # (T, B, I)
        >>> out.shape, h_n.shape
        ((5, 3, 20), (2, 3, 20))
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        nonlinearity: str = "tanh",
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        *,
        dtype: object = np.float32,
        seed: int | None = None,
    ) -> None:
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"nonlinearity: expected 'tanh' or 'relu', got {nonlinearity!r}")
        self.nonlinearity = nonlinearity
        mode = "RNN_TANH" if nonlinearity == "tanh" else "RNN_RELU"
        super().__init__(
            mode, input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional, dtype=dtype, seed=seed
        )


class LSTM(RNNBase):
    """Long short-term memory (Hochreiter & Schmidhuber 1997, with forget gate), PyTorch's `nn.LSTM` contract.

    Gates i, f, g, o stacked in that order in `weight_ih_l{k}` (4H, I) and `weight_hh_l{k}` (4H, H).
    `forward(x, (h_0, c_0))` returns `(output, (h_n, c_n))`; `backward(dout, (dh_n, dc_n))` returns
    `(dx, (dh_0, dc_0))`.

    Example:
        >>> m = LSTM(input_size=8, hidden_size=16, num_layers=2, bidirectional=True, batch_first=True, dtype=np.float64)
        >>> out, (h_n, c_n) = m.forward(np.random.randn(3, 7, 8))
        >>> out.shape, h_n.shape
        ((3, 7, 32), (4, 3, 16))
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        *,
        dtype: object = np.float32,
        seed: int | None = None,
    ) -> None:
        super().__init__(
            "LSTM",
            input_size,
            hidden_size,
            num_layers,
            bias,
            batch_first,
            dropout,
            bidirectional,
            dtype=dtype,
            seed=seed,
        )


class GRU(RNNBase):
    """Gated recurrent unit (Cho et al. 2014), PyTorch's `nn.GRU` contract: gates r, z, n in that order.

    Example:
        >>> m = GRU(8, 16)
        >>> out, h_n = m.forward(np.random.randn(7, 3, 8))
        >>> out.shape, h_n.shape
        ((7, 3, 16), (1, 3, 16))
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        *,
        dtype: object = np.float32,
        seed: int | None = None,
    ) -> None:
        super().__init__(
            "GRU",
            input_size,
            hidden_size,
            num_layers,
            bias,
            batch_first,
            dropout,
            bidirectional,
            dtype=dtype,
            seed=seed,
        )


# ---------------------------------------------------------------------------------------------
# Cells: one time step, PyTorch's nn.RNNCell/LSTMCell/GRUCell names (no _l0 suffix).
# ---------------------------------------------------------------------------------------------


class _CellBase(Module):
    _layer_cls: type

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        *,
        dtype: object = np.float32,
        seed: int | None = None,
        **kw: object,
    ) -> None:
        super().__init__()
        # A one-step, one-layer recurrent layer does the maths; the cell only renames its parameters.
        self._layer = self._layer_cls(input_size, hidden_size, bias=bias, dtype=dtype, seed=seed, **kw)
        for name, p, g in self._layer.named_parameters():
            self._params[name.removesuffix("_l0")] = p
            self._grads[name.removesuffix("_l0")] = g
        self.input_size, self.hidden_size, self.dtype = input_size, hidden_size, self._layer.dtype
        self._state_shape: tuple[int, ...] | None = None  # set by each forward from its input

    def _check_input(self, input: object) -> tuple[np.ndarray, tuple[int, ...]]:
        """The input as an array, and the (B, H) or (H,) shape its states have, as the user passes them.

        The shape is remembered for `backward` only once the forward step has run (`_ran`): a call
        that fails on its state must not change what the next `backward` expects.
        """
        x = _as_float_array("input", input, self.dtype)
        if x.ndim not in (1, 2) or x.shape[-1] != self.input_size:
            raise ValueError(f"input: expected shape (B, {self.input_size}) or ({self.input_size},), got {x.shape}")
        return x, (*x.shape[:-1], self.hidden_size)

    def _ran(self, state_shape: tuple[int, ...]) -> None:
        self._state_shape = state_shape

    def _check_state(self, name: str, value: object, shape: tuple[int, ...] | None = None) -> np.ndarray:
        """A state (`shape`: this input's) or state gradient (the last forward's), given a leading layer axis.

        Checked here so that a wrong shape is reported as the user passed it, not as the
        (1, B, H) of the one-layer recurrent layer underneath.
        """
        shape = self._state_shape if shape is None else shape
        if shape is None:
            raise RuntimeError("backward called before forward")
        arr = _as_float_array(name, value, self.dtype)
        if arr.shape != shape:
            raise ValueError(f"{name}: expected shape {shape}, got {arr.shape}")
        return arr[None]

    def zero_grad(self) -> None:
        self._layer.zero_grad()


class RNNCell(_CellBase):
    """One step of `RNN`: `h' = tanh|relu(W_ih x + b_ih + W_hh h + b_hh)`.

    Example:
        >>> cell = RNNCell(4, 8)
        >>> h = cell.forward(np.ones((2, 4)))         # (B, H)
        >>> dx, dh = cell.backward(np.ones((2, 8)))
    """

    _layer_cls = RNN

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        nonlinearity: str = "tanh",
        *,
        dtype: object = np.float32,
        seed: int | None = None,
    ) -> None:
        super().__init__(input_size, hidden_size, bias, dtype=dtype, seed=seed, nonlinearity=nonlinearity)

    def forward(self, input: np.ndarray, hx: np.ndarray | None = None) -> np.ndarray:
        """input (B, I) or (I,); hx (B, H) or (H,), zeros if None; returns h' like hx."""
        x, shape = self._check_input(input)
        _, h = self._layer.forward(x[None], None if hx is None else self._check_state("hx", hx, shape))
        self._ran(shape)
        return h[0]

    def backward(self, dh: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """dh: gradient of h'; returns (dinput, dhx)."""
        dx, dh0 = self._layer.backward(None, self._check_state("dh", dh))
        return dx[0], dh0[0]

    __call__ = forward


class LSTMCell(_CellBase):
    """One step of `LSTM`; `forward(x, (h, c))` returns `(h', c')`.

    Example:
        >>> cell = LSTMCell(4, 8)
        >>> h, c = cell.forward(np.ones((2, 4)))
        >>> dx, (dh, dc) = cell.backward(np.ones((2, 8)), np.zeros((2, 8)))
    """

    _layer_cls = LSTM

    def forward(
        self, input: np.ndarray, hx: tuple[np.ndarray, np.ndarray] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """input (B, I) or (I,); hx a pair (h, c), each (B, H) or (H,), zeros if None; returns (h', c')."""
        x, shape = self._check_input(input)
        state = None
        if hx is not None:
            if not (isinstance(hx, (tuple, list)) and len(hx) == 2):
                raise TypeError(f"hx: expected a tuple (h_0, c_0) for LSTMCell, got {type(hx).__name__}")
            h0, c0 = hx
            state = (self._check_state("h_0", h0, shape), self._check_state("c_0", c0, shape))
        _, (h, c) = self._layer.forward(x[None], state)
        self._ran(shape)
        return h[0], c[0]

    def backward(
        self, dh: np.ndarray | None, dc: np.ndarray | None = None
    ) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]:
        """Gradients of h' and c' (None: that one does not reach the loss); returns (dinput, (dh, dc))."""
        dstate = tuple(None if v is None else self._check_state(n, v) for n, v in (("dh", dh), ("dc", dc)))
        dx, (dh0, dc0) = self._layer.backward(None, dstate)
        return dx[0], (dh0[0], dc0[0])

    __call__ = forward


class GRUCell(_CellBase):
    """One step of `GRU`.

    Example:
        >>> cell = GRUCell(4, 8)
        >>> h = cell.forward(np.ones((2, 4)))
    """

    _layer_cls = GRU

    def forward(self, input: np.ndarray, hx: np.ndarray | None = None) -> np.ndarray:
        """input (B, I) or (I,); hx (B, H) or (H,), zeros if None; returns h' like hx."""
        x, shape = self._check_input(input)
        _, h = self._layer.forward(x[None], None if hx is None else self._check_state("hx", hx, shape))
        self._ran(shape)
        return h[0]

    def backward(self, dh: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """dh: gradient of h'; returns (dinput, dhx)."""
        dx, dh0 = self._layer.backward(None, self._check_state("dh", dh))
        return dx[0], dh0[0]

    __call__ = forward
