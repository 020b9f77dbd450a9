"""The API documentation that help() shows in a notebook exists for every public function."""

import inspect
import re

import pytest

import sslflax.tasks
import sslflax.transforms
from sslflax.tasks import base, colorization, context, counting, jigsaw, rotation, supervised

TASK_MODULES = (base, colorization, context, counting, jigsaw, rotation, supervised)


def public_functions(module, own_only: bool):
  for name, obj in inspect.getmembers(module):
    if name.startswith("_") or not (inspect.isfunction(obj) or inspect.isclass(obj)):
      continue
    if own_only and obj.__module__ != module.__name__:
      continue
    yield f"{module.__name__}.{name}", obj


@pytest.mark.parametrize("module", (sslflax.transforms, sslflax.tasks) + TASK_MODULES,
                         ids=lambda m: m.__name__)
def test_every_public_function_has_a_docstring(module):
  own_only = module not in (sslflax.transforms, sslflax.tasks)  # packages re-export
  missing = [name for name, obj in public_functions(module, own_only)
             if len(inspect.getdoc(obj) or "") < 30]
  assert not missing, f"add docstrings (shapes, dtypes, ranges, randomness) to {missing}"


def test_readme_is_short_and_every_path_it_names_exists():
  """The README is a user's page (at most 15k characters) and names no missing file."""
  import pathlib
  import re
  root = pathlib.Path(__file__).resolve().parents[1]
  text = (root / "README.md").read_text()
  assert len(text) <= 15_000, f"README.md has {len(text)} characters; move detail to docs/"
  named = set(re.findall(r"(?:configs|launch|benchmarks|tools|docs|colab|results|sslflax)/[\w./-]*\w", text))
  named = {n for n in named if "<" not in n and "{" not in n}
  assert "configs/rotation.py" in named and "docs/development.md" in named
  missing = sorted(n for n in named if not (root / n).exists())
  assert not missing, f"README.md names missing paths: {missing}"


@pytest.mark.parametrize("page", ["README.md", "docs/results.md", "docs/benchmarks.md",
                                  "docs/design.md", "docs/development.md",
                                  "docs/augmentation.md", "docs/data.md"])
def test_commands_in_the_readme_and_docs_name_real_modules_and_files(page):
  """Every `python -m MODULE`, `python SCRIPT` and repository path a page names exists."""
  import importlib.util
  import pathlib
  root = pathlib.Path(__file__).resolve().parents[1]
  text = (root / page).read_text()
  modules = set(re.findall(r"python -m (sslflax[\w.]*)", text))
  assert all(importlib.util.find_spec(m) for m in modules), modules
  named = set(re.findall(r"(?:configs|launch|benchmarks|tools|docs|colab|results|sslflax|tests)/[\w./-]*\w", text))
  named = {n for n in named if "<" not in n and "{" not in n and "*" not in n}
  missing = sorted(n for n in named if not (root / n).exists())
  assert not missing, f"{page} names missing paths: {missing}"


def test_console_entry_points_name_functions_that_exist():
  """pyproject's sslflax-train and sslflax-study point at real functions, and every runtime
  package pinned in requirements.txt is declared in pyproject (so `pip install .` works)."""
  import importlib
  import pathlib
  import tomllib
  root = pathlib.Path(__file__).resolve().parents[1]
  project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
  assert set(project["scripts"]) == {"sslflax-train", "sslflax-study"}
  for target in project["scripts"].values():
    module, function = target.split(":")
    assert callable(getattr(importlib.import_module(module), function))
  declared = {re.split(r"[<>=\[ ]", d)[0].lower() for d in project["dependencies"]}
  pinned = {re.split(r"[<>=\[ ]", line)[0].lower()
            for line in (root / "requirements.txt").read_text().splitlines()
            if line and not line.startswith("#")}
  runtime = pinned - {"pytest", "pytest-xdist", "scikit-image", "nbclient", "nbformat", "ipykernel"}
  assert runtime - {"jaxlib"} <= declared, f"declare {sorted(runtime - declared)} in pyproject"


@pytest.mark.slow
@pytest.mark.subprocess
def test_sslflax_train_runs_a_config_from_any_working_directory(tmp_path):
  """The console script's function loads configs/<e>.py, which imports configs.common, from
  outside the repository (python -m only finds it from the repository root)."""
  import pathlib
  import subprocess
  import sys
  root = pathlib.Path(__file__).resolve().parents[1]
  as_console_script = "import sys; from sslflax.main import cli; sys.exit(cli())"
  out = subprocess.run([sys.executable, "-c", as_console_script,
                        f"--config={root / 'configs' / 'random.py'}:smoke",
                        f"--workdir={tmp_path / 'w'}"], cwd=tmp_path, capture_output=True,
                       text=True, timeout=600)
  assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
  assert (tmp_path / "w" / "results.json").exists()
