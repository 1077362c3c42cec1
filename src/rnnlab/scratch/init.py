"""Weight initialisers that fill NumPy arrays in place, mirroring `torch.nn.init`.

Each takes the random generator explicitly, so an initialisation is reproducible from a seed
without global state. `init_recurrent_` applies a named scheme to a whole recurrent module whose
parameters follow PyTorch's names (`weight_ih_l0`, `weight_hh_l0_reverse`, `bias_ih_l1`, ...) and
stacked-gate layout (rows `[i, f, g, o]` for LSTM, `[r, z, n]` for GRU).

Why the recurrent matrix deserves care: the hidden state is multiplied by `W_hh` at every step, so
its spectrum decides whether signals and gradients vanish or explode over time. An orthogonal
matrix (Saxe et al., 2013) has all singular values 1; the identity (IRNN, Le et al., 2015) makes a
ReLU RNN start as a perfect memory.
"""

from __future__ import annotations

import math
import re

import numpy as np

from rnnlab.scratch.module import Module

SCHEMES = ("pytorch", "normal", "xavier", "orthogonal", "identity")

_RECURRENT_NAME = re.compile(r"(?:^|\.)(weight|bias)_(ih|hh)_(l\d+(?:_reverse)?)$")


def _check_array(a: object) -> np.ndarray:
    if not isinstance(a, np.ndarray) or not np.issubdtype(a.dtype, np.floating):
        kind = f"array of dtype {a.dtype}" if isinstance(a, np.ndarray) else type(a).__name__
        raise TypeError(f"a: expected a float NumPy array to fill in place, got {kind}")
    return a


def _check_rng(rng: object) -> np.random.Generator:
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng: expected a numpy.random.Generator, got {type(rng).__name__}")
    return rng


def calculate_fan_in_and_fan_out(a: np.ndarray) -> tuple[int, int]:
    """Fan-in and fan-out as `torch.nn.init._calculate_fan_in_and_fan_out` defines them.

    For a weight of shape (out, in, *kernel): fan_in = in * prod(kernel), fan_out = out * prod(kernel).

    Example:
        >>> calculate_fan_in_and_fan_out(np.empty((8, 3)))
        (3, 8)
    """
    if a.ndim < 2:
        raise ValueError(f"a: expected at least 2 dimensions to compute fan in/out, got shape {a.shape}")
    receptive = math.prod(a.shape[2:])
    return a.shape[1] * receptive, a.shape[0] * receptive


def zeros_(a: np.ndarray) -> np.ndarray:
    """Fill `a` with zeros in place and return it.

    Example:
        >>> zeros_(np.ones(3))
        array([0., 0., 0.])
    """
    _check_array(a).fill(0)
    return a


def uniform_(a: np.ndarray, low: float, high: float, rng: np.random.Generator) -> np.ndarray:
    """Fill `a` with U(low, high) samples in place and return it.

    Example:
        >>> w = uniform_(np.empty((2, 3)), -0.1, 0.1, np.random.default_rng(0))
        >>> bool(np.abs(w).max() <= 0.1)
        True
    """
    _check_array(a)
    if not low <= high:
        raise ValueError(f"low: expected low <= high, got low={low}, high={high}")
    a[...] = _check_rng(rng).uniform(low, high, a.shape)
    return a


def pytorch_default_(a: np.ndarray, hidden_size: int, rng: np.random.Generator) -> np.ndarray:
    """PyTorch's default for every recurrent parameter: U(-1/sqrt(H), 1/sqrt(H)), in place.

    Args:
        a: any-shape float array (a weight or a bias).
        hidden_size: H, the layer's hidden size.
        rng: random generator.

    Example:
        >>> w = pytorch_default_(np.empty((4, 4)), 4, np.random.default_rng(0))
        >>> bool(np.abs(w).max() <= 0.5)
        True
    """
    if int(hidden_size) != hidden_size or hidden_size < 1:
        raise ValueError(f"hidden_size: expected a positive integer, got {hidden_size}")
    bound = 1.0 / math.sqrt(hidden_size)
    return uniform_(a, -bound, bound, rng)


