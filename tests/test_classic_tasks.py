"""Relative patch location, exemplar, denoising and multitask against their definitions:
geometry decoded from the pixels, brute-force triplet losses, corruption statistics, and the
multi-task loss and update against the single tasks'."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from sslflax import transforms as T
from sslflax.tasks import make_task
from sslflax.tasks import patch_location as PL
from sslflax.tasks.denoising import denoising_loss
from sslflax.tasks.exemplar import nearest_neighbour_accuracy, triplet_semihard_loss
from sslflax.train import create_train_state, train_step
from tests.helpers import TINY_TASK_OPTIONS, photo_crops, tiny_backbone


def build(name, **options):
  return make_task(name, tiny_backbone(), **{**TINY_TASK_OPTIONS[name], **options})


# --- Relative patch location ------------------------------------------------------------

def coordinate_image(size: int) -> np.ndarray:
  """R = row, G = column, B = 0: every pixel names its own position."""
  rows, cols = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")
  return np.stack([rows, cols, np.zeros_like(rows)], -1).astype(np.uint8)


@pytest.mark.parametrize("size, geometry", [(64, (None, None, None)), (100, (20, 12, 5))])
def test_patch_labels_match_the_geometry_and_patches_never_overlap(size, geometry):
  images = jnp.asarray(np.stack([coordinate_image(size)] * 64))
  patches, labels = PL.make_patch_location_batch(jax.random.key(1), images, *geometry,
                                                 color_guard="none")
  patch, gap, jitter = PL.resolve_geometry(size, *geometry)
  patches = np.asarray(patches)
  assert patches.shape == (64, 9, patch, patch, 3) and labels.shape == (64 * 8,)
  corners = patches[:, :, 0, 0, :2].astype(int)  # (row, col) of each patch's top-left pixel
  # Every patch is a plain crop: its pixels continue from its corner.
  np.testing.assert_array_equal(patches[:, :, -1, -1, :2], corners + patch - 1)
  seen = set()
  for b in range(64):
    for pair, label in enumerate(np.asarray(labels).reshape(64, 8)[b]):
      centre, other = corners[b, PL.CENTRE], corners[b, PL.PAIRS[pair][1]]
      offset = (other - centre) / (patch + gap)  # in cells, within the jitter
      direction = tuple(int(v) for v in np.round(offset))
      assert direction == T.NEIGHBOURS[label], (b, pair, offset)
      assert np.all(np.abs(other - centre - np.array(direction) * (patch + gap)) <= 2 * jitter)
      seen.add(int(label))
    for i in range(9):
      for j in range(i + 1, 9):
        apart = np.abs(corners[b, i] - corners[b, j])
        assert apart.max() >= patch + gap - 2 * jitter >= patch, (b, i, j)  # disjoint, with a gap
  assert seen == set(range(8))
  # The grid moves over the image and patches jitter on their own.
  assert len({tuple(c) for c in corners[:, PL.CENTRE]}) > 5
  relative = corners - corners[:, :1]
  assert len({tuple(r.ravel()) for r in relative}) > 5


def test_patch_grid_that_does_not_fit_is_refused():
  with pytest.raises(ValueError, match="spans 70 px, more than the 64 px image"):
    T.random_patch_grid_offsets(jax.random.key(0), 2, 64, 20, 4, 1)
  with pytest.raises(ValueError, match="gap 2 < 2 x jitter 3"):
    T.random_patch_grid_offsets(jax.random.key(0), 2, 64, 10, 2, 3)
  assert PL.min_image_size(None, None, None) == 18
  assert PL.default_geometry(64) == (15, 7, 1) and PL.default_geometry(224) == (54, 27, 4)


def test_green_magenta_projection_keeps_gray_and_removes_the_axis(real_images):
  gray = T.rgb_to_grayscale(T.to_float(jnp.asarray(real_images[:4])))
  np.testing.assert_allclose(T.project_out_green_magenta(gray), gray, atol=1e-6)
  colour = T.project_out_green_magenta(jnp.asarray(real_images[:4]))
  g_minus_m = 2 * colour[..., 1] - colour[..., 0] - colour[..., 2]
  inside = np.asarray((colour > 1e-3).all(-1) & (colour < 1 - 1e-3).all(-1))  # not clipped
  assert inside.mean() > 0.5
  np.testing.assert_allclose(np.asarray(g_minus_m)[inside], 0.0, atol=1e-5)


def test_color_dropping_keeps_one_channel_and_flattens_the_others(real_images):
  images = T.to_float(jnp.asarray(real_images[:16]))
  dropped = np.asarray(T.random_color_drop(jax.random.key(0), images))
  kept_channels = []
  for b in range(16):
    exact = [np.array_equal(dropped[b, ..., c], np.asarray(images[b, ..., c])) for c in range(3)]
    assert sum(exact) == 1, b
    kept = exact.index(True)
    kept_channels.append(kept)
    for c in set(range(3)) - {kept}:  # noise of 1/100 the kept channel's spread
      assert dropped[b, ..., c].std() <= 0.02 * dropped[b, ..., kept].std() + 1e-6
      np.testing.assert_allclose(dropped[b, ..., c].mean(), dropped[b, ..., kept].mean(),
                                 atol=0.01)
  assert set(kept_channels) == {0, 1, 2}


# --- Exemplar ---------------------------------------------------------------------------

def brute_force_triplet_loss(emb: np.ndarray, labels: np.ndarray, margin: float) -> float:
  d = ((emb[:, None] - emb[None]) ** 2).sum(-1)
  losses = []
  for a in range(len(labels)):
    for p in range(len(labels)):
      if a == p or labels[a] != labels[p]:
        continue
      negatives = [d[a, n] for n in range(len(labels)) if labels[n] != labels[a]]
      semi_hard = [x for x in negatives if x > d[a, p]]
      d_an = min(semi_hard) if semi_hard else max(negatives)
      losses.append(max(d[a, p] - d_an + margin, 0.0))
  return float(np.mean(losses))


@pytest.mark.parametrize("seed", range(4))
def test_triplet_semihard_loss_equals_a_brute_force_loop(seed):
  rng = np.random.default_rng(seed)
  emb = rng.normal(size=(24, 6)).astype(np.float32)
  emb /= np.linalg.norm(emb, axis=1, keepdims=True)
  labels = rng.integers(0, 5, 24)
  for margin in (0.2, 0.5, 2.0):
    np.testing.assert_allclose(
        float(triplet_semihard_loss(jnp.asarray(emb), jnp.asarray(labels), margin)),
        brute_force_triplet_loss(emb.astype(np.float64), labels, margin), rtol=1e-4)
  d = ((emb[:, None] - emb[None]) ** 2).sum(-1) + np.diag(np.full(24, np.inf))
  expect = np.mean(labels[d.argmin(1)] == labels)
  assert float(nearest_neighbour_accuracy(jnp.asarray(emb), jnp.asarray(labels))) == pytest.approx(expect)


def test_triplet_loss_over_8_devices_mines_negatives_from_the_global_batch():
  """Embeddings split over 8 devices: the same loss and gradient as on one, so every view's
  negatives come from all devices. (A whole training step is not compared, as for the other
  tasks: the semi-hard choice is discontinuous, and float round-off in a sharded forward pass
  can pick another negative.)"""
  from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
  rng = np.random.default_rng(0)
  emb = rng.normal(size=(32, 8)).astype(np.float32)
  emb = jnp.asarray(emb / np.linalg.norm(emb, axis=1, keepdims=True))
  labels = jnp.repeat(jnp.arange(8), 4)  # each image's 4 views on one device
  loss_and_grad = jax.value_and_grad(lambda e, l: triplet_semihard_loss(e, l, 0.5))
  single = jax.jit(loss_and_grad)(emb, labels)
  mesh = Mesh(np.array(jax.devices()), ("data",))
  data = NamedSharding(mesh, P("data"))
  sharded = jax.jit(loss_and_grad, in_shardings=(data, data))(emb, labels)
  np.testing.assert_allclose(sharded[0], single[0], rtol=1e-6)
  np.testing.assert_allclose(sharded[1], single[1], atol=1e-6)
  # A device alone holds no negative; the loss is the brute-force one over all 32 views.
  np.testing.assert_allclose(single[0], brute_force_triplet_loss(
      np.asarray(emb, np.float64), np.asarray(labels), 0.5), rtol=1e-4)


def test_triplet_loss_is_zero_for_well_separated_classes():
  emb = jnp.asarray(np.repeat(np.eye(4, dtype=np.float32), 3, axis=0))  # 4 classes x 3 views
  labels = jnp.repeat(jnp.arange(4), 3)
  assert float(triplet_semihard_loss(emb, labels, margin=0.5)) == 0.0  # d_ap = 0, d_an = 2
  assert float(triplet_semihard_loss(emb, labels, margin=3.0)) == pytest.approx(1.0)


def test_exemplar_views_are_transformed_copies_of_their_own_image(real_images):
  import dataclasses
  from sslflax.tasks.exemplar import EXEMPLAR_VIEWS, make_exemplar_batch
  # Geometry only, on flat colours: every view is exactly the colour of the image it names.
  colours = np.array([[230, 20, 20], [20, 230, 20], [20, 20, 230], [200, 200, 30]], np.uint8)
  flat = jnp.asarray(np.broadcast_to(colours[:, None, None], (4, 32, 32, 3)))
  spec = dataclasses.replace(EXEMPLAR_VIEWS, color_prob=0.0)
  views, labels = make_exemplar_batch(jax.random.key(0), flat, copies=5, spec=spec,
                                      grayscale_prob=0.0)
  assert views.shape == (20, 32, 32, 3) and views.dtype == jnp.uint8
  assert np.asarray(labels).tolist() == [i // 5 for i in range(20)]
  np.testing.assert_array_equal(views, np.broadcast_to(colours[np.asarray(labels)][:, None, None],
                                                       views.shape))
  # The full views of real photos: each view of an image draws its own crop, turn and colour.
  task = build("exemplar", copies=5, grayscale_prob=0.0)
  views, _ = task.make_batch(jax.random.key(0), jnp.asarray(real_images[:4, :32, :32]))
  views = np.asarray(views, np.float32).reshape(4, 5, 32, 32, 3)
  assert all(np.abs(views[i, j] - views[i, j + 1]).mean() > 2 for i in range(4) for j in range(4))
  gray, _ = build("exemplar", copies=5, grayscale_prob=1.0).make_batch(
      jax.random.key(0), jnp.asarray(real_images[:4, :32, :32]))
  gray = np.asarray(gray, np.int16)
  assert np.abs(gray[..., 0] - gray[..., 1]).max() <= 1  # grayscale kept through the jitter


@pytest.mark.slow
def test_exemplar_learns_to_match_views_better_than_chance():
  images = jnp.asarray(photo_crops(16, 64, seed=1))
  task = make_task("exemplar", tiny_backbone(dropout=0.0), embed_dim=32)
  tx = optax.adam(1e-3)
  state = create_train_state(jax.random.key(0), task, tx, images)
  step = jax.jit(functools.partial(train_step, task, tx))
  accuracy = []
  for _ in range(60):
    state, metrics = step(state, images, None)
    accuracy.append(float(metrics["accuracy"]))
  print(f"exemplar nearest-view accuracy {np.mean(accuracy[:3]):.2f} -> {np.mean(accuracy[-5:]):.2f}")
  # Chance: 7 of 127 other views share the image (0.055). Measured (-s): 0.24 -> 0.72.
  assert np.mean(accuracy[-5:]) > 0.5 and np.mean(accuracy[-5:]) > 2 * np.mean(accuracy[:3])


# --- Denoising --------------------------------------------------------------------------

def test_masking_noise_zeroes_the_fraction_and_keeps_the_rest(real_images):
  images = jnp.asarray(real_images[:16])
  task = build("denoising", noise="masking", fraction=0.3)
  corrupted, targets = task.make_batch(jax.random.key(0), images)
  where, corrupted = np.asarray(targets["corrupted"]), np.asarray(corrupted)
  assert corrupted.dtype == np.uint8 and where.shape == images.shape
  assert abs(where.mean() - 0.3) < 0.01  # 196,608 components
  assert (corrupted[where] == 0).all()
  np.testing.assert_array_equal(corrupted[~where], real_images[:16][~where])
  assert not where.all(axis=-1).all()  # per component, not per pixel
  np.testing.assert_array_equal(targets["image"], images)


def test_gaussian_noise_has_the_configured_spread(real_images):
  images = jnp.full((8, 64, 64, 3), 128, jnp.uint8)  # mid-gray: no clipping at sigma 0.1
  corrupted, targets = build("denoising", noise="gaussian", sigma=0.1).make_batch(
      jax.random.key(0), images)
  noise = np.asarray(corrupted, np.float32) / 255 - 128 / 255
  assert abs(noise.std() - 0.1) < 0.002 and abs(noise.mean()) < 0.002
  assert np.asarray(targets["corrupted"]).all()


def test_denoising_loss_on_all_or_on_corrupted_components():
  from sslflax.tasks.base import prepare_images
  image = jnp.full((1, 2, 2, 3), 100, jnp.uint8)
  target = prepare_images(image)
  corrupted = jnp.zeros((1, 2, 2, 3), bool).at[0, 0, 0, 0].set(True)  # 1 of 12 components
  prediction = (target + 1.0).at[0, 0, 0, 0].add(2.0)  # error 3 there, 1 elsewhere
  targets = {"image": image, "corrupted": corrupted}
  loss, metrics = denoising_loss(prediction, targets, "all")
  np.testing.assert_allclose(float(loss), (9 + 11) / 12, rtol=1e-5)
  np.testing.assert_allclose(float(metrics["corrupted_mse"]), 9.0, rtol=1e-5)
  np.testing.assert_allclose(float(metrics["intact_mse"]), 1.0, rtol=1e-5)
  loss, _ = denoising_loss(prediction, targets, "corrupted")
  np.testing.assert_allclose(float(loss), 9.0, rtol=1e-5)


@pytest.mark.parametrize("options, fragment", [
    ({"noise": "salt"}, "unknown noise 'salt'"),
    ({"loss_on": "some"}, "unknown loss_on 'some'"),
    ({"fraction": 1.5}, "fraction 1.5"),
])
def test_denoising_options_are_checked(options, fragment):
  with pytest.raises(ValueError, match=fragment):
    build("denoising", **options)


# --- Multitask --------------------------------------------------------------------------

MULTI = dict(TINY_TASK_OPTIONS["multitask"])


def single_task_variables(variables, name):
  return {col: {"backbone": tree["backbone"], **tree[name]} for col, tree in variables.items()}


@pytest.mark.slow
def test_multitask_shares_one_backbone_and_sums_the_single_tasks_losses(real_images):
  images = jnp.asarray(real_images[:8])
  task = make_task("multitask", tiny_backbone(dropout=0.0), **dict(MULTI, weights=(1.0, 0.5, 2.0)))
  inputs, targets = jax.jit(task.make_batch)(jax.random.key(0), images)
  variables = jax.jit(task.model.init)({"params": jax.random.key(1)}, inputs)
  assert set(variables["params"]) == {"backbone", "rotation", "jigsaw", "colorization"}
  assert "conv1" in variables["params"]["backbone"] and "fc6" in variables["params"]["backbone"]
  assert all("backbone" not in variables["params"][t] for t in ("rotation", "jigsaw", "colorization"))
  # Under jit, as in training (eagerly, the four forward passes took most of 20 s).
  loss_of = lambda task: jax.jit(lambda v, x, y: task.loss(task.model.apply(v, x), y))
  loss, metrics = loss_of(task)(variables, inputs, targets)
  expect = 0.0
  for name, weight in (("rotation", 1.0), ("jigsaw", 0.5), ("colorization", 2.0)):
    single = make_task(name, tiny_backbone(dropout=0.0), **MULTI.get(name, {}))
    single_loss, single_metrics = loss_of(single)(single_task_variables(variables, name),
                                                  inputs[name], targets[name])
    np.testing.assert_allclose(float(metrics[f"{name}/loss"]), float(single_loss), rtol=1e-5)
    for key, value in single_metrics.items():
      np.testing.assert_allclose(float(metrics[f"{name}/{key}"]), float(value), rtol=1e-5)
    expect += weight * float(single_loss)
  np.testing.assert_allclose(float(loss), expect, rtol=1e-5)


@pytest.mark.slow
def test_multitask_alternation_updates_with_one_task_per_step_in_turn():
  """SGD: after step s, the shared backbone moved by exactly task (s mod 3)'s gradient, and
  only that task's head moved."""
  images = jnp.asarray(photo_crops(8, 64, seed=3))
  task = make_task("multitask", tiny_backbone(dropout=0.0), **dict(MULTI, combine="alternate"))
  tx = optax.sgd(0.1)
  state = create_train_state(jax.random.key(0), task, tx, images)
  step = jax.jit(functools.partial(train_step, task, tx))
  names = ("rotation", "jigsaw", "colorization")
  for s in range(4):
    active = names[s % 3]
    before = state
    state, metrics = step(state, images, None)
    assert np.isfinite(float(metrics[f"{active}/loss"]))
    assert all(np.isnan(float(metrics[f"{n}/loss"])) for n in names if n != active)
    assert float(metrics["loss"]) == pytest.approx(float(metrics[f"{active}/loss"]))
    for name in names:
      moved = jax.tree.leaves(jax.tree.map(lambda a, b: float(jnp.abs(a - b).max()),
                                           before.params[name], state.params[name]))
      assert (max(moved) > 0) == (name == active), (s, name)
    # The same step taken by the active task alone, on its own variables.
    single = make_task(active, tiny_backbone(dropout=0.0), **MULTI.get(active, {}))
    key = jax.random.fold_in(jax.random.wrap_key_data(before.rng), before.step)
    k_batch, k_dropout = jax.random.split(key)
    k_task = jax.random.split(k_batch, 3)[s % 3]
    rngs = {"dropout": jax.random.fold_in(k_dropout, s % 3)}
    own = single_task_variables({"params": before.params, "batch_stats": before.batch_stats},
                                active)
    # Under jit, as the step is (eagerly, these four gradients took 27 of the test's 37 s).
    @jax.jit
    def single_task_grads(params, batch_stats, k_task, rngs):
      inputs, targets = single.make_batch(k_task, images, None)
      def loss_fn(params):
        out, _ = single.model.apply({"params": params, "batch_stats": batch_stats}, inputs,
                                    train=True, rngs=rngs, mutable=["batch_stats"])
        return single.loss(out, targets)[0]
      return jax.grad(loss_fn)(params)
    grads = single_task_grads(own["params"], own["batch_stats"], k_task, rngs)
    expect = jax.tree.map(lambda p, g: p - 0.1 * g, own["params"]["backbone"], grads["backbone"])
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=2e-5),
                 expect, state.params["backbone"])


