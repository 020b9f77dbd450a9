"""Regenerate the embedded sample's files in sslflax/data/sample/ (run from the repo root).

  apt-get install dataset-fashion-mnist   # Debian's package: Fashion-MNIST, MIT licence
  apt-get install opencv-doc              # Debian's package: OpenCV's sample data (digits.png)
  python tools/make_sample.py

- photos/*.jpg: scikit-image's bundled colour photos (public domain or CC0, see
  skimage.data), longer side scaled to 384 px: the colour source that augmented
  streams crop from (colorization), labelled by source photo.
- fashion.npz.xz: Fashion-MNIST (Zalando, MIT licence), 28x28 grayscale, as an
  uncompressed .npz inside xz (about 15% smaller than a compressed .npz):
  - the labelled probe splits, class-balanced and seeded: train 300 per class and
    validation 200 per class from Fashion-MNIST's training set, test 500 per class from
    its test set;
  - pool: 20,000 more training-set images, disjoint from the probe splits and from
    exact duplicates of their images: the unlabelled pretraining pool. Its labels are
    kept only for the supervised topline; pretext tasks never read them.
- digits.png: OpenCV's sheet of 5000 handwritten 20x20 digits (samples/data,
  Apache 2.0 licence), copied as is; the 'digits' config cuts it into 4000/1000.
"""

from __future__ import annotations

import gzip
import io
import lzma
import pathlib
import shutil

import numpy as np
from PIL import Image

SAMPLE = pathlib.Path(__file__).resolve().parents[1] / "sslflax" / "data" / "sample"
FASHION = pathlib.Path("/usr/share/datasets/fashion-mnist")
PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field",
          "immunohistochemistry")
PER_CLASS = {"train": 300, "validation": 200, "test": 500}
POOL_SIZE = 20_000
DIGITS = pathlib.Path("/usr/share/doc/opencv-doc/examples/data/digits.png")


def photo(name: str) -> np.ndarray:
  from skimage import data
  return getattr(data, name)()


def read_idx(path: pathlib.Path, offset: int) -> np.ndarray:
  with gzip.open(path, "rb") as f:
    return np.frombuffer(f.read(), np.uint8, offset=offset)


def fashion(prefix: str) -> tuple[np.ndarray, np.ndarray]:
  images = read_idx(FASHION / f"{prefix}-images-idx3-ubyte.gz", 16).reshape(-1, 28, 28)
  return images, read_idx(FASHION / f"{prefix}-labels-idx1-ubyte.gz", 8)


def balanced_subset(labels: np.ndarray, per_class: int, seed: int,
                    available: np.ndarray | None = None) -> np.ndarray:
  """`per_class` seeded picks per class among the `available` indices (default: all)."""
  rng = np.random.default_rng(seed)
  available = np.ones(len(labels), bool) if available is None else available
  picks = [rng.choice(np.flatnonzero((labels == c) & available), per_class, replace=False)
           for c in range(10)]
  return np.sort(np.concatenate(picks))


def fashion_arrays() -> dict[str, np.ndarray]:
  """Probe splits and the disjoint pretraining pool (see the module docstring)."""
  train_images, train_labels = fashion("train")
  test_images, test_labels = fashion("t10k")
  splits = {}
  free = np.ones(len(train_labels), bool)
  for split, seed in (("train", 0), ("validation", 2)):
    keep = balanced_subset(train_labels, PER_CLASS[split], seed, free)
    free[keep] = False
    splits[split] = (train_images[keep], train_labels[keep])
  keep = balanced_subset(test_labels, PER_CLASS["test"], 1)
  splits["test"] = (test_images[keep], test_labels[keep])
  probe_images = {x.tobytes() for images, _ in splits.values() for x in images}
  free &= np.array([x.tobytes() not in probe_images for x in train_images])
  pool = np.sort(np.random.default_rng(3).choice(np.flatnonzero(free), POOL_SIZE, replace=False))
  splits["pool"] = (train_images[pool], train_labels[pool])
  arrays = {}
  for split, (images, labels) in splits.items():
    arrays[f"{split}_images"], arrays[f"{split}_labels"] = images, labels
  return arrays


def write_xz_npz(path: pathlib.Path, arrays: dict[str, np.ndarray]) -> None:
  buffer = io.BytesIO()
  np.savez(buffer, **arrays)
  path.write_bytes(lzma.compress(buffer.getvalue(), preset=9 | lzma.PRESET_EXTREME))


def main() -> None:
  (SAMPLE / "photos").mkdir(parents=True, exist_ok=True)
  for index, name in enumerate(PHOTOS):
    image = Image.fromarray(np.asarray(photo(name))[..., :3])
    image.thumbnail((384, 384), Image.LANCZOS)
    image.save(SAMPLE / "photos" / f"{index}_{name}.jpg", quality=92)
  write_xz_npz(SAMPLE / "fashion.npz.xz", fashion_arrays())
  (SAMPLE / "fashion.npz").unlink(missing_ok=True)  # the format before the pool
  shutil.copyfile(DIGITS, SAMPLE / "digits.png")
  print("wrote", sorted(f"{p.name} ({p.stat().st_size:,} B)" for p in SAMPLE.rglob("*")
                        if p.is_file()))


if __name__ == "__main__":
  main()
