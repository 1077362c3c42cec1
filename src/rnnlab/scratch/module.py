"""The parameter container every NumPy layer builds on.

A `Module` owns named parameter arrays and gradient arrays of the same names and shapes, like
PyTorch's `nn.Module` with `.grad` on each parameter. Gradients accumulate across `backward`
calls until `zero_grad()`, as in PyTorch, so truncated BPTT and gradient accumulation work the
same way in both engines. Children are composed with dotted names (`rnn.weight_ih_l0`), so one
state dict serves a NumPy model and its PyTorch twin.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import numpy as np

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def check_dtype(dtype: object) -> np.dtype:
    """Return `dtype` as a NumPy dtype, raising TypeError unless it is float32 or float64.

    None means float32, the default, as PyTorch's `dtype=None` means its default float type
    (NumPy's `np.dtype(None)` would be float64).
    """
    if dtype is None:
        return np.dtype(np.float32)
    try:
        dt = np.dtype(dtype)  # type: ignore[call-overload]
    except TypeError:
        raise TypeError(f"dtype: expected float32 or float64, got {dtype!r}") from None
    if dt not in FLOAT_DTYPES:
        raise TypeError(f"dtype: expected float32 or float64, got {dt}")
    return dt


def check_seed(seed: object) -> int | None:
    """`seed` if it is None or an integer >= 0 (what seeds a `np.random.default_rng`), else ValueError."""
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0):
        raise ValueError(f"seed: expected an integer >= 0 or None, got {seed!r}")
    return None if seed is None else int(seed)


def check_positive_int(name: str, value: object) -> int:
    """`value` as an int if it is a positive integer (a float such as 4.0 included), else ValueError naming `name`."""
    ok = not isinstance(value, bool) and isinstance(value, (int, np.integer, float, np.floating))
    if not ok or not np.isfinite(value) or value != int(value) or value < 1:  # type: ignore[arg-type,call-overload,operator]
        raise ValueError(f"{name}: expected a positive integer, got {value!r}")
    return int(value)  # type: ignore[call-overload]


def as_real(name: str, value: object, expected: str) -> float:
    """float(value) for a real number: a Python or NumPy scalar, a 0-d array or tensor (what
    torch.optim takes too); anything else (None, a bool, text, a longer array) is a ValueError
    naming `name` and saying `expected`.

    Example:
        >>> as_real("lr", np.array(0.01), "a value >= 0")
        0.01
    """
    if value is None or isinstance(value, (bool, np.bool_, str, bytes)):
        raise ValueError(f"{name}: expected {expected}, got {value!r}")
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError(f"{name}: expected {expected}, got {value!r}") from None


def as_numeric_array(name: str, value: object) -> np.ndarray:
    """`np.asarray(value)` for a real (or integer, bool) array; a ragged nest of lists or a non-numeric
    dtype is a `ValueError` / `TypeError` naming `name`.

    Example:
        >>> as_numeric_array("x", [[1, 2], [3, 4]]).shape
        (2, 2)
    """
    if hasattr(value, "detach") and hasattr(value, "requires_grad"):
        value = value.detach().cpu()  # a torch tensor that requires grad refuses `np.asarray`
    try:
        arr = np.asarray(value)
    except ValueError as e:  # a ragged nest of lists
        raise ValueError(f"{name}: expected a rectangular numeric array, got {type(value).__name__} ({e})") from None
    if arr.dtype.kind not in "fiub":  # not complex either: its imaginary part would be dropped
        raise TypeError(f"{name}: expected a numeric array, got dtype {arr.dtype}")
    return arr


class Module:
    """Base class: named parameters, their gradients, children, train/eval mode.

    Subclasses call `register_parameter(name, array)` for their own weights and
    `register_module(name, child)` for children; `params` and `grads` then hold live references
    (an optimiser updates `params[k]` in place from `grads[k]`).

    Example:
        >>> from rnnlab.scratch.layers import Linear
        >>> lin = Linear(4, 2)                      # any subclass
        >>> sorted(lin.state_dict())
        ['bias', 'weight']
    """

    def __init__(self) -> None:
        self._params: dict[str, np.ndarray] = {}
        self._grads: dict[str, np.ndarray] = {}
        self._children: dict[str, Module] = {}
        self.training = True

    # -- construction -------------------------------------------------------------------------
    def register_parameter(self, name: str, value: np.ndarray) -> None:
        """Own `value` (kept, not copied) as parameter `name`, with a zero gradient of its shape."""
        self._params[name] = value
        self._grads[name] = np.zeros_like(value)

    def tie_parameter(self, name: str, owner: Module, owner_name: str) -> None:
        """Make parameter `name` the very array (and gradient) of `owner`'s parameter `owner_name`.

        Both names stay in `state_dict()`, as in PyTorch; `named_parameters()` and so the optimisers
        see the shared array once, and both uses of it accumulate into its one gradient.
        """
        self._params[name] = owner._params[owner_name]
        self._grads[name] = owner._grads[owner_name]

    def register_module(self, name: str, module: Module) -> None:
        """Add a child; its parameters appear as `name.<its names>`."""
        self._children[name] = module

    # -- access -------------------------------------------------------------------------------
    def named_parameters(
        self, prefix: str = "", remove_duplicate: bool = True
    ) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
        """Yield `(name, parameter, gradient)` for this module and its children, in registration order.

        A tied parameter (`tie_parameter`) comes once, under its first name, unless `remove_duplicate`
        is False, as in PyTorch.
        """
        seen: set[int] = set()
        for name, p, g in self._all_parameters(prefix):
            if remove_duplicate:
                if id(p) in seen:
                    continue
                seen.add(id(p))
            yield name, p, g

    def _all_parameters(self, prefix: str) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
        for name, p in self._params.items():
            yield prefix + name, p, self._grads[name]
        for child_name, child in self._children.items():
            yield from child._all_parameters(prefix + child_name + ".")

    @property
    def params(self) -> dict[str, np.ndarray]:
        """Live parameter arrays by name (no copies)."""
        return {n: p for n, p, _ in self.named_parameters()}

    @property
    def grads(self) -> dict[str, np.ndarray]:
        """Live gradient arrays by name, same names and shapes as `params`."""
        return {n: g for n, _, g in self.named_parameters()}

    def num_parameters(self) -> int:
        """Number of scalars in all parameters, children included."""
        return sum(p.size for _, p, _ in self.named_parameters())

    def zero_grad(self) -> None:
        """Set every gradient to zero in place (backward passes accumulate into them)."""
        for _, _, g in self.named_parameters():
            g.fill(0)

    def train(self, mode: bool = True) -> Module:
        """Training mode (dropout active) if `mode`, else evaluation mode, for this module and its children."""
        self.training = mode
        for child in self._children.values():
            child.train(mode)
        return self

    def eval(self) -> Module:
        """Evaluation mode: `train(False)`."""
        return self.train(False)

    # -- state dicts --------------------------------------------------------------------------
    def state_dict(self) -> dict[str, np.ndarray]:
        """Copies of every parameter, keyed by PyTorch's names (a tied parameter under each of its names)."""
        return {n: p.copy() for n, p, _ in self.named_parameters(remove_duplicate=False)}

    def load_state_dict(self, state_dict: Mapping[str, object], strict: bool = True) -> None:
        """Copy arrays into the parameters in place, keeping this module's dtype.

        Args:
            state_dict: name -> array-like (NumPy arrays, or anything `np.asarray` takes, such as
                `tensor.numpy()`); shapes must match exactly.
            strict: if True, missing or unexpected names raise `ValueError`.
        """
        if not isinstance(state_dict, Mapping):
            raise TypeError(f"state_dict: expected a mapping of names to arrays, got {type(state_dict).__name__}")
        own = {n: p for n, p, _ in self.named_parameters(remove_duplicate=False)}
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        if strict and (missing or unexpected):
            raise ValueError(
                f"state_dict: names do not match; missing {missing or 'none'}, unexpected {unexpected or 'none'}"
            )
        arrays: dict[str, np.ndarray] = {}
        for name, value in state_dict.items():
            if name not in own:
                continue
            arr = as_numeric_array(f"state_dict[{name!r}]", value)
            if arr.shape != own[name].shape:
                raise ValueError(f"state_dict[{name!r}]: expected shape {own[name].shape}, got {arr.shape}")
            arrays[name] = arr
        first_name: dict[int, str] = {}  # a tied array must get one value, whichever name brings it
        for name, arr in arrays.items():
            other = first_name.setdefault(id(own[name]), name)
            if other != name and not np.array_equal(arrays[other], arr):
                raise ValueError(
                    f"state_dict: {other} and {name} are one tied parameter, but the given values differ "
                    "(weights of an untied model?)"
                )
        for name, arr in arrays.items():
            own[name][...] = arr
