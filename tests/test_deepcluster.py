"""DeepCluster against brute force: k-means assignments, PCA whitening, empty-cluster splits,
uniform sampling over clusters, the head reset, and exact resume across clusterings."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from sslflax.tasks import make_task
from sslflax.tasks.deepcluster import (kmeans, nearest_centroid, pca_whiten,
                                       split_empty_clusters, uniform_cluster_order)
from sslflax.train import create_train_state
from sslflax.train.clustering import reset_head
from tests.helpers import (TINY_TASK_OPTIONS, Lines, load_config, photo_crops, run_pretrain,
                           tiny_backbone)


def brute_force_nearest(x: np.ndarray, c: np.ndarray) -> np.ndarray:
  return np.array([np.argmin([np.sum((p - q) ** 2) for q in c]) for p in x])


def test_nearest_centroid_equals_brute_force_across_blocks():
  rng = np.random.default_rng(0)
  x, c = rng.normal(size=(203, 5)), rng.normal(size=(7, 5))
  got = np.asarray(nearest_centroid(jnp.asarray(x, jnp.float32), jnp.asarray(c, jnp.float32),
                                    block=64))  # 4 blocks, the last padded
  np.testing.assert_array_equal(got, brute_force_nearest(x, c))


def test_kmeans_assigns_by_brute_force_and_is_a_fixed_point_of_lloyd():
  rng = np.random.default_rng(1)
  centres = rng.normal(size=(5, 4)) * 20
  truth = rng.integers(0, 5, 500)
  x = centres[truth] + rng.normal(size=(500, 4))
  centroids, assign = kmeans(jax.random.key(0), jnp.asarray(x, jnp.float32), 5, 20)
  centroids, assign = np.asarray(centroids), np.asarray(assign)
  np.testing.assert_array_equal(assign, brute_force_nearest(x, centroids))
  for k in range(5):  # each centroid the mean of its points
    np.testing.assert_allclose(centroids[k], x[assign == k].mean(0), atol=1e-4)
  # Lloyd's iterations never raise the within-cluster sum of squares.
  inertia = lambda iters: float(np.sum((x - np.asarray(kmeans(
      jax.random.key(0), jnp.asarray(x, jnp.float32), 5, iters)[0])[assign_of(iters)]) ** 2))
  assign_of = lambda iters: np.asarray(kmeans(jax.random.key(0), jnp.asarray(x, jnp.float32),
                                              5, iters)[1])
  assert inertia(20) <= inertia(2) <= inertia(1)
  with pytest.raises(ValueError, match="at least 8 points"):
    kmeans(jax.random.key(0), jnp.zeros((4, 2)), 8)


def test_an_empty_cluster_takes_half_of_a_non_empty_one():
  c = jnp.asarray([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]])
  counts = jnp.asarray([0, 1, 9])  # cluster 1 (one point) can't be split: cluster 2 is drawn
  out = np.asarray(split_empty_clusters(jax.random.key(0), c, counts, eps=0.01))
  s = np.array([1, -1, 1])
  np.testing.assert_allclose(out[0], np.array([7, 8, 9]) * (1 + 0.01 * s), rtol=1e-6)
  np.testing.assert_allclose(out[2], np.array([7, 8, 9]) * (1 - 0.01 * s), rtol=1e-6)
  np.testing.assert_array_equal(out[1], c[1])
  # Duplicated points: k-means with more clusters than distinct blobs ends with none empty.
  x = jnp.asarray(np.repeat(np.eye(3), 20, axis=0) + 0.01 * np.random.default_rng(2).normal(size=(60, 3)),
                  jnp.float32)
  _, assign = kmeans(jax.random.key(3), x, 6, 10)
  assert len(np.unique(np.asarray(assign))) == 6


def test_pca_whitening_equals_numpy():
  rng = np.random.default_rng(4)
  x = rng.normal(size=(300, 10)) @ rng.normal(size=(10, 10))
  got = np.asarray(pca_whiten(jnp.asarray(x, jnp.float32), 4))
  xc = x - x.mean(0)
  values, vectors = np.linalg.eigh(xc.T @ xc / len(x))
  top = np.argsort(values)[::-1][:4]
  white = xc @ vectors[:, top] / np.sqrt(values[top] + 1e-5)
  expect = white / np.linalg.norm(white, axis=1, keepdims=True)
  np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, rtol=1e-5)
  # Axes are defined up to sign: compare the Gram matrices.
  np.testing.assert_allclose(got @ got.T, expect @ expect.T, atol=2e-3)


def test_sampling_is_uniform_over_clusters():
  assignments = np.array([0] * 90 + [1] * 9 + [3] * 1)  # cluster 2 empty
  order = uniform_cluster_order(np.random.default_rng(0), assignments, 300)
  counts = np.bincount(assignments[order], minlength=4)
  np.testing.assert_array_equal(counts, [100, 100, 0, 100])
  assert set(order[assignments[order] == 3]) == {99}


def test_head_reset_keeps_the_backbone_and_its_momentum():
  task = make_task("deepcluster", tiny_backbone(), **TINY_TASK_OPTIONS["deepcluster"])
  images = jnp.asarray(photo_crops(8, 32, seed=1))
  tx = optax.sgd(0.1, momentum=0.9)
  state = create_train_state(jax.random.key(0), task, tx, images, jnp.arange(8) % 4)
  grads = jax.tree.map(jnp.ones_like, state.params)
  _, opt_state = tx.update(grads, state.opt_state, state.params)
  state = state.replace(opt_state=opt_state)
  reset = reset_head(state, tx, jax.random.key(1), "head")
  kernel = np.asarray(reset.params["head"]["kernel"])
  assert 0.005 < kernel.std() < 0.02 and not np.any(np.asarray(reset.params["head"]["bias"]))
  jax.tree.map(np.testing.assert_array_equal, reset.params["backbone"], state.params["backbone"])
  momentum = reset.opt_state[0].trace
  assert not np.any(np.asarray(momentum["head"]["kernel"]))  # fresh
  jax.tree.map(np.testing.assert_array_equal, momentum["backbone"],
               state.opt_state[0].trace["backbone"])


def resume_config():
  return load_config("deepcluster", **{"pretrain.steps": 8, "checkpoint.every_steps": 2,
                                       "log_every_steps": 1})


@pytest.fixture(scope="module")
def uninterrupted_deepcluster(tmp_path_factory):
  """The final state of resume_config()'s run, never killed: the reference of both kills."""
  workdir = tmp_path_factory.mktemp("deepcluster-straight")
  return jax.device_get(run_pretrain(resume_config(), workdir)["state"])


