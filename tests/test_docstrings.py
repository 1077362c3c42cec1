"""Every example in a docstring of the package runs and prints what it shows."""

from __future__ import annotations

import doctest
import importlib
import pkgutil
from pathlib import Path

import pytest

import rnnlab

MODULES = sorted(m.name for m in pkgutil.walk_packages(rnnlab.__path__, "rnnlab.") if not m.name.endswith("__main__"))


@pytest.mark.parametrize("name", ["rnnlab", *MODULES])
def test_docstring_examples(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # an example that writes a file writes it here
    try:
        module = importlib.import_module(name)
    except ModuleNotFoundError as e:
        if e.name in ("torch", "matplotlib"):
            pytest.skip(f"{name} needs {e.name}")
        raise
    flags = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
    result = doctest.testmod(module, optionflags=flags, report=False)
    assert result.failed == 0, (
        f"{result.failed} of {result.attempted} examples in {name} failed (run pytest -s to see them)"
    )
