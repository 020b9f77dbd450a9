"""Small shared helpers for the tests: configs, one-device runs, real images available
offline, tiny models."""

from __future__ import annotations

import functools
import pathlib

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"
FAST_COMPILE = "--xla_backend_optimization_level=0"  # the tests' XLA flag (conftest.py)


def xla_flags(devices: int) -> str:
  """XLA_FLAGS for a test's subprocess: `devices` host devices, compiled as in the tests."""
  return f"--xla_force_host_platform_device_count={devices} {FAST_COMPILE}"


def rerun_at_default_optimisation(request) -> bool:
  """Runs the calling test again in a subprocess compiled at XLA's default optimisation level
  (not FAST_COMPILE) and asserts it passed there; True when it did. False inside that
  subprocess, where the test then runs itself."""
  import os
  import subprocess
  import sys
  flags = os.environ.get("XLA_FLAGS", "")
  if FAST_COMPILE not in flags:
    return False
  env = dict(os.environ, XLA_FLAGS=flags.replace(FAST_COMPILE, "").strip())
  result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           request.node.nodeid], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=900)
  assert result.returncode == 0, result.stdout[-4000:]
  return True


def logged_to(sink=None):
  """sslflax's log lines go to `sink(line)` (a Lines, or a function that raises to kill a
  run at a given line) instead of the console; None: nowhere (sslflax.log.redirect)."""
  from sslflax.log import redirect
  return redirect(sink)


def load_config(name: str, variant: str | None = "smoke", **overrides):
  """configs/<name>.py's config for `variant` (smoke by default), with `overrides` given by
  dotted path: load_config('rotation', **{'pretrain.steps': 3})."""
  from sslflax.configpath import load_config as load
  config = load(str(CONFIGS / f"{name}.py"), variant)
  for path, value in overrides.items():
    node = config
    *parents, last = path.split(".")
    for key in parents:
      node = node[key]
    node[last] = value
  return config


@functools.lru_cache(maxsize=None)
def one_device():
  """A mesh of the first device only. Tests run the engine on it unless sharding is what they
  test: on the 2-core CI machine the 8 host devices (conftest) make every step an 8-way SPMD
  program, about 1.4x slower end to end, for nothing a one-device run would not show."""
  import jax
  from sslflax.train.loop import data_mesh
  return data_mesh(jax.devices()[:1])


def run_experiment(config, workdir, log_to=None, mesh=None):
  """experiment.run on one device (or `mesh`), its lines to `log_to` (see logged_to)."""
  from sslflax import experiment
  with logged_to(log_to):
    return experiment.run(config, str(workdir), mesh=mesh or one_device())


def run_pretrain(config, workdir, log_to=None, mesh=None):
  """experiment.pretrain on one device (or `mesh`), its lines to `log_to` (see logged_to)."""
  from sslflax.build import build_run
  from sslflax.experiment import pretrain
  with logged_to(log_to):
    return pretrain(build_run(config), str(workdir), mesh=mesh or one_device())


class Lines(list):
  """A log sink (logged_to) that keeps every line it is given."""

  def __call__(self, line="", *args, **kwargs) -> None:
    self.append(str(line))

COLLECTIVES = ("all-reduce", "all-gather", "all-to-all", "collective-permute", "reduce-scatter")

PHOTOS = ("astronaut", "chelsea", "coffee", "rocket")


@functools.lru_cache(maxsize=None)
def _photos() -> tuple[np.ndarray, ...]:
  from skimage import data
  return tuple(np.asarray(getattr(data, name)())[..., :3] for name in PHOTOS)


@functools.lru_cache(maxsize=None)
def _scaled_photos(scale: float) -> tuple[np.ndarray, ...]:
  from skimage.transform import rescale
  return tuple((rescale(p, scale, channel_axis=-1, anti_aliasing=True) * 255).astype(np.uint8)
               for p in _photos())


def photo_crops(count: int, size: int, seed: int = 0, scale: float = 0.25) -> np.ndarray:
  """`count` random size x size crops (uint8) of scikit-image's bundled colour photos,
  each photo first downscaled by `scale` so a crop shows whole objects, not texture."""
  rng = np.random.default_rng(seed)
  small = _scaled_photos(scale)
  crops = []
  for i in range(count):
    photo = small[i % len(small)]
    y = rng.integers(0, photo.shape[0] - size + 1)
    x = rng.integers(0, photo.shape[1] - size + 1)
    crops.append(photo[y:y + size, x:x + size])
  return np.stack(crops)


