"""Text generation from trained language models."""

from .sample import PrimeError, sample_lm, sample_next

__all__ = ["PrimeError", "sample_lm", "sample_next"]