def normal_(a: np.ndarray, std: float, rng: np.random.Generator, mean: float = 0.0) -> np.ndarray:
    """Fill `a` with N(mean, std^2) samples in place and return it.

    Example:
        >>> normal_(np.empty((2, 2)), 0.01, np.random.default_rng(0)).shape
        (2, 2)
    """
    _check_array(a)
    if not std >= 0:
        raise ValueError(f"std: expected a value >= 0, got {std}")
    a[...] = _check_rng(rng).normal(mean, std, a.shape)
    return a


def xavier_uniform_(a: np.ndarray, rng: np.random.Generator, gain: float = 1.0) -> np.ndarray:
    """Glorot uniform: U(-b, b) with b = gain * sqrt(6 / (fan_in + fan_out)), in place.

    Keeps the activation variance roughly constant forward and backward through a linear map
    (Glorot & Bengio, 2010).

    Args:
        a: float array with at least 2 dimensions, shape (out, in, ...).
        rng: random generator.
        gain: scale, e.g. 5/3 for tanh.

    Example:
        >>> w = xavier_uniform_(np.empty((30, 20)), np.random.default_rng(0))
        >>> bool(np.abs(w).max() <= np.sqrt(6 / 50))
        True
    """
    fan_in, fan_out = calculate_fan_in_and_fan_out(_check_array(a))
    std = gain * math.sqrt(2.0 / float(fan_in + fan_out))
    bound = math.sqrt(3.0) * std  # U(-b, b) has std b / sqrt(3)
    return uniform_(a, -bound, bound, rng)


def xavier_normal_(a: np.ndarray, rng: np.random.Generator, gain: float = 1.0) -> np.ndarray:
    """Glorot normal: N(0, std^2) with std = gain * sqrt(2 / (fan_in + fan_out)), in place.

    Example:
        >>> xavier_normal_(np.empty((30, 20)), np.random.default_rng(0)).shape
        (30, 20)
    """
    fan_in, fan_out = calculate_fan_in_and_fan_out(_check_array(a))
    std = gain * math.sqrt(2.0 / float(fan_in + fan_out))
    return normal_(a, std, rng)


def orthogonal_(a: np.ndarray, rng: np.random.Generator, gain: float = 1.0) -> np.ndarray:
    """(Semi-)orthogonal matrix times `gain`, in place, as `torch.nn.init.orthogonal_` builds it.

    QR of a Gaussian matrix, with the columns of Q multiplied by the signs of R's diagonal so Q is
    uniformly (Haar) distributed rather than biased by the QR convention. Trailing dimensions are
    flattened; for rows < cols the rows are orthonormal, otherwise the columns.

    Args:
        a: float array with at least 2 dimensions.
        rng: random generator.
        gain: scale of the result.

    Example:
        >>> q = orthogonal_(np.empty((4, 4)), np.random.default_rng(0))
        >>> np.allclose(q.T @ q, np.eye(4))
        True
    """
    _check_array(a)
    if a.ndim < 2:
        raise ValueError(f"a: expected at least 2 dimensions for orthogonal_, got shape {a.shape}")
    if a.size == 0:
        return a
    rows = a.shape[0]
    cols = a.size // rows
    flat = _check_rng(rng).standard_normal((rows, cols))  # float64 QR, then cast: better conditioned
    if rows < cols:
        flat = flat.T
    q, r = np.linalg.qr(flat)  # (max, min), (min, min)
    q *= np.sign(np.diag(r))
    if rows < cols:
        q = q.T
    a[...] = (gain * q).reshape(a.shape)
    return a


