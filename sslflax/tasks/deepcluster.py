"""DeepCluster (Caron, Bojanowski, Joulin, Douze, ECCV 2018): alternate between clustering the
backbone's features of the whole pretraining set with k-means and training the network to
classify each image's cluster.

Every `recluster_steps` (one epoch in the paper), the training loop (sslflax.train.clustering)
computes the features of every pool image (eval mode), PCA-reduces them to `pca_dim`
dimensions with whitening and L2-normalises them, runs k-means on device, re-initialises the
classifier head (and its optimiser state), and samples the next steps' images uniformly over
the clusters (DeepCluster's UnifLabelSampler), so a big cluster cannot dominate. An empty
cluster takes half of a random non-empty one: the non-empty centroid is copied and both
copies moved by +-eps (faiss's rule, which the paper describes).

Differences from the paper, said here: no Sobel input filter (the backbone sees RGB like
every other sslflax task); the clustered features are the backbone's (fc7 after its ReLU),
where DeepCluster's code drops that last ReLU.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from sslflax.tasks.base import ClassifierNet, Task, classification_loss, register
from sslflax.tasks.joint import l2_normalize
from sslflax.transforms.views import ViewSpec, random_view

# DeepCluster's training views: RandomResizedCrop and a horizontal flip, no colour change.
DEEPCLUSTER_VIEW = ViewSpec(crop_area=(0.08, 1.0), jitter_prob=0.0, grayscale_prob=0.0,
                            blur_prob=0.0)


def pca_whiten(features: jax.Array, dim: int, eps: float = 1e-5) -> jax.Array:
  """(N, D) -> (N, min(dim, D)): centred, projected on the top principal axes, each divided
  by the square root of its eigenvalue (whitened), then each row L2-normalised (faiss's
  PCAMatrix(D, dim, eigen_power=-0.5) and normalisation, as DeepCluster)."""
  x = features.astype(jnp.float32)
  x = x - jnp.mean(x, axis=0)
  values, vectors = jnp.linalg.eigh(x.T @ x / x.shape[0])  # ascending
  dim = min(dim, x.shape[1])
  values, vectors = values[::-1][:dim], vectors[:, ::-1][:, :dim]
  return l2_normalize((x @ vectors) / jnp.sqrt(jnp.maximum(values, 0.0) + eps))


def nearest_centroid(x: jax.Array, centroids: jax.Array, block: int = 4096) -> jax.Array:
  """(N,) index of each row's nearest centroid in Euclidean distance, computed `block` rows
  at a time (an (N, K) distance matrix would not fit for ImageNet-sized N and K)."""
  n = x.shape[0]
  pad = -n % block
  blocks = jnp.pad(x, ((0, pad), (0, 0))).reshape(-1, block, x.shape[1])
  half_norms = 0.5 * jnp.sum(centroids * centroids, axis=1)
  # argmin ||x - c||^2 = argmax (x.c - ||c||^2 / 2)
  nearest = jax.lax.map(lambda b: jnp.argmax(b @ centroids.T - half_norms, axis=1), blocks)
  return nearest.reshape(-1)[:n].astype(jnp.int32)


def split_empty_clusters(rng: jax.Array, centroids: jax.Array, counts: jax.Array,
                         eps: float = 1.0 / 1024) -> jax.Array:
  """faiss's rule: each empty cluster i takes a non-empty cluster j drawn with probability
  proportional to (size_j - 1); c_i = c_j (1 + eps s), c_j = c_j (1 - eps s) with s = +1 on
  even and -1 on odd dimensions, and j's points are counted as split in half."""
  k, d = centroids.shape
  sign = jnp.where(jnp.arange(d) % 2 == 0, 1.0, -1.0)

  def split(i, carry):
    c, n = carry
    weights = jnp.maximum(n - 1, 0).astype(jnp.float32)
    j = jax.random.categorical(jax.random.fold_in(rng, i), jnp.log(weights))
    half = n[j] // 2
    c = c.at[i].set(c[j] * (1 + eps * sign)).at[j].set(c[j] * (1 - eps * sign))
    return c, n.at[i].set(half).at[j].add(-half)

  def fill(i, carry):  # only an empty cluster pays for the draw (O(K)) and the two row writes
    can_split = (carry[1][i] == 0) & jnp.any(carry[1] > 1)
    return jax.lax.cond(can_split, split, lambda i, carry: carry, i, carry)

  return jax.lax.fori_loop(0, k, fill, (centroids, counts))[0]


