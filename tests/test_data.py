"""Input pipelines: mock TFDS datasets, the embedded sample, image folders, fail-fast errors."""

import contextlib
import os
import time
from unittest import mock

import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image

from sslflax import data
from sslflax.data.pipeline import DatasetError, balanced_subset_indices, make_dataset
from tests.helpers import photo_crops


def first(ds):
  return next(ds.as_numpy_iterator())


@contextlib.contextmanager
def mock_prepared(num_examples, data_dir):
  """tfds.testing.mock_data (random images, no files) for datasets that count as prepared."""
  with tfds.testing.mock_data(num_examples=num_examples, data_dir=data_dir), \
       mock.patch.object(tfds.core.DatasetBuilder, "is_prepared", return_value=True):
    yield


@pytest.mark.parametrize("name", ["cifar10", "svhn_cropped", "oxford_flowers102", "imagenette",
                                  "fashion_mnist"])
def test_standard_datasets_give_fixed_uint8_batches(name, tmp_path):
  with mock_prepared(24, str(tmp_path)):
    ds = make_dataset(name, "train", image_size=32, batch_size=8, train=True, seed=0)
    batch = first(ds)
  assert batch["image"].shape == (8, 32, 32, 3) and batch["image"].dtype == np.uint8
  assert batch["label"].shape == (8,) and batch["label"].dtype == np.int32


def test_mock_subsets_are_deterministic(tmp_path):
  with mock_prepared(40, str(tmp_path)):
    def images(**kw):
      ds = make_dataset("cifar10", "train", image_size=16, batch_size=4, train=False, seed=3, **kw)
      return np.concatenate([b["image"] for b in ds.as_numpy_iterator()])
    a, b = images(subset_size=20), images(subset_size=20)
    np.testing.assert_array_equal(a, b)
    assert len(a) == 20


@pytest.mark.parametrize("subset_size", [None, 600])
def test_host_shares_are_disjoint_and_cover_the_split(subset_size):
  def images(host_id):
    ds = make_dataset(data.SAMPLE_DOWNSTREAM, "test", image_size=28, batch_size=100, train=False,
                      host_id=host_id, host_count=2, subset_size=subset_size)
    return [x.tobytes() for b in ds.as_numpy_iterator() for x in b["image"]]
  shares = [images(0), images(1)]
  total = subset_size or 5000
  assert len(shares[0]) + len(shares[1]) == total
  assert abs(len(shares[0]) - len(shares[1])) <= 1
  # Fashion-MNIST has a few duplicate images; the shares must not overlap beyond those.
  assert len(set(shares[0]) & set(shares[1])) <= 2


def test_balanced_subset_indices():
  labels = np.repeat(np.arange(4), [50, 50, 50, 5])
  idx = balanced_subset_indices(labels, 40, seed=0)
  counts = np.bincount(labels[idx], minlength=4)
  assert counts.sum() == 40 and counts[3] == 5 and set(counts[:3]) <= {11, 12}
  np.testing.assert_array_equal(idx, balanced_subset_indices(labels, 40, seed=0))
  assert not np.array_equal(idx, balanced_subset_indices(labels, 40, seed=1))
  with pytest.raises(DatasetError, match="at most 155"):
    balanced_subset_indices(labels, 200, seed=0)


def test_embedded_sample_has_real_colour_photos_and_labelled_fashion():
  photos = first(make_dataset("sslflax_sample/photos", "train", image_size=64, batch_size=64,
                              train=True, seed=0))
  x = photos["image"].astype(np.float32)
  # Real photos: neighbouring pixels are alike (noise would differ by ~85 levels) and in colour.
  assert np.abs(np.diff(x, axis=2)).mean() < 20
  assert np.abs(x[..., 0] - x[..., 2]).mean() > 5
  assert len(set(photos["label"].tolist())) >= 4
  whole = data.get_builder("sslflax_sample/photos").as_dataset(split="train")
  assert min(min(ex["image"].shape[:2]) for ex in whole.as_numpy_iterator()) >= 255  # whole photos
  builder = data.get_builder(data.SAMPLE_DOWNSTREAM)
  assert {s: builder.info.splits[s].num_examples for s in ("train", "validation", "test")} == {
      "train": 3000, "validation": 2000, "test": 5000}
  fashion = first(make_dataset(data.SAMPLE_DOWNSTREAM, "test", image_size=32, batch_size=100,
                               train=False))
  assert fashion["image"].shape == (100, 32, 32, 3)
  np.testing.assert_array_equal(fashion["image"][..., 0], fashion["image"][..., 2])  # gray -> RGB
  assert len(set(fashion["label"].tolist())) == 10


