"""Helpers shared by the resume tests of both engines (test_resume.py, test_resume_numpy.py). Torch-free."""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from rnnlab.cli.main import main
from rnnlab.training.checkpoint import load_safetensors

# running text for small LM runs: 60 repetitions of a 16-word line
TEXT = "".join(
    f"{w} " for w in ("to be or not to be that is the question whether tis nobler in the mind to suffer " * 60).split()
)


def run_cli(argv: list) -> tuple[int, str, str]:
    """`rnnlab argv` in-process; returns (exit status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main([str(a) for a in argv])
    return rc, out.getvalue(), err.getvalue()


def assert_same_weights(a: Path, b: Path) -> None:
    """The two run folders' model.safetensors hold bit-identical tensors under the same names."""
    wa, wb = load_safetensors(a / "model.safetensors"), load_safetensors(b / "model.safetensors")
    assert wa.keys() == wb.keys()
    for name in wa:
        assert np.array_equal(wa[name], wb[name]), name


def metrics(run: Path) -> list[dict]:
    """The run's metrics.jsonl records."""
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text(encoding="utf-8").splitlines()]


def subprocess_env(**extra: str) -> dict[str, str]:
    """This environment with the source tree importable (and `extra` set) for `python -m rnnlab`."""
    env = dict(os.environ)
    src = str(Path(__file__).resolve().parents[1] / "src")
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra)
    return env


def checkpoint_step(run: Path) -> int | None:
    """The step of the complete checkpoint in `run`, or None (none yet, or caught in the middle of a save)."""
    try:
        if not (run / "checkpoint.json").exists():
            return None
        return json.loads((run / "train_state.json").read_text(encoding="utf-8"))["step"]
    except (OSError, ValueError, KeyError):
        return None  # caught between two files of a save


def train_and_sigkill(argv_for, tmp_path: Path, step: int, env: dict[str, str]) -> Path:
    """Start `rnnlab *argv_for(run)` and SIGKILL it once its checkpoint at `step` is complete.

    The kill has to land before the run's next checkpoint; up to 3 attempts, each in a new folder.
    Returns the killed run's folder.
    """
    for attempt in range(3):
        run = tmp_path / f"killed{attempt}"
        child = subprocess.Popen(
            [sys.executable, "-m", "rnnlab", *argv_for(run)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env
        )
        deadline = time.monotonic() + 240
        while child.poll() is None and time.monotonic() < deadline:
            if checkpoint_step(run) == step:
                child.send_signal(signal.SIGKILL)
                break
            time.sleep(0.002)
        child.wait(timeout=60)
        if child.returncode == -signal.SIGKILL and checkpoint_step(run) == step:
            return run
    pytest.fail(f"could not kill the run between its checkpoint at step {step} and the next in 3 attempts")
