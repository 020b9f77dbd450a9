"""The API documentation that help() shows in a notebook exists for every public function."""

import inspect

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
  named = set(re.findall(r"(?:configs|launch|docs|colab|results|sslflax)/[\w./-]*\w", text))
  named = {n for n in named if "<" not in n and "{" not in n}
  assert "configs/rotation.py" in named and "docs/development.md" in named
  missing = sorted(n for n in named if not (root / n).exists())
  assert not missing, f"README.md names missing paths: {missing}"
