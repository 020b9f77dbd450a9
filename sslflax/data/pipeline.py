"""TFDS input pipelines: every dataset, subsets, per-host shares, fixed-shape uint8 batches.

Only decoding, resizing, cropping, shuffling and batching happen on the host
(tf.data); everything task-specific happens on device inside the jitted step.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
import time

import numpy as np

from sslflax import console
from sslflax.errors import DatasetError

console.import_tensorflow_quietly()
import tensorflow as tf  # noqa: E402
import tensorflow_datasets as tfds  # noqa: E402

from sslflax.data import folder, sample_builder  # noqa: E402,F401  (registers sslflax_sample)
from sslflax.log import log

tf.config.set_visible_devices([], "GPU")  # TensorFlow must never take GPU memory from JAX
tfds.disable_progress_bar()

SAMPLE_PRETRAIN = "sslflax_sample/fashion_pool"  # the default pretraining pool
SAMPLE_PHOTOS = "sslflax_sample/photos"  # the colour source (colorization, single images)
SAMPLE_DOWNSTREAM = "sslflax_sample/fashion"
_LOCAL_BUILDERS = ("sslflax_sample",)  # built from files on this machine: never a download


def default_data_dir() -> str:
  return os.environ.get("TFDS_DATA_DIR", os.path.expanduser("~/tensorflow_datasets"))


def is_folder(name: str) -> bool:
  """An image folder (or one image file) is named by its path (or 'folder:PATH'); a TFDS
  name never starts with '/', '.' or '~'."""
  return name.startswith(("folder:", "/", ".", "~")) or os.sep in name and (
      os.path.isdir(os.path.expanduser(name)) or folder.is_image_file(name))


def prepare_instructions(name: str, data_dir: str) -> str:
  """How to make `name` available offline: one actionable sentence."""
  if name.startswith("imagenet2012"):
    manual = os.path.join(data_dir, "downloads", "manual")
    return (f"put ILSVRC2012_img_train.tar and ILSVRC2012_img_val.tar in {manual} and run "
            f"`tfds build imagenet2012 --data_dir={data_dir}` once")
  return (f"run `tfds build {name} --data_dir={data_dir}` on a machine with network access "
          f"and copy {data_dir}/{name.split('/')[0]} here")


def get_builder(name: str, data_dir: str | None = None) -> tfds.core.DatasetBuilder:
  """The prepared builder for `name`; local builders are built on first use.

  Fails in well under a second, never by trying a download, when the dataset
  is unknown or not prepared.
  """
  data_dir = data_dir or default_data_dir()
  if is_folder(name):
    builder = folder.folder_builder(name.removeprefix("folder:"), data_dir)
    if not builder.is_prepared():
      build_locally(builder, name)
    return builder
  try:
    check_config_name(name)
    builder = tfds.builder(name, data_dir=data_dir)
  except tfds.core.registered.DatasetNotFoundError as e:
    raise DatasetError(f"unknown dataset {name!r}: not a TFDS name "
                       f"(e.g. cifar10, svhn_cropped, oxford_flowers102, imagenet2012, "
                       f"{SAMPLE_DOWNSTREAM}) nor an image folder.") from e
  if not builder.is_prepared():
    if name.split("/")[0] in _LOCAL_BUILDERS:
      build_locally(builder, name)
    else:
      raise DatasetError(f"dataset {name!r} is not prepared in {data_dir} and this run will not "
                         f"download it: {prepare_instructions(name, data_dir)}.")
  return builder


def check_config_name(name: str) -> None:
  """'family/config': a config the family does not define fails in one line naming the
  family's configs, not in TFDS's traceback (DatasetNotFoundError for an unknown family
  is left to the caller)."""
  family, _, config = name.partition("/")
  config = config.split(":")[0]  # 'family/config:1.0.0'
  if not config:
    return
  configs = [c.name for c in getattr(tfds.builder_cls(family), "BUILDER_CONFIGS", [])]
  if not configs:
    raise DatasetError(f"dataset {family!r} has no configs; name it {family!r}, "
                       f"not {name!r}.")
  if config not in configs:
    near = difflib.get_close_matches(config, configs, n=1)
    hint = f"did you mean {family}/{near[0]}? " if near else ""
    raise DatasetError(f"dataset {family!r} has no config {config!r}; {hint}"
                       f"its configs are {', '.join(configs)}.")


def build_locally(builder: tfds.core.DatasetBuilder, name: str) -> None:
  """Build a dataset from this machine's files, printing one line instead of TFDS's messages."""
  start = time.time()
  try:
    with console.hidden_stdout():
      builder.download_and_prepare()
  except AssertionError as e:  # TFDS: "No examples were yielded."
    raise DatasetError(f"{name!r} has no usable images ({e}); {folder.LAYOUT_HINT}") from e
  sizes = ", ".join(f"{split} {info.num_examples}" for split, info in builder.info.splits.items())
  detail = getattr(builder, "summary", "")
  log.info(f"[data] built {name} ({sizes} images{'; ' + detail if detail else ''}) into "
           f"{builder.data_dir} in {time.time() - start:.0f} s")


def base_split(split: str) -> str:
  """'train[:10%]' -> 'train'."""
  return re.split(r"[\[+]", split, maxsplit=1)[0]


def check_split(builder: tfds.core.DatasetBuilder, split: str) -> None:
  """Every part of a split expression ('train', 'train+test', 'train[:10%]') exists."""
  splits = sorted(builder.info.splits.keys())
  # A prepared dataset always lists its splits; only tfds.testing.mock_data leaves them unknown.
  if splits and any(base_split(part) not in splits for part in split.split("+")):
    raise DatasetError(f"dataset {builder.info.full_name!r} has no split {split!r}; "
                       f"its splits are {splits}.")


def split_size(builder: tfds.core.DatasetBuilder, split: str) -> int | None:
  """Number of examples in a split expression, None where TFDS does not know it (mocks)."""
  try:
    size = builder.info.splits[split].num_examples
  except (KeyError, ValueError):
    return None
  return size if isinstance(size, int) else None


def num_classes(builder: tfds.core.DatasetBuilder) -> int:
  label = builder.info.features["label"] if "label" in builder.info.features else None
  if label is None or not hasattr(label, "num_classes"):
    raise DatasetError(f"dataset {builder.info.full_name!r} has no class labels; "
                       f"use a labelled dataset here (or a folder with class subfolders).")
  return label.num_classes


def balanced_subset_indices(labels: np.ndarray | None, size: int, seed: int,
                            total: int | None = None) -> np.ndarray:
  """`size` sorted record indices: the same for a seed on every run and host.

  With labels: as even as possible across classes (the remainder goes to
  classes picked at random). Without (labels None, `total` records): a uniform random subset.
  """
  total = len(labels) if labels is not None else total or 0
  if size > total:
    raise DatasetError(f"subset of {size} asked from a split of {total} images; "
                       f"ask for at most {total}.")
  rng = np.random.default_rng(seed)
  if labels is None:
    return np.sort(rng.choice(total, size, replace=False))
  classes = np.unique(labels)
  members = [rng.permutation(np.flatnonzero(labels == c)) for c in classes]
  quota = np.full(len(classes), size // len(classes))
  quota[rng.permutation(len(classes))[: size % len(classes)]] += 1
  # A class smaller than its quota gives its shortfall to the others, round-robin.
  quota = np.minimum(quota, [len(m) for m in members])
  while quota.sum() < size:
    room = np.flatnonzero(quota < [len(m) for m in members])
    quota[room[: size - quota.sum()]] += 1
  return np.sort(np.concatenate([m[:q] for m, q in zip(members, quota)]))


def _ids_and_labels(builder: tfds.core.DatasetBuilder,
                    split: str) -> tuple[np.ndarray, np.ndarray | None]:
  """Every record's stable identity (`tfds_id`: shard file and position) and label, in one
  read with the images left encoded. The subset is chosen on these and selected by identity,
  so it does not depend on the order in which a later read interleaves the shards."""
  has_label = "label" in builder.info.features
  ds = builder.as_dataset(split=split, shuffle_files=False,
                          read_config=tfds.ReadConfig(add_tfds_id=True),
                          decoders={"image": tfds.decode.SkipDecoding()})
  ds = ds.map(lambda ex: (ex["tfds_id"], ex["label"] if has_label else tf.constant(-1, tf.int64)),
              num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  ids, labels = [], []
  for record_ids, label_batch in ds.batch(8192).as_numpy_iterator():  # few Python steps
    ids.append(record_ids)
    labels.append(label_batch)
  ids_array = np.concatenate(ids) if ids else np.array([], dtype=object)
  return ids_array, np.concatenate(labels).astype(np.int64) if has_label and labels else (
      np.zeros(0, np.int64) if has_label else None)


def _subset_dataset(builder: tfds.core.DatasetBuilder, split: str, size: int, seed: int,
                    read: tfds.ReadConfig) -> tf.data.Dataset:
  """The records of a seeded (class-balanced) subset, decoded only after the selection."""
  ids, labels = _ids_and_labels(builder, split)
  chosen = ids[balanced_subset_indices(labels, size, seed, total=len(ids))]
  keep = tf.lookup.StaticHashTable(tf.lookup.KeyValueTensorInitializer(
      tf.constant(list(chosen), tf.string), tf.ones(len(chosen), tf.int64)), default_value=0)
  read = dataclasses.replace(read, add_tfds_id=True)
  ds = builder.as_dataset(split=split, shuffle_files=False, read_config=read,
                          decoders={"image": tfds.decode.SkipDecoding()})
  ds = ds.filter(lambda ex: keep.lookup(ex["tfds_id"]) > 0)
  image_feature = builder.info.features["image"]
  def decode(ex):
    ex = dict(ex)
    del ex["tfds_id"]
    ex["image"] = image_feature.decode_example(ex["image"])
    return ex
  return ds.map(decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def preprocess(image: tf.Tensor, size: int, train: bool, seed: tf.Tensor | None = None,
               resize_to: int | None = None, flip: bool = False,
               squash: bool = False) -> tf.Tensor:
  """Any image -> (size, size, 3) uint8: gray to RGB, shorter side to `resize_to` (default
  `size`), crop (random when training, central otherwise), then, when training with `flip`,
  a horizontal flip with probability 1/2 (the seed's Resize(256), RandomCrop(224),
  RandomHorizontalFlip is resize_to=256, size=224, flip=True). `squash`: the whole image
  resized to size x size instead, its aspect not kept and nothing cropped (the seed's
  Resize((224, 224)) of its downstream sets)."""
  image = image[..., :3]
  if image.shape[-1] == 1:
    image = tf.image.grayscale_to_rgb(image)
  if squash:
    image = tf.image.resize(image, (size, size), antialias=True)
    if train and flip:
      image = tf.image.stateless_random_flip_left_right(image, seed + 1)
    return tf.cast(tf.clip_by_value(tf.round(image), 0, 255), tf.uint8)
  shape = tf.shape(image)
  side = resize_to or size
  scale = side / tf.cast(tf.minimum(shape[0], shape[1]), tf.float32)
  new_hw = tf.maximum(side, tf.cast(tf.math.ceil(tf.cast(shape[:2], tf.float32) * scale), tf.int32))
  image = tf.cond(tf.reduce_all(new_hw == shape[:2]),  # already the size: no resampling pass
                  lambda: tf.cast(image, tf.float32),
                  lambda: tf.image.resize(image, new_hw, antialias=True))
  if train:
    image = tf.image.stateless_random_crop(image, (size, size, 3), seed)
    if flip:
      image = tf.image.stateless_random_flip_left_right(image, seed + 1)
  else:
    top, left = (new_hw[0] - size) // 2, (new_hw[1] - size) // 2
    image = image[top:top + size, left:left + size]
  return tf.cast(tf.clip_by_value(tf.round(image), 0, 255), tf.uint8)


def make_dataset(name: str, split: str, *, image_size: int, batch_size: int, train: bool,
                 seed: int = 0, subset_size: int | None = None, data_dir: str | None = None,
                 host_id: int = 0, host_count: int = 1, skip_batches: int = 0,
                 need_labels: bool = True, resize_to: int | None = None,
                 flip: bool = False, squash: bool = False) -> tf.data.Dataset:
  """Batches {'image': uint8 (B, S, S, 3), 'label': int32 (B,)} of this host's share.

  train=True: shuffled (seeded), repeated forever, random crops, fixed batch
  shape; `skip_batches` resumes the exact stream of an interrupted run.
  train=False: one pass in order, central crops, the last batch may be smaller.
  resize_to, flip, squash: see `preprocess`.
  """
  builder = get_builder(name, data_dir)
  check_split(builder, split)
  if need_labels:
    num_classes(builder)
  read = tfds.ReadConfig(shuffle_seed=seed, interleave_cycle_length=1)  # deterministic order
  if subset_size is not None:
    ds = _subset_dataset(builder, split, subset_size, seed, read)
    ds = ds.shard(host_count, host_id)
  else:
    host_split = tfds.even_splits(split, n=host_count)[host_id] if host_count > 1 else split
    ds = builder.as_dataset(split=host_split, shuffle_files=False, read_config=read)
  has_label = "label" in builder.info.features

  def to_example(index, ex):
    crop_seed = tf.stack([tf.cast(seed, tf.int64), index])
    image = preprocess(ex["image"], image_size, train, crop_seed, resize_to, flip, squash)
    label = tf.cast(ex["label"], tf.int32) if has_label else tf.constant(-1, tf.int32)
    return {"image": image, "label": label}

  if train:
    size = subset_size or split_size(builder, split)
    ds = ds.cache() if size is not None and size < 50_000 else ds  # small sets: decode once
    ds = ds.shuffle(10_000, seed=seed, reshuffle_each_iteration=True).repeat()
    ds = ds.skip(skip_batches * batch_size)
  ds = ds.enumerate().map(to_example, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  ds = ds.batch(batch_size, drop_remainder=train)
  options = tf.data.Options()
  options.deterministic = True
  return ds.with_options(options).prefetch(tf.data.AUTOTUNE)