def test_the_pretraining_pool_is_disjoint_from_every_probe_split():
  """20,000 real images that no probe split holds: pretraining never sees a probe image."""
  def images(name, split):
    return tfds.as_numpy(data.get_builder(name).as_dataset(split=split, batch_size=-1))["image"]
  pool = images("sslflax_sample/fashion_pool", "train")
  assert pool.shape == (20000, 28, 28, 1)
  probe = {x.tobytes() for split in ("train", "validation", "test")
           for x in images(data.SAMPLE_DOWNSTREAM, split)}
  assert not any(x.tobytes() in probe for x in pool)
  assert len({x.tobytes() for x in pool}) > 19_990  # Fashion-MNIST repeats a few of its images
  # Clothing on a dark background, not noise: most pixels dark, neighbours alike.
  assert 0.3 < (pool[:500] < 16).mean() < 0.8
  assert np.abs(np.diff(pool[:500].astype(np.float32), axis=2)).mean() < 30


def test_embedded_digits_are_balanced_and_train_test_disjoint():
  builder = data.get_builder("sslflax_sample/digits")
  splits = {s: tfds.as_numpy(builder.as_dataset(split=s, batch_size=-1)) for s in ("train", "test")}
  assert np.bincount(splits["train"]["label"]).tolist() == [400] * 10
  assert np.bincount(splits["test"]["label"]).tolist() == [100] * 10
  train = {x.tobytes() for x in splits["train"]["image"]}
  assert not any(x.tobytes() in train for x in splits["test"]["image"])
  # Handwriting: mostly dark background with bright strokes, not noise.
  assert 0.5 < (splits["test"]["image"] < 32).mean() < 0.95


