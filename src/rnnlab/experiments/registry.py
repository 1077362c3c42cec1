"""The experiment registry: name -> function, filled by the `@experiment` decorator of each module."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Experiment:
    """One registered experiment.

    Attributes:
        name: CLI name, e.g. 'gradient-flow'.
        title: one-line title for the report.
        run: `run(out_dir: Path, *, seed: int, quick: bool, data: str | None) -> dict` writes the
            figure, data, summary.txt and summary.json into out_dir and returns the summary dict.
        needs_text: True if it trains a character model on a text corpus (`--data`).
    """

    name: str
    title: str
    run: Callable[..., dict]
    needs_text: bool = False

    def __call__(self, out_dir: Path, *, seed: int = 0, quick: bool = False, data: str | None = None) -> dict:
        """Run with one BLAS thread: the experiments multiply small matrices step by step (see
        `common.single_threaded_blas`). The settings that reproduce the run are added to its
        summary.json (and to the summary returned)."""
        from .common import single_threaded_blas

        with single_threaded_blas():
            summary = self.run(out_dir, seed=seed, quick=quick, data=data)
        summary = {**summary, "settings": {"seed": seed, "quick": quick, "data": data}}
        path = Path(out_dir) / "summary.json"
        if path.exists():
            path.write_text(json.dumps(summary, indent=2, default=float) + "\n", encoding="utf-8")
        return summary


EXPERIMENTS: dict[str, Experiment] = {}


def experiment(
    name: str, title: str, *, needs_text: bool = False
) -> Callable[[Callable[..., dict]], Callable[..., dict]]:
    """Register `run` under `name`.

    Example:
        >>> @experiment("demo", "A demo")
        ... def demo(out_dir, *, seed=0, quick=False, data=None):
        ...     return {}
    """

    def register(run: Callable[..., dict]) -> Callable[..., dict]:
        if name in EXPERIMENTS:
            raise ValueError(f"experiment {name!r} registered twice")
        EXPERIMENTS[name] = Experiment(name, title, run, needs_text)
        return run

    return register


@contextlib.contextmanager
def output_folder(out: Path) -> Iterator[None]:
    """Create the folder `out` (and missing parents) for the block; if the block fails, remove the
    folders it created that are still empty, so a failed run leaves nothing behind.

    Raises:
        ValueError: `out` is a file, or cannot be created (naming it).
    """
    if out.exists() and not out.is_dir():
        raise ValueError(f"out: expected a folder, got the file {out}")
    created = [p for p in [out, *out.parents] if not p.exists()]  # the deepest first
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ValueError(f"out: cannot create the folder {out}: {e.strerror or e}") from None
    try:
        yield
    except BaseException:
        for folder in created:
            try:
                folder.rmdir()  # only if empty
            except OSError:
                break
        raise


def run_experiment(
    name: str, out_dir: str | Path, *, seed: int = 0, quick: bool = False, data: str | None = None
) -> dict:
    """Run the experiment called `name` into `out_dir` (created) and return its summary.

    Example:
        >>> run_experiment("gradient-flow", "runs/exp/gradient-flow", seed=0)   # doctest: +SKIP
    """
    from . import load_all

    load_all()
    if name not in EXPERIMENTS:
        raise ValueError(f"experiment: expected one of {', '.join(sorted(EXPERIMENTS))} or 'all', got {name!r}")
    out = Path(out_dir)
    with output_folder(out):
        return EXPERIMENTS[name](out, seed=seed, quick=quick, data=data)
