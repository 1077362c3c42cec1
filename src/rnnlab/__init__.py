"""rnnlab: recurrent neural networks from first principles to fast training."""

__version__ = "0.1.0"
