"""What every experiment shares: writing its outputs, matplotlib set-up, finding a text corpus."""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..data.text import DataError


def pyplot():
    """matplotlib.pyplot with the non-interactive Agg backend (no display needed)."""
    try:
        import matplotlib
    except ImportError as e:  # an optional dependency: say how to get it
        raise DataError("experiments draw figures with matplotlib: pip install 'rnnlab[plots]'") from e
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


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
    """The text an experiment trains on: `data` if given, else `$RNNLAB_DATA/<filename>`, else
    `../shared/data/<filename>` or `shared/data/<filename>` from the working directory.

    Raises DataError with the places searched when none exists.
    """
    if data is not None:
        return Path(data)
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
    data = load_lm_data(train_config)
    model_config = ModelConfig(vocab_size=len(data.vocab), cell=cell, hidden_size=hidden_size, embedding_dim=32)
    train_lm(model_config, train_config, out_dir / "model", data, progress=False)
    return load_lm(out_dir / "model"), data
