"""The embedded sample: a TFDS dataset built offline from files shipped in the package.

The semi-supervised setting at toy scale: many unlabelled images, few labels.
- `sslflax_sample/fashion_pool`: 20,000 Fashion-MNIST training images (28x28 gray)
  that are in none of the probe's splits: the default pretraining pool. Labels are
  kept only for the supervised topline; pretext tasks never read them.
- `sslflax_sample/photos`: 6 real colour photos (scikit-image's bundled images,
  longer side 384 px), labelled by photo: the colour source for colorization, and
  the source of single-image streams. Augmented pretraining crops them on the device.
- `sslflax_sample/fashion`: the labelled downstream set for linear probes, class-
  balanced: train 3000 and validation 2000 (Fashion-MNIST's training set), test
  5000 (its test set). Choose settings on validation; report test.
- `sslflax_sample/digits`: OpenCV's 5000 handwritten digits (20x20), 400 train /
  100 test per class: a second downstream set, so a study compares datasets.
Files come from tools/make_sample.py.
"""

from __future__ import annotations

import functools
import importlib.resources
import io
import lzma

import numpy as np
import tensorflow_datasets as tfds

DIGIT = 20  # digits.png: a 50 x 100 grid of 20 px digits, 5 rows per class (0 first)
DIGIT_TEST_ROWS = 1  # the last row of each class is the test split
FASHION_CLASSES = ["t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt",
                   "sneaker", "bag", "ankle_boot"]
SPLITS = {"photos": ("train",), "fashion": ("train", "validation", "test"),
          "fashion_pool": ("train",), "digits": ("train", "test")}


def _sample_files():
  return importlib.resources.files("sslflax.data") / "sample"


def _photo_files():
  return sorted((p for p in (_sample_files() / "photos").iterdir() if p.name.endswith(".jpg")),
                key=lambda p: int(p.name.split("_")[0]))


def _photo_names() -> list[str]:
  return [p.name.split("_", 1)[1][:-4] for p in _photo_files()]


@functools.lru_cache(maxsize=1)
def _fashion_arrays() -> dict[str, np.ndarray]:
  with (_sample_files() / "fashion.npz.xz").open("rb") as f:
    arrays = np.load(io.BytesIO(lzma.decompress(f.read())))
    return {key: arrays[key] for key in arrays.files}


class SslflaxSample(tfds.core.GeneratorBasedBuilder):
  """Real images shipped with sslflax, so a fresh machine with no network can run everything."""

  VERSION = tfds.core.Version("2.0.0")
  RELEASE_NOTES = {"1.0.0": "Photos (6 classes) and a Fashion-MNIST subset (10 classes).",
                   "1.1.0": "OpenCV's handwritten digits (10 classes).",
                   "2.0.0": "A 20,000-image Fashion-MNIST pool; photos whole, not 64 px crops; "
                            "Fashion probe splits of 3000/2000/5000 (train/validation/test)."}
  BUILDER_CONFIGS = [
      tfds.core.BuilderConfig(name="fashion_pool",
                              description="20,000 Fashion-MNIST images for pretraining, 28x28 gray."),
      tfds.core.BuilderConfig(name="photos", description="6 colour photos, longer side 384 px."),
      tfds.core.BuilderConfig(name="fashion",
                              description="Fashion-MNIST probe splits 3000/2000/5000, 28x28 gray."),
      tfds.core.BuilderConfig(name="digits", description="OpenCV handwritten digits, 20x20 gray."),
  ]

  def _info(self) -> tfds.core.DatasetInfo:
    name = self.builder_config.name
    if name == "photos":
      image = tfds.features.Image(shape=(None, None, 3))
      label = tfds.features.ClassLabel(names=_photo_names())
    elif name == "digits":
      image = tfds.features.Image(shape=(DIGIT, DIGIT, 1))
      label = tfds.features.ClassLabel(names=[str(d) for d in range(10)])
    else:
      image = tfds.features.Image(shape=(28, 28, 1))
      label = tfds.features.ClassLabel(names=FASHION_CLASSES)
    return self.dataset_info_from_configs(
        features=tfds.features.FeaturesDict({"image": image, "label": label}),
        supervised_keys=("image", "label"))

  def _split_generators(self, dl_manager):
    del dl_manager  # everything is local
    return {split: self._generate_examples(split) for split in SPLITS[self.builder_config.name]}

  def _generate_examples(self, split: str):
    name = self.builder_config.name
    if name == "photos":
      yield from self._photos()
    elif name == "digits":
      yield from self._digits(split)
    else:
      arrays = _fashion_arrays()
      key = "pool" if name == "fashion_pool" else split
      for i, (image, label) in enumerate(zip(arrays[f"{key}_images"], arrays[f"{key}_labels"])):
        yield i, {"image": image[..., None], "label": int(label)}

  def _photos(self):
    from PIL import Image
    for label, path in enumerate(_photo_files()):
      with path.open("rb") as f:
        yield label, {"image": np.asarray(Image.open(f).convert("RGB")), "label": label}

  def _digits(self, split: str):
    from PIL import Image
    with (_sample_files() / "digits.png").open("rb") as f:
      sheet = np.asarray(Image.open(f).convert("L"))
    rows, cols = sheet.shape[0] // DIGIT, sheet.shape[1] // DIGIT
    rows_per_class = rows // 10
    for row in range(rows):
      label, row_in_class = divmod(row, rows_per_class)
      if (row_in_class >= rows_per_class - DIGIT_TEST_ROWS) != (split == "test"):
        continue
      for col in range(cols):
        tile = sheet[row * DIGIT:(row + 1) * DIGIT, col * DIGIT:(col + 1) * DIGIT]
        yield f"{row}_{col}", {"image": tile[..., None], "label": label}