@pytest.mark.parametrize("kill_at", [pytest.param(4, marks=pytest.mark.slow), pytest.param(6, marks=pytest.mark.slow)])
def test_resume_across_clusterings_equals_an_uninterrupted_run(uninterrupted_deepcluster,
                                                               tmp_path, kill_at):
  """Killed just after step kill_at's checkpoint (checkpoints every 2 steps and at each epoch's
  end, clusterings every 3): from 4 it resumes mid-epoch on step 3's saved clusters; from 6,
  at an epoch's start, it reclusters the restored state. Both compare with one uninterrupted
  run (a module fixture)."""
  config = resume_config()
  reference = uninterrupted_deepcluster

  def killed(line, **_):
    if f"step {kill_at}/" in line:
      raise KeyboardInterrupt
  with pytest.raises(KeyboardInterrupt):
    run_pretrain(config, tmp_path / "killed", log_to=killed)
  lines = Lines()
  resumed = run_pretrain(config, tmp_path / "killed", log_to=lines)
  assert lines[0].startswith(f"resumed from step {kill_at}")
  resumed = jax.device_get(resumed["state"])
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6),
               resumed.params, reference.params)
  assert sorted(p.name for p in (tmp_path / "killed" / "clusters").iterdir()) == [
      "step_00000003.npy", "step_00000006.npy"]


def single_image_config(**overrides):
  from configs.study import SINGLE_IMAGE
  return load_config("deepcluster", **{"pretrain.dataset": str(SINGLE_IMAGE),
                                       "pretrain.augment.enabled": True,
                                       "pretrain.augment.source_size": 96,
                                       "pretrain.augment.crop_area": (1e-2, 1.0),
                                       "pretrain.subset_size": None,
                                       "task.options.stream_pool": 40, **overrides})


def test_one_image_is_clustered_as_a_seeded_pool_of_its_views():
  """Asano et al.'s single-image DeepCluster: the pool is stream_pool augmented views of the
  one image, varied, at the input size, the same for a seed and different for another."""
  from sslflax.build import augment_from_config, build_run
  from sslflax.train.clustering import stream_pool
  config = single_image_config()
  run = build_run(config)
  pool = stream_pool(run.data, augment_from_config(config), 40, chunk=16)
  size = config.pretrain.image_size
  assert pool.shape == (40, size, size, 3) and pool.dtype == np.uint8
  distinct = {view.tobytes() for view in pool}
  assert len(distinct) == 40  # every view its own crop, not copies of the image
  np.testing.assert_array_equal(pool, stream_pool(run.data, augment_from_config(config), 40,
                                                  chunk=16))
  other = build_run(single_image_config(seed=1))
  assert not np.array_equal(pool, stream_pool(other.data, augment_from_config(config), 40,
                                              chunk=16))


@pytest.mark.slow
def test_deepcluster_pretrains_on_one_image(tmp_path):
  """End to end: clustering the pool of views and training on it (the views are not
  augmented a second time); too few views for the clusters is a one-line error first."""
  from sslflax import checks
  from sslflax.build import build_run
  from sslflax.errors import ConfigError
  lines = Lines()
  out = run_pretrain(single_image_config(), tmp_path, log_to=lines)
  assert int(out["state"].step) == single_image_config().pretrain.steps
  assert any("pool of 40 images" in line for line in lines), lines
  few = build_run(single_image_config(**{"task.options.stream_pool": 4}))
  with pytest.raises(ConfigError, match="stream_pool"):
    checks.check_task_fits(few.task, few.data, few.augment_spec, 1)
