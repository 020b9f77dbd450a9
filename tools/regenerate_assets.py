"""Regenerate the data files shipped in sslflax/assets/ (run from the repo root).

  python tools/regenerate_assets.py

- permutations_1000.npy: the greedy maximal-Hamming set of 1000 permutations of 9 (seed 0).
- ab_prior_313.npy: the smoothed empirical ab-bin distribution of scikit-image's
  colour photos (the default colorization prior; recompute one for your data with
  sslflax.transforms.empirical_prior).
"""

from __future__ import annotations

import pathlib
import time

import numpy as np

from sslflax.transforms import color, colorbins, permutations

ASSETS = pathlib.Path(__file__).resolve().parents[1] / "sslflax" / "assets"
SKIMAGE_COLOUR_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field",
                         "immunohistochemistry", "retina", "colorwheel", "cat", "logo")


def colour_photos():
  """scikit-image's bundled colour photos as float RGB arrays in [0, 1]."""
  from skimage import data
  for name in SKIMAGE_COLOUR_PHOTOS:
    loader = getattr(data, name, None)
    if loader is None:
      continue
    image = np.asarray(loader())
    if image.ndim == 3 and image.shape[-1] >= 3:
      yield name, image[..., :3].astype(np.float32) / 255.0


def main() -> None:
  ASSETS.mkdir(parents=True, exist_ok=True)
  start = time.time()
  perms = permutations.maximal_hamming_permutations(1000, 9, permutations.SHIPPED_SEED)
  np.save(ASSETS / "permutations_1000.npy", perms.astype(np.int8))
  stats = permutations.hamming_stats(perms)
  print(f"permutations_1000.npy: {perms.shape}, min Hamming {stats['min']:.0f}, "
        f"mean {stats['mean']:.3f}, {time.time() - start:.1f}s")

  names, abs_ = [], []
  for name, image in colour_photos():
    names.append(name)
    abs_.append(np.asarray(color.rgb_to_lab(image))[..., 1:])
  prior = colorbins.empirical_prior(abs_)
  np.save(ASSETS / "ab_prior_313.npy", prior)
  print(f"ab_prior_313.npy: from {names}; {np.count_nonzero(prior > 1e-6)} bins above 1e-6")


if __name__ == "__main__":
  main()
