"""Exemplar networks (Dosovitskiy et al., NeurIPS 2014 / TPAMI 2016): every image is its own
surrogate class, seen through heavy random transformations.

Dosovitskiy et al. classify N seed patches (8,000-32,000 classes). A classifier over every
image of a pool does not scale with the pool, so sslflax uses the formulation of Kolesnikov,
Zhai and Beyer, "Revisiting self-supervised visual representation learning" (CVPR 2019):
`copies` (8) augmented views of each image of the batch, an embedding of each, and FaceNet's
triplet loss with semi-hard negatives (Schroff et al. 2015; margin 0.5) over the whole
(global) batch, the views of one image being its class. The embeddings are L2-normalised
per view, as FaceNet's. (Kolesnikov et al.'s code normalised along the batch axis.)

The views use sslflax.transforms.stream_view with Dosovitskiy's kinds of change: crops
(translation and scale: area 1/2 to all, so up to 1.4x zoom), rotation by up to 20 degrees,
a flip, and changes of brightness, contrast, saturation and hue; then grayscale with
probability 0.66, as Kolesnikov et al. (drawn first: the colour changes keep gray images gray).
"""

from __future__ import annotations

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp

from sslflax.tasks.base import Task, register
from sslflax.transforms.augment import AugmentSpec, stream_view
from sslflax.transforms.color import random_grayscale

EXEMPLAR_VIEWS = AugmentSpec(crop_area=(0.5, 1.0), aspect=(3 / 4, 4 / 3), rotation=20.0,
                             flip=0.5, color_prob=1.0, brightness=0.4, contrast=0.5,
                             saturation=0.5, hue=36.0)


def make_exemplar_batch(rng: jax.Array, images: jax.Array, labels: jax.Array | None = None,
                        copies: int = 8, spec: AugmentSpec = EXEMPLAR_VIEWS,
                        grayscale_prob: float = 0.66):
  """inputs: `copies` random uint8 views of each image, image-major (B * copies, H, W, 3);
  targets: the surrogate class of each view, the index of its image in the batch."""
  del labels
  k_views, k_gray = jax.random.split(rng)
  b, size = images.shape[0], images.shape[1]
  sources = jnp.repeat(images, copies, axis=0)
  if grayscale_prob > 0:
    # Before the colour changes, which keep a gray image gray: one rounding, at the end.
    sources = random_grayscale(k_gray, sources, grayscale_prob)
  views = stream_view(k_views, sources, spec, size)
  return views, jnp.repeat(jnp.arange(b, dtype=jnp.int32), copies)


def pairwise_squared_distances(x: jax.Array) -> jax.Array:
  """(N, D) -> (N, N) squared Euclidean distances, 0 on the diagonal and never negative."""
  sq = jnp.sum(x * x, axis=-1)
  d = sq[:, None] + sq[None, :] - 2.0 * x @ x.T
  return jnp.maximum(d, 0.0) * (1.0 - jnp.eye(x.shape[0], dtype=x.dtype))


def triplet_semihard_loss(embeddings: jax.Array, labels: jax.Array, margin: float = 0.5
                          ) -> jax.Array:
  """FaceNet's triplet loss with semi-hard negatives, as TensorFlow's triplet_semihard_loss:
  for every anchor a and positive p (same label, a != p), the negative n is the closest with
  d(a, n) > d(a, p), or the farthest negative when none is farther; the loss is the mean of
  max(0, d(a, p) - d(a, n) + margin) over all (a, p), d the squared distance."""
  d = pairwise_squared_distances(embeddings.astype(jnp.float32))
  same = labels[:, None] == labels[None, :]
  negative = ~same
  positive = same & ~jnp.eye(labels.shape[0], dtype=bool)
  # Row a's negative distances, sorted; the first above d(a, p) is the semi-hard negative.
  sorted_neg = jnp.sort(jnp.where(negative, d, jnp.inf), axis=1)
  first_above = jax.vmap(lambda row, q: jnp.searchsorted(row, q, side="right"))(sorted_neg, d)
  above = jnp.take_along_axis(sorted_neg, jnp.minimum(first_above, d.shape[1] - 1), axis=1)
  farthest = jnp.max(jnp.where(negative, d, 0.0), axis=1, keepdims=True)
  chosen = jnp.where(jnp.isfinite(above), above, farthest)
  per_pair = jnp.maximum(d - chosen + margin, 0.0)
  return jnp.sum(per_pair * positive) / jnp.maximum(jnp.sum(positive), 1)


def nearest_neighbour_accuracy(embeddings: jax.Array, labels: jax.Array) -> jax.Array:
  """The fraction of views whose nearest other view comes from the same image."""
  d = pairwise_squared_distances(embeddings.astype(jnp.float32))
  d = jnp.where(jnp.eye(d.shape[0], dtype=bool), jnp.inf, d)
  return jnp.mean(labels[jnp.argmin(d, axis=1)] == labels)


class ExemplarNet(nn.Module):
  """Backbone features -> a linear embedding -> L2-normalised."""

  backbone: nn.Module
  embed_dim: int = 1000

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    features, _ = self.backbone(x, train)
    z = nn.Dense(self.embed_dim, name="head")(features).astype(jnp.float32)
    return z / jnp.maximum(jnp.linalg.norm(z, axis=-1, keepdims=True), 1e-12)


@register("exemplar")
def build(backbone: nn.Module, copies: int = 8, embed_dim: int = 1000, margin: float = 0.5,
          grayscale_prob: float = 0.66, crop_area: tuple[float, float] = (0.5, 1.0),
          rotation: float = 20.0) -> Task:
  """Exemplar task (triplet formulation). `copies`: views per image (at least 2);
  `embed_dim`: the embedding's width; `margin`: the triplet margin; `grayscale_prob`,
  `crop_area`, `rotation`: the views' grayscale chance, crop area range and largest
  rotation in degrees (the other changes as EXEMPLAR_VIEWS)."""
  if copies < 2:
    raise ValueError(f"exemplar copies={copies}: a surrogate class needs at least 2 views.")
  spec = dataclasses.replace(EXEMPLAR_VIEWS, crop_area=tuple(crop_area), rotation=rotation)
  def make_batch(rng, images, labels=None):
    return make_exemplar_batch(rng, images, labels, copies, spec, grayscale_prob)
  def loss(embeddings, targets):
    return (triplet_semihard_loss(embeddings, targets, margin),
            {"accuracy": nearest_neighbour_accuracy(embeddings, targets)})
  return Task("exemplar", make_batch, ExemplarNet(backbone, embed_dim), loss)
