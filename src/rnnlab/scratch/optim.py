"""Optimisers for `Module` parameters, with PyTorch 2.13's exact update rules.

Each optimiser takes `module.named_parameters()` once at construction and keeps the live arrays,
so `step()` updates the module's parameters in place from the gradients accumulated in
`module.grads`. The arithmetic mirrors the single-tensor (CPU) code paths of `torch.optim.SGD`,
`Adagrad`, `Adam` and `AdamW` step for step, including the order of operations, so a NumPy model
and its PyTorch twin stay equal to rounding error over many steps.

State is a flat dict of plain NumPy arrays plus an integer step count
(`{"step": 3, "exp_avg.rnn.weight_hh_l0": array, ...}`), ready to be saved as safetensors + JSON.
Hyper-parameters are not part of it: they come from the constructor (and `lr` from the scheduler).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from rnnlab.scratch.module import Module, as_numeric_array, as_real


def _check_nonnegative(name: str, value: float) -> float:
    value = as_real(name, value, "a value >= 0")
    if not 0.0 <= value:  # also rejects NaN
        raise ValueError(f"{name}: expected a value >= 0, got {value}")
    return value


class Optimizer:
    """Base class: holds live parameter/gradient references and per-parameter state buffers.

    Subclasses name their buffers in `_buffer_names`, fill `self._state[buffer][i]` and implement
    `_update`. Buffers listed in `_lazy_buffers` start as None and are created on the first step
    (SGD's momentum buffer, which PyTorch initialises from the first gradient).

    Args:
        module: the model whose parameters to optimise.
        lr: learning rate, >= 0; the `lr` attribute may be changed between steps.

    Example:
        >>> from rnnlab.scratch.layers import Linear
        >>> model = Linear(3, 2, seed=0)
        >>> opt = SGD(model, lr=0.1)                          # any subclass
        >>> opt.zero_grad()
        >>> y = model(np.ones((4, 3), np.float32))
        >>> dx = model.backward(np.ones_like(y))              # accumulates model.grads
        >>> opt.step()                                        # params -= 0.1 * grads
    """

    _buffer_names: tuple[str, ...] = ()
    _lazy_buffers: tuple[str, ...] = ()

    def __init__(self, module: Module, lr: float) -> None:
        if not hasattr(module, "named_parameters"):
            raise TypeError(f"module: expected a rnnlab.scratch Module, got {type(module).__name__}")
        self.module = module
        triples = list(module.named_parameters())
        self.names = [n for n, _, _ in triples]
        self.params = [p for _, p, _ in triples]
        self.grads = [g for _, _, g in triples]
        self.lr = lr
        self.step_count = 0
        self._state: dict[str, list[np.ndarray | None]] = {}

    @property
    def lr(self) -> float:
        """Learning rate used by the next `step()`; a scheduler may assign to it."""
        return self._lr

    @lr.setter
    def lr(self, value: float) -> None:
        self._lr = _check_nonnegative("lr", value)

    def zero_grad(self) -> None:
        """Zero every gradient of the module (delegates to `module.zero_grad()`)."""
        self.module.zero_grad()

    def step(self) -> None:
        """Update every parameter in place from its accumulated gradient."""
        self.step_count += 1
        for i, (p, g) in enumerate(zip(self.params, self.grads, strict=True)):
            self._update(i, p, g)

    def _update(self, i: int, p: np.ndarray, g: np.ndarray) -> None:
        raise NotImplementedError

    # -- state --------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Copies of the optimiser state: `{"step": int, "<buffer>.<param name>": array, ...}`.

        Lazily created buffers that do not exist yet (SGD momentum before the first step) are
        left out.
        """
        out: dict[str, Any] = {"step": int(self.step_count)}
        for buf in self._buffer_names:
            for name, arr in zip(self.names, self._state[buf], strict=True):
                if arr is not None:
                    out[f"{buf}.{name}"] = arr.copy()
        return out

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore state saved by `state_dict()`; arrays are copied in, keeping parameter dtypes.

        Raises:
            ValueError: on a missing or unexpected key, or a shape mismatch.
        """
        if not isinstance(state_dict, Mapping):
            raise TypeError(f"state_dict: expected a mapping, got {type(state_dict).__name__}")
        if "step" not in state_dict:
            raise ValueError("state_dict: missing key 'step'")
        step = np.asarray(state_dict["step"])
        whole = step.dtype.kind in "iu" or (step.dtype.kind == "f" and np.isfinite(step) and step == np.floor(step))
        if step.shape != () or not whole or step < 0:
            raise ValueError(f"state_dict['step']: expected an integer >= 0, got {state_dict['step']!r}")
        expected = {f"{buf}.{name}" for buf in self._buffer_names for name in self.names}
        lazy = {f"{buf}.{name}" for buf in self._lazy_buffers for name in self.names}
        keys = set(state_dict) - {"step"}
        missing = sorted(expected - keys - lazy)
        unexpected = sorted(keys - expected)
        if missing or unexpected:
            raise ValueError(
                f"state_dict: keys do not match; missing {missing or 'none'}, unexpected {unexpected or 'none'}"
            )
        # every buffer is checked before any is replaced: a bad state dict leaves the optimiser as it was
        loaded: dict[str, list[np.ndarray | None]] = {}
        for buf in self._buffer_names:
            loaded[buf] = []
            for name, p in zip(self.names, self.params, strict=True):
                key = f"{buf}.{name}"
                if key not in state_dict:
                    loaded[buf].append(None)
                    continue
                arr = as_numeric_array(f"state_dict[{key!r}]", state_dict[key])
                if arr.shape != p.shape:
                    raise ValueError(f"state_dict[{key!r}]: expected shape {p.shape}, got {arr.shape}")
                loaded[buf].append(arr.astype(p.dtype, copy=True))
        for buf, arrays in loaded.items():
            self._state[buf][:] = arrays
        self.step_count = int(step)


class SGD(Optimizer):
    """Stochastic gradient descent with optional momentum, like `torch.optim.SGD`.

    Update (PyTorch's form): `g = grad + weight_decay * p`; with momentum, `buf = g` on the first
    step and `buf = momentum * buf + (1 - dampening) * g` after; `g = g + momentum * buf`
    (Nesterov) or `g = buf`; then `p -= lr * g`.

    Args:
        module: the model to optimise.
        lr: learning rate, >= 0.
        momentum: momentum factor, >= 0.
        dampening: dampening for momentum.
        weight_decay: L2 penalty added to the gradient, >= 0.
        nesterov: Nesterov momentum; needs momentum > 0 and dampening 0.

    Example:
        >>> from rnnlab.scratch.layers import Linear
        >>> opt = SGD(Linear(3, 2, seed=0), lr=0.1, momentum=0.9, nesterov=True)
        >>> opt.step(); sorted(opt.state_dict())
        ['momentum_buffer.bias', 'momentum_buffer.weight', 'step']
    """

    _buffer_names = ("momentum_buffer",)
    _lazy_buffers = ("momentum_buffer",)

    def __init__(
        self,
        module: Module,
        lr: float,
        momentum: float = 0.0,
        dampening: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
    ) -> None:
        super().__init__(module, lr)
        self.momentum = _check_nonnegative("momentum", momentum)
        self.dampening = float(dampening)
        self.weight_decay = _check_nonnegative("weight_decay", weight_decay)
        self.nesterov = bool(nesterov)
        if self.nesterov and (self.momentum <= 0 or self.dampening != 0):
            raise ValueError(
                f"nesterov: requires momentum > 0 and dampening 0, got momentum={self.momentum}, "
                f"dampening={self.dampening}"
            )
        self._state = {"momentum_buffer": [None] * len(self.params)}

    def _update(self, i: int, p: np.ndarray, g: np.ndarray) -> None:
        # New arrays rather than in-place ops on g: module.grads must survive the step, as .grad does.
        if self.weight_decay != 0:
            g = g + self.weight_decay * p
        if self.momentum != 0:
            bufs = self._state["momentum_buffer"]
            buf = bufs[i]
            if buf is None:
                buf = g.copy()  # first step: no dampening, exactly as torch
                bufs[i] = buf
            else:
                buf *= self.momentum
                buf += (1 - self.dampening) * g
            g = g + self.momentum * buf if self.nesterov else buf
        p -= self.lr * g


class Adagrad(Optimizer):
    """Adagrad, like `torch.optim.Adagrad`.

    Update: `g = grad + weight_decay * p`; `clr = lr / (1 + (step - 1) * lr_decay)`;
    `sum += g * g`; `p -= clr * g / (sqrt(sum) + eps)`.

    Args:
        module: the model to optimise.
        lr: learning rate, >= 0.
        lr_decay: learning-rate decay per step, >= 0.
        weight_decay: L2 penalty added to the gradient, >= 0.
        initial_accumulator_value: starting value of `sum`, >= 0.
        eps: added to the denominator (outside the square root), >= 0.

    Example:
        >>> from rnnlab.scratch.layers import Linear
        >>> opt = Adagrad(Linear(3, 2, seed=0), lr=0.1)
        >>> opt.step(); opt.state_dict()["step"]
        1
    """

    _buffer_names = ("sum",)

    def __init__(
        self,
        module: Module,
        lr: float = 1e-2,
        lr_decay: float = 0,
        weight_decay: float = 0,
        initial_accumulator_value: float = 0,
        eps: float = 1e-10,
    ) -> None:
        super().__init__(module, lr)
        self.lr_decay = _check_nonnegative("lr_decay", lr_decay)
        self.weight_decay = _check_nonnegative("weight_decay", weight_decay)
        self.initial_accumulator_value = _check_nonnegative("initial_accumulator_value", initial_accumulator_value)
        self.eps = _check_nonnegative("eps", eps)
        self._state = {"sum": [np.full_like(p, self.initial_accumulator_value) for p in self.params]}

    def _update(self, i: int, p: np.ndarray, g: np.ndarray) -> None:
        if self.weight_decay != 0:
            g = g + self.weight_decay * p
        clr = self.lr / (1 + (self.step_count - 1) * self.lr_decay)
        state_sum = self._state["sum"][i]
        assert state_sum is not None
        state_sum += g * g
        std = np.sqrt(state_sum) + self.eps
        p += (-clr * g) / std


class Adam(Optimizer):
    """Adam, like `torch.optim.Adam` (L2 weight decay added to the gradient).

    Update: `g = grad + weight_decay * p`; `m = lerp(m, g, 1 - beta1)`;
    `v = beta2 * v + (1 - beta2) * g * g`; with bias corrections `bc1 = 1 - beta1**t`,
    `bc2 = 1 - beta2**t`: `p -= (lr / bc1) * m / (sqrt(v) / sqrt(bc2) + eps)` (eps outside the
    square root and after the bias correction of v, as in PyTorch).

    Args:
        module: the model to optimise.
        lr: learning rate, >= 0.
        betas: (beta1, beta2), each in [0, 1).
        eps: added to the denominator, >= 0.
        weight_decay: L2 penalty, >= 0.

    Example:
        >>> from rnnlab.scratch.layers import Linear
        >>> opt = Adam(Linear(3, 2, seed=0), lr=1e-3)
        >>> opt.step(); sorted(opt.state_dict())
        ['exp_avg.bias', 'exp_avg.weight', 'exp_avg_sq.bias', 'exp_avg_sq.weight', 'step']
    """

    _buffer_names = ("exp_avg", "exp_avg_sq")
    _decoupled = False

    def __init__(
        self,
        module: Module,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ) -> None:
        super().__init__(module, lr)
        self.eps = _check_nonnegative("eps", eps)
        expected = "a pair of numbers (beta1, beta2)"
        try:  # a tuple, list, array or tensor of two numbers, as torch.optim takes
            pair = [] if isinstance(betas, (str, bytes)) else list(betas)
            beta1, beta2 = (as_real("betas", b, expected) for b in pair)
        except (TypeError, ValueError):  # not a sequence, not two items, or not numbers
            raise ValueError(f"betas: expected {expected}, got {betas!r}") from None
        if not 0.0 <= beta1 < 1.0:
            raise ValueError(f"betas: expected betas[0] in [0, 1), got {beta1}")
        if not 0.0 <= beta2 < 1.0:
            raise ValueError(f"betas: expected betas[1] in [0, 1), got {beta2}")
        self.betas = (beta1, beta2)
        self.weight_decay = _check_nonnegative("weight_decay", weight_decay)
        self._state = {
            "exp_avg": [np.zeros_like(p) for p in self.params],
            "exp_avg_sq": [np.zeros_like(p) for p in self.params],
        }

    def _update(self, i: int, p: np.ndarray, g: np.ndarray) -> None:
        beta1, beta2 = self.betas
        lr, t = self.lr, self.step_count
        m, v = self._state["exp_avg"][i], self._state["exp_avg_sq"][i]
        assert m is not None and v is not None
        if self.weight_decay != 0:
            if self._decoupled:
                p *= 1 - lr * self.weight_decay
            else:
                g = g + self.weight_decay * p
        w = 1 - beta1
        # torch.lerp switches formula at weight 0.5 to stay accurate; follow it.
        if abs(w) < 0.5:
            m += w * (g - m)
        else:
            m[...] = g - (g - m) * (1 - w)
        v *= beta2
        v += (1 - beta2) * g * g
        bias_correction1 = 1 - beta1**t
        bias_correction2_sqrt = (1 - beta2**t) ** 0.5
        step_size = lr / bias_correction1
        denom = np.sqrt(v) / bias_correction2_sqrt + self.eps
        p += (-step_size * m) / denom


class AdamW(Adam):
    """Adam with decoupled weight decay, like `torch.optim.AdamW`.

    Identical to `Adam` except that weight decay shrinks the parameters directly,
    `p *= 1 - lr * weight_decay`, before the moment updates, instead of entering the gradient (and
    hence the moments).

    Args:
        module: the model to optimise.
        lr: learning rate, >= 0.
        betas: (beta1, beta2), each in [0, 1).
        eps: added to the denominator, >= 0.
        weight_decay: decoupled decay coefficient, >= 0 (default 1e-2 as in PyTorch).

    Example:
        >>> from rnnlab.scratch.layers import Linear
        >>> opt = AdamW(Linear(3, 2, seed=0), lr=1e-3, weight_decay=0.1)
        >>> opt.lr = 5e-4                                     # what a scheduler does between steps
        >>> opt.step()
    """

    _decoupled = True

    def __init__(
        self,
        module: Module,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
    ) -> None:
        super().__init__(module, lr, betas, eps, weight_decay)