@pytest.mark.parametrize("options, fragment", [
    ({"tasks": ("rotation", "spin")}, "multitask tasks ['spin'] are not registered"),
    ({"tasks": ("rotation", "rotation")}, "name one or more different tasks"),
    ({"tasks": ("rotation",), "weights": (1.0, 2.0)}, "one weight per task"),
    ({"tasks": ("rotation",), "jigsaw": {"num_permutations": 8}}, "options ['jigsaw'] name no task"),
    ({"tasks": ("rotation",), "combine": "mix"}, "unknown combine 'mix'"),
    ({"tasks": ("rotation", "moco")}, "multitask cannot combine ['moco'] yet"),
    ({"tasks": ("byol", "deepcluster")}, "multitask cannot combine ['byol', 'deepcluster']"),
    ({"tasks": ("rotation", "swav"), "swav": {"queue_size": 32}}, "cannot combine ['swav']"),
])
def test_multitask_options_are_checked(options, fragment):
  with pytest.raises(ValueError, match=None) as caught:
    make_task("multitask", tiny_backbone(), **options)
  assert fragment in str(caught.value)


def test_multitask_passes_the_step_to_its_tasks():
  """SwAV's prototypes stay frozen for freeze_prototypes_steps, read from the step: inside
  multitask they must train after it (they stayed frozen for ever when the step was lost)."""
  swav = dict(TINY_TASK_OPTIONS["swav"], queue_size=0, freeze_prototypes_steps=1)
  task = make_task("multitask", tiny_backbone(dropout=0.0), tasks=("rotation", "swav"),
                   swav=swav)
  images, labels = jnp.asarray(photo_crops(16, 32, seed=4)), jnp.arange(16) % 4
  tx = optax.sgd(0.1)
  state = create_train_state(jax.random.key(0), task, tx, images, labels)
  step = jax.jit(functools.partial(train_step, task, tx))
  first, _ = step(state, images, labels)
  second, _ = step(first, images, labels)
  prototypes = lambda s: np.asarray(s.params["swav"]["prototypes"])
  np.testing.assert_array_equal(prototypes(first), prototypes(state))  # step 0: frozen
  assert not np.allclose(prototypes(second), prototypes(first))  # step 1: trained
