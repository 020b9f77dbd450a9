"""DeepCluster's outer loop (sslflax.tasks.deepcluster): every clustering.every_steps, cluster
the features of the whole pool on device, re-initialise the classifier head, then train on
batches drawn uniformly over the clusters, with the clusters as labels.

The pool is held in host memory at the pretraining input size (20,000 x 64 px: 250 MB; an
ImageNet subset of 30K at 224 px: 4.5 GB). With an augmented stream (one image, Asano et al.
2020) the pool is clustering.stream_pool views of its source, drawn once from the seed, as
Asano et al. built a dataset of crops of the one image before training DeepCluster on it. Each clustering's assignment is written to
WORKDIR/clusters/step_<S>.npy before any step trains on it, so a killed run resumes
mid-epoch on the same clusters and takes the same steps; at an epoch's first step the
clustering is recomputed from the restored state, which gives the same one.
"""

from __future__ import annotations

import math
import os
from typing import Iterator

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
from jax.tree_util import DictKey

from sslflax import data as data_lib
from sslflax.build import PretrainData
from sslflax.errors import CheckpointError, ConfigError
from sslflax.tasks.base import Task
from sslflax.tasks.deepcluster import head_init, uniform_cluster_order
from sslflax.train.state import TrainState
from sslflax.train.step import Augment
from sslflax.log import log

CLUSTER_STREAM = 3  # fold_in(seed key, this) then the step: k-means and head draws
POOL_STREAM = 4  # fold_in(seed key, this): the views of an augmented stream's pool


def load_pool(data: PretrainData, image_size: int | None = None) -> np.ndarray:
  """Every image of the pretraining set (its subset), central crops at image_size (None:
  the input size)."""
  ds = data_lib.make_dataset(data.dataset, data.split, image_size=image_size or data.image_size,
                             batch_size=1024, train=False, seed=data.seed,
                             subset_size=data.subset_size, data_dir=data.data_dir,
                             need_labels=False, resize_to=data.resize_to)
  return np.concatenate([batch["image"] for batch in ds.as_numpy_iterator()])


def stream_pool(data: PretrainData, augment: Augment, count: int, chunk: int = 512) -> np.ndarray:
  """`count` augmented views of the stream's source images (one image file: copies of it),
  each chunk drawn with its own key from the seed: the same pool on every run and resume."""
  sources = load_pool(data, data.host_image_size)
  key = jax.random.fold_in(jax.random.key(data.seed), POOL_STREAM)
  draw = jax.jit(augment)
  parts = []
  for i, start in enumerate(range(0, count, chunk)):
    rows = np.arange(start, min(start + chunk, count)) % len(sources)
    parts.append(np.asarray(draw(jax.random.fold_in(key, i), jnp.asarray(sources[rows]))))
  return np.concatenate(parts)


def pool_features(task: Task, state: TrainState, pool: np.ndarray, mesh: Mesh,
                  batch_size: int = 512) -> jax.Array:
  """(N, D) features of every pool image (eval mode), computed sharded over the mesh."""
  batch_size = -(-batch_size // mesh.size) * mesh.size
  data = NamedSharding(mesh, P("data"))
  fn = jax.jit(task.clustering.features, out_shardings=NamedSharding(mesh, P()))
  variables = {"params": state.params, "batch_stats": state.batch_stats}
  parts = []
  for start in range(0, len(pool), batch_size):
    chunk = pool[start:start + batch_size]
    padded = np.zeros((batch_size,) + pool.shape[1:], pool.dtype)
    padded[:len(chunk)] = chunk
    parts.append(fn(variables, jax.device_put(padded, data))[:len(chunk)])
  return jnp.concatenate(parts)


def reset_head(state: TrainState, tx, rng: jax.Array, head: str) -> TrainState:
  """The head re-initialised (N(0, 0.01), bias 0) and its optimiser state fresh; the rest of
  the parameters and of the optimiser state (momentum of the backbone) kept."""
  params = dict(state.params)
  params[head] = head_init(rng, state.params[head]["kernel"].shape)
  fresh = tx.init(params)
  is_head = lambda path: any(isinstance(k, DictKey) and k.key == head for k in path)
  opt_state = jax.tree_util.tree_map_with_path(
      lambda path, old, new: new if is_head(path) else old, state.opt_state, fresh)
  return state.replace(params=params, opt_state=opt_state)


def cluster_file(workdir: str, step: int) -> str:
  """Where the clustering made at `step` is saved."""
  return os.path.join(workdir, "clusters", f"step_{step:08d}.npy")


def save_assignments(workdir: str, step: int, assignments: np.ndarray, keep: int = 2) -> None:
  """Atomically (a temporary file renamed), keeping the newest `keep` clusterings."""
  path = cluster_file(workdir, step)
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path + ".tmp", "wb") as f:
    np.save(f, assignments)
  os.replace(path + ".tmp", path)
  folder = os.path.dirname(path)
  for old in sorted(n for n in os.listdir(folder) if n.endswith(".npy"))[:-keep]:
    os.remove(os.path.join(folder, old))


