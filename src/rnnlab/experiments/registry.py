"""The experiment registry: name -> function, filled by the `@experiment` decorator of each module."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from ..training.checkpoint import write_text_atomic


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
        ValueError: `out` is a file, cannot be created or cannot be written into (naming it).
    """
    if out.exists() and not out.is_dir():
        raise ValueError(f"out: expected a folder, got the file {out}")
    created = [p for p in [out, *out.parents] if not p.exists()]  # the deepest first
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ValueError(f"out: cannot create the folder {out}: {e.strerror or e}") from None
    if not os.access(out, os.W_OK | os.X_OK):  # said now, not as the first figure is written
        raise ValueError(f"out: cannot write into the folder {out} (no permission, or a read-only file system)")
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
def staged_output(out: Path, owner: str | None = None) -> Iterator[Path]:
    """Yield a hidden staging folder inside `out` for an experiment to fill; only a finished run's
    files reach `out`.

    A folder that holds another experiment's results is refused (ValueError). On success the files
    of the earlier run of `out` (listed in its `.rnnlab-outputs.json`, or, for a folder written
    before that file existed, a `summary.json` of the experiment `owner`) are replaced by the new ones. Any other file in `out` is left alone; one that a new file
    would replace is moved into `out/earlier-files-<time>/` (with a note on stderr), never deleted. On
    an error or Ctrl-C the staging folder is deleted and `out` holds what it held before: the
    earlier results, or nothing (a folder this call created is removed). So a figure and its
    summary always come from one run. Staging folders of killed runs are removed on the way.

    Raises:
        ValueError: `out` is a file, cannot be created or written, or holds another experiment's
            results (naming it).

    Example:
        >>> with staged_output(Path("runs/exp/demo")) as stage:      # doctest: +SKIP
        ...     (stage / "figure.png").write_bytes(png)
    """
    with output_folder(out):
        _remove_dead_stages(out)
        other = _earlier_experiment(out)
        if owner is not None and other is not None and other != owner:
            # two experiments' figures and summaries in one folder would replace each other's
            raise ValueError(
                f"out: {out} holds the results of the experiment {other}; choose another --out for {owner}"
            )
        stage = out / f".partial-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        stage.mkdir()
        try:
            yield stage
        except BaseException:
            shutil.rmtree(stage, ignore_errors=True)
            raise
    new = sorted(p.name for p in stage.iterdir())
    owned = set(_earlier_outputs(out, owner))
    old = out / f".replaced-{stage.name}"
    old.mkdir()
    # the swap below is a handful of renames; killed in the middle of it, the next run finishes it
    # from this journal (`_finish_dead_swaps`), so the folder never stays half old, half new
    journal = {"files": new, "replaced": sorted(owned), "experiment": owner}
    write_text_atomic(old / SWAP_JOURNAL, json.dumps(journal) + "\n")
    _swap_in(out, stage, old, new, owned, owner)
    stage.rmdir()
    shutil.rmtree(old, ignore_errors=True)


def _present(path: Path) -> bool:
    return path.exists() or path.is_symlink()


def _swap_in(out: Path, stage: Path, old: Path, files: list[str], replaced: set[str], owner: str | None) -> None:
    """Move a finished run's `files` from `stage` into `out` and list them as the outputs of `owner`.

    The earlier run's files (`replaced`) go into `old`; a user's file in the way goes into
    `out/earlier-files-<time>/`. Files already moved are skipped, so a swap killed half-way is
    finished by calling this again with the same arguments (from the journal).
    """
    pending = [n for n in files if _present(stage / n)]  # not moved in yet
    for name in sorted(replaced):
        if (name in pending or name not in files) and _present(out / name):
            os.replace(out / name, old / name)
    kept = [n for n in pending if _present(out / n)]  # what is left in the way is the user's
    if kept:
        keep = out / f"earlier-files-{time.strftime('%Y%m%d-%H%M%S')}"
        keep.mkdir(exist_ok=True)
        for name in kept:
            os.replace(out / name, keep / name)
        print(f"note: moved {', '.join(kept)} out of the way of this run's files, into {keep}", file=sys.stderr)
    for name in pending:
        os.replace(stage / name, out / name)
    write_text_atomic(out / OUTPUTS_FILE, json.dumps({"files": files, "experiment": owner}) + "\n")