def tiny_backbone(**overrides):
  """An AlexNet-BN small enough for CPU tests."""
  from sslflax.models import AlexNetBN
  kwargs = dict(widths=(16, 32, 32, 32, 32), fc_width=64, pool_size=2)
  kwargs.update(overrides)
  return AlexNetBN(**kwargs)


TINY_TASK_OPTIONS = {
    "rotation": {},
    "supervised": {"num_classes": 4},
    "counting": {"num_counts": 32},
    "jigsaw": {"num_permutations": 8, "tile_features": 64, "hidden": 128},
    "context": {"decoder_width": 16},
    "colorization": {"decoder_width": 32},
    "patch_location": {"tile_features": 64, "hidden": 128},
    "exemplar": {"embed_dim": 32, "copies": 4},
    "denoising": {"decoder_width": 16},
    "multitask": {"tasks": ("rotation", "jigsaw", "colorization"),
                  "jigsaw": {"num_permutations": 8, "tile_features": 64, "hidden": 128},
                  "colorization": {"decoder_width": 32}},
    "simclr": {"hidden": 32, "out": 16},
    "byol": {"hidden": 32, "out": 16, "predictor_hidden": 32, "total_steps": 40},
    "moco": {"hidden": 32, "out": 16, "queue_size": 64},
    "swav": {"hidden": 32, "out": 16, "num_prototypes": 20, "num_local": 2, "local_size": 16,
             "queue_size": 32},
    "deepcluster": {"num_clusters": 4, "pca_dim": 8, "recluster_steps": 3},
    "bigan": {"z_dim": 16, "gan_width": 8},
    "cpc": {"context_blocks": 1},
}


# As their configs: views of one image must agree on one embedding, so no dropout.
NO_DROPOUT = ("exemplar", "simclr", "byol", "moco", "swav")
# MoCo's queue starts as random unit vectors, easy negatives: as the keys of real images
# replace them its loss rises (1.24 over 40 steps with a queue of 4 batches). A queue of one
# batch holds real keys from the second step on.
LEARNING_OPTIONS = {"moco": {"queue_size": 16}}


def fast_for(names, fast=("rotation",)):
  """pytest params of names, all but `fast` marked slow: the fast tier runs one case of a
  per-name test, the full suite runs them all."""
  import pytest
  return [n if n in fast else pytest.param(n, marks=pytest.mark.slow) for n in names]


def learning_setup(name: str):
  """(task, optimiser, images, labels) of a task's learning test on real photos: 16 crops
  at 64 px, labelled by the photo they came from, Adam 1e-3. The one-step test of each task
  (test_tasks.py) builds the very same step, so the full suite compiles it once (the
  persistent compilation cache serves the second)."""
  import jax.numpy as jnp
  import optax
  from sslflax.tasks import make_task
  backbone = tiny_backbone(**({"dropout": 0.0} if name in NO_DROPOUT else {}))
  task = make_task(name, backbone, **{**TINY_TASK_OPTIONS[name], **LEARNING_OPTIONS.get(name, {})})
  images = jnp.asarray(photo_crops(16, 64, seed=1))
  labels = jnp.arange(16) % 4  # the photo each crop came from: a real (4-class) label
  return task, optax.adam(1e-3), images, labels


def assert_arrays_close(x, y, atol: float) -> None:
  """Floats within atol; uint8 pixels equal, but for rare one-level flips.

  A float reduction summed in another order (jit vs eager, one device vs eight) can move a
  value across a rounding boundary before quantisation: one level, in a handful of pixels
  (exemplar's rotated, recoloured views: 1.3e-4 of them, jit against eager).
  """
  x, y = np.asarray(x), np.asarray(y)
  if x.dtype != np.uint8:
    np.testing.assert_allclose(x, y, atol=atol)
    return
  diff = np.abs(x.astype(np.int16) - y.astype(np.int16))
  assert diff.max() <= 1 and (diff > 0).mean() < 5e-4, (diff.max(), (diff > 0).mean())


def sharded_over_8_devices(make_batch):
  """make_batch jitted with the images and labels split over the 8 host devices, the key replicated."""
  import jax
  from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
  assert jax.device_count() == 8, "conftest sets 8 host devices"
  mesh = Mesh(np.array(jax.devices()), ("data",))
  data = NamedSharding(mesh, P("data"))
  return jax.jit(make_batch, in_shardings=(NamedSharding(mesh, P()), data, data))