def orthogonal_blocks_(a: np.ndarray, num_blocks: int, rng: np.random.Generator, gain: float = 1.0) -> np.ndarray:
    """Make each of `num_blocks` row blocks of `a` (semi-)orthogonal, in place.

    For stacked-gate recurrent weights (G*H, H): each gate's (H, H) matrix acts on the hidden state
    by itself, so each should be orthogonal; an orthogonal (G*H, H) matrix as a whole would give
    every gate block singular values below 1.

    Args:
        a: float array (num_blocks * R, C).
        num_blocks: number of row blocks, e.g. 4 for LSTM, 3 for GRU.
        rng: random generator.
        gain: scale of each block.

    Example:
        >>> w = orthogonal_blocks_(np.empty((12, 3)), 4, np.random.default_rng(0))
        >>> np.allclose(w[3:6].T @ w[3:6], np.eye(3))
        True
    """
    _check_array(a)
    if a.ndim != 2:
        raise ValueError(f"a: expected a 2-D array, got shape {a.shape}")
    if int(num_blocks) != num_blocks or num_blocks < 1 or a.shape[0] % num_blocks:
        raise ValueError(f"num_blocks: expected a positive divisor of a.shape[0]={a.shape[0]}, got {num_blocks}")
    R = a.shape[0] // int(num_blocks)
    for k in range(int(num_blocks)):
        orthogonal_(a[k * R : (k + 1) * R], rng, gain)
    return a


def identity_(a: np.ndarray, gain: float = 1.0) -> np.ndarray:
    """`gain` times the identity, in place: the IRNN recurrent init (Le et al., 2015).

    With ReLU units and zero biases the hidden state is copied unchanged at first, so the net
    starts with long memory and gradients neither vanish nor explode through time.

    Args:
        a: float array (H, H) (any 2-D shape is accepted; ones on the main diagonal, as torch.eye_).
        gain: diagonal value.

    Example:
        >>> identity_(np.empty((2, 2)), 0.5)
        array([[0.5, 0. ],
               [0. , 0.5]])
    """
    _check_array(a)
    if a.ndim != 2:
        raise ValueError(f"a: expected a 2-D array, got shape {a.shape}")
    a.fill(0)
    np.fill_diagonal(a, gain)
    return a


def lstm_forget_bias_(bias: np.ndarray, hidden_size: int, value: float = 1.0) -> np.ndarray:
    """Set the forget-gate slice `[H:2H]` of an LSTM bias (PyTorch order i, f, g, o), in place.

    A positive forget bias keeps the cell state by default early in training, so gradients can
    flow over long spans (Gers et al., 2000; Jozefowicz et al., 2015).

    Args:
        bias: float array (4H,).
        hidden_size: H.
        value: forget-gate bias.

    Example:
        >>> lstm_forget_bias_(np.zeros(8), 2)
        array([0., 0., 1., 1., 0., 0., 0., 0.])
    """
    _check_array(bias)
    if int(hidden_size) != hidden_size or hidden_size < 1:
        raise ValueError(f"hidden_size: expected a positive integer, got {hidden_size}")
    H = int(hidden_size)
    if bias.shape != (4 * H,):
        raise ValueError(f"bias: expected shape ({4 * H},) for hidden_size {H}, got {bias.shape}")
    bias[H : 2 * H] = value
    return bias


