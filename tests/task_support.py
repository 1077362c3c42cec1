"""Helpers shared by the tests of the torch tasks' command line (classify, tag, forecast, seq2seq)."""

from __future__ import annotations

import pytest
import torch

from rnnlab.cli.main import main


def cli(capsys: pytest.CaptureFixture[str], *argv: object) -> tuple[int, str, str]:
    """`rnnlab argv` in-process, (status, stdout, stderr)."""
    capsys.readouterr()
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def assert_one_error_line(err: str, *fragments: str) -> str:
    """The single `error: ...` line of `err` (no traceback), which holds every fragment."""
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    for f in fragments:
        assert f in lines[0], (f, lines[0])
    return lines[0]


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """One torch thread for the module: tiny models on a busy machine are many times faster without
    torch's thread pool. Autouse in every module that imports it."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
