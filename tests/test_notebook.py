"""examples/quickstart.ipynb: kept in git without outputs, and executed end to end (nbclient)."""

from __future__ import annotations

import json

import pytest

from tests.conftest import ROOT

NOTEBOOK = ROOT / "examples" / "quickstart.ipynb"


def test_the_notebook_is_stored_without_outputs():
    notebook = json.loads(NOTEBOOK.read_text(encoding="utf-8"))
    code = [cell for cell in notebook["cells"] if cell["cell_type"] == "code"]
    assert code, "the notebook has code cells"
    for cell in code:
        assert cell["outputs"] == [] and cell["execution_count"] is None, "".join(cell["source"])[:80]
        assert cell["metadata"] == {}
    assert set(notebook["metadata"]) <= {"kernelspec", "language_info"}


def _outputs(cell: dict) -> dict[str, str]:
    """A cell's outputs by MIME type (and "stdout"), joined."""
    found: dict[str, str] = {}
    for output in cell["outputs"]:
        if output["output_type"] == "stream":
            found[output["name"]] = found.get(output["name"], "") + output["text"]
        for mime, data in output.get("data", {}).items():
            found[mime] = data if isinstance(data, str) else json.dumps(data)
    return found


@pytest.mark.slow
def test_the_notebook_runs_on_the_seed_pages(tmp_path, monkeypatch):
    import nbformat
    from nbclient import NotebookClient

    monkeypatch.setenv("QUICKSTART_DIR", str(tmp_path / "quickstart"))  # the kernel inherits it
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    # A cell that raises stops here with nbclient's CellExecutionError, the cell and its traceback.
    NotebookClient(notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}}).execute()
    cells = [_outputs(cell) for cell in notebook.cells if cell.cell_type == "code"]
    run, topics, figure, topic, update, history = cells[1], cells[2], cells[3], cells[4], cells[5], cells[6]
    assert "<caption>papertopics run</caption>" in run["text/html"]
    assert "<table" in topics["text/html"] and "<th>keywords</th>" in topics["text/html"]
    assert "application/vnd.plotly.v1+json" in figure
    assert topic["stdout"].count("|") == 2 and "papers" in topic["stdout"]
    assert update["stdout"].startswith("23 papers before, 64 after")
    assert "<table" in history["text/html"]
    assert (tmp_path / "quickstart" / "quickstart" / "index.html").is_file()
