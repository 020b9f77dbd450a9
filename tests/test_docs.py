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
