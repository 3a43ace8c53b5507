"""The notebooks of ``experiments/``: committed without outputs, using rlloop's public API
only, and each executed end to end in its smoke setting (``RLLOOP_NOTEBOOK_SMOKE=1``) by a
kernel running this interpreter (the venv's)."""

from __future__ import annotations

import ast
import json
import re
import sys
import time
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "experiments").glob("*.ipynb"))
KERNEL = "rlloop-test-python"
# Smoke times on 2 shared cores: add_a_game 25 s, quickstart 65 s, ringrift 64 s; the budget
# leaves room for a cold compilation cache.
TIMEOUT_SECONDS = 600


def test_the_three_notebooks_exist() -> None:
    assert {p.stem for p in NOTEBOOKS} >= {"quickstart", "add_a_game", "ringrift"}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_without_outputs(path: Path) -> None:
    """Outputs stay out of git: clear them (Jupyter: Edit > Clear outputs of all cells, or
    ``jupyter nbconvert --clear-output --inplace experiments/*.ipynb``) before committing."""
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    dirty = [index for index, cell in enumerate(notebook.cells)
             if cell.cell_type == "code" and (cell.outputs or cell.execution_count is not None)]  # fmt: skip
    assert not dirty, f"{path.name}: cells {dirty} have outputs or execution counts; clear them"
    parameters = [cell for cell in notebook.cells if "parameters" in cell.metadata.get("tags", [])]
    assert len(parameters) == 1 and "RLLOOP_NOTEBOOK_SMOKE" in parameters[0].source


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_uses_the_public_api_only(path: Path) -> None:
    """No private names of rlloop: no ``rlloop...._name`` imports or attributes."""
    notebook = nbformat.read(path, as_version=4)
    source = "\n".join(cell.source for cell in notebook.cells if cell.cell_type == "code")
    tree = ast.parse(source)
    private = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("rlloop"):
            private += [f"{node.module}.{a.name}" for a in node.names if a.name.startswith("_")]
            private += [node.module] if re.search(r"\._", node.module or "") else []
        elif isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
            private.append(ast.unparse(node))
    assert not private, f"{path.name} uses private names: {private}"


def _kernel_spec(directory: Path) -> None:
    """A kernelspec that runs this interpreter, so the notebook sees this venv's rlloop."""
    spec = directory / "kernels" / KERNEL
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "rlloop tests", "language": "python",
    }))  # fmt: skip


@pytest.mark.long
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_in_its_smoke_setting(
    path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _kernel_spec(tmp_path / "jupyter")
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.setenv("RLLOOP_NOTEBOOK_SMOKE", "1")
    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(notebook, kernel_name=KERNEL, timeout=TIMEOUT_SECONDS,
                            resources={"metadata": {"path": str(tmp_path)}})  # fmt: skip
    start = time.perf_counter()
    client.execute()  # raises CellExecutionError naming the cell that failed
    seconds = time.perf_counter() - start
    print(f"{path.name}: {seconds:.0f} s")
    text = "\n".join(
        output.get("text", "") + json.dumps(output.get("data", {}))
        for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs
    )  # fmt: skip
    assert "Traceback" not in text
    expected = {
        "quickstart": ["1 promotion(s); champion: iter-000002", "rewards by seat:", "image/png"],
        "add_a_game": ["terminated: True rewards: [1.0, -1.0]", "hex5 passes all 8 properties",
                       "network vs random:", "image/png"],
        "ringrift": ["ringrift_hex8_3p", "image/svg+xml", "value by seat"],
    }[path.stem]
    for fragment in expected:
        assert fragment in text, f"{path.name}: no output shows {fragment!r}"
    assert list(tmp_path.glob("runs/*/ledger.sqlite")), "the notebook's run is not in its folder"
