"""Joint-embedding methods (SimCLR, BYOL, MoCo v2, SwAV) and their views, against independent oracles:
numpy losses written from the papers' formulas, scipy's and PIL's filters, exact EMA updates."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from sslflax import transforms as T
from sslflax.tasks import make_task
from sslflax.tasks.byol import byol_loss
from sslflax.tasks.joint import cosine_momentum, ema_update
from sslflax.tasks.moco import enqueue, infonce_loss
from sslflax.tasks.simclr import nt_xent_loss
from sslflax.tasks.swav import sinkhorn, swapped_prediction_loss
from sslflax.train import create_train_state, train_step
from tests.helpers import TINY_TASK_OPTIONS, photo_crops, tiny_backbone


def numpy_nt_xent(z: np.ndarray, t: float) -> float:
  """SimCLR's algorithm 1, loop by loop: l(i, j) = -log exp(s_ij / t) / sum_{k != i} exp(s_ik / t),
  rows 2m and 2m + 1 the two views of image m."""
  z = z / np.linalg.norm(z, axis=1, keepdims=True)
  n = len(z) // 2
  s = z @ z.T
  total = 0.0
  for i in range(2 * n):
    j = i + 1 if i % 2 == 0 else i - 1
    denominator = sum(np.exp(s[i, k] / t) for k in range(2 * n) if k != i)
    total += -np.log(np.exp(s[i, j] / t) / denominator)
  return total / (2 * n)


@pytest.mark.parametrize("t", [0.1, 0.5, 1.0])
def test_nt_xent_equals_a_numpy_loop(t):
  z = np.random.default_rng(0).normal(size=(12, 5)).astype(np.float64)
  loss, accuracy = nt_xent_loss(jnp.asarray(z, jnp.float32), t)
  np.testing.assert_allclose(float(loss), numpy_nt_xent(z, t), rtol=1e-5)
  # Two copies of 6 distinct directions: every positive is the most similar, accuracy 1.
  u = np.random.default_rng(1).normal(size=(6, 8))
  _, accuracy = nt_xent_loss(jnp.asarray(np.stack([u, 2 * u], 1).reshape(12, 8), jnp.float32), t)
  assert float(accuracy) == 1.0


def test_nt_xent_over_8_devices_equals_one_device():
  """The negatives come from the global batch: sharding the views changes nothing."""
  from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
  z = jnp.asarray(np.random.default_rng(2).normal(size=(32, 16)), jnp.float32)
  value_and_grad = jax.value_and_grad(lambda z: nt_xent_loss(z, 0.2)[0])
  single = jax.jit(value_and_grad)(z)
  mesh = Mesh(np.array(jax.devices()), ("data",))
  assert len(jax.devices()) == 8
  sharded = jax.jit(value_and_grad, in_shardings=NamedSharding(mesh, P("data")))(
      jax.device_put(z, NamedSharding(mesh, P("data"))))
  np.testing.assert_allclose(float(single[0]), float(sharded[0]), rtol=1e-6)
  np.testing.assert_allclose(np.asarray(single[1]), np.asarray(sharded[1]), atol=1e-7)
  np.testing.assert_allclose(float(single[0]), numpy_nt_xent(np.asarray(z, np.float64), 0.2),
                             rtol=1e-5)


def test_infonce_equals_a_numpy_loop():
  rng = np.random.default_rng(3)
  q, k, queue = rng.normal(size=(4, 6)), rng.normal(size=(4, 6)), rng.normal(size=(10, 6))
  queue /= np.linalg.norm(queue, axis=1, keepdims=True)
  loss, _ = infonce_loss(jnp.asarray(q, jnp.float32), jnp.asarray(k, jnp.float32),
                         jnp.asarray(queue, jnp.float32), 0.2)
  qn, kn = q / np.linalg.norm(q, axis=1)[:, None], k / np.linalg.norm(k, axis=1)[:, None]
  expect = np.mean([-np.log(np.exp(qn[i] @ kn[i] / 0.2)
                            / (np.exp(qn[i] @ kn[i] / 0.2) + np.exp(queue @ qn[i] / 0.2).sum()))
                    for i in range(4)])
  np.testing.assert_allclose(float(loss), expect, rtol=1e-5)


def test_queue_is_a_ring_buffer_of_the_newest_keys():
  queue, pointer = jnp.zeros((6, 2)), jnp.zeros((), jnp.int32)
  for batch in range(5):
    keys = jnp.full((2, 2), batch + 1.0)
    queue, pointer = enqueue(queue, pointer, keys)
  # Batches 1..5 of 2 keys in 3 slots: the newest three (3, 4, 5), oldest overwritten first.
  np.testing.assert_array_equal(np.asarray(queue)[:, 0], [4, 4, 5, 5, 3, 3])
  assert int(pointer) == 4


def test_byol_loss_equals_the_formula():
  rng = np.random.default_rng(4)
  p, z = rng.normal(size=(6, 5)), rng.normal(size=(6, 5))  # rows 2m, 2m + 1: image m
  unit = lambda x: x / np.linalg.norm(x, axis=1, keepdims=True)
  other = z[[1, 0, 3, 2, 5, 4]]  # the other view's target projection
  cos = np.sum(unit(p) * unit(other), axis=1)
  expect = np.mean([(2 - 2 * cos[2 * m]) + (2 - 2 * cos[2 * m + 1]) for m in range(3)])
  np.testing.assert_allclose(float(byol_loss(jnp.asarray(p), jnp.asarray(z))), expect, rtol=1e-5)
  same = jnp.asarray(other)  # each prediction is the other view's target
  assert float(byol_loss(same, jnp.asarray(z))) == pytest.approx(0.0, abs=1e-5)
  assert float(byol_loss(-same, jnp.asarray(z))) == pytest.approx(8.0, abs=1e-5)


def test_cosine_momentum_schedule():
  assert float(cosine_momentum(0.996, 0, 100)) == pytest.approx(0.996)
  assert float(cosine_momentum(0.996, 50, 100)) == pytest.approx(0.998)
  assert float(cosine_momentum(0.996, 100, 100)) == pytest.approx(1.0)
  assert float(cosine_momentum(0.996, 500, 100)) == pytest.approx(1.0)  # held after the end


@pytest.mark.parametrize("name", ["byol", "moco"])
def test_momentum_encoder_is_an_exact_ema_of_the_updated_online_params(name):
  task = make_task(name, tiny_backbone(dropout=0.0), **TINY_TASK_OPTIONS[name])
  images = jnp.asarray(photo_crops(16, 32, seed=2))
  tx = optax.sgd(0.05)
  state = create_train_state(jax.random.key(0), task, tx, images)
  jax.tree.map(np.testing.assert_array_equal, state.memory["params"], state.params)
  step = jax.jit(functools.partial(train_step, task, tx))
  for s in range(3):
    before = state.memory["params"]
    state, _ = step(state, images, None)
    m = (float(cosine_momentum(0.99, s, 40)) if name == "byol"
         else TINY_TASK_OPTIONS["moco"].get("momentum", 0.999))
    expect = jax.tree.map(lambda t, o: m * np.asarray(t) + (1 - m) * np.asarray(o),
                          before, state.params)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7),
                 state.memory["params"], expect)
  moved = jax.tree.map(lambda a, b: float(np.abs(np.asarray(a) - np.asarray(b)).max()),
                       state.memory["params"], state.params)
  assert max(jax.tree.leaves(moved)) > 0  # the target lags: it is not a copy


def test_moco_enqueues_the_keys_of_each_step():
  task = make_task("moco", tiny_backbone(dropout=0.0), **TINY_TASK_OPTIONS["moco"])
  images = jnp.asarray(photo_crops(16, 32, seed=2))
  tx = optax.sgd(0.05)
  state = create_train_state(jax.random.key(0), task, tx, images)
  queue0 = np.asarray(state.memory["queue"])
  np.testing.assert_allclose(np.linalg.norm(queue0, axis=1), 1.0, rtol=1e-5)
  state, _ = jax.jit(functools.partial(train_step, task, tx))(state, images, None)
  queue1 = np.asarray(state.memory["queue"])
  assert int(state.memory["pointer"]) == 16
  np.testing.assert_array_equal(queue1[16:], queue0[16:])
  assert not np.allclose(queue1[:16], queue0[:16])
  np.testing.assert_allclose(np.linalg.norm(queue1[:16], axis=1), 1.0, rtol=1e-5)


def test_ema_update_leaf_by_leaf():
  out = ema_update({"a": jnp.array([1.0, 2.0])}, {"a": jnp.array([3.0, 6.0])}, 0.75)
  np.testing.assert_allclose(np.asarray(out["a"]), [1.5, 3.0])


# --- SwAV ----------------------------------------------------------------------------------

def numpy_sinkhorn(scores: np.ndarray, eps: float, iterations: int) -> np.ndarray:
  """SwAV's distributed_sinkhorn (main_swav.py) on one process, in float64."""
  q = np.exp(scores / eps).T
  k, b = q.shape
  q /= q.sum()
  for _ in range(iterations):
    q /= q.sum(axis=1, keepdims=True)
    q /= k
    q /= q.sum(axis=0, keepdims=True)
    q /= b
  return (q * b).T