def make_messy_folder(root):
  crops = photo_crops(6, 40, seed=2)
  for cls in ("cat", "dog"):
    os.makedirs(root / cls)
  for i in range(3):
    Image.fromarray(crops[i]).save(root / "cat" / f"{i}.jpg")
    Image.fromarray(crops[3 + i]).save(root / "dog" / f"{i}.png")
  Image.fromarray(crops[0]).convert("L").save(root / "dog" / "gray.png")
  Image.fromarray(crops[1]).convert("CMYK").save(root / "cat" / "cmyk.jpg")
  Image.fromarray(crops[2][:4, :4]).save(root / "cat" / "tiny.png")
  (root / "cat" / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
  (root / "dog" / "notes.txt").write_text("not an image")


def test_image_folder_with_bad_files_builds_into_the_right_counts(tmp_path, capsys):
  make_messy_folder(tmp_path / "pets")
  builder = data.get_builder(str(tmp_path / "pets"), data_dir=str(tmp_path / "tfds"))
  summary = capsys.readouterr().out
  assert summary.count("\n") == 1  # one line for the whole build
  assert "train 8 images; 2 converted to RGB" in summary
  assert "1 unreadable, 1 under 8 px, 1 not images" in summary
  assert builder.info.features["label"].names == ["cat", "dog"]
  ds = make_dataset(str(tmp_path / "pets"), "train", image_size=32, batch_size=8, train=False,
                    data_dir=str(tmp_path / "tfds"))
  batch = first(ds)
  assert batch["image"].shape == (8, 32, 32, 3)
  assert sorted(batch["label"].tolist()) == [0] * 4 + [1] * 4
  # Built once: a second call reuses it (no summary line printed again).
  data.get_builder(str(tmp_path / "pets"), data_dir=str(tmp_path / "tfds"))
  assert "built" not in capsys.readouterr().out


def test_flat_folder_is_unlabelled(tmp_path):
  os.makedirs(tmp_path / "flat")
  for i, crop in enumerate(photo_crops(4, 32, seed=3)):
    Image.fromarray(crop).save(tmp_path / "flat" / f"{i}.jpg")
  batch = first(make_dataset(str(tmp_path / "flat"), "train", image_size=32, batch_size=4,
                             train=True, data_dir=str(tmp_path / "tfds"), need_labels=False))
  assert batch["image"].shape == (4, 32, 32, 3)
  with pytest.raises(DatasetError, match="has no class labels"):
    make_dataset(str(tmp_path / "flat"), "train", image_size=32, batch_size=4, train=True,
                 data_dir=str(tmp_path / "tfds"))


def test_unprepared_dataset_fails_fast_with_instructions(tmp_path):
  start = time.time()
  with pytest.raises(DatasetError, match=r"imagenet2012.*not prepared.*downloads/manual"):
    data.get_builder("imagenet2012", data_dir=str(tmp_path))
  with pytest.raises(DatasetError, match="tfds build cifar10"):
    data.get_builder("cifar10", data_dir=str(tmp_path))
  assert time.time() - start < 10


def test_unknown_name_bad_split_and_oversized_subset_are_clear_errors(tmp_path):
  with pytest.raises(DatasetError, match="unknown dataset 'cifar11'"):
    data.get_builder("cifar11", data_dir=str(tmp_path))
  with pytest.raises(DatasetError, match="has no split 'valid'"):
    make_dataset(data.SAMPLE_DOWNSTREAM, "valid", image_size=32, batch_size=4, train=False)
  with pytest.raises(DatasetError, match="at most 3000"):
    make_dataset(data.SAMPLE_DOWNSTREAM, "train", image_size=32, batch_size=4, train=False,
                 subset_size=5000)


def test_subsets_are_class_balanced_on_a_multi_shard_dataset(tmp_path):
  """Records sorted by class over 4 shards: a subset chosen by position in one read order and
  filtered in another (the old bug) comes out unbalanced; chosen by identity, it is exact."""
  rng = np.random.default_rng(0)
  for cls in "abcd":
    os.makedirs(tmp_path / "pets" / cls)
    for i in range(40):
      Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(
          tmp_path / "pets" / cls / f"{i:03d}.png")
  builder = data.folder.folder_builder(str(tmp_path / "pets"), str(tmp_path / "tfds"))
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(num_shards=4))
  assert builder.info.splits["train"].num_shards == 4
  for size, seed in ((40, 0), (40, 1), (100, 0)):
    ds = make_dataset(str(tmp_path / "pets"), "train", image_size=16, batch_size=64, train=False,
                      subset_size=size, seed=seed, data_dir=str(tmp_path / "tfds"))
    labels = np.concatenate([b["label"] for b in ds.as_numpy_iterator()])
    assert len(labels) == size
    assert np.bincount(labels, minlength=4).tolist() == [size // 4] * 4


def test_subsets_of_an_unlabelled_folder(tmp_path):
  os.makedirs(tmp_path / "flat")
  for i, crop in enumerate(photo_crops(10, 16, seed=6)):
    Image.fromarray(crop).save(tmp_path / "flat" / f"{i}.png")
  ds = make_dataset(str(tmp_path / "flat"), "train", image_size=16, batch_size=16, train=False,
                    subset_size=4, need_labels=False, data_dir=str(tmp_path / "tfds"))
  images = np.concatenate([b["image"] for b in ds.as_numpy_iterator()])
  assert len(images) == 4 and len({im.tobytes() for im in images}) == 4


def test_squash_keeps_the_whole_image_where_the_crop_cuts_its_sides():
  """linear_eval.squash (the seed's Resize((224, 224)) of Flowers): a 40 x 80 image whose left
  and right fifths are red keeps both in a squashed 32 x 32 (PIL's bilinear resize of the
  whole image), where the central crop of the shorter side at 32 keeps only blue."""
  import tensorflow as tf
  from sslflax.data.pipeline import preprocess
  image = np.zeros((40, 80, 3), np.uint8)
  image[:, :, 2] = 255
  image[:, :16], image[:, 64:] = (255, 0, 0), (255, 0, 0)
  squashed = preprocess(tf.constant(image), 32, train=False, squash=True).numpy()
  cropped = preprocess(tf.constant(image), 32, train=False).numpy()
  assert squashed.shape == cropped.shape == (32, 32, 3)
  expect = np.asarray(Image.fromarray(image).resize((32, 32), Image.BILINEAR))
  np.testing.assert_allclose(squashed.astype(int), expect.astype(int), atol=1)
  assert (squashed[:, :5, 0] == 255).all() and (squashed[:, -5:, 0] == 255).all()
  assert (cropped[..., 0] == 0).all()
  trained = preprocess(tf.constant(image), 32, train=True, seed=tf.constant([0, 1], tf.int64),
                       squash=True).numpy()
  np.testing.assert_array_equal(trained, squashed)  # no random crop when squashing
