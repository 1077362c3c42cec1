"""rnnlab.scratch: recurrent networks written out by hand in NumPy, numerically equal to PyTorch.

Imports NumPy and nothing else.
"""

from .module import Module
from .recurrent import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNBase, RNNCell

__all__ = ["GRU", "LSTM", "RNN", "GRUCell", "LSTMCell", "Module", "RNNBase", "RNNCell"]