def test_sinkhorn_equals_swavs_code_and_meets_its_marginals():
  rng = np.random.default_rng(7)
  z = rng.normal(size=(64, 8))
  c = rng.normal(size=(10, 8))
  scores = (z / np.linalg.norm(z, axis=1, keepdims=True)) @ (c / np.linalg.norm(c, axis=1,
                                                                               keepdims=True)).T
  codes = np.asarray(sinkhorn(jnp.asarray(scores, jnp.float32), 0.05, 3))
  np.testing.assert_allclose(codes, numpy_sinkhorn(scores, 0.05, 3), rtol=2e-4, atol=1e-6)
  # The last step normalises samples: each row is a distribution over the prototypes.
  np.testing.assert_allclose(codes.sum(axis=1), 1.0, rtol=1e-5)
  # Prototypes get B/K each in the limit; 3 iterations come close, more come closer.
  many = np.asarray(sinkhorn(jnp.asarray(scores, jnp.float32), 0.05, 200))
  np.testing.assert_allclose(many.sum(axis=0), 64 / 10, rtol=1e-3)
  softmax = np.exp(scores / 0.05) / np.exp(scores / 0.05).sum(1, keepdims=True)
  assert np.abs(codes.sum(0) - 6.4).max() < 0.5 * np.abs(softmax.sum(0) - 6.4).max()
  # A constant added to every score cancels (exp(s / eps) alone would overflow float32).
  shifted = np.asarray(sinkhorn(jnp.asarray(scores + 100, jnp.float32), 0.05, 3))
  np.testing.assert_allclose(shifted, codes, rtol=1e-3, atol=1e-6)


