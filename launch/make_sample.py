"""Regenerate the embedded sample's files in sslflax/data/sample/ (run from the repo root).

  apt-get install dataset-fashion-mnist   # Debian's package: Fashion-MNIST, MIT licence
  apt-get install opencv-doc              # Debian's package: OpenCV's sample data (digits.png)
  python launch/make_sample.py

- photos/*.jpg: scikit-image's bundled colour photos (public domain or CC0, see
  skimage.data), longer side scaled to 384 px. The 'photos' config cuts labelled
  colour crops out of them (label = source photo) for pretraining.
- fashion.npz: a class-balanced, seeded subset of Fashion-MNIST (Zalando, MIT
  licence): 300 train and 100 test images per class, 28x28 grayscale.
- digits.png: OpenCV's sheet of 5000 handwritten 20x20 digits (samples/data,
  Apache 2.0 licence), copied as is; the 'digits' config cuts it into 4000/1000.
"""

from __future__ import annotations

import gzip
import pathlib
import shutil

import numpy as np
from PIL import Image

SAMPLE = pathlib.Path(__file__).resolve().parents[1] / "sslflax" / "data" / "sample"
FASHION = pathlib.Path("/usr/share/datasets/fashion-mnist")
PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field",
          "immunohistochemistry")
TRAIN_PER_CLASS, TEST_PER_CLASS = 300, 100
DIGITS = pathlib.Path("/usr/share/doc/opencv-doc/examples/data/digits.png")


def photo(name: str) -> np.ndarray:
  from skimage import data
  return getattr(data, name)()


def read_idx(path: pathlib.Path, offset: int) -> np.ndarray:
  with gzip.open(path, "rb") as f:
    return np.frombuffer(f.read(), np.uint8, offset=offset)


def balanced_subset(labels: np.ndarray, per_class: int, seed: int) -> np.ndarray:
  rng = np.random.default_rng(seed)
  picks = [rng.choice(np.flatnonzero(labels == c), per_class, replace=False) for c in range(10)]
  return np.sort(np.concatenate(picks))


def main() -> None:
  (SAMPLE / "photos").mkdir(parents=True, exist_ok=True)
  for index, name in enumerate(PHOTOS):
    image = Image.fromarray(np.asarray(photo(name))[..., :3])
    image.thumbnail((384, 384), Image.LANCZOS)
    image.save(SAMPLE / "photos" / f"{index}_{name}.jpg", quality=92)
  arrays = {}
  for split, prefix, per_class, seed in (("train", "train", TRAIN_PER_CLASS, 0),
                                         ("test", "t10k", TEST_PER_CLASS, 1)):
    images = read_idx(FASHION / f"{prefix}-images-idx3-ubyte.gz", 16).reshape(-1, 28, 28)
    labels = read_idx(FASHION / f"{prefix}-labels-idx1-ubyte.gz", 8)
    keep = balanced_subset(labels, per_class, seed)
    arrays[f"{split}_images"], arrays[f"{split}_labels"] = images[keep], labels[keep]
  np.savez_compressed(SAMPLE / "fashion.npz", **arrays)
  shutil.copyfile(DIGITS, SAMPLE / "digits.png")
  print("wrote", sorted(p.name for p in SAMPLE.rglob("*") if p.is_file()))


if __name__ == "__main__":
  main()
