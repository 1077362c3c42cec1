"""Finite-difference gradient checking: the test that a hand-written backward pass is right.

A backward pass can be wrong in ways that still train (a missing term, a transposed matrix that
happens to be square). Comparing it with central differences, `(f(x + eps) - f(x - eps)) / 2eps`,
catches that; the truncation error is O(eps^2), so in float64 with eps around 1e-6 a correct
gradient agrees to about 1e-8 relative error or better. Use float64: in float32 the rounding error
of f swamps the difference quotient.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def numerical_gradient(f: Callable[[], float], array: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """Central-difference estimate of d f / d array.

    Each entry of `array` is perturbed in place by +eps and -eps, `f()` is re-evaluated, and the
    entry is restored exactly, so `array` may be a live parameter that `f` reads (a closure over a
    module's forward and loss). Costs 2 * array.size calls of `f`.

    Args:
        f: zero-argument function returning a scalar loss that depends on `array`.
        array: writeable float array, perturbed and restored in place.
        eps: perturbation size, > 0.

    Returns:
        float64 array of `array.shape` with the estimated gradient.

    Example:
        >>> x = np.array([1.0, 2.0])
        >>> numerical_gradient(lambda: float((x**2).sum()), x).round(6)
        array([2., 4.])
    """
    if not isinstance(array, np.ndarray) or not np.issubdtype(array.dtype, np.floating):
        raise TypeError(f"array: expected a float NumPy array, got {type(array).__name__}")
    if not array.flags.writeable:
        raise ValueError("array: expected a writeable array (it is perturbed in place)")
    if not eps > 0:
        raise ValueError(f"eps: expected a value > 0, got {eps}")
    grad = np.zeros(array.shape, dtype=np.float64)
    for idx in np.ndindex(array.shape):
        old = array[idx].copy()
        try:
            array[idx] = old + eps
            f_plus = float(f())
            array[idx] = old - eps
            f_minus = float(f())
        finally:
            array[idx] = old  # restore the exact bits, not old + eps - eps
        grad[idx] = (f_plus - f_minus) / (2 * eps)
    return grad


def _pair(analytic: object, numeric: object) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(analytic, dtype=np.float64)
    n = np.asarray(numeric, dtype=np.float64)
    if a.shape != n.shape:
        raise ValueError(f"numeric: expected shape {a.shape} (same as analytic), got {n.shape}")
    return a, n


def relative_error(analytic: np.ndarray, numeric: np.ndarray) -> float:
    """Norm-wise relative error ‖a − n‖₂ / max(‖a‖₂, ‖n‖₂, 1e-300).

    Norm-wise rather than element-wise on purpose: the usual element-wise |a − n| / max(|a|, |n|)
    blows up on entries whose true gradient is exactly zero (dead ReLU units, unused embedding
    rows, masked positions), where the analytic value is 0 and the numeric one is rounding noise.
    Measured against the whole gradient's norm that noise is negligible, as it should be. The
    1e-300 floor makes two all-zero gradients compare as equal (error 0) instead of 0/0.

    Args:
        analytic: gradient from backward, any shape.
        numeric: finite-difference estimate, same shape.

    Returns:
        The relative error as a Python float (0 when both are zero).

    Example:
        >>> relative_error(np.array([1.0, 0.0]), np.array([1.0, 1e-9]))
        1e-09
    """
    a, n = _pair(analytic, numeric)
    denom = max(np.linalg.norm(a), np.linalg.norm(n), 1e-300)
    return float(np.linalg.norm(a - n) / denom)


def max_abs_error(analytic: np.ndarray, numeric: np.ndarray) -> float:
    """Largest element-wise absolute difference, max |a − n| (0.0 for empty arrays).

    Example:
        >>> max_abs_error(np.array([1.0, 2.0]), np.array([1.0, 2.5]))
        0.5
    """
    a, n = _pair(analytic, numeric)
    return float(np.abs(a - n).max()) if a.size else 0.0
