"""Writes colab/*.ipynb (without outputs) from their sources, colab/src/<name>.py: edit a
source, then run

  python colab/make_notebooks.py

The sources are percent-format scripts (as jupytext reads them): `# %%` starts a code cell,
`# %% [markdown]` a Markdown cell whose lines are commented, and `# %% include: FILE` a code
cell holding colab/src/FILE (the set-up cell every notebook shares). A shell line is
commented in a source (`# !pip ...`) and written as `!pip ...`. The notebooks stay
reviewable as Python and carry no stale outputs.
"""

from __future__ import annotations

import pathlib
import re

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

OUT = pathlib.Path(__file__).resolve().parent
SOURCES = OUT / "src"
_MAGIC = re.compile(r"^(\s*)# (!.*)$")


def code_text(lines: list[str]) -> str:
  return "\n".join(_MAGIC.sub(r"\1\2", line) for line in lines).strip("\n")


def markdown_text(lines: list[str]) -> str:
  return "\n".join(line[2:] if line.startswith("# ") else line.lstrip("#")
                   for line in lines).strip("\n")


def cells_of(source: pathlib.Path) -> list:
  """The notebook cells of a percent-format source (module docstring)."""
  cells, header, body = [], None, []

  def close() -> None:
    if header is None:
      return  # the source's own docstring, before the first cell
    if header == "# %% [markdown]":
      cells.append(new_markdown_cell(markdown_text(body)))
    elif header.startswith("# %% include:"):
      included = SOURCES / header.split(":", 1)[1].strip()
      cells.append(new_code_cell(code_text(included.read_text().split("\n"))))
    else:
      cells.append(new_code_cell(code_text(body)))

  for line in source.read_text().split("\n"):
    if line.startswith("# %%"):
      close()
      header, body = line.rstrip(), []
    else:
      body.append(line)
  close()
  return cells


def write_all(out_dir: pathlib.Path) -> list[str]:
  names = []
  for source in sorted(SOURCES.glob("[0-9]*.py")):
    name = source.stem + ".ipynb"
    nb = new_notebook(cells=cells_of(source))
    nb.metadata = {"kernelspec": {"name": "python3", "display_name": "Python 3",
                                  "language": "python"},
                   "language_info": {"name": "python"}, "accelerator": "GPU",
                   "colab": {"provenance": []}}
    for index, cell in enumerate(nb.cells):
      cell["id"] = f"{source.stem}-{index}"  # stable ids: regenerating changes nothing
    nbformat.write(nb, out_dir / name)
    names.append(name)
  return names


if __name__ == "__main__":
  print("wrote", write_all(OUT))
