"""A folder of images as a TFDS dataset.

  photos/cat/1.jpg, photos/dog/2.png ...   -> labelled (class = subfolder, sorted)
  photos/1.jpg, photos/2.jpg ...           -> unlabelled (for pretraining)
  photos/train/<class>/..., photos/test/<class>/...  -> those splits; otherwise one 'train' split.
  photos/ameyoko.jpg (one image file)      -> a one-image unlabelled dataset (a single-image
                                              stream, with config.pretrain.augment)

Built once into the TFDS data dir and reused; the build key covers the file
list, sizes and times, so a changed folder is rebuilt. Grayscale, palette,
RGBA and CMYK images are converted to RGB; corrupt files, images under
MIN_SIDE px and non-image files are skipped; 16-bit images are scaled to 8 bits. The build's
one line reports the counts.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import io
import os
import re

import numpy as np
import tensorflow_datasets as tfds

from sslflax.errors import DatasetError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm")
SPLIT_NAMES = ("train", "validation", "test")
MIN_SIDE = 8
LAYOUT_HINT = ("give a folder of images (class subfolders for labels, train/test subfolders for "
               f"splits) or one image file; formats: {' '.join(IMAGE_EXTENSIONS)}.")


@dataclasses.dataclass
class FolderConfig(tfds.core.BuilderConfig):
  path: str = ""
  labelled: bool = True
  classes: tuple[str, ...] = ()
  splits: tuple[str, ...] = ("train",)
  split_dirs: bool = False  # True: splits are the train/validation/test subfolders


def _is_image_name(name: str) -> bool:
  return name.lower().endswith(IMAGE_EXTENSIONS)


def _listing(root: str) -> list[str]:
  if os.path.isfile(root):  # a single image file
    return [root]
  out = []
  for dirpath, dirnames, filenames in os.walk(root):
    dirnames.sort()
    out.extend(os.path.join(dirpath, f) for f in sorted(filenames) if not f.startswith("."))
  return out


def is_image_file(path: str) -> bool:
  """A path to one image file (by its extension) is a dataset too."""
  return _is_image_name(path) and os.path.isfile(os.path.expanduser(path))


def describe_folder(path: str) -> FolderConfig:
  """Work out splits, labels and a build key from the folder's layout (or one image file)."""
  path = os.path.abspath(os.path.expanduser(path))
  if is_image_file(path):
    return FolderConfig(name=_config_name(path, [path]), path=path, labelled=False,
                        description=f"The image {path}.")
  if not os.path.isdir(path):
    raise DatasetError(f"image folder {path} does not exist (nor is it an image file); "
                       f"check the path, or name a TFDS dataset without '/' at its start.")
  if not any(_is_image_name(f) for f in _listing(path)):
    raise DatasetError(f"image folder {path} has no image files; {LAYOUT_HINT}")
  subdirs = sorted(d for d in os.listdir(path) if os.path.isdir(os.path.join(path, d))
                   and not d.startswith("."))
  splits = tuple(d for d in SPLIT_NAMES if d in subdirs)
  class_root = os.path.join(path, splits[0]) if splits else path
  classes = tuple(sorted(d for d in os.listdir(class_root)
                         if os.path.isdir(os.path.join(class_root, d)) and not d.startswith(".")))
  return FolderConfig(name=_config_name(path, _listing(path)), path=path, labelled=bool(classes),
                      classes=classes,
                      splits=splits or ("train",), split_dirs=bool(splits),
                      description=f"Images under {path}.")


def _config_name(path: str, files: list[str]) -> str:
  """The folder's name and a key over its files' names, sizes and times (a change rebuilds)."""
  stamp = "\n".join(f"{f}:{os.path.getsize(f)}:{int(os.path.getmtime(f))}" for f in files)
  key = hashlib.sha1(stamp.encode()).hexdigest()[:10]
  base = re.sub(r"[^a-z0-9_]", "_", os.path.basename(path).lower()) or "folder"
  return f"{base}_{key}"


def _gray_to_uint8(gray: np.ndarray, mode: str) -> np.ndarray:
  """16-bit ('I;16*', 'I') gray scaled from 0..65535, float ('F') from 0..1, to 0..255."""
  scale = 255.0 if mode == "F" else 255.0 / 65535.0
  return np.clip(np.round(gray.astype(np.float64) * scale), 0, 255).astype(np.uint8)


def _load_rgb(data: bytes):
  """(RGB uint8 array, 'ok'|'converted') or (None, reason)."""
  from PIL import Image, UnidentifiedImageError
  try:
    with Image.open(io.BytesIO(data)) as image:
      image.load()
      converted = image.mode != "RGB"
      if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, image.convert("RGBA"))
      if image.mode.startswith(("I", "F")):  # 16/32-bit gray: PIL's convert would clip to 255
        array = np.repeat(_gray_to_uint8(np.asarray(image), image.mode)[..., None], 3, -1)
      else:
        array = np.asarray(image.convert("RGB"))
  except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
    return None, "unreadable"
  if min(array.shape[:2]) < MIN_SIDE:
    return None, "too small"
  return array, "converted" if converted else "ok"


class SslflaxFolder(tfds.core.GeneratorBasedBuilder):
  """Images from a local folder (see the module docstring)."""

  VERSION = tfds.core.Version("1.0.0")
  LOCAL_FILES = True  # built from this machine's files: never a download
  BUILDER_CONFIGS = [FolderConfig(name="unset", description="Use folder_builder(path).")]

  def _info(self) -> tfds.core.DatasetInfo:
    cfg = self.builder_config
    features = {"image": tfds.features.Image(shape=(None, None, 3), encoding_format="jpeg")}
    if cfg.labelled:
      features["label"] = tfds.features.ClassLabel(names=list(cfg.classes))
    return self.dataset_info_from_configs(features=tfds.features.FeaturesDict(features))

  def _split_generators(self, dl_manager):
    del dl_manager
    cfg = self.builder_config
    if not cfg.split_dirs:
      return {"train": self._generate_examples(cfg.path, "train")}
    return {s: self._generate_examples(os.path.join(cfg.path, s), s) for s in cfg.splits}

  def _generate_examples(self, root: str, split: str):
    del split
    cfg = self.builder_config
    counts = self.counts
    for path in _listing(root):
      rel = os.path.relpath(path, root) if path != root else os.path.basename(path)
      in_class = os.sep in rel and rel.split(os.sep)[0] in cfg.classes
      if not _is_image_name(path):
        counts["not an image"] += 1
      elif cfg.labelled and not in_class:
        counts["outside a class folder"] += 1
      else:
        with open(path, "rb") as f:
          image, status = _load_rgb(f.read())
        counts[status] += 1
        if image is not None:
          example = {"image": image}
          if cfg.labelled:
            example["label"] = rel.split(os.sep)[0]
          yield rel, example

  @functools.cached_property
  def counts(self) -> dict[str, int]:
    """Files seen by this build, by outcome (summed over splits)."""
    return dict.fromkeys(("ok", "converted", "unreadable", "too small", "not an image",
                          "outside a class folder"), 0)

  @property
  def summary(self) -> str:
    """The build's counts, for its one line."""
    c = self.counts
    return (f"{c['converted']} converted to RGB; skipped {c['unreadable']} unreadable, "
            f"{c['too small']} under {MIN_SIDE} px, {c['not an image']} not images, "
            f"{c['outside a class folder']} outside a class folder")


def folder_builder(path: str, data_dir: str | None = None) -> SslflaxFolder:
  """The (possibly not yet built) TFDS builder for an image folder."""
  return SslflaxFolder(config=describe_folder(path), data_dir=data_dir)
