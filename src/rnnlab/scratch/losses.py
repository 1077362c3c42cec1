"""Loss functions as pure functions returning `(loss, gradient)`.

No state and no backward pass to call later: the gradient of the returned loss with respect to the
prediction comes back together with the loss, which is all a training loop needs to start
backpropagation. Semantics follow `torch.nn.functional` (`cross_entropy` with `ignore_index`,
`mse_loss`), plus an optional 0/1 `mask` for padded sequences.
"""

from __future__ import annotations

import numpy as np

from .module import as_numeric_array

_REDUCTIONS = ("mean", "sum")


def _check_logits(name: str, x: object) -> np.ndarray:
    arr = np.asarray(x)
    if arr.dtype not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise TypeError(f"{name}: expected a float32 or float64 array, got dtype {arr.dtype}")
    return arr


def _check_reduction(reduction: str) -> None:
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction: expected one of {list(_REDUCTIONS)}, got {reduction!r}")


def _check_mask(mask: object, shape: tuple[int, ...]) -> np.ndarray:
    m = np.asarray(mask)
    if m.shape != shape:
        raise ValueError(f"mask: expected shape {shape}, got {m.shape}")
    if m.dtype != np.bool_:
        if not np.issubdtype(m.dtype, np.number):
            raise TypeError(f"mask: expected a bool or 0/1 numeric array, got dtype {m.dtype}")
        bad = (m != 0) & (m != 1)
        if bad.any():
            raise ValueError(f"mask: expected only 0 and 1, got {m[bad].flat[0]}")
    return m.astype(bool)


def softmax(logits: np.ndarray, axis: int = -1) -> np.ndarray:
    """Numerically stable softmax along `axis`.

    Args:
        logits: float array of any shape.
        axis: the axis that sums to one.

    Returns:
        Probabilities, same shape and dtype as `logits`.

    Example:
        >>> softmax(np.array([1000.0, 1000.0]))
        array([0.5, 0.5])
    """
    x = _check_logits("logits", logits)
    # Shifting by the max leaves softmax unchanged and keeps exp() from overflowing.
    z = np.exp(x - x.max(axis=axis, keepdims=True))
    return z / z.sum(axis=axis, keepdims=True)


def log_softmax(logits: np.ndarray, axis: int = -1) -> np.ndarray:
    """Numerically stable log-softmax along `axis`: `x - logsumexp(x)`.

    Args:
        logits: float array of any shape.
        axis: the normalised axis.

    Returns:
        Log-probabilities, same shape and dtype as `logits`.

    Example:
        >>> np.exp(log_softmax(np.array([0.0, np.log(3.0)])))
        array([0.25, 0.75])
    """
    x = _check_logits("logits", logits)
    shifted = x - x.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


