"""The run folder's training log, shared by both engines: `metrics.jsonl` and `loss.png`.

One JSON object per evaluation (at least `step`, `elapsed_s`, `train_loss`, `val_loss`), and the
train/validation curves drawn from the same records. Both files are rewritten whole through a
temporary file and a rename, so a crash never leaves half a line or half an image; a resumed run
keeps the records up to its checkpoint's step (`read_metrics`) and goes on from there.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

METRICS_FILE = "metrics.jsonl"
PLOT_FILE = "loss.png"


def write_metrics(out_dir: str | os.PathLike[str], records: Sequence[dict[str, Any]]) -> None:
    """Replace `out_dir/metrics.jsonl` with `records`, one JSON object a line.

    Example:
        >>> write_metrics("runs/x", [{"step": 250, "elapsed_s": 9.1, "train_loss": 2.1, "val_loss": 2.0}])  # doctest: +SKIP
    """
    out_dir = Path(out_dir)
    tmp = out_dir / f".{METRICS_FILE}.tmp"
    tmp.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    os.replace(tmp, out_dir / METRICS_FILE)


def read_metrics(out_dir: str | os.PathLike[str], up_to_step: float = math.inf) -> list[dict[str, Any]]:
    """The records of `out_dir/metrics.jsonl` whose step is at most `up_to_step` ([] without the file).

    A resumed run redoes the steps after its checkpoint, so the records of evaluations after it
    are dropped rather than repeated; a line that does not parse is skipped.

    Example:
        >>> [r["step"] for r in read_metrics("runs/x", up_to_step=500)]   # doctest: +SKIP
        [250, 500]
    """
    path = Path(out_dir) / METRICS_FILE
    records: list[dict[str, Any]] = []
    if not path.exists():
        return records
    for line in path.read_text(encoding="utf-8").splitlines():
        with contextlib.suppress(json.JSONDecodeError):
            rec = json.loads(line)
            if isinstance(rec, dict) and rec.get("step", math.inf) <= up_to_step:
                records.append(rec)
    return records


def plot_losses(out_dir: str | os.PathLike[str], records: Sequence[dict[str, Any]], title: str) -> bool:
    """Draw the training and validation losses of `records` into `out_dir/loss.png`.

    Returns False (and draws nothing) when matplotlib is not installed: plots are optional
    (`pip install 'rnnlab[plots]'`).

    Example:
        >>> plot_losses("runs/x", read_metrics("runs/x"), "lm: best validation 1.50")   # doctest: +SKIP
        True
    """
    try:
        # a bare Figure, not pyplot: drawing a file must not switch the backend of the caller's
        # session (a notebook's inline figures after a training call) or keep figures alive in it
        from matplotlib.figure import Figure
    except ImportError:
        return False
    out_dir = Path(out_dir)
    steps = [r["step"] for r in records]
    fig = Figure(figsize=(6, 4), dpi=100)
    ax = fig.subplots()
    train = [(s, r["train_loss"]) for s, r in zip(steps, records, strict=True) if r.get("train_loss") is not None]
    if train:
        # a single evaluation is a point: without a marker a one-point line draws nothing
        marker = {"marker": "o", "markersize": 3} if len(train) == 1 else {}
        ax.plot(*zip(*train, strict=True), label="train (mean since last evaluation)", **marker)
    ax.plot(steps, [r["val_loss"] for r in records], marker="o", markersize=3, label="validation")
    ax.set_xlabel("step")
    ax.set_ylabel("loss (nats per token)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    tmp = out_dir / f".{PLOT_FILE}.tmp.png"
    fig.savefig(tmp)
    os.replace(tmp, out_dir / PLOT_FILE)
    return True
