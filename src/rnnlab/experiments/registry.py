"""The experiment registry: name -> function, filled by the `@experiment` decorator of each module."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import uuid
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


OUTPUTS_FILE = ".rnnlab-outputs.json"  # what the last finished run put into the folder


@contextlib.contextmanager
def staged_output(out: Path) -> Iterator[Path]:
    """Yield a hidden staging folder inside `out` for an experiment to fill; only a finished run's
    files reach `out`.

    On success the files of the earlier run of `out` (listed in its `.rnnlab-outputs.json`) are
    replaced by the new ones; any other file in `out` is left alone. On an error or Ctrl-C the
    staging folder is deleted and `out` holds what it held before: the earlier results, or nothing
    (a folder this call created is removed). So a figure and its summary always come from one run.

    Raises:
        ValueError: `out` is a file, or cannot be created (naming it).

    Example:
        >>> with staged_output(Path("runs/exp/demo")) as stage:      # doctest: +SKIP
        ...     (stage / "figure.png").write_bytes(png)
    """
    with output_folder(out):
        stage = out / f".partial-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        stage.mkdir()
        try:
            yield stage
        except BaseException:
            shutil.rmtree(stage, ignore_errors=True)
            raise
    new = sorted(p.name for p in stage.iterdir())
    try:
        earlier = json.loads((out / OUTPUTS_FILE).read_text(encoding="utf-8"))["files"]
        earlier = [n for n in earlier if isinstance(n, str) and n and "/" not in n and n not in (".", "..")]
    except (OSError, ValueError, KeyError, TypeError):
        earlier = []
    old = out / f".replaced-{stage.name}"
    old.mkdir()
    for name in sorted({*earlier, *new}):
        if (out / name).exists() or (out / name).is_symlink():
            os.replace(out / name, old / name)
    for name in new:
        os.replace(stage / name, out / name)
    partial = out / f".{OUTPUTS_FILE}.partial"
    partial.write_text(json.dumps({"files": new}) + "\n", encoding="utf-8")
    os.replace(partial, out / OUTPUTS_FILE)
    stage.rmdir()
    shutil.rmtree(old, ignore_errors=True)


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
    with staged_output(Path(out_dir)) as stage:
        summary = EXPERIMENTS[name](stage, seed=seed, quick=quick, data=data)
    return summary