def test_sinkhorn_over_8_devices_equals_one_device():
  """Sinkhorn's sums run over the global batch: sharding the samples changes nothing."""
  from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
  scores = jnp.asarray(np.random.default_rng(8).uniform(-1, 1, size=(32, 12)), jnp.float32)
  single = jax.jit(sinkhorn)(scores)
  mesh = Mesh(np.array(jax.devices()), ("data",))
  sharded = jax.jit(sinkhorn, in_shardings=NamedSharding(mesh, P("data")))(
      jax.device_put(scores, NamedSharding(mesh, P("data"))))
  np.testing.assert_allclose(np.asarray(single), np.asarray(sharded), rtol=1e-5, atol=1e-7)


def test_swapped_prediction_equals_a_numpy_loop():
  rng = np.random.default_rng(9)
  scores = rng.uniform(-1, 1, size=(4, 5, 6))  # 2 global + 2 local crops, 5 images, 6 prototypes
  codes = rng.dirichlet(np.ones(6), size=(2, 5))
  loss, _ = swapped_prediction_loss(jnp.asarray(scores, jnp.float32),
                                    jnp.asarray(codes, jnp.float32), 4, 0.1)
  def log_softmax(x):
    x = x / 0.1
    return x - np.log(np.exp(x).sum())
  expect = 0.0
  for g in range(2):
    sub = 0.0
    for v in range(4):
      if v != g:
        sub += np.mean([-(codes[g, i] * log_softmax(scores[v, i])).sum() for i in range(5)])
    expect += sub / 3
  np.testing.assert_allclose(float(loss), expect / 2, rtol=1e-5)


def swav_training(options):
  """A tiny SwAV task, 16 photo crops, its fresh state and its jitted SGD step."""
  task = make_task("swav", tiny_backbone(dropout=0.0), **options)
  images = jnp.asarray(photo_crops(16, 32, seed=2))
  tx = optax.sgd(0.05)
  state = create_train_state(jax.random.key(0), task, tx, images)
  return task, images, state, jax.jit(functools.partial(train_step, task, tx))


