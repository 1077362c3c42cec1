"""Feed-forward layers around the recurrent core: token embedding, linear read-out, dropout.

Each layer caches what its backward needs from the last forward (one forward, one backward, like
an autograd tape of length one) and accumulates parameter gradients into `self.grads`, so several
backward calls before `zero_grad()` add up exactly as `.grad` does in PyTorch. Parameter names,
shapes and initial distributions follow `torch.nn`, so a PyTorch state dict loads unchanged.
"""

from __future__ import annotations

import math

import numpy as np

from rnnlab.scratch.module import Module, as_numeric_array, as_real, check_dtype, check_positive_int, check_seed

# Below this vocabulary size a one-hot matmul is the fastest scatter-add for Embedding.backward
# (BLAS beats index bookkeeping); above it the one-hot matrix grows too large and sorting wins.
ONE_HOT_MAX_VOCAB = 256


def _check_float_input(name: str, x: object, dtype: np.dtype) -> np.ndarray:
    arr = as_numeric_array(name, x)
    # Cast once so the whole layer computes in its own precision, as a PyTorch module would.
    return arr.astype(dtype, copy=False)


def check_indices(indices: object, num_embeddings: int) -> np.ndarray:
    """`indices` as an integer array with values in [0, num_embeddings), else TypeError/ValueError.

    What `Embedding.forward` checks; `LanguageModel` checks the same when it folds the lookup into its
    first recurrent layer and never calls the embedding.

    Args:
        indices: token ids, any shape.
        num_embeddings: the vocabulary size V.

    Example:
        >>> check_indices([[1, 2]], 3).shape
        (1, 2)
    """
    idx = np.asarray(indices)
    if idx.dtype == np.bool_ or not np.issubdtype(idx.dtype, np.integer):
        raise TypeError(f"indices: expected an integer array, got dtype {idx.dtype}")
    if idx.size:
        lo, hi = idx.min(), idx.max()
        if lo < 0 or hi >= num_embeddings:
            bad = lo if lo < 0 else hi
            raise ValueError(f"indices: expected values in [0, {num_embeddings - 1}], got {int(bad)}")
    return idx


class Embedding(Module):
    """Lookup table mapping token ids to vectors, like `torch.nn.Embedding`.

    Args:
        num_embeddings: vocabulary size V.
        embedding_dim: vector size D.
        dtype: float32 (default) or float64.
        seed: seed for the N(0, 1) initialisation (PyTorch's default for embeddings).

    Shapes:
        forward: indices (...) integers in [0, V) -> (...) + (D,)
        backward: dout (...) + (D,) -> None (the input is discrete; only `weight` gets a gradient)

    Example:
        >>> emb = Embedding(10, 4, seed=0)
        >>> emb(np.array([[1, 2, 2]])).shape
        (1, 3, 4)
    """

    def __init__(
        self,
        num_embeddings: int,
        embedding_dim: int,
        *,
        dtype: object = np.float32,
        seed: int | None = None,
    ) -> None:
        super().__init__()
        self.num_embeddings = check_positive_int("num_embeddings", num_embeddings)
        self.embedding_dim = check_positive_int("embedding_dim", embedding_dim)
        self.dtype = check_dtype(dtype)
        rng = np.random.default_rng(check_seed(seed))
        weight = rng.standard_normal((self.num_embeddings, self.embedding_dim)).astype(self.dtype)
        self.register_parameter("weight", weight)
        self._indices: np.ndarray | None = None

    def forward(self, indices: object) -> np.ndarray:
        """Return `weight[indices]`, shape `indices.shape + (D,)`."""
        idx = check_indices(indices, self.num_embeddings)
        self._indices = idx.copy()  # the caller may reuse its array before backward
        return self.params["weight"][idx]  # (..., D)

    __call__ = forward

    def backward(self, dout: np.ndarray) -> None:
        """Accumulate d loss / d weight from `dout` (shape `indices.shape + (D,)`); returns None."""
        if self._indices is None:
            raise RuntimeError("Embedding.backward called before forward")
        idx = self._indices
        dout = as_numeric_array("dout", dout)
        expected = (*idx.shape, self.embedding_dim)
        if dout.shape != expected:
            raise ValueError(f"dout: expected shape {expected}, got {dout.shape}")
        V, D = self.num_embeddings, self.embedding_dim
        flat_idx = idx.reshape(-1)  # (N,)
        d = dout.reshape(-1, D).astype(self.dtype, copy=False)  # (N, D)
        dW = self.grads["weight"]  # (V, D)
        if flat_idx.size == 0:
            return None
        # Repeated ids must add up, so plain fancy-index assignment is wrong (last write wins).
        if V <= ONE_HOT_MAX_VOCAB:
            one_hot = np.zeros((flat_idx.size, V), dtype=self.dtype)  # (N, V)
            one_hot[np.arange(flat_idx.size), flat_idx] = 1
            dW += one_hot.T @ d
        else:
            order = np.argsort(flat_idx, kind="stable")
            sorted_idx = flat_idx[order]
            starts = np.flatnonzero(np.r_[True, sorted_idx[1:] != sorted_idx[:-1]])
            dW[sorted_idx[starts]] += np.add.reduceat(d[order], starts, axis=0)
        return None


