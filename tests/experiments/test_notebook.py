"""experiments/backprop.ipynb runs end to end from a clean kernel, in experiments/ as Jupyter would."""

from pathlib import Path

NOTEBOOK = Path(__file__).resolve().parent.parent.parent / "experiments" / "backprop.ipynb"


def test_committed_notebook_has_no_outputs(require):
    nbformat = require("nbformat")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, "strip the outputs before committing"


def test_notebook_executes(names_path, require):
    nbformat = require("nbformat")
    nbclient = require("nbclient")
    require("ipykernel")
    require("matplotlib")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOK.parent)}}
    )
    client.execute()  # raises CellExecutionError on the first failing cell (the asserts are in the notebook)
    text = "\n".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    html = "\n".join(
        o.get("data", {}).get("text/html", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs
    )
    assert "FAIL" not in text and "FAIL" not in html
    assert "26/26 ok" in html and "12/12 ok" in html and "7/7 ok" in text  # every comparison row ok
    assert "val " in text and "image/png" in str([c.outputs for c in nb.cells if c.cell_type == "code"])


DIAGNOSTICS = NOTEBOOK.parent / "diagnostics.ipynb"


def test_diagnostics_notebook_has_no_outputs(require):
    nbformat = require("nbformat")
    for cell in nbformat.read(DIAGNOSTICS, as_version=4).cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, "strip the outputs before committing"


def test_diagnostics_notebook_executes(names_path, require, monkeypatch):
    """The lecture's story: four deep networks, one call each, their figures and loss log; the
    asserts (the gain-1 collapse, update:data near 1e-3, every live check passed) are in the notebook."""
    nbformat = require("nbformat")
    nbclient = require("nbclient")
    require("ipykernel")
    require("matplotlib")
    monkeypatch.setenv("BPJAX_NOTEBOOK_STEPS", "2000")  # the kernel inherits it; 20,000 by default
    nb = nbformat.read(DIAGNOSTICS, as_version=4)
    nbclient.NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(DIAGNOSTICS.parent)}}
    ).execute()
    text = "\n".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert text.count("2/2 checks passed") == 4 and "uniform prediction" in text
    pngs = sum("image/png" in o.get("data", {}) for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert pngs == 3
