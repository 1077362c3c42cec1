"""A progress bar for steps or seconds: tqdm when installed, a plain status line every few seconds otherwise."""

from __future__ import annotations

import sys
import time


class Progress:
    """Progress of a run bounded by steps and/or seconds, on stderr.

    Args:
        total_steps: the step budget, or None.
        total_seconds: the time budget, or None. When both are given the bar follows whichever is
            further along.
        enabled: False makes every call a no-op (tests, `--quiet`).

    Example:
        >>> with Progress(total_steps=10, total_seconds=None, enabled=False) as bar:
        ...     bar.update(step=1, elapsed=0.1, loss=2.5)
    """

    def __init__(self, total_steps: int | None, total_seconds: float | None, enabled: bool = True) -> None:
        self.total_steps, self.total_seconds, self.enabled = total_steps, total_seconds, enabled
        self._bar = None
        self._last_print = 0.0

    def __enter__(self) -> Progress:
        if self.enabled:
            try:
                from tqdm import tqdm
            except ImportError:  # tqdm is optional: fall back to a line every 5 s
                tqdm = None
            if tqdm is not None:
                # disable=None: no bar when stderr is not a terminal (logs, CI); evaluation lines still print
                self._bar = tqdm(
                    total=1000,
                    file=sys.stderr,
                    dynamic_ncols=True,
                    mininterval=0.5,
                    disable=None,
                    bar_format="{percentage:3.0f}%|{bar}| {desc}",  # tqdm puts ", " before {postfix}
                )
        return self

    def _fraction(self, step: int, elapsed: float) -> float:
        parts = []
        if self.total_steps:
            parts.append(step / self.total_steps)
        if self.total_seconds:
            parts.append(elapsed / self.total_seconds)
        return min(max(parts, default=0.0), 1.0)

    def update(self, step: int, elapsed: float, loss: float) -> None:
        if not self.enabled:
            return
        postfix = f"step {step}, {elapsed:.0f}s, loss {loss:.3f}"
        if self._bar is not None:
            self._bar.set_description_str(postfix, refresh=False)
            self._bar.update(int(1000 * self._fraction(step, elapsed)) - self._bar.n)  # tqdm rate-limits redraws
        elif time.monotonic() - self._last_print > 5:
            self._last_print = time.monotonic()
            print(f"{100 * self._fraction(step, elapsed):5.1f}%  {postfix}", file=sys.stderr, flush=True)

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.close()