def test_swav_queue_keeps_the_newest_global_embeddings_and_joins_sinkhorn_when_full():
  options = dict(TINY_TASK_OPTIONS["swav"], queue_size=32, queue_start_step=0)
  task, images, state, step = swav_training(options)
  assert state.memory["queue"].shape == (2, 32, 16) and int(state.memory["filled"]) == 0
  key = jax.random.fold_in(jax.random.wrap_key_data(state.rng), 0)

  @jax.jit  # compiled like the step, so both sides round alike
  def forward(state, images):
    inputs, _ = task.make_batch(jax.random.split(key)[0], images, None)
    return task.model.apply({"params": state.params, "batch_stats": state.batch_stats},
                            inputs, train=True, mutable=["batch_stats"])[0]

  outputs = forward(state, images)
  state, _ = step(state, images, None)
  queue = np.asarray(state.memory["queue"])
  assert int(state.memory["filled"]) == 16
  # Rows 0..15 of each global crop's queue: that crop's embeddings of this step, in order.
  embeddings = np.asarray(outputs["embeddings"][0]).reshape(16, 2, 16)
  np.testing.assert_allclose(queue[:, :16], embeddings.transpose(1, 0, 2), atol=1e-5)
  np.testing.assert_array_equal(queue[:, 16:], 0)
  read = lambda s, st: task.memory.read(s.memory, None, None, {"frozen": False}, st, None)
  assert not bool(read(state, 1)["use_queue"])  # half full
  state, _ = step(state, images, None)
  np.testing.assert_allclose(np.asarray(state.memory["queue"])[:, 16:], queue[:, :16])  # shifted
  assert bool(read(state, 2)["use_queue"])
  # In use, the queue's scores join Sinkhorn and change the batch's codes, hence the loss.
  targets = read(state, 2)
  with_queue = task.loss(outputs, targets)[0]
  without = task.loss(outputs, dict(targets, use_queue=False))[0]
  assert abs(float(with_queue) - float(without)) > 1e-4
  late = make_task("swav", tiny_backbone(dropout=0.0), **dict(options, queue_start_step=5))
  assert not bool(late.memory.read(state.memory, None, None, {}, 2, None)["use_queue"])


@pytest.mark.slow
def test_swav_freezes_the_prototypes_for_the_first_steps():
  options = dict(TINY_TASK_OPTIONS["swav"], queue_size=0, freeze_prototypes_steps=1)
  task, images, state, step = swav_training(options)
  first, _ = step(state, images, None)
  np.testing.assert_array_equal(first.params["prototypes"], state.params["prototypes"])
  assert not np.allclose(first.params["projector"]["dense1"]["kernel"],
                         state.params["projector"]["dense1"]["kernel"])
  second, _ = step(first, images, None)
  assert not np.allclose(second.params["prototypes"], first.params["prototypes"])
  with pytest.raises(ValueError, match="multiple of the global batch"):
    make_task("swav", tiny_backbone(), queue_size=24).make_batch(jax.random.key(0), images)


# --- views ---------------------------------------------------------------------------------

def test_gaussian_blur_equals_scipy():
  from scipy import ndimage
  images = photo_crops(3, 32, seed=3).astype(np.float32) / 255
  sigmas = np.array([0.5, 1.0, 2.0], np.float32)
  out = np.asarray(T.gaussian_blur(jnp.asarray(images), jnp.asarray(sigmas), 7))
  for image, sigma, got in zip(images, sigmas, out):
    # scipy's 'mirror' is torch's reflect padding; truncate sets the same 3 px radius.
    expect = ndimage.gaussian_filter(image, sigma=(sigma, sigma, 0), mode="mirror",
                                     truncate=3 / sigma)
    np.testing.assert_allclose(got, expect, atol=1e-5)
  with pytest.raises(ValueError, match="odd size"):
    T.gaussian_blur(jnp.asarray(images), jnp.asarray(sigmas), 4)


def test_solarize_equals_pil():
  from PIL import Image, ImageOps
  image = photo_crops(1, 32, seed=4)[0]
  expect = np.asarray(ImageOps.solarize(Image.fromarray(image), threshold=128))
  got = T.quantize(T.solarize(jnp.asarray(image[None])))[0]
  np.testing.assert_array_equal(np.asarray(got), expect)


def numpy_jitter(image, order, factors, angle):
  """torchvision's ColorJitter ops one by one, clipped after each: its gray weights, the full
  image's mean gray as contrast's pivot, the hue shifted in HSV by colorsys, pixel by pixel."""
  import colorsys
  luma = np.array([0.2989, 0.587, 0.114])
  x = image.astype(np.float64)
  for op in order:
    if op == 0:
      x = x * factors[0]
    elif op == 1:
      mean = (x @ luma).mean()
      x = mean + factors[1] * (x - mean)
    elif op == 2:
      gray = (x @ luma)[..., None]
      x = gray + factors[2] * (x - gray)
    else:
      hsv = [colorsys.rgb_to_hsv(*pixel) for pixel in x.reshape(-1, 3)]
      x = np.array([colorsys.hsv_to_rgb((h + angle / 360) % 1.0, s, v) for h, s, v in hsv]
                   ).reshape(x.shape)
    x = np.clip(x, 0, 1)
  return x