def cross_entropy(
    logits: np.ndarray,
    targets: np.ndarray,
    *,
    ignore_index: int = -100,
    mask: np.ndarray | None = None,
    reduction: str = "mean",
) -> tuple[float, np.ndarray]:
    """Softmax cross-entropy over the last axis and its gradient, like `F.cross_entropy`.

    A position counts unless its target equals `ignore_index` or its `mask` entry is 0. With
    `reduction="mean"` the loss is averaged over counted positions only (PyTorch's `ignore_index`
    semantics); with `"sum"` it is summed. Targets at excluded positions are not range-checked, so
    padding may hold any integer.

    If no position counts, the loss is 0.0 and the gradient is all zeros. (PyTorch returns NaN for
    the mean in that case; zero keeps a training step on a fully padded batch harmless.)

    Args:
        logits: (..., V) float32/float64 unnormalised scores.
        targets: (...) integer class ids in [0, V), or `ignore_index`.
        ignore_index: target value that marks a position as excluded.
        mask: optional (...) bool or 0/1 array; 0 excludes the position.
        reduction: "mean" or "sum".

    Returns:
        (loss, dlogits): the loss as a Python float and d loss / d logits, shape (..., V), same
        dtype as `logits`.

    Example:
        >>> logits = np.zeros((2, 3, 5))
        >>> targets = np.array([[1, 2, -100], [0, 4, 3]])
        >>> loss, dlogits = cross_entropy(logits, targets)
        >>> round(loss, 4), dlogits.shape                     # log(5) over the 5 counted positions
        (1.6094, (2, 3, 5))
    """
    _check_reduction(reduction)
    x = _check_logits("logits", logits)
    if x.ndim == 0 or x.shape[-1] == 0:
        raise ValueError(f"logits: expected shape (..., V) with V >= 1, got {x.shape}")
    t = np.asarray(targets)
    if t.dtype == np.bool_ or not np.issubdtype(t.dtype, np.integer):
        raise TypeError(f"targets: expected an integer array, got dtype {t.dtype}")
    if t.shape != x.shape[:-1]:
        raise ValueError(f"targets: expected shape {x.shape[:-1]} (logits without the last axis), got {t.shape}")
    V = x.shape[-1]

    counted = t != ignore_index  # (...)
    if mask is not None:
        counted &= _check_mask(mask, t.shape)
    bad = counted & ((t < 0) | (t >= V))
    if bad.any():
        raise ValueError(
            f"targets: expected values in [0, {V - 1}] or ignore_index={ignore_index}, got {int(t[bad].flat[0])}"
        )
    n = int(counted.sum())
    if n == 0:
        return 0.0, np.zeros_like(x)

    x2 = x.reshape(-1, V)  # (N, V)
    rows = counted.reshape(-1)  # (N,)
    every = n == rows.size
    # Excluded rows take no part at all (not a weight of 0: padding may hold -inf or NaN, and 0·NaN is NaN).
    xc = x2 if every else x2[rows]  # (n, V)
    tc = t.reshape(-1) if every else t.reshape(-1)[rows]  # (n,)
    # One exp serves both: -log p_t = log Σ e^(x - max) - (x_t - max), and d(-log p_t)/dx = softmax(x) - onehot(t).
    shifted = xc - xc.max(axis=-1, keepdims=True)  # (n, V)
    e = np.exp(shifted)  # (n, V)
    total = e.sum(axis=-1, keepdims=True)  # (n, 1)
    picked = np.arange(n), tc
    nll = np.log(total[:, 0]) - shifted[picked]  # (n,)
    scale = 1.0 / n if reduction == "mean" else 1.0
    loss = float(nll.sum(dtype=np.float64) * scale)

    dxc = e  # (n, V), becomes scale · (softmax - onehot) in place
    dxc *= x.dtype.type(scale) / total
    dxc[picked] -= x.dtype.type(scale)
    if every:
        return loss, dxc.reshape(x.shape)
    dx = np.zeros_like(x2)  # (N, V)
    dx[rows] = dxc
    return loss, dx.reshape(x.shape)


def mse_loss(
    pred: np.ndarray,
    target: np.ndarray,
    *,
    mask: np.ndarray | None = None,
    reduction: str = "mean",
) -> tuple[float, np.ndarray]:
    """Mean squared error and its gradient, like `F.mse_loss`.

    Args:
        pred: float32/float64 array of any shape.
        target: same shape as `pred`.
        mask: optional bool or 0/1 array, either `pred.shape` (per element) or `pred.shape[:-1]`
            (per position, covering the whole last axis); 0 excludes. The mean is over counted
            elements; if none count, loss 0.0 and zero gradient.
        reduction: "mean" or "sum".

    Returns:
        (loss, dpred): Python float and d loss / d pred, same shape and dtype as `pred`.

    Example:
        >>> loss, dpred = mse_loss(np.array([1.0, 3.0]), np.array([0.0, 0.0]))
        >>> loss, dpred
        (5.0, array([1., 3.]))
    """
    _check_reduction(reduction)
    p = _check_logits("pred", pred)
    y = as_numeric_array("target", target)
    if y.shape != p.shape:
        raise ValueError(f"target: expected shape {p.shape} (same as pred), got {y.shape}")
    y = y.astype(p.dtype, copy=False)
    if mask is None:
        n = p.size
        diff = p - y
    else:
        m = np.asarray(mask)
        if m.shape == p.shape:
            m = _check_mask(m, p.shape)
        elif p.ndim >= 1 and m.shape == p.shape[:-1]:
            m = _check_mask(m, m.shape)[..., None]  # per position: broadcast over the last axis
        else:
            raise ValueError(f"mask: expected shape {p.shape} or {p.shape[:-1]}, got {m.shape}")
        w = np.broadcast_to(m, p.shape).astype(bool)
        n = int(w.sum())
        # warnings off: padding may well hold inf or NaN; a counted one still shows in the loss
        with np.errstate(invalid="ignore", over="ignore"):
            diff = np.where(w, p - y, p.dtype.type(0))  # not (p - y)·0: an excluded NaN or inf must not count
    if n == 0:
        return 0.0, np.zeros_like(p)
    scale = 1.0 / n if reduction == "mean" else 1.0
    loss = float(np.square(diff).sum(dtype=np.float64) * scale)
    dpred = diff * p.dtype.type(2.0 * scale)
    return loss, dpred
