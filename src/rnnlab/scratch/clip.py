"""Gradient clipping, in place, with `torch.nn.utils` semantics.

Recurrent nets are prone to exploding gradients: one long product of Jacobians can blow a single
update up by orders of magnitude. Clipping by value (what the classic min-char-rnn lessons do) bounds
each entry; clipping by the global norm rescales all gradients together and so keeps the update's
direction, which is why it is the usual choice for RNNs (Pascanu et al., 2013).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

import numpy as np

from rnnlab.scratch.module import Module

GradsLike = Module | Mapping[str, np.ndarray] | Iterable[np.ndarray] | np.ndarray


def _collect_grads(module_or_grads: GradsLike) -> list[np.ndarray]:
    if isinstance(module_or_grads, Module):
        grads = list(module_or_grads.grads.values())
    elif isinstance(module_or_grads, np.ndarray):
        grads = [module_or_grads]
    elif isinstance(module_or_grads, Mapping):
        grads = list(module_or_grads.values())
    elif isinstance(module_or_grads, Iterable):
        grads = list(module_or_grads)
    else:
        raise TypeError(
            f"module_or_grads: expected a Module, a mapping or an iterable of arrays, "
            f"got {type(module_or_grads).__name__}"
        )
    for k, g in enumerate(grads):
        # Clipping works in place, so anything but a writeable float ndarray would be silently lost.
        if not isinstance(g, np.ndarray) or not np.issubdtype(g.dtype, np.floating):
            raise TypeError(f"module_or_grads: expected float NumPy arrays, got {type(g).__name__} at position {k}")
    return grads


def _number(name: str, value: object) -> float:
    """float(value) (so "inf" works, as in PyTorch), or a ValueError naming the argument."""
    try:
        if isinstance(value, bool):
            raise TypeError
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError(f"{name}: expected a number, got {value!r}") from None


def _vector_norm(x: np.ndarray, p: float) -> np.ndarray:
    """`torch.linalg.vector_norm(x, p)` for a flat view of `x`, as a 0-d array of x's dtype."""
    a = np.abs(x.reshape(-1))
    if a.dtype.itemsize < 4:  # float16 sums in float32, as torch does: 300² already overflows float16
        return _vector_norm(a.astype(np.float32), p).astype(x.dtype)
    if a.size == 0:
        return np.zeros((), dtype=x.dtype)
    if p == math.inf:
        return a.max()
    if p == -math.inf:
        return a.min()
    if p == 0:
        return np.asarray(np.count_nonzero(a), dtype=x.dtype)
    if p == 2:
        return np.sqrt(np.dot(a, a))
    return np.sum(a**p) ** (1.0 / p)


def clip_grad_value_(module_or_grads: GradsLike, clip_value: float) -> None:
    """Clip every gradient entry into [-clip_value, clip_value], in place.

    Args:
        module_or_grads: a Module (its `grads` are clipped), a mapping of name -> gradient array,
            an iterable of gradient arrays, or a single array.
        clip_value: the bound, >= 0.

    Example:
        >>> g = np.array([-7.0, 0.5, 9.0])
        >>> clip_grad_value_([g], 5.0); g
        array([-5. ,  0.5,  5. ])
    """
    clip_value = _number("clip_value", clip_value)
    if not clip_value >= 0:
        raise ValueError(f"clip_value: expected a value >= 0, got {clip_value}")
    for g in _collect_grads(module_or_grads):
        np.clip(g, -clip_value, clip_value, out=g)


def clip_grad_norm_(
    module_or_grads: GradsLike,
    max_norm: float,
    norm_type: float = 2.0,
    error_if_nonfinite: bool = False,
) -> float:
    """Rescale all gradients together so their global norm is at most `max_norm`, in place.

    Same semantics as `torch.nn.utils.clip_grad_norm_`: the norm is taken over all gradients as if
    concatenated into one vector, and every gradient is multiplied by
    `min(1, max_norm / (total_norm + 1e-6))` (so gradients are only ever scaled down, and a
    non-finite total norm propagates into the gradients exactly as in torch unless
    `error_if_nonfinite` is set).

    Args:
        module_or_grads: a Module, a mapping of name -> gradient array, an iterable of gradient
            arrays, or a single array.
        max_norm: the largest allowed total norm.
        norm_type: p of the p-norm; `float("inf")` for the max-abs norm.
        error_if_nonfinite: raise RuntimeError if the total norm is NaN or infinite.

    Returns:
        The total norm before clipping, as a Python float.

    Example:
        >>> g = np.array([3.0, 4.0])
        >>> clip_grad_norm_([g], 1.0), g.round(4)
        (5.0, array([0.6, 0.8]))
    """
    grads = _collect_grads(module_or_grads)
    norm_type = _number("norm_type", norm_type)
    max_norm = _number("max_norm", max_norm)
    if not grads:
        return 0.0
    # Per-array norms, then the norm of those norms: torch's two-stage reduction, in the grads' dtype.
    dtype = np.result_type(*grads)
    norms = np.stack([_vector_norm(g, norm_type).astype(dtype) for g in grads])
    total_norm = _vector_norm(norms, norm_type)
    if error_if_nonfinite and not np.isfinite(total_norm):
        raise RuntimeError(
            f"The total norm of order {norm_type} for gradients from `module_or_grads` is non-finite, so "
            "it cannot be clipped. To disable this error and scale the gradients by the non-finite "
            "norm anyway, set `error_if_nonfinite=False`"
        )
    clip_coef = max_norm / (total_norm + dtype.type(1e-6))
    # torch multiplies by clamp(coef, max=1), a no-op unless coef < 1 or NaN (which it propagates).
    if clip_coef < 1 or np.isnan(clip_coef):
        with np.errstate(invalid="ignore"):  # 0 * inf = NaN for an infinite norm, silently as torch
            for g in grads:
                g *= clip_coef.astype(g.dtype)
    return float(total_norm)
