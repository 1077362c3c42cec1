"""Weights both ways between the engines: one state dict, two array types.

Both engines use PyTorch's parameter names and layouts (`rnn.weight_ih_l0` with gate rows
`[i, f, g, o]` for LSTM and `[r, z, n]` for GRU), so converting is a change of array type, never a
reshuffle. A model trained on one engine therefore computes the same logits on the other (to
rounding) and, with the same seed, samples the same text.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch

from ..scratch.models import LanguageModel as NumpyLanguageModel
from .models import LanguageModel


def to_torch_state_dict(
    numpy_sd: Mapping[str, np.ndarray], dtype: torch.dtype | None = None
) -> dict[str, torch.Tensor]:
    """NumPy arrays -> CPU tensors under the same names (copies; the arrays are not shared).

    Args:
        numpy_sd: name -> array, e.g. `numpy_model.state_dict()` or `load_safetensors(...)`.
        dtype: cast floating tensors to this dtype (None: keep each array's own).

    Example:
        >>> to_torch_state_dict({"head.bias": np.zeros(3, np.float32)})["head.bias"].dtype
        torch.float32
    """
    if not isinstance(numpy_sd, Mapping):
        raise TypeError(f"numpy_sd: expected a dict of arrays, got {type(numpy_sd).__name__}")
    out: dict[str, torch.Tensor] = {}
    for name, value in numpy_sd.items():
        t = torch.from_numpy(np.array(value, copy=True, order="C"))
        if dtype is not None and t.is_floating_point():
            t = t.to(dtype)
        out[name] = t
    return out


def to_numpy_state_dict(
    torch_sd: Mapping[str, torch.Tensor], dtype: np.dtype | type | None = None
) -> dict[str, np.ndarray]:
    """Tensors (any device, bf16 included) -> NumPy arrays under the same names.

    Args:
        torch_sd: name -> tensor, e.g. `model.state_dict()`.
        dtype: cast floating arrays to this dtype (None: keep float32/float64; bf16 and fp16
            become float32, which NumPy can compute in).

    Example:
        >>> to_numpy_state_dict({"w": torch.ones(2, dtype=torch.bfloat16)})["w"].dtype
        dtype('float32')
    """
    if not isinstance(torch_sd, Mapping):
        raise TypeError(f"torch_sd: expected a dict of tensors, got {type(torch_sd).__name__}")
    out: dict[str, np.ndarray] = {}
    for name, t in torch_sd.items():
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"torch_sd[{name!r}]: expected a tensor, got {type(t).__name__}")
        t = t.detach().cpu()
        if t.dtype in (torch.bfloat16, torch.float16):
            t = t.float()
        arr = t.numpy().copy()
        if dtype is not None and np.issubdtype(arr.dtype, np.floating):
            arr = arr.astype(dtype)
        out[name] = arr
    return out


def numpy_model_to_torch(model: NumpyLanguageModel, *, dtype: torch.dtype | None = None) -> LanguageModel:
    """A torch `LanguageModel` holding the weights of a NumPy one (same config, eval mode if the source is).

    Args:
        model: a `rnnlab.scratch.models.LanguageModel`.
        dtype: torch.float32 or torch.float64 (None: the NumPy model's precision).

    Example:
        >>> np_lm = NumpyLanguageModel(ModelConfig(vocab_size=5, hidden_size=4), seed=0)   # doctest: +SKIP
        >>> torch_lm = numpy_model_to_torch(np_lm)                                         # doctest: +SKIP
    """
    if not isinstance(model, NumpyLanguageModel):
        raise TypeError(f"model: expected a rnnlab.scratch.models.LanguageModel, got {type(model).__name__}")
    if dtype is None:
        dtype = torch.float64 if model.dtype == np.float64 else torch.float32
    out = LanguageModel(model.config, seed=0, dtype=dtype)
    load_weights(out, model.state_dict())
    out.train(model.training)
    return out


def torch_model_to_numpy(model: LanguageModel, *, dtype: np.dtype | type | None = None) -> NumpyLanguageModel:
    """A NumPy `LanguageModel` holding the weights of a torch one (a tied read-out stays tied).

    Args:
        model: a `rnnlab.torch.models.LanguageModel` (any device or dtype).
        dtype: np.float32 or np.float64 (None: float64 for a float64 model, else float32).

    Example:
        >>> np_lm = torch_model_to_numpy(LanguageModel(ModelConfig(vocab_size=5, hidden_size=4)))  # doctest: +SKIP
    """
    if not isinstance(model, LanguageModel):
        raise TypeError(f"model: expected a rnnlab.torch.models.LanguageModel, got {type(model).__name__}")
    if dtype is None:
        dtype = np.float64 if model.head.bias.dtype == torch.float64 else np.float32
    out = NumpyLanguageModel(model.config, dtype=dtype, seed=0)
    out.load_state_dict(to_numpy_state_dict(model.state_dict()))
    out.train(model.training)
    return out


@torch.no_grad()
def load_weights(model: torch.nn.Module, weights: Mapping[str, np.ndarray | torch.Tensor]) -> None:
    """Copy a state dict of arrays or tensors into a torch model, checking names and shapes.

    Works for any `nn.Module`. For a `LanguageModel` with tied weights the two copies of the shared
    matrix (`embedding.weight`, `head.weight`) must be equal: weights of an untied model cannot
    silently lose half of themselves.

    Raises:
        ValueError: names or shapes do not match (the message lists which), or tied weights differ.

    Example:
        >>> load_weights(lm, load_safetensors("run/model.safetensors"))   # doctest: +SKIP
    """
    own = dict(model.state_dict(keep_vars=True))
    missing = sorted(set(own) - set(weights))
    unexpected = sorted(set(weights) - set(own))
    if missing or unexpected:
        raise ValueError(
            f"weights: names do not match the model; missing {missing or 'none'}, unexpected {unexpected or 'none'}"
        )
    tensors = {k: v if isinstance(v, torch.Tensor) else torch.from_numpy(np.asarray(v)) for k, v in weights.items()}
    for name, t in tensors.items():
        if tuple(t.shape) != tuple(own[name].shape):
            raise ValueError(f"weights[{name!r}]: expected shape {tuple(own[name].shape)}, got {tuple(t.shape)}")
    tied = bool(getattr(getattr(model, "config", None), "tie_weights", False))
    if tied and not torch.equal(tensors["embedding.weight"], tensors["head.weight"]):
        raise ValueError(
            "weights: the model ties embedding.weight and head.weight, but the given values differ "
            "(weights of an untied model?)"
        )
    for name, t in tensors.items():
        own[name].copy_(t.to(own[name].dtype))
