"""Test set-up: 8 host devices for the data-parallel tests; no network ever; one persistent
compilation cache for the whole session; a rotation smoke run trained once and shared.

Tiers (markers registered in pyproject.toml):
  python -m pytest -m "not slow" tests   the fast tier, for every edit
  python -m pytest tests                 the full suite (CI, every stop)
"""

import dataclasses
import os
import pathlib
import shutil

# Must happen before JAX initialises its backends. Tests spend most of their time compiling
# small programs they run a few times: LLVM's -O0 compiles them about 30% faster (the suite's
# test_tasks.py and test_geometry.py: 347 s at the default level, 247 s at 0), the same
# programs, less optimised machine code.
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8 "
                                   "--xla_backend_optimization_level=0")  # helpers.xla_flags
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")  # TensorFlow stays off any GPU.

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from sslflax import compilation_cache  # noqa: E402
from tests import helpers  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def shared_compilation_cache(tmp_path_factory):
  """Every test, subprocess and notebook kernel of the session shares one persistent
  compilation cache, so a program compiled once (the smoke runs' probes, a step two tests
  build alike) is loaded from disk after. A cache folder set in SSLFLAX_COMPILATION_CACHE is
  used as it is (kept between sessions); otherwise a fresh one, as in CI."""
  os.environ.setdefault(compilation_cache.ENV_VAR, str(tmp_path_factory.mktemp("jax-cache")))
  return compilation_cache.enable()


@pytest.fixture(scope="session")
def real_images() -> np.ndarray:
  """64 real colour photo crops, uint8 (64, 64, 64, 3)."""
  return helpers.photo_crops(64, 64, seed=0)


@dataclasses.dataclass(frozen=True)
class FinishedRun:
  """A finished smoke run: its config, workdir (read it, never change it) and results."""
  config: object
  workdir: pathlib.Path
  results: dict

  def copy_to(self, path: pathlib.Path) -> pathlib.Path:
    """A copy of the workdir, for a test that changes it (corrupts, resumes, adds to it)."""
    shutil.copytree(self.workdir, path)
    return path


@pytest.fixture(scope="session")
def rotation_smoke(tmp_path_factory) -> FinishedRun:
  """configs/rotation.py:smoke run once on one device (6 steps, checkpoints at 3 and 6, probes
  beside random init), for every test that needs a finished run: eval-only, resume, the
  fine-tune, the workdir errors."""
  workdir = tmp_path_factory.mktemp("rotation-smoke")
  config = helpers.load_config("rotation")
  results = helpers.run_experiment(config, workdir)
  return FinishedRun(config, workdir, results)
