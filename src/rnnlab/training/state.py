"""Training state as tensors + JSON: optimiser, random generators. Never pickle.

`torch.save` would pickle, and loading a pickle can run code; a checkpoint here is only ever
parsed. Everything that is an array goes into `train_state.safetensors` (through
`checkpoint.save_checkpoint`), everything else into `train_state.json`. Each `*_state` function
returns `(tensors, json)`, each `load_*` takes them back; tensor names are prefixed so several
kinds of state share one file.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from .checkpoint import CheckpointError

Tensors = dict[str, np.ndarray]


def _to_numpy(t: torch.Tensor) -> np.ndarray:
    t = t.detach().cpu()
    if t.dtype in (torch.bfloat16, torch.float16):
        t = t.float()
    return t.numpy().copy()


def _json_value(v: Any) -> Any:
    """Optimiser hyper-parameters as JSON: tuples become lists (torch accepts lists back)."""
    if isinstance(v, (tuple, list)):
        return [_json_value(x) for x in v]
    if isinstance(v, torch.Tensor):  # e.g. a tensor lr (capturable optimisers)
        return v.item()
    return v


# ---------------------------------------------------------------------------------------------
# optimiser


def optimizer_state(opt: torch.optim.Optimizer, prefix: str = "optim") -> tuple[Tensors, dict[str, Any]]:
    """Split `opt.state_dict()` into tensors (moments, step counts) and JSON (param groups).

    Returns:
        tensors: `{prefix}.{param_index}.{key}` -> array for every tensor in the per-parameter state.
        meta: {"param_groups": [...], "state": {param_index: {key: "tensor:<dtype>" | plain value}}}.

    Example:
        >>> tensors, meta = optimizer_state(torch.optim.AdamW(model.parameters()))   # doctest: +SKIP
    """
    sd = opt.state_dict()
    tensors: Tensors = {}
    state_meta: dict[str, dict[str, Any]] = {}
    for pid, entries in sd["state"].items():
        meta: dict[str, Any] = {}
        for key, value in entries.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{prefix}.{pid}.{key}"] = _to_numpy(value)
                meta[key] = f"tensor:{str(value.dtype).removeprefix('torch.')}"
            else:
                meta[key] = _json_value(value)
        state_meta[str(pid)] = meta
    groups = [{k: _json_value(v) for k, v in g.items()} for g in sd["param_groups"]]
    return tensors, {"param_groups": groups, "state": state_meta}


def load_optimizer_state(
    opt: torch.optim.Optimizer, tensors: Mapping[str, np.ndarray], meta: Mapping[str, Any], prefix: str = "optim"
) -> None:
    """Restore what `optimizer_state` saved into `opt` (built over the same parameters, on any device).

    Raises:
        CheckpointError: a tensor named in the JSON is missing, or the state does not fit `opt`.
    """
    if not isinstance(meta, Mapping) or "param_groups" not in meta or "state" not in meta:
        raise CheckpointError("train_state.json: optimizer state is missing or malformed")
    state: dict[int, dict[str, Any]] = {}
    for pid, entries in meta["state"].items():
        restored: dict[str, Any] = {}
        for key, value in entries.items():
            if isinstance(value, str) and value.startswith("tensor:"):
                name = f"{prefix}.{pid}.{key}"
                if name not in tensors:
                    raise CheckpointError(f"train_state.safetensors: missing optimizer tensor {name!r}")
                dtype = getattr(torch, value.removeprefix("tensor:"), None)
                if not isinstance(dtype, torch.dtype):
                    raise CheckpointError(f"train_state.json: unknown dtype {value!r} for {name!r}")
                restored[key] = torch.from_numpy(np.array(tensors[name])).to(dtype)
            else:
                restored[key] = value
        state[int(pid)] = restored
    try:
        opt.load_state_dict({"state": state, "param_groups": list(meta["param_groups"])})
    except (ValueError, KeyError, RuntimeError) as e:
        raise CheckpointError(f"train_state: the saved optimizer state does not fit this model: {e}") from None


# ---------------------------------------------------------------------------------------------
# random generators


def global_rng_state() -> tuple[Tensors, dict[str, Any]]:
    """The process-wide generators that training may touch: Python's `random`, NumPy's legacy global
    generator, and torch's CPU generator (CUDA generators: see `cuda_rng_states`).

    Example:
        >>> tensors, meta = global_rng_state()
        >>> tensors["rng.torch_cpu"].dtype
        dtype('uint8')
    """
    version, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()  # noqa: NPY002 - the legacy global generator is what needs saving
    tensors = {"rng.numpy_mt": np.asarray(keys, dtype=np.uint32), "rng.torch_cpu": _to_numpy(torch.get_rng_state())}
    meta = {
        "python": {"version": version, "state": list(internal), "gauss": gauss},
        "numpy": {"kind": kind, "pos": int(pos), "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
    }
    return tensors, meta


def load_global_rng_state(tensors: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> None:
    """Restore what `global_rng_state` saved.

    Raises:
        CheckpointError: a piece is missing or malformed.
    """
    try:
        py = meta["python"]
        random.setstate((py["version"], tuple(py["state"]), py["gauss"]))
        n = meta["numpy"]
        mt = np.asarray(tensors["rng.numpy_mt"])
        np.random.set_state((n["kind"], mt, n["pos"], n["has_gauss"], n["cached_gaussian"]))  # noqa: NPY002
        torch.set_rng_state(torch.from_numpy(np.array(tensors["rng.torch_cpu"], dtype=np.uint8)))
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"train_state: random generator state is missing or malformed ({e})") from None
