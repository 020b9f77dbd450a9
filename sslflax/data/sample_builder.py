"""The embedded sample: a TFDS dataset built offline from files shipped in the package.

Two configs, mirroring the paper's set-up at toy scale:
- `sslflax_sample/photos`: colour crops of 6 real photos (scikit-image's bundled
  images), labelled by source photo: the unlabelled-style pretraining source,
  with colour for colorization.
- `sslflax_sample/fashion`: 3000 train / 1000 test Fashion-MNIST images in
  10 classes: a labelled downstream set for linear evaluation.
- `sslflax_sample/digits`: OpenCV's 5000 handwritten digits (20x20), 400 train /
  100 test per class: a second downstream set, so a study compares datasets.
Files come from launch/make_sample.py; the crops are cut deterministically here.
"""

from __future__ import annotations

import importlib.resources
import io

import numpy as np
import tensorflow_datasets as tfds

CROP = 64
CROPS_PER_PHOTO = {"train": 200, "test": 50}
TEST_FRACTION = 0.25  # the bottom quarter of each photo is kept for the test crops
DIGIT = 20  # digits.png: a 50 x 100 grid of 20 px digits, 5 rows per class (0 first)
DIGIT_TEST_ROWS = 1  # the last row of each class is the test split


def _sample_files():
  return importlib.resources.files("sslflax.data") / "sample"


def _photo_files():
  return sorted((p for p in (_sample_files() / "photos").iterdir() if p.name.endswith(".jpg")),
                key=lambda p: int(p.name.split("_")[0]))


def _photo_names() -> list[str]:
  return [p.name.split("_", 1)[1][:-4] for p in _photo_files()]


class SslflaxSample(tfds.core.GeneratorBasedBuilder):
  """Real images shipped with sslflax, so a fresh machine with no network can run everything."""

  VERSION = tfds.core.Version("1.1.0")
  RELEASE_NOTES = {"1.0.0": "Photos (6 classes) and a Fashion-MNIST subset (10 classes).",
                   "1.1.0": "OpenCV's handwritten digits (10 classes)."}
  BUILDER_CONFIGS = [
      tfds.core.BuilderConfig(name="photos", description="64x64 colour crops of 6 photos."),
      tfds.core.BuilderConfig(name="fashion", description="Fashion-MNIST subset, 28x28 gray."),
      tfds.core.BuilderConfig(name="digits", description="OpenCV handwritten digits, 20x20 gray."),
  ]

  def _info(self) -> tfds.core.DatasetInfo:
    if self.builder_config.name == "photos":
      image = tfds.features.Image(shape=(CROP, CROP, 3))
      label = tfds.features.ClassLabel(names=_photo_names())
    elif self.builder_config.name == "digits":
      image = tfds.features.Image(shape=(DIGIT, DIGIT, 1))
      label = tfds.features.ClassLabel(names=[str(d) for d in range(10)])
    else:
      image = tfds.features.Image(shape=(28, 28, 1))
      label = tfds.features.ClassLabel(names=[
          "t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker",
          "bag", "ankle_boot"])
    return self.dataset_info_from_configs(
        features=tfds.features.FeaturesDict({"image": image, "label": label}),
        supervised_keys=("image", "label"))

  def _split_generators(self, dl_manager):
    del dl_manager  # everything is local
    return {split: self._generate_examples(split) for split in ("train", "test")}

  def _generate_examples(self, split: str):
    if self.builder_config.name == "photos":
      yield from self._photo_crops(split)
    elif self.builder_config.name == "digits":
      yield from self._digits(split)
    else:
      with (_sample_files() / "fashion.npz").open("rb") as f:
        arrays = np.load(io.BytesIO(f.read()))
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
      for i, (image, label) in enumerate(zip(images, labels)):
        yield i, {"image": image[..., None], "label": int(label)}

  def _photo_crops(self, split: str):
    from PIL import Image
    rng = np.random.default_rng(0 if split == "train" else 1)
    for label, path in enumerate(_photo_files()):
      with path.open("rb") as f:
        photo = np.asarray(Image.open(f).convert("RGB"))
      boundary = int(photo.shape[0] * (1 - TEST_FRACTION))
      region = photo[:boundary] if split == "train" else photo[boundary:]
      if region.shape[0] < CROP:  # a short photo: its test strip is padded upward
        region = photo[-CROP:]
      for k in range(CROPS_PER_PHOTO[split]):
        y = rng.integers(0, region.shape[0] - CROP + 1)
        x = rng.integers(0, region.shape[1] - CROP + 1)
        yield f"{label}_{k}", {"image": region[y:y + CROP, x:x + CROP], "label": label}

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
