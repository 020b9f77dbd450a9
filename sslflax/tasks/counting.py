"""Counting visual primitives (Noroozi, Pirsiavash, Favaro 2017).

phi maps an image to a non-negative count vector. The counts of the image
downsampled by 2 must equal the sum of the counts of its 4 tiles, and must
differ (by margin M) from another image's counts, or phi collapses to 0:
  l = ||phi(D x) - sum_j phi(T_j x)||^2 + max(0, M - ||phi(D y) - sum_j phi(T_j x)||^2)
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from sslflax.tasks.base import Task, register
from sslflax.transforms.color import (apply_color_affine, jitter_affine, jitter_factors,
                                     mean_luma, quantize)
from sslflax.transforms.geometry import downsample_random_filter, quadrant_tiles


def make_counting_batch(rng: jax.Array, images: jax.Array, labels: jax.Array | None = None,
                        grayscale_prob: float = 0.3, jitter: float = 0.4):
  """inputs = {'down': (B, H/2, W/2, 3), 'tiles': (B, 4, H/2, W/2, 3)}, uint8; targets None.

  Random per image: colour jitter and grayscale (same for the image and its
  tiles, so counts still add up) and the downsampling filter (uniform over
  nearest, linear, cubic and area; each run of 4 images uses all 4, in a random
  order: see downsample_random_filter).
  """
  del labels
  k_jit, k_gray, k_filter = jax.random.split(rng, 3)
  b = images.shape[0]
  factors = jitter_factors(k_jit, b, jitter, jitter, jitter)
  gray = jax.random.bernoulli(k_gray, grayscale_prob, (b,))
  matrix, offset = jitter_affine(factors, mean_luma(images), gray)
  # The colour change is affine per image and the downsampling filters are
  # linear, so they commute: filter the raw image, then change its colour.
  down = apply_color_affine(downsample_random_filter(k_filter, images), matrix, offset)
  tiles = quadrant_tiles(quantize(apply_color_affine(images, matrix, offset)))
  return {"down": quantize(down), "tiles": tiles}, None


def counting_loss(outputs, targets=None, margin: float = 10.0):
  """Noroozi's loss with the contrastive term; y is the next image in the batch (a roll by 1)."""
  del targets
  counts_down, counts_tiles = outputs["down"], outputs["tiles"]
  tile_sum = counts_tiles.sum(axis=1)
  positive = jnp.sum((counts_down - tile_sum) ** 2, axis=-1)
  negative = jnp.sum((jnp.roll(counts_down, 1, axis=0) - tile_sum) ** 2, axis=-1)
  loss = jnp.mean(positive + jnp.maximum(0.0, margin - negative))
  # 'accuracy': how often the own downsampled image is closer than the other one.
  return loss, {"accuracy": jnp.mean(positive < negative), "positive": positive.mean()}


class CountingNet(nn.Module):
  """One backbone pass over the downsampled images and all tiles; ReLU count head."""

  backbone: nn.Module
  num_counts: int = 1000

  @nn.compact
  def __call__(self, inputs, train: bool = False):
    down, tiles = inputs["down"], inputs["tiles"]
    b = down.shape[0]
    x = jnp.concatenate([down, tiles.reshape((-1,) + tiles.shape[2:])], axis=0)
    features, _ = self.backbone(x, train)
    # Counts start small (std 0.1 of the usual init), so the contrastive term leads at first.
    # From a usual init the equivariance term is ~100x M and drives every ReLU unit dead:
    # phi = 0, loss = M, and no gradient to leave it (tests/test_learning.py checks this).
    init = nn.initializers.variance_scaling(0.01, "fan_in", "truncated_normal")
    counts = nn.relu(nn.Dense(self.num_counts, kernel_init=init, name="head")(features))
    return {"down": counts[:b], "tiles": counts[b:].reshape(b, 4, -1)}


@register("counting")
def build(backbone: nn.Module, num_counts: int = 1000, margin: float = 10.0,
          grayscale_prob: float = 0.3, jitter: float = 0.4) -> Task:
  """Counting task: `num_counts` non-negative counts per image (ReLU head), loss with margin
  `margin` (the paper's M = 10); `grayscale_prob` and `jitter` (colour affine strength) are the
  per-image colour changes shared by an image's tiles and its downsampled view."""
  def make_batch(rng, images, labels=None):
    return make_counting_batch(rng, images, labels, grayscale_prob, jitter)
  def loss(outputs, targets):
    return counting_loss(outputs, targets, margin)
  return Task("counting", make_batch, CountingNet(backbone, num_counts), loss, min_image_size=4)
