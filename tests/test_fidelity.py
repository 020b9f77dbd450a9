"""Behaviours the papers and the seed define, each of which an earlier version got wrong:
context's random masks and overlap band, jigsaw's guards, colorization's prior and probe
input, and the paper variant's probe (Flowers' splits, no weight decay)."""

import jax
import jax.numpy as jnp
import numpy as np

from sslflax import experiment
from sslflax import transforms as T
from sslflax.tasks import make_task
from tests.helpers import load_config, run_experiment, tiny_backbone


def test_context_defaults_to_random_blocks_with_a_4px_band_weighted_10x(real_images):
  task = make_task("context", tiny_backbone(), decoder_width=16)
  images = jnp.asarray(real_images[:8])
  _, first = task.make_batch(jax.random.key(0), images)
  _, second = task.make_batch(jax.random.key(1), images)
  mask = np.asarray(first["mask"])
  assert not np.array_equal(mask, np.asarray(second["mask"]))  # random, not the centre
  assert not np.array_equal(mask[0], mask[1])  # drawn per image
  assert 0 < mask.mean() <= 0.25
  np.testing.assert_array_equal(first["band"], T.boundary_band(first["mask"], 4))
  config = load_config("context", None)
  assert (config.task.options.mask_kind, config.task.options.overlap,
          config.task.options.overlap_weight) == ("blocks", 4, 10.0)


def test_random_channel_shift_matches_a_numpy_oracle(real_images):
  images = real_images[:3, :20, :20]
  key = jax.random.key(3)
  shifted = np.asarray(T.random_channel_shift(key, jnp.asarray(images), 2))
  offsets = np.asarray(jax.random.randint(key, (3, 3, 2), 0, 5))
  padded = np.pad(images, ((0, 0), (2, 2), (2, 2), (0, 0)), mode="edge")
  for i in range(3):
    for c in range(3):
      dy, dx = offsets[i, c]
      np.testing.assert_array_equal(shifted[i, ..., c], padded[i, dy:dy + 20, dx:dx + 20, c])
  assert len({tuple(o) for o in offsets.reshape(-1, 2)}) > 1  # channels move apart


def test_jigsaw_shifts_channels_per_tile_normalises_per_channel_and_trains_conv1_at_stride_2(
    real_images):
  gray = np.repeat(real_images[:4, :63, :63].mean(-1, keepdims=True).astype(np.uint8), 3, -1)
  task = make_task("jigsaw", tiny_backbone(), num_permutations=8, tile_features=16, hidden=32,
                   grayscale_prob=0.0)
  tiles, _ = task.make_batch(jax.random.key(0), jnp.asarray(gray))
  tiles = np.asarray(tiles, np.int32)
  # A gray image's channels were equal; after the guard they differ within most tiles.
  differs = (tiles[..., 0] != tiles[..., 1]).any(axis=(-2, -1))
  assert differs.mean() > 0.5
  normed = np.asarray(T.normalize_per_tile(T.to_float(jnp.asarray(tiles, jnp.uint8))))
  np.testing.assert_allclose(normed.mean(axis=(-3, -2)), 0.0, atol=1e-4)
  np.testing.assert_allclose(normed.std(axis=(-3, -2)), 1.0, atol=1e-2)
  trunk = task.model.backbone
  assert trunk.conv1_stride == 2 and tiny_backbone().conv1_stride == 4
  # The same weights serve the probes at stride 4.
  x = jnp.zeros((1, 21, 21, 3), jnp.uint8)
  shapes = lambda m: jax.tree.map(jnp.shape, m.init(jax.random.key(0), x)["params"])
  assert shapes(trunk) == shapes(tiny_backbone().clone(num_fc=0))


def test_colorization_prior_is_measured_on_the_pretraining_data_and_cached(tmp_path):
  from skimage import color as skcolor
  from sslflax import data as data_lib
  from sslflax.data import priors
  from tests.helpers import photo_crops
  from PIL import Image
  (tmp_path / "photos").mkdir()
  crops = photo_crops(6, 32, seed=4)
  for i, crop in enumerate(crops):
    Image.fromarray(crop).save(tmp_path / "photos" / f"{i}.png")
  data_dir = str(tmp_path / "tfds")
  prior = priors.measure_prior(str(tmp_path / "photos"), "train", 32, data_dir)
  stored = data_lib.make_dataset(str(tmp_path / "photos"), "train", image_size=32, batch_size=8,
                                 train=False, data_dir=data_dir, need_labels=False)
  images = next(stored.as_numpy_iterator())["image"]  # the folder keeps JPEG-encoded pixels
  assert len(images) == 6
  ab = skcolor.rgb2lab(images)[:, 2::4, 2::4, 1:]  # an independent Lab conversion
  np.testing.assert_allclose(prior, T.empirical_prior([ab]), atol=2e-3)
  assert not np.allclose(prior, T.default_prior(), atol=2e-3)  # not the shipped prior
  builder = data_lib.get_builder(str(tmp_path / "photos"), data_dir)
  cached = priors.prior_cache_path(builder, "train", 32, 2000, 0)
  np.save(cached, np.full(313, 1 / 313))
  np.testing.assert_allclose(priors.measure_prior(str(tmp_path / "photos"), "train", 32,
                                                  data_dir), 1 / 313)
  assert load_config("colorize", None).task.options.prior == "data"


def test_colorization_is_probed_on_lightness_and_rgb_on_request(real_images):
  from sslflax.tasks.colorization import lightness
  config = load_config("colorize")
  name, fn = experiment.probe_input(config)
  assert name == "lightness" and fn is lightness
  rgb = jnp.asarray(real_images[:2])
  from sslflax.transforms.normalize import IMAGENET_MEAN, IMAGENET_STD
  seen = np.asarray(fn(rgb)) * np.array(IMAGENET_STD) + np.array(IMAGENET_MEAN)
  np.testing.assert_allclose(seen[..., 0], seen[..., 2], atol=1e-5)  # L in all three channels
  from skimage import color as skcolor
  np.testing.assert_allclose(seen[..., 0] * 100, skcolor.rgb2lab(real_images[:2])[..., 0],
                             atol=0.05)
  config.linear_eval.input = "rgb"
  assert experiment.probe_input(config) == ("rgb", None)
  assert experiment.probe_input(load_config("rotation"))[0] == "rgb"


def test_paper_probe_follows_the_seed():
  config = load_config("rotation", "paper")
  le = config.linear_eval
  from sslflax.evaluate.linear import probe_splits
  assert probe_splits(le, "oxford_flowers102") == ("train+test", "validation")
  assert probe_splits(le, "cifar10") == ("train", "test")
  assert le.weight_decay == 0.0


def test_per_dataset_probe_splits_are_used(tmp_path):
  config = load_config("random")
  config.linear_eval.taps = ("conv1",)
  config.linear_eval.splits_per_dataset = (("sslflax_sample/fashion", "validation",
                                            "test[:1000]"),)
  results = run_experiment(config, tmp_path)
  assert results["test_images"]["sslflax_sample/fashion"] == 1000