def test_view_hue_hsv_and_gray_equal_tf_image():
  """The views' colour conventions are the authors' (torchvision's, tf.image's): HSV hue and
  0.2989/0.587/0.114 gray, checked against tf.image's own implementation."""
  import tensorflow as tf
  images = photo_crops(6, 16, seed=7).astype(np.float32) / 255
  np.testing.assert_allclose(np.asarray(T.rgb_to_hsv(jnp.asarray(images))),
                             tf.image.rgb_to_hsv(images).numpy(), atol=2e-6)
  turns = np.array([-0.5, -0.2, -0.05, 0.1, 0.25, 0.45], np.float32)
  ours = np.asarray(T.adjust_hue(jnp.asarray(images), jnp.asarray(turns)))
  for image, turn, got in zip(images, turns, ours):
    np.testing.assert_allclose(got, tf.image.adjust_hue(image, turn).numpy(), atol=2e-5)
  gray = np.asarray(T.random_grayscale(jax.random.key(0), jnp.asarray(images), 1.0, T.VIEW_LUMA))
  np.testing.assert_allclose(gray, np.repeat(tf.image.rgb_to_grayscale(images).numpy(), 3, -1),
                             atol=1e-6)


def test_color_jitter_applies_the_ops_in_the_drawn_order():
  images = photo_crops(8, 16, seed=5).astype(np.float32) / 255
  order, factors, angles = T.jitter_params(jax.random.key(0), 8, 0.8, 0.8, 0.8, 72.0)
  out = np.asarray(T.color_jitter_in_order(jnp.asarray(images), order, factors, angles))
  for i in range(8):
    expect = numpy_jitter(images[i], np.asarray(order[i]), np.asarray(factors[i]),
                          float(angles[i]))
    np.testing.assert_allclose(out[i], expect, atol=2e-5)
  # Order matters: the reversed order gives another image.
  reverse = np.asarray(T.color_jitter_in_order(jnp.asarray(images), order[:, ::-1], factors,
                                               angles))
  assert np.abs(reverse - out).max() > 0.01  # 0.035: clipping between ops makes it matter


def test_color_jitter_orders_are_uniform_and_factors_in_range():
  order, factors, angles = T.jitter_params(jax.random.key(1), 4800, 0.8, 0.4, 0.2, 36.0)
  counts = np.unique(np.asarray(order), axis=0, return_counts=True)[1]
  assert len(counts) == 24 and counts.min() > 140 and counts.max() < 260  # 200 expected each
  f = np.asarray(factors)
  np.testing.assert_allclose(f.min(0), [0.2, 0.6, 0.8], atol=0.01)
  np.testing.assert_allclose(f.max(0), [1.8, 1.4, 1.2], atol=0.01)
  assert np.abs(np.asarray(angles)).max() <= 36.0
  images = jnp.asarray(photo_crops(400, 8, seed=6))
  out = T.random_color_jitter(jax.random.key(2), images, prob=0.8)
  changed = np.abs(np.asarray(out) - np.asarray(images, np.float32) / 255).max(axis=(1, 2, 3)) > 1e-3
  assert 0.74 < changed.mean() < 0.86


@pytest.mark.slow
def test_views_shapes_and_multi_crop():
  images = jnp.asarray(photo_crops(4, 48, seed=6))
  specs, sizes = T.multi_crop_specs(32, 16, num_local=3)
  views = T.multi_view(jax.random.key(0), images, specs, sizes)
  assert [v.shape for v in views] == [(4, 32, 32, 3)] * 2 + [(4, 16, 16, 3)] * 3
  assert all(v.dtype == jnp.uint8 for v in views)
  assert specs[0].crop_area == (0.14, 1.0) and specs[2].crop_area == (0.05, 0.14)
  a, b = T.multi_view(jax.random.key(1), images, (T.SIMCLR_VIEW,) * 2, (32, 32))
  assert np.abs(np.asarray(a, np.int16) - np.asarray(b, np.int16)).mean() > 5  # independent
  with pytest.raises(ValueError, match="not a probability"):
    T.ViewSpec(blur_prob=1.5)
