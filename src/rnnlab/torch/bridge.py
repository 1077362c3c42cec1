"""Driving a torch model through the NumPy-facing interface of `rnnlab.generation`.

The sampler in `rnnlab.generation.sample` is written once, against `forward(idx, state)` with
NumPy ids in and NumPy logits out. `NumpyBridge` gives a torch `LanguageModel` that interface, so
both engines draw from one implementation and, with the same seed, the same random numbers.
"""

from __future__ import annotations

import numpy as np
import torch

from .models import LanguageModel, State


class NumpyBridge:
    """Wraps a torch `LanguageModel` so that `forward` takes and returns NumPy arrays.

    The recurrent state stays a torch tensor on the model's device between calls (it is only
    passed back in), so generation costs no copies beyond the logits of each step.

    Args:
        model: the torch model (any device); it is put in eval mode.

    Example:
        >>> from rnnlab.config import ModelConfig
        >>> bridge = NumpyBridge(LanguageModel(ModelConfig(vocab_size=5, hidden_size=4)))
        >>> logits, state = bridge.forward(np.zeros((2, 3), dtype=np.int64))
        >>> logits.shape
        (2, 3, 5)
    """

    def __init__(self, model: LanguageModel) -> None:
        if not isinstance(model, LanguageModel):
            raise TypeError(
                f"model: expected a torch rnnlab.torch.LanguageModel (a NumPy one needs no bridge), got {type(model).__name__}"
            )
        self.model = model
        self.config = model.config
        self.device = model.head.bias.device
        model.eval()

    @torch.no_grad()
    def forward(self, idx: np.ndarray, state: State | None = None) -> tuple[np.ndarray, State]:
        """idx (B, T) integer ids -> (logits (B, T, V) as float NumPy, state as torch tensors).

        float32 and float64 logits keep their dtype (a float64 model stays exact); half and
        bfloat16 ones, which NumPy cannot hold, come back as float32.
        """
        ids = np.asarray(idx)
        if ids.dtype.kind not in "iu":  # float ids would be truncated without a word
            raise TypeError(f"idx: expected integer token ids, got dtype {ids.dtype}")
        V = self.config.vocab_size
        if ids.size and (ids.min() < 0 or ids.max() >= V):
            raise ValueError(f"idx: expected token ids in [0, {V}), got values from {ids.min()} to {ids.max()}")
        x = torch.from_numpy(np.ascontiguousarray(ids, dtype=np.int64)).to(self.device)
        logits, state = self.model(x, state)
        if logits.dtype not in (torch.float32, torch.float64):
            logits = logits.float()
        return logits.cpu().numpy(), state

    __call__ = forward

    def eval(self) -> NumpyBridge:
        self.model.eval()
        return self
