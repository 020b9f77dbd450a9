"""Small shared helpers for the tests: real images available offline, tiny models."""

from __future__ import annotations

import functools

import numpy as np

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
}


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