class Linear(Module):
    """Affine map `y = x @ weight.T + bias`, like `torch.nn.Linear`.

    Args:
        in_features: input size I.
        out_features: output size O.
        bias: whether to learn an additive bias.
        dtype: float32 (default) or float64; inputs are cast to it.
        seed: seed for PyTorch's default init, U(-1/sqrt(I), 1/sqrt(I)) for weight and bias.

    Shapes:
        forward: x (..., I) -> (..., O)
        backward: dout (..., O) -> dx (..., I)

    Example:
        >>> lin = Linear(8, 3, seed=0)
        >>> y = lin(np.ones((2, 5, 8), dtype=np.float32))
        >>> y.shape, lin.backward(np.ones_like(y)).shape
        ((2, 5, 3), (2, 5, 8))
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        *,
        dtype: object = np.float32,
        seed: int | None = None,
    ) -> None:
        super().__init__()
        self.in_features = check_positive_int("in_features", in_features)
        self.out_features = check_positive_int("out_features", out_features)
        self.dtype = check_dtype(dtype)
        rng = np.random.default_rng(check_seed(seed))
        # kaiming_uniform_(a=sqrt(5)) in torch reduces to this bound; the bias uses the same one.
        bound = 1.0 / math.sqrt(self.in_features)
        W = rng.uniform(-bound, bound, (self.out_features, self.in_features)).astype(self.dtype)
        self.register_parameter("weight", W)
        self.use_bias = bool(bias)
        if self.use_bias:
            b = rng.uniform(-bound, bound, self.out_features).astype(self.dtype)
            self.register_parameter("bias", b)
        self._x2: np.ndarray | None = None
        self._lead_shape: tuple[int, ...] = ()

    def forward(self, x: object) -> np.ndarray:
        """Return `x @ weight.T + bias`, shape `x.shape[:-1] + (O,)`."""
        x = _check_float_input("x", x, self.dtype)
        if x.ndim == 0 or x.shape[-1] != self.in_features:
            got = x.shape[-1] if x.ndim else "a scalar"
            raise ValueError(f"x: expected last dimension {self.in_features}, got {got}")
        self._lead_shape = x.shape[:-1]
        x2 = x.reshape(-1, self.in_features)  # (N, I): one matmul for any number of leading dims
        self._x2 = x2
        y = x2 @ self.params["weight"].T  # (N, O)
        if self.use_bias:
            y += self.params["bias"]
        return y.reshape(*self._lead_shape, self.out_features)

    __call__ = forward

    def backward(self, dout: np.ndarray) -> np.ndarray:
        """Accumulate weight/bias gradients and return dx, shape `x.shape`."""
        if self._x2 is None:
            raise RuntimeError("Linear.backward called before forward")
        dout = as_numeric_array("dout", dout)
        expected = (*self._lead_shape, self.out_features)
        if dout.shape != expected:
            raise ValueError(f"dout: expected shape {expected}, got {dout.shape}")
        dy = dout.reshape(-1, self.out_features).astype(self.dtype, copy=False)  # (N, O)
        self.grads["weight"] += dy.T @ self._x2  # (O, I)
        if self.use_bias:
            self.grads["bias"] += dy.sum(axis=0)  # (O,)
        dx = dy @ self.params["weight"]  # (N, I)
        return dx.reshape(*self._lead_shape, self.in_features)


class Dropout(Module):
    """Inverted dropout, like `torch.nn.Dropout`: zero each element with probability p in training.

    Survivors are scaled by 1/(1-p) so the expected activation is unchanged and evaluation is a
    plain identity. The caller passes the random generator, so runs are reproducible without
    hidden global state.

    Args:
        p: drop probability in [0, 1].

    Shapes:
        forward: x (any) -> same shape
        backward: dout (same shape) -> dx (same shape)

    Example:
        >>> drop = Dropout(0.5)
        >>> y = drop(np.ones((2, 4), dtype=np.float32), np.random.default_rng(0))
        >>> sorted(set(y.ravel().tolist())) in ([0.0, 2.0], [0.0], [2.0])
        True
    """

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        value = as_real("p", p, "a probability in [0, 1]")
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"p: expected a probability in [0, 1], got {p!r}")
        self.p = value
        self._mask: np.ndarray | None = None
        self._shape: tuple[int, ...] | None = None

    def forward(self, x: object, rng: np.random.Generator | None = None) -> np.ndarray:
        """Apply dropout with randomness from `rng` (needed only in training mode with p > 0)."""
        x = as_numeric_array("x", x)
        self._shape = x.shape
        if not self.training or self.p == 0.0:
            self._mask = None
            return x
        if not isinstance(rng, np.random.Generator):
            raise TypeError(f"rng: expected a numpy.random.Generator in training mode, got {type(rng).__name__}")
        dtype = x.dtype if np.issubdtype(x.dtype, np.floating) else np.dtype(np.float64)
        if self.p == 1.0:
            mask = np.zeros(x.shape, dtype=dtype)  # torch returns zeros rather than 0 * inf
        else:
            keep = rng.random(x.shape) >= self.p
            mask = keep.astype(dtype) / dtype.type(1.0 - self.p)
        self._mask = mask
        return x * mask

    __call__ = forward

    def backward(self, dout: np.ndarray) -> np.ndarray:
        """Return `dout` times the mask from the last forward (identity in eval mode)."""
        if self._shape is None:
            raise RuntimeError("Dropout.backward called before forward")
        dout = as_numeric_array("dout", dout)
        if dout.shape != self._shape:
            raise ValueError(f"dout: expected shape {self._shape}, got {dout.shape}")
        if self._mask is None:
            return dout
        return dout * self._mask
