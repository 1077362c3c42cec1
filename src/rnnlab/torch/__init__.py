"""rnnlab.torch: the models of `rnnlab.scratch` on PyTorch's fused recurrent kernels.

Same config dataclasses, same parameter names, same initial weights for the same seed; weights
move both ways between the engines with `rnnlab.torch.convert`. Importing this package needs
PyTorch (`pip install 'rnnlab[torch]'`); `rnnlab.scratch` does not.
"""

from .bridge import NumpyBridge
from .convert import (
    load_weights,
    numpy_model_to_torch,
    to_numpy_state_dict,
    to_torch_state_dict,
    torch_model_to_numpy,
)
from .models import LanguageModel, init_rnn_, make_rnn

__all__ = [
    "LanguageModel",
    "NumpyBridge",
    "init_rnn_",
    "load_weights",
    "make_rnn",
    "numpy_model_to_torch",
    "to_numpy_state_dict",
    "to_torch_state_dict",
    "torch_model_to_numpy",
]
