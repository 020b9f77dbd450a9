"""Colorization's rebalancing prior measured on the pretraining data, cached by data identity.

Zhang et al. compute the empirical ab distribution p on the training set (ImageNet) and
rebalance the loss with it. The shipped prior (`colorbins.default_prior`) was measured on a
handful of photos; a prior for another dataset is measured here from up to `max_images` of
its images (a seeded subset; ab read at every 4th pixel, as the loss reads it) and cached
beside the prepared dataset, keyed by its name, version, split, image size, count and seed.
"""

from __future__ import annotations

import hashlib
import os

import numpy as np

from sslflax.errors import ConfigError

PRIOR_SOURCES = ("data", "shipped")  # or a path to a (313,) .npy file


def prior_cache_path(builder, split: str, image_size: int, max_images: int, seed: int) -> str:
  """Where the prior of this data (name, version, split, size, count, seed) is cached."""
  identity = f"{builder.info.full_name}|{split}|{image_size}|{max_images}|{seed}"
  key = hashlib.sha1(identity.encode()).hexdigest()[:12]
  return os.path.join(builder.data_dir, f"sslflax_ab_prior_{key}.npy")


def measure_prior(dataset: str, split: str, image_size: int, data_dir: str | None,
                  max_images: int = 2000, seed: int = 0) -> np.ndarray:
  """The smoothed ab distribution (313,) of up to `max_images` images of a split (a seeded
  subset), read from the cache when it was measured before."""
  from sslflax import data as data_lib
  from sslflax.transforms.color import rgb_to_lab
  from sslflax.transforms.colorbins import empirical_prior
  builder = data_lib.get_builder(dataset, data_dir)
  path = prior_cache_path(builder, split, image_size, max_images, seed)
  if os.path.exists(path):
    return np.load(path)
  size = data_lib.pipeline.split_size(builder, split)
  subset = min(max_images, size) if size else None
  ds = data_lib.make_dataset(dataset, split, subset_size=subset, image_size=image_size, batch_size=64, train=False, seed=seed,
                             data_dir=data_dir, need_labels=False)
  stride = 4
  prior = empirical_prior(np.asarray(rgb_to_lab(batch["image"][:, stride // 2::stride,
                                                               stride // 2::stride]))[..., 1:]
                          for batch in ds.as_numpy_iterator())
  try:
    np.save(path, prior)
  except OSError:
    pass  # a read-only data dir: measured again next time
  return prior


def resolve_prior(source: str, dataset: str, split: str, image_size: int,
                  data_dir: str | None, seed: int) -> np.ndarray | None:
  """A colorization prior option (`source`) as an array: 'data' (measured on `split` of the
  pretraining `dataset`, at the host's `image_size`), 'shipped' (None: the task's default)
  or a .npy path."""
  if source == "shipped":
    return None
  if source == "data":
    return measure_prior(dataset, split, image_size, data_dir, seed=seed)
  if isinstance(source, str) and source.endswith(".npy") and os.path.isfile(source):
    prior = np.load(source)
    if prior.shape != (313,) or not np.isclose(prior.sum(), 1.0, atol=1e-3):
      raise ConfigError(f"task.options.prior={source!r} must hold a (313,) distribution summing "
                        f"to 1; it has shape {prior.shape} and sum {prior.sum():.3f}.")
    return prior
  raise ConfigError(f"task.options.prior={source!r}: choose {PRIOR_SOURCES[0]!r}, "
                    f"{PRIOR_SOURCES[1]!r} or the path of a (313,) .npy file.")
