"""Every Colab notebook runs top to bottom (smoke sizes), and matches its source in colab/src."""

import importlib.util
import pathlib

import nbformat
import pytest
from nbclient import NotebookClient

from tests.helpers import xla_flags

COLAB = pathlib.Path(__file__).resolve().parents[1] / "colab"
NOTEBOOKS = sorted(p.name for p in COLAB.glob("*.ipynb"))


def test_there_are_four_notebooks():
  assert NOTEBOOKS == ["01_quickstart.ipynb", "02_transforms.ipynb", "03_custom_task.ipynb",
                       "04_study.ipynb"]


@pytest.mark.slow
@pytest.mark.notebook
@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs_top_to_bottom(name, monkeypatch):
  monkeypatch.setenv("SSLFLAX_NOTEBOOK_SMOKE", "1")  # tiny networks, a few steps
  monkeypatch.setenv("XLA_FLAGS", xla_flags(1))  # one CPU device, as on a user's machine (compiled as the tests)
  notebook = nbformat.read(COLAB / name, as_version=4)
  client = NotebookClient(notebook, timeout=600, kernel_name="python3",
                          resources={"metadata": {"path": str(COLAB)}})
  client.execute()  # raises CellExecutionError, naming the cell, if any cell fails
  errors = [o for cell in notebook.cells if cell.cell_type == "code"
            for o in cell.get("outputs", []) if o.get("output_type") == "error"]
  assert not errors


def test_stored_notebooks_are_generated_and_carry_no_outputs(tmp_path):
  spec = importlib.util.spec_from_file_location("make_notebooks", COLAB / "make_notebooks.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  module.write_all(tmp_path)
  for name in NOTEBOOKS:
    stored = nbformat.read(COLAB / name, as_version=4)
    assert (tmp_path / name).read_text() == (COLAB / name).read_text(), (
        f"{name} differs from its source colab/src/; run python colab/make_notebooks.py")
    assert all(not cell.get("outputs") for cell in stored.cells if cell.cell_type == "code")
