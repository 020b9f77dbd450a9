"""Input normalisation."""

from __future__ import annotations

import jax
import jax.numpy as jnp

# ImageNet channel statistics in [0, 1] units: the usual input scaling for AlexNet.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def standardize(images: jax.Array, mean=IMAGENET_MEAN, std=IMAGENET_STD) -> jax.Array:
  """(x - mean) / std per channel, for float images in [0, 1]."""
  return (images - jnp.asarray(mean, images.dtype)) / jnp.asarray(std, images.dtype)


def normalize_per_tile(tiles: jax.Array, eps: float = 1e-5) -> jax.Array:
  """Zero mean, unit std over each tile's pixels, per channel (tiles: (..., h, w, C)).

  Jigsaw does this per tile so that low-level statistics shared by neighbouring tiles
  (brightness, contrast, colour cast) cannot give away their arrangement; per channel, as
  Noroozi & Favaro's code normalises each colour channel of each tile on its own.
  """
  mean = jnp.mean(tiles, axis=(-3, -2), keepdims=True)
  std = jnp.std(tiles, axis=(-3, -2), keepdims=True)
  return (tiles - mean) / (std + eps)