def init_recurrent_(
    module: Module,
    scheme: str,
    rng: np.random.Generator,
    *,
    gain: float = 1.0,
    std: float = 0.01,
    forget_bias: float | None = None,
) -> Module:
    """Initialise every parameter of a recurrent module by a named scheme, in place.

    Parameter names must follow PyTorch (`weight_ih_l{k}`, `weight_hh_l{k}`, `bias_ih_l{k}`,
    `bias_hh_l{k}`, optionally with `_reverse` and a dotted prefix); the number of gate blocks G
    is `weight_hh.shape[0] // weight_hh.shape[1]` (1 RNN, 3 GRU, 4 LSTM).

    Schemes:
        'pytorch': every parameter U(-1/sqrt(H), 1/sqrt(H)), exactly PyTorch's default.
        'normal': weight_hh ~ N(0, std^2).
        'xavier': weight_hh Glorot-uniform per gate block, times `gain`.
        'orthogonal': each (H, H) gate block of weight_hh orthogonal, times `gain`.
        'identity': weight_hh = gain * I (IRNN; vanilla RNN only, G must be 1).
    For every scheme but 'pytorch', weight_ih is Glorot-uniform per gate block (gain 1: `gain`
    is for the recurrent matrix) and biases are zero.

    If `forget_bias` is given and the module is an LSTM (G = 4), the forget-gate slice of each
    layer's `bias_ih` is set to it and that of `bias_hh` to 0, so the effective forget bias
    (their sum) is exactly `forget_bias`. For other cells it is ignored.

    Args:
        module: a recurrent Module with PyTorch parameter names.
        scheme: one of 'pytorch', 'normal', 'xavier', 'orthogonal', 'identity'.
        rng: random generator.
        gain: scale for the 'xavier', 'orthogonal' and 'identity' recurrent weights.
        std: standard deviation for 'normal'.
        forget_bias: optional LSTM forget-gate bias.

    Returns:
        The module, for chaining.

    Example:
        >>> from rnnlab.scratch import LSTM
        >>> lstm = init_recurrent_(LSTM(3, 4), "orthogonal", np.random.default_rng(0), forget_bias=1.0)
        >>> lstm.params["bias_ih_l0"][4:8]
        array([1., 1., 1., 1.], dtype=float32)
    """
    if scheme not in SCHEMES:
        raise ValueError(f"scheme: expected one of {list(SCHEMES)}, got {scheme!r}")
    _check_rng(rng)
    named = [(n, p) for n, p, _ in module.named_parameters()]
    parsed: list[tuple[str, np.ndarray, str, str, str]] = []
    for name, p in named:
        match = _RECURRENT_NAME.search(name)
        if match is None:
            raise ValueError(
                f"module: parameter {name!r} does not follow PyTorch's recurrent names "
                "(weight_ih_l{k}, weight_hh_l{k}, bias_ih_l{k}, bias_hh_l{k}[_reverse])"
            )
        kind, which, layer = match.groups()
        parsed.append((name, p, kind, which, name[: match.start(1)] + layer))
    if not parsed:
        raise ValueError("module: has no parameters to initialise")

    # Gate count and hidden size per layer come from weight_hh, the one (G*H, H) matrix.
    layout: dict[str, tuple[int, int]] = {}
    for name, p, kind, which, layer in parsed:
        if kind == "weight" and which == "hh":
            if p.ndim != 2 or p.shape[1] == 0 or p.shape[0] % p.shape[1]:
                raise ValueError(f"module: expected {name} of shape (G*H, H), got {p.shape}")
            layout[layer] = (p.shape[0] // p.shape[1], p.shape[1])
    if scheme == "identity":
        for layer, (G, _) in layout.items():
            if G != 1:
                raise ValueError(
                    f"scheme: 'identity' (IRNN) needs a vanilla RNN with one gate block, "
                    f"got {G} blocks in weight_hh of layer {layer!r}"
                )

    # bias_ih carries the forget bias where it exists, so b_ih + b_hh equals it exactly.
    carrier = {layer: "hh" for *_, layer in parsed}
    for _, _, kind, which, layer in parsed:
        if kind == "bias" and which == "ih":
            carrier[layer] = "ih"
    for name, p, kind, which, layer in parsed:
        if layer not in layout:
            raise ValueError(f"module: parameter {name!r} has no matching weight_hh for its layer")
        G, H = layout[layer]
        if scheme == "pytorch":
            pytorch_default_(p, H, rng)
        elif kind == "bias":
            zeros_(p)
        elif which == "ih":
            for k in range(G):
                xavier_uniform_(p[k * H : (k + 1) * H], rng)
        elif scheme == "normal":
            normal_(p, std, rng)
        elif scheme == "xavier":
            for k in range(G):
                xavier_uniform_(p[k * H : (k + 1) * H], rng, gain)
        elif scheme == "orthogonal":
            orthogonal_blocks_(p, G, rng, gain)
        else:
            identity_(p, gain)

        if kind == "bias" and forget_bias is not None and G == 4:
            lstm_forget_bias_(p, H, forget_bias if which == carrier[layer] else 0.0)
    return module
