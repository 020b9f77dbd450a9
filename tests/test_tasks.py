"""Every task's batch builder: jit == eager, 8-device sharded == 1 device; losses against formulas."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sslflax.tasks import make_task, registered_tasks
from sslflax.tasks.context import context_loss
from sslflax.tasks.counting import counting_loss
from tests.helpers import (COLLECTIVES, TINY_TASK_OPTIONS, assert_arrays_close, fast_for,
                           sharded_over_8_devices, tiny_backbone)

TASKS = sorted(TINY_TASK_OPTIONS)


def build(name, **options):
  return make_task(name, tiny_backbone(), **{**TINY_TASK_OPTIONS[name], **options})


def test_every_task_registered():
  assert set(registered_tasks()) == set(TASKS)
  with pytest.raises(ValueError, match="unknown task 'spin'"):
    make_task("spin", tiny_backbone())


def assert_trees_close(a, b, atol=1e-5):
  jax.tree.map(lambda x, y: assert_arrays_close(x, y, atol), a, b)


@pytest.mark.parametrize("name", fast_for(TASKS, fast=("rotation", "jigsaw")))
def test_batch_builder_jit_equals_eager(name, real_images):
  task = build(name)
  images, labels = jnp.asarray(real_images[:8]), jnp.arange(8) % 4
  eager = task.make_batch(jax.random.key(0), images, labels)
  jitted = jax.jit(task.make_batch)(jax.random.key(0), images, labels)
  assert_trees_close(eager, jitted, atol=2e-4)


@pytest.mark.parametrize("name", fast_for(TASKS, fast=("rotation", "jigsaw")))
def test_batch_builder_sharded_over_8_devices_equals_one(name, real_images):
  task = build(name)
  images, labels = jnp.asarray(real_images[:16]), jnp.arange(16) % 4
  single = jax.jit(task.make_batch)(jax.random.key(0), images, labels)
  sharded = sharded_over_8_devices(task.make_batch)(jax.random.key(0), images, labels)
  assert_trees_close(single, sharded, atol=2e-4)


@pytest.mark.parametrize("name", fast_for(TASKS, fast=("rotation", "jigsaw")))
def test_batch_builder_on_a_sharded_batch_needs_no_collectives(name, real_images):
  """Data parallel: each device builds the batch from its own shard, with no traffic.

  4 images per device: counting's runs of 4 images (one per filter) then fit in a shard.
  """
  hlo = sharded_over_8_devices(build(name).make_batch).lower(
      jax.random.key(0), jnp.asarray(real_images[:32]), jnp.arange(32) % 4).compile().as_text()
  assert not [op for op in COLLECTIVES if op in hlo], name


@pytest.mark.parametrize("name", TASKS)
def test_every_task_trains_a_step_with_a_finite_loss(name):
  """Each task's batch, forward, loss and update in one jitted train_step on the tiny AlexNet
  (test_learning.py's first step): finite loss and metrics, the backbone under 'backbone',
  and parameters that move. (Merged: the eager forward-and-loss check of each task is this
  step's forward and loss.)"""
  import functools
  from sslflax.train import create_train_state, train_step
  from tests.helpers import learning_setup
  task, tx, images, labels = learning_setup(name)
  state = create_train_state(jax.random.key(0), task, tx, images, labels)
  new, metrics = jax.jit(functools.partial(train_step, task, tx))(state, images, labels)
  values = {k: float(v) for k, v in metrics.items()}
  assert all(np.isfinite(v) for v in values.values()), values
  assert "backbone" in state.params
  moved = jax.tree.map(lambda a, b: float(np.abs(np.asarray(a) - np.asarray(b)).max()),
                       new.params, state.params)
  assert max(jax.tree.leaves(moved)) > 0


def test_rotation_targets_and_inputs(real_images):
  inputs, targets = build("rotation").make_batch(None, jnp.asarray(real_images[:2]))
  assert inputs.shape == (8, 64, 64, 3) and inputs.dtype == jnp.uint8
  assert targets.tolist() == [0, 1, 2, 3, 0, 1, 2, 3]
  np.testing.assert_array_equal(inputs[1], np.rot90(real_images[0]))


def test_counting_tiles_and_downsample_share_one_colour_change(real_images):
  from sslflax import transforms as T
  inputs, _ = build("counting").make_batch(jax.random.key(0), jnp.asarray(real_images[:8]))
  tiles, down = np.asarray(inputs["tiles"], np.float32), np.asarray(inputs["down"], np.float32)
  assert inputs["tiles"].dtype == jnp.uint8 and tiles.shape == (8, 4, 32, 32, 3)
  whole = np.asarray(T.untile_grid(jnp.asarray(tiles), 2))
  # D(x) of the jittered image is close to the 2x2 box-average of the jittered tiles.
  box = whole.reshape(8, 32, 2, 32, 2, 3).mean(axis=(2, 4))
  assert np.mean(np.abs(box - down)) < 12
  assert np.mean(np.abs(whole - real_images[:8])) > 3  # the colours did change


def test_jigsaw_target_names_the_permutation_applied(real_images):
  from sslflax.transforms import invert_permutation, load_permutations, apply_permutation
  images = jnp.asarray(real_images[:6, :63, :63])
  # Turn off colour randomness to compare tiles by content.
  from sslflax.tasks.jigsaw import make_jigsaw_batch
  perms = jnp.asarray(load_permutations(24))
  tiles, index = make_jigsaw_batch(jax.random.key(0), images, perms, 3, 21, 0.0, 0.0)
  unshuffled = apply_permutation(tiles, invert_permutation(perms[index]))
  from sslflax.transforms import tile_grid
  assert tiles.dtype == jnp.uint8
  np.testing.assert_array_equal(unshuffled, tile_grid(images, 3))


def test_counting_loss_equals_formula_on_hand_made_case():
  down = jnp.array([[1.0, 2.0], [0.0, 1.0]])
  tiles = jnp.array([[[0.5, 0.5], [0.5, 0.5], [0.0, 0.5], [0.0, 0.5]],
                     [[0.0, 0.0], [0.0, 0.0], [0.0, 0.0], [1.0, 3.0]]])
  # tile sums: [1, 2] and [1, 3]; y for image 0 is image 1 (roll by 1) and vice versa.
  pos = np.array([0.0, 1.0 + 4.0])
  neg = np.array([(0 - 1) ** 2 + (1 - 2) ** 2, (1 - 1) ** 2 + (2 - 3) ** 2])
  expect = np.mean(pos + np.maximum(0.0, 10.0 - neg))
  loss, metrics = counting_loss({"down": down, "tiles": tiles}, None, margin=10.0)
  np.testing.assert_allclose(float(loss), expect, rtol=1e-6)
  assert float(metrics["accuracy"]) == 0.5


def test_context_loss_only_counts_hidden_pixels_and_weights_the_band():
  from sslflax.tasks.base import prepare_images
  image = jnp.full((1, 4, 4, 3), 128, jnp.uint8)
  target = prepare_images(image)
  mask = jnp.zeros((1, 4, 4), bool).at[0, 1:3, 1:3].set(True)
  band = jnp.zeros((1, 4, 4), bool).at[0, 0, 0].set(True)
  pred = target + 5.0                   # wrong by 5 everywhere ...
  pred = pred.at[0, 1:3, 1:3].add(-3.0)  # ... but by 2 on the hidden square
  no_band = {"image": image, "mask": mask, "band": jnp.zeros_like(band)}
  loss, metrics = context_loss(pred, no_band)
  np.testing.assert_allclose(float(loss), 4.0, rtol=1e-5)
  loss, metrics = context_loss(pred, dict(no_band, band=band), overlap_weight=10.0)
  np.testing.assert_allclose(float(loss), (4 * 4.0 + 10 * 25.0) / 14, rtol=1e-5)
  np.testing.assert_allclose(float(metrics["masked_mse"]), 4.0, rtol=1e-5)


def test_context_inputs_hide_the_center_with_the_mean(real_images):
  central = build("context", mask_kind="central", overlap=0)
  inputs, targets = central.make_batch(jax.random.key(0), jnp.asarray(real_images[:2]))
  center = np.asarray(inputs[:, 16:48, 16:48])
  np.testing.assert_array_equal(center, np.broadcast_to([124, 116, 104], center.shape))  # ImageNet mean
  assert int(targets["mask"].sum()) == 2 * 32 * 32
  np.testing.assert_array_equal(np.asarray(inputs)[:, :16], real_images[:2, :16])


def test_colorization_targets_are_soft_and_weighted(real_images):
  from skimage import color as skcolor
  from sslflax import transforms as T
  images = real_images[:2]
  inputs, targets = build("colorization").make_batch(None, jnp.asarray(images))
  lab = skcolor.rgb2lab(images)
  np.testing.assert_allclose(inputs[..., 0], lab[..., 0], atol=0.01)  # only L reaches the net
  assert targets["bins"].shape == (2, 16, 16, 5)
  np.testing.assert_allclose(targets["weights"].sum(-1), 1.0, atol=1e-5)
  expect = T.soft_encode(jnp.asarray(lab[:, 2::4, 2::4, 1:], jnp.float32), jnp.asarray(T.ab_bins()))
  dense = np.zeros((2, 16, 16, 313), np.float32)
  np.put_along_axis(dense, np.asarray(targets["bins"]), np.asarray(targets["weights"]), -1)
  np.testing.assert_allclose(dense, expect, atol=1e-3)
  assert float(targets["pixel_weight"].min()) > 0


def test_supervised_requires_labels(real_images):
  with pytest.raises(ValueError, match="needs labels"):
    build("supervised").make_batch(None, jnp.asarray(real_images[:2]), None)