def recluster(task: Task, state: TrainState, tx, pool: np.ndarray, mesh: Mesh, seed: int,
              ) -> tuple[TrainState, np.ndarray]:
  """Cluster the pool's features at this state; the head reset. Returns (state, (N,) clusters)."""
  key = jax.random.fold_in(jax.random.fold_in(jax.random.key(seed), CLUSTER_STREAM),
                           int(state.step))
  k_means, k_head = jax.random.split(key)
  features = pool_features(task, state, pool, mesh)
  assignments = np.asarray(jax.jit(task.clustering.assign)(k_means, features))
  return reset_head(state, tx, k_head, task.clustering.head), assignments


def clustered_batches(pool: np.ndarray, assignments: np.ndarray, seed: int, epoch_step: int,
                      start: int, end: int, batch_size: int, host_id: int = 0,
                      host_count: int = 1) -> Iterator[dict[str, np.ndarray]]:
  """This host's share of steps start..end-1 of the epoch that began at epoch_step: the
  epoch's indices drawn uniformly over the clusters (seeded by seed and epoch_step)."""
  order = uniform_cluster_order(np.random.default_rng([seed, epoch_step]), assignments,
                                (end - epoch_step) * batch_size)
  per_host = batch_size // host_count
  for step in range(start, end):
    rows = order[(step - epoch_step) * batch_size:][:batch_size]
    rows = rows[host_id * per_host:(host_id + 1) * per_host]
    yield {"image": pool[rows], "label": assignments[rows].astype(np.int32)}


def run_clustered(data: PretrainData, task: Task, state: TrainState, tx, step_fn, manager,
                  mesh: Mesh, workdir: str, run_steps, make_writer, augment: Augment | None = None,
                  **run_kwargs) -> tuple[TrainState, dict[str, float], int]:
  """Pretrain in epochs of clustering.every_steps: cluster, then run that epoch's steps.
  With `augment` (an augmented stream) the pool is stream_pool views of its source; the
  steps then train on the pool's views (step_fn must not augment them again)."""
  every = task.clustering.every_steps
  pool = (load_pool(data) if augment is None
          else stream_pool(data, augment, task.clustering.stream_pool))
  if len(pool) < task.clustering.num_clusters:
    raise ConfigError(f"deepcluster num_clusters={task.clustering.num_clusters} exceeds the "
                          f"{len(pool)} images of {data.dataset!r}; lower "
                          f"--config.task.options.num_clusters.")
  log.info(f"[deepcluster] pool of {len(pool):,} images; {task.clustering.num_clusters} "
           f"clusters every {every} steps")
  last, timed = {}, 0
  epochs = math.ceil(data.steps / every)
  while int(state.step) < data.steps:
    step = int(state.step)
    epoch_step = step - step % every
    path = cluster_file(workdir, epoch_step)
    if step == epoch_step:
      state, assignments = recluster(task, state, tx, pool, mesh, data.seed)
      save_assignments(workdir, epoch_step, assignments)
      sizes = np.bincount(assignments, minlength=task.clustering.num_clusters)
      log.info(f"[deepcluster] clustered at step {step}: {np.count_nonzero(sizes)} non-empty "
               f"clusters, largest {sizes.max()} images")
    elif os.path.exists(path):
      assignments = np.load(path)
    else:
      raise CheckpointError(f"resuming at step {step} needs the clustering of step {epoch_step} "
                            f"({path}), which is missing; start over in a new --workdir.")
    end = min(epoch_step + every, data.steps)
    batches = clustered_batches(pool, assignments, data.seed, epoch_step, step, end,
                                data.batch_size, jax.process_index(), jax.process_count())
    label = f"deepcluster epoch {epoch_step // every + 1}/{epochs}"
    state, last, images = run_steps(state, step_fn, batches, manager, mesh, label=label,
                                    steps=end, writer=make_writer(),
                                    **run_kwargs)
    timed += images
  return state, last, timed
