"""The tutorial notebooks in notebooks/ execute top to bottom, and are stored clean.

Each notebook runs in a fresh Jupyter kernel of *this* interpreter (the native `python3` kernel
spec of ipykernel, launched with `sys.executable`, never a kernel spec found elsewhere on the
machine) with `RNNLAB_NOTEBOOK_SMALL=1`, which shrinks every training budget to a smoke test, and
with a temporary working directory, so the `runs/` folders the notebooks write land there.
Needs the `test` extra (nbformat, nbclient, ipykernel); skipped with the reason otherwise.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

NOTEBOOK_DIR = Path(__file__).resolve().parent.parent / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
CELL_TIMEOUT_S = 300
EXPECTED = [
    "01_rnn_from_scratch_and_bptt.ipynb",
    "02_vanishing_exploding_gradients.ipynb",
    "03_lstm_and_gru.ipynb",
    "04_char_language_model_and_sampling.ipynb",
    "05_applications.ipynb",
]


def _code_cells(path: Path) -> list[dict]:
    nb = json.loads(path.read_text(encoding="utf-8"))
    return [c for c in nb["cells"] if c["cell_type"] == "code"]


def _source(cell: dict) -> str:
    src = cell["source"]
    return src if isinstance(src, str) else "".join(src)


def test_every_lesson_has_a_notebook() -> None:
    missing = sorted(set(EXPECTED) - {p.name for p in NOTEBOOKS})
    assert not missing, f"missing notebooks: {missing}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_stored_clean_and_uses_rnnlab(path: Path) -> None:
    nb = json.loads(path.read_text(encoding="utf-8"))
    assert nb["metadata"]["kernelspec"]["name"] == "python3"
    code = _code_cells(path)
    assert code, "no code cells"
    for i, cell in enumerate(code):
        assert cell.get("outputs") == [], f"code cell {i} has stored outputs: clear them before committing"
        assert cell.get("execution_count") is None, f"code cell {i} has an execution count: clear outputs"
    text = "\n".join(_source(c) for c in code)
    assert "import rnnlab" in text or "from rnnlab" in text, "the notebook does not use the library"
    assert 'os.environ.get("RNNLAB_NOTEBOOK_SMALL") == "1"' in text, "the notebook ignores the SMALL switch"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_executes(path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    nbformat = pytest.importorskip("nbformat", reason="executing notebooks needs the test extra (nbformat)")
    nbclient = pytest.importorskip("nbclient", reason="executing notebooks needs the test extra (nbclient)")
    pytest.importorskip("ipykernel", reason="executing notebooks needs the test extra (ipykernel)")
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import AsyncKernelManager

    monkeypatch.setenv("RNNLAB_NOTEBOOK_SMALL", "1")
    # The notebooks' matrices are small; BLAS threads would only spin against each other (and
    # against anything else CI runs), which made one 128x128 eigvals take seconds on a busy machine.
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.setenv(var, os.environ.get(var, "1"))

    nb = nbformat.read(path, as_version=4)
    # No kernel directories: only ipykernel's native spec is left, which launches sys.executable.
    ksm = KernelSpecManager(kernel_dirs=[])
    km = AsyncKernelManager(kernel_name="python3", kernel_spec_manager=ksm)
    guard = nbformat.v4.new_code_cell(
        f"import os, sys\nassert os.path.realpath(sys.executable) == {os.path.realpath(sys.executable)!r}, sys.executable"
    )
    nb.cells.insert(0, guard)
    client = nbclient.NotebookClient(
        nb,
        km=km,
        timeout=CELL_TIMEOUT_S,
        allow_errors=False,
        resources={"metadata": {"path": str(tmp_path)}},
    )
    try:
        client.execute()
    except nbclient.exceptions.CellExecutionError as e:
        pytest.fail(f"{path.name} failed:\n{e}", pytrace=False)
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors
    images = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if "image/png" in o.get("data", {})]
    assert images, f"{path.name} drew no figure"
    if any('Path("runs")' in _source(c) for c in _code_cells(path)):
        assert (tmp_path / "runs").is_dir(), "the run folders were not written under the working directory"