def kmeans(rng: jax.Array, x: jax.Array, k: int, iterations: int = 20
           ) -> tuple[jax.Array, jax.Array]:
  """Lloyd's k-means on device: centroids start at k distinct random rows (faiss's start);
  each iteration assigns every row to its nearest centroid, moves each centroid to its rows'
  mean and splits a non-empty cluster for each empty one. Returns (centroids (K, D), the
  final assignment (N,), nearest to those centroids)."""
  n = x.shape[0]
  if k > n:
    raise ValueError(f"k-means with {k} clusters needs at least {k} points, got {n}.")
  x = x.astype(jnp.float32)
  k_init, k_split = jax.random.split(rng)
  centroids = x[jax.random.choice(k_init, n, (k,), replace=False)]

  def step(i, c):
    assign = nearest_centroid(x, c)
    counts = jnp.bincount(assign, length=k)
    sums = jax.ops.segment_sum(x, assign, num_segments=k)
    c = jnp.where(counts[:, None] > 0, sums / jnp.maximum(counts, 1)[:, None], c)
    return split_empty_clusters(jax.random.fold_in(k_split, i), c, counts)

  centroids = jax.lax.fori_loop(0, iterations, step, centroids)
  return centroids, nearest_centroid(x, centroids)


def uniform_cluster_order(rng: np.random.Generator, assignments: np.ndarray,
                          num_samples: int) -> np.ndarray:
  """DeepCluster's UnifLabelSampler: num_samples pool indices, an equal share drawn (with
  replacement) from each non-empty cluster, shuffled."""
  clusters = [np.flatnonzero(assignments == c) for c in np.unique(assignments)]
  per_cluster = -(-num_samples // len(clusters))
  order = np.concatenate([rng.choice(members, per_cluster, replace=len(members) < per_cluster)
                          for members in clusters])
  rng.shuffle(order)
  return order[:num_samples]


@dataclasses.dataclass(frozen=True)
class Clustering:
  """What the training loop needs to run DeepCluster's outer loop (sslflax.train.clustering).

  features(variables, images) -> (B, D): the features to cluster, eval mode.
  assign(rng, features (N, D)) -> (N,) cluster of each image (PCA, whitening, k-means).
  head: the parameter name of the classifier that is re-initialised after each clustering.
  """
  num_clusters: int
  every_steps: int
  features: Callable[[dict[str, Any], jax.Array], jax.Array]
  assign: Callable[[jax.Array, jax.Array], jax.Array]
  head: str = "head"
  stream_pool: int = 20_000  # with an augmented stream (one image): the pool's views


def head_init(rng: jax.Array, kernel_shape: tuple[int, int]) -> dict[str, jax.Array]:
  """DeepCluster's new top layer: weights N(0, 0.01), bias 0."""
  return {"kernel": 0.01 * jax.random.normal(rng, kernel_shape, jnp.float32),
          "bias": jnp.zeros((kernel_shape[1],), jnp.float32)}


@register("deepcluster")
def build(backbone: nn.Module, num_clusters: int = 10000, recluster_steps: int = 5000,
          pca_dim: int = 256, kmeans_iterations: int = 20,
          crop_area: tuple[float, float] = (0.08, 1.0), stream_pool: int = 20_000) -> Task:
  """DeepCluster. `num_clusters` k (the paper: 10,000 for ImageNet); `recluster_steps`
  between clusterings (the paper: one epoch); `pca_dim` (256) and `kmeans_iterations` (20,
  faiss's); `crop_area` of the training views; `stream_pool`: from an augmented stream (one
  image), the pool is this many of its views (Asano et al.'s dataset of one image's crops)."""
  if num_clusters < 2 or recluster_steps < 1 or pca_dim < 1 or kmeans_iterations < 1:
    raise ValueError(f"deepcluster num_clusters={num_clusters} must be >= 2, recluster_steps="
                     f"{recluster_steps}, pca_dim={pca_dim} and kmeans_iterations="
                     f"{kmeans_iterations} >= 1.")
  spec = dataclasses.replace(DEEPCLUSTER_VIEW, crop_area=tuple(crop_area))
  model = ClassifierNet(backbone, num_clusters)

  def make_batch(rng, images, labels=None):
    if labels is None:
      labels = jnp.zeros((images.shape[0],), jnp.int32)  # shapes only (initialisation)
    return random_view(rng, images, spec, images.shape[1]), labels

  def features(variables, images):
    return backbone.apply({"params": variables["params"]["backbone"],
                           "batch_stats": variables["batch_stats"].get("backbone", {})},
                          images, train=False)[0]

  def assign(rng, feats):
    return kmeans(rng, pca_whiten(feats, pca_dim), num_clusters, kmeans_iterations)[1]

  clustering = Clustering(num_clusters, recluster_steps, features, assign,
                          stream_pool=stream_pool)
  task = Task("deepcluster", make_batch, model, classification_loss)
  return dataclasses.replace(task, clustering=clustering)
