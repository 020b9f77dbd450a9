"""Test set-up: 8 host devices for the data-parallel tests; no network ever."""

import os

# Must happen before JAX initialises its backends.
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")  # TensorFlow stays off any GPU.

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from tests import helpers  # noqa: E402


@pytest.fixture(scope="session")
def real_images() -> np.ndarray:
  """64 real colour photo crops, uint8 (64, 64, 64, 3)."""
  return helpers.photo_crops(64, 64, seed=0)
