"""What every experiment shares: writing its outputs, matplotlib set-up, finding a text corpus."""

from __future__ import annotations

import contextlib
import csv
import ctypes
import json
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from ..data.text import DataError, read_text, split_text


def pyplot():
    """matplotlib.pyplot with the non-interactive Agg backend (no display needed)."""
    try:
        import matplotlib
    except ImportError as e:  # an optional dependency: say how to get it
        raise DataError("experiments draw figures with matplotlib: pip install 'rnnlab[plots]'") from e
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


class RunProgress:
    """A bar over an experiment's training runs on stderr, on a terminal only (tqdm's `disable=None`);
    nothing without tqdm. `advance(label)` after each run names the one just finished.

    Example:
        >>> with RunProgress(2, "demo") as bar:
        ...     bar.advance("first")
        ...     bar.advance("second")
    """

    def __init__(self, total: int, name: str) -> None:
        self.total, self.name, self._bar = total, name, None

    def __enter__(self) -> RunProgress:
        try:
            from tqdm import tqdm
        except ImportError:
            return self
        self._bar = tqdm(total=self.total, desc=self.name, file=sys.stderr, disable=None, leave=False, unit="run")
        return self

    def advance(self, label: str) -> None:
        if self._bar is not None:
            self._bar.set_postfix_str(label, refresh=False)
            self._bar.update(1)

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.close()


def write_summary(out_dir: Path, name: str, text: str, figures: dict[str, Any]) -> dict:
    """Write summary.txt (the human-readable lines) and summary.json (the figures they quote).

    Returns the JSON object written: {"experiment": name, "summary": text, **figures}.
    """
    record = {"experiment": name, "summary": text.strip(), **figures}
    (out_dir / "summary.txt").write_text(text.strip() + "\n", encoding="utf-8")
    (out_dir / "summary.json").write_text(json.dumps(record, indent=2, default=float) + "\n", encoding="utf-8")
    return record


def write_csv(path: Path, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """Write the data behind a figure as CSV."""
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


def find_corpus(data: str | None, filename: str = "tinyshakespeare.txt") -> Path:
    """The text an experiment trains on: `data` if given (a file, a URL or a data set's name, as
    `--data` takes everywhere), else `$RNNLAB_DATA/<filename>`, else `../shared/data/<filename>` or
    `shared/data/<filename>` from the working directory.

    Raises DataError with the places searched when none exists.
    """
    if data is not None:
        from ..data.download import resolve_data

        return resolve_data(data)
    candidates = []
    if os.environ.get("RNNLAB_DATA"):
        candidates.append(Path(os.environ["RNNLAB_DATA"]) / filename)
    candidates += [Path("../shared/data") / filename, Path("shared/data") / filename]
    for c in candidates:
        if c.is_file():
            return c
    raise DataError(
        f"data: this experiment trains on a text corpus; pass --data FILE or set RNNLAB_DATA (looked for {', '.join(map(str, candidates))})"
    )


def train_char_model(
    corpus: Path,
    out_dir: Path,
    *,
    cell: str = "lstm",
    hidden_size: int = 128,
    seconds: float = 45.0,
    max_steps: int | None = None,
    seed: int = 0,
    seq_len: int = 64,
    batch_size: int = 32,
):
    """Train a character model on `corpus` with the NumPy engine and save it in `out_dir/model`.

    Returns the loaded run (`rnnlab.training.lm.LoadedLM`: model in eval mode, vocab, configs) and
    the `LMData` it was trained on. The budget is `seconds` of training or `max_steps`, whichever
    comes first; experiments pass a small budget with `quick`.

    Example:
        >>> run, data = train_char_model(find_corpus(None), Path("runs/exp/x"), seconds=30)   # doctest: +SKIP
    """
    from ..config import ModelConfig, TrainConfig
    from ..training.lm import load_lm, load_lm_data, train_lm

    train_config = TrainConfig(
        data=str(corpus),
        batch_size=batch_size,
        seq_len=seq_len,
        max_time=seconds,
        max_steps=max_steps,
        eval_every=10**9,
        seed=seed,
    )
    need = batch_size * seq_len + 1

    def too_short(n_train: int) -> DataError:  # the trainer's own hint names options `rnnlab experiment` lacks
        return DataError(
            f"data: {corpus} is too short for this experiment: its training split (the first 90%) has "
            f"{n_train:,} characters, the experiment's batches need {need:,}; give a longer text"
        )

    try:
        data = load_lm_data(train_config)
    except DataError as e:
        if "too short" not in str(e):
            raise
        train_text, _ = split_text(read_text(corpus), train_config.val_fraction)
        raise too_short(len(train_text)) from None
    if len(data.train) < need:
        raise too_short(len(data.train))
    model_config = ModelConfig(vocab_size=len(data.vocab), cell=cell, hidden_size=hidden_size, embedding_dim=32)
    train_lm(model_config, train_config, out_dir / "model", data, progress=True)  # a bar on a terminal only
    return load_lm(out_dir / "model"), data


# (get, set) symbol pairs of OpenBLAS builds: plain, 64-bit-integer, and the scipy-openblas wheels NumPy ships.
_OPENBLAS_SYMBOLS = (
    ("openblas_get_num_threads", "openblas_set_num_threads"),
    ("openblas_get_num_threads64_", "openblas_set_num_threads64_"),
    ("scipy_openblas_get_num_threads64_", "scipy_openblas_set_num_threads64_"),
    ("scipy_openblas_get_num_threads", "scipy_openblas_set_num_threads"),
)


def openblas_thread_controls() -> list[tuple]:
    """(get, set) ctypes functions for the thread count of each OpenBLAS this process has loaded.

    Found through /proc/self/maps and ctypes on the already-loaded library (what threadpoolctl
    does); empty where there is none (another BLAS, another OS).
    """
    try:
        with open("/proc/self/maps", encoding="utf-8") as f:
            paths = sorted({line.split()[-1] for line in f if "openblas" in line.lower() and "/" in line})
    except OSError:
        paths = []
    controls = []
    for path in paths:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for get_name, set_name in _OPENBLAS_SYMBOLS:
            if hasattr(lib, get_name) and hasattr(lib, set_name):
                get, set_ = getattr(lib, get_name), getattr(lib, set_name)
                get.restype, set_.argtypes = ctypes.c_int, [ctypes.c_int]
                controls.append((get, set_))
                break
    return controls


@contextlib.contextmanager
def single_threaded_blas() -> Iterator[None]:
    """Run the block with OpenBLAS (as loaded by NumPy) and torch on one thread, then restore both.

    Why: these experiments multiply small matrices step by step (H ≤ 128, a few dozen sequences),
    where BLAS threads cost more in hand-offs than they save, and on a busy 2-core machine the
    spinning worker threads made runs up to 10× slower (init-compare: 30 s with one thread, 312 s
    with two while other jobs ran). Where no OpenBLAS is found it changes nothing.

    Example:
        >>> import numpy as np
        >>> with single_threaded_blas():
        ...     _ = np.ones((64, 64)) @ np.ones((64, 64))
    """
    restore = [(set_, int(get())) for get, set_ in openblas_thread_controls()]
    for set_, _ in restore:
        set_(1)
    torch = sys.modules.get("torch")  # only if already imported: importing torch costs seconds
    torch_threads = torch.get_num_threads() if torch is not None else None
    if torch is not None:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        for set_, n in restore:
            set_(n)
        if torch is not None and torch_threads is not None:
            torch.set_num_threads(torch_threads)
