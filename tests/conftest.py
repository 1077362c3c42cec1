"""Shared fixtures for the command-line, training and sampling tests: tiny runs on tiny texts."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pytest

from rnnlab.cli.main import main

# a model and a budget small enough that a run takes a fraction of a second on one CPU core
TINY = [
    "--hidden-size", "16", "--embedding-dim", "8", "--batch-size", "4", "--seq-len", "8",
    "--max-steps", "20", "--eval-every", "10",
]  # fmt: skip

# UTF-8 running text with Greek, accents and an emoji (a code point outside the BMP); no newlines
GREEK_TEXT = "Καλημέρα κόσμε! Ο καφές είναι ζεστός. Café naïve façade 🙂 déjà vu. " * 40

WORDS = ["ámbar", "café", "naïve", "ζέστη", "κόσμος", "emma", "olivia", "ava", "sophia", "mia"] * 12


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    """`rnnlab argv` in-process; returns (exit status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main([str(a) for a in argv])
    return rc, out.getvalue(), err.getvalue()


def _train(tmp: Path, name: str, argv: list[str]) -> Path:
    out = tmp / name
    rc, _, err = run_cli(["train", *argv, "--out", out, "--quiet", *TINY])
    assert rc == 0, err
    return out


@pytest.fixture(scope="session")
def greek_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("data") / "greek.txt"
    path.write_text(GREEK_TEXT, encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def greek_run(tmp_path_factory: pytest.TempPathFactory, greek_file: Path) -> Path:
    """A run folder trained on GREEK_TEXT (plain text). Do not modify it: copy it first."""
    return _train(tmp_path_factory.mktemp("runs"), "greek", ["--data", greek_file])


@pytest.fixture(scope="session")
def words_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A per-line run folder trained on WORDS, one word per line. Do not modify it."""
    path = tmp_path_factory.mktemp("data") / "words.txt"
    path.write_text("\n".join(WORDS) + "\n", encoding="utf-8")
    return _train(tmp_path_factory.mktemp("runs"), "words", ["--data", path, "--per-line"])