SWAP_JOURNAL = ".swap.json"  # inside .replaced-<stage>: the files a finished run is moving into `out`


def _finish_dead_swaps(out: Path) -> None:
    """Finish the swap of a run killed while it moved its files into `out` (see `staged_output`).

    The run had finished (its journal lists its files), so its remaining files move in, its outputs
    are listed, and the earlier run's files it had set aside go. Without a journal the kill came
    before the swap began: the set-aside folder is empty or holds only what goes back.
    """
    for old in out.glob(".replaced-.partial-*"):
        stage = out / old.name.removeprefix(".replaced-")
        if _alive(stage):
            continue
        try:
            journal = json.loads((old / SWAP_JOURNAL).read_text(encoding="utf-8"))
            files = [n for n in journal["files"] if _plain_name(n)]
            replaced = {n for n in journal.get("replaced", []) if _plain_name(n)}
            owner = journal.get("experiment") if isinstance(journal.get("experiment"), str) else None
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            files = None
        if files is not None and stage.is_dir():
            _swap_in(out, stage, old, files, replaced, owner)
        elif files is None:  # killed before the journal: put back what was set aside
            for p in old.iterdir():
                if not (out / p.name).exists():
                    os.replace(p, out / p.name)
        shutil.rmtree(stage, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)


def _plain_name(name: object) -> bool:
    return isinstance(name, str) and bool(name) and "/" not in name and name not in (".", "..")


def _alive(stage: Path) -> bool:
    """Whether the process that made the staging folder `stage` (".partial-PID-...") still runs."""
    try:
        os.kill(int(stage.name.split("-")[1]), 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except (ValueError, IndexError, OSError):
        return True  # not ours to judge: leave it
    return True


def _earlier_experiment(out: Path) -> str | None:
    """The experiment whose finished run the folder `out` holds (from its outputs list, or the
    summary.json of a folder written before that list existed), or None."""
    for name in (OUTPUTS_FILE, "summary.json"):
        try:
            found = json.loads((out / name).read_text(encoding="utf-8")).get("experiment")
        except (OSError, ValueError, AttributeError):
            continue
        if isinstance(found, str):
            return found
    return None


def _earlier_outputs(out: Path, owner: str | None) -> list[str]:
    """The names the last finished run put into `out` (a run of `owner`: `staged_output` refuses
    a folder that holds another experiment's results)."""
    try:
        earlier = json.loads((out / OUTPUTS_FILE).read_text(encoding="utf-8"))["files"]
        return [n for n in earlier if _plain_name(n)]
    except (OSError, ValueError, KeyError, TypeError):
        pass
    try:  # a folder an experiment wrote before outputs were listed: all of it is that experiment's
        summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    if owner is not None and isinstance(summary, dict) and summary.get("experiment") == owner:
        return [p.name for p in out.iterdir() if not p.name.startswith(".")]
    return []


def _remove_dead_stages(out: Path) -> None:
    """Finish the swaps of killed runs, then delete the staging folders of runs that were killed
    before they finished (their process is gone)."""
    _finish_dead_swaps(out)
    for stage in out.glob(".partial-*"):
        if not _alive(stage):
            shutil.rmtree(stage, ignore_errors=True)


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
    if data is not None and not EXPERIMENTS[name].needs_text:
        raise ValueError(f"--data: the experiment {name} does not train on a text corpus, got --data {data}")
    with staged_output(Path(out_dir), owner=name) as stage:
        summary = EXPERIMENTS[name](stage, seed=seed, quick=quick, data=data)
    return summary
