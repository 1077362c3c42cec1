"""The learning-rate schedule of both trainers: warm-up, then constant, cosine or plateau.

Torch-free, so that the NumPy engine's loop (`training.lm.train_lm`) and the torch `Trainer` share
one definition, and a run's rate is the same function of its step on either engine.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from ..config import TrainConfig


class Schedule:
    """Warm-up, then constant, cosine or plateau; `lr(step, elapsed)` for the step about to be taken.

    'cosine' decays from `lr` to `lr * lr_min_ratio` over `max_steps`, or over `max_time` seconds
    of training when only time bounds the run. 'plateau' multiplies the rate by `plateau_factor`
    whenever `plateau_patience` evaluations in a row fail to beat the best validation loss, like
    `torch.optim.lr_scheduler.ReduceLROnPlateau`, but never below `lr * lr_min_ratio`.

    Example:
        >>> s = Schedule(TrainConfig(max_steps=100, lr=1.0, warmup_steps=10, lr_min_ratio=0.0))
        >>> s.lr(0, 0.0), s.lr(10, 0.0), round(s.lr(55, 0.0), 3)
        (0.1, 1.0, 0.5)
    """

    def __init__(self, config: TrainConfig) -> None:
        self.config = config
        self.scale = 1.0  # the plateau factor applied so far
        self.best = math.inf
        self.bad_evals = 0

    def lr(self, step: int, elapsed: float) -> float:
        c = self.config
        if c.warmup_steps and step < c.warmup_steps:
            return c.lr * (step + 1) / c.warmup_steps
        if c.lr_schedule == "constant":
            return c.lr
        if c.lr_schedule == "plateau":
            return c.lr * self.scale
        after = step - c.warmup_steps
        if c.max_steps is not None:
            progress = after / max(c.max_steps - c.warmup_steps, 1)
        else:
            assert c.max_time is not None
            progress = elapsed / c.max_time
        progress = min(max(progress, 0.0), 1.0)
        low = c.lr * c.lr_min_ratio
        return low + (c.lr - low) * 0.5 * (1.0 + math.cos(math.pi * progress))

    def observe(self, val_loss: float) -> None:
        """Feed an evaluation's validation loss (matters for 'plateau' only)."""
        if val_loss < self.best:
            self.best, self.bad_evals = val_loss, 0
            return
        self.bad_evals += 1
        if self.config.lr_schedule == "plateau" and self.bad_evals >= self.config.plateau_patience:
            self.scale = max(self.scale * self.config.plateau_factor, self.config.lr_min_ratio)
            self.bad_evals = 0

    def state_dict(self) -> dict[str, float]:
        return {"scale": self.scale, "best": self.best, "bad_evals": self.bad_evals}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.scale, self.best, self.bad_evals = float(state["scale"]), float(state["best"]), int(state["bad_evals"])
