"""Input corruptions of denoising autoencoders (Vincent et al., ICML 2008; JMLR 2010)."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from sslflax.transforms.color import to_float


def masking_noise(rng: jax.Array, images: jax.Array, fraction: float) -> tuple[jax.Array, jax.Array]:
  """Vincent et al.'s masking noise: each input component (a channel of a pixel) is set to 0
  with probability `fraction`. Returns (corrupted images in the input dtype, the boolean
  mask of destroyed components, shaped like the images)."""
  destroyed = jax.random.bernoulli(rng, fraction, images.shape)
  return jnp.where(destroyed, jnp.zeros((), images.dtype), images), destroyed


def gaussian_noise(rng: jax.Array, images: jax.Array, sigma: float) -> jax.Array:
  """Additive isotropic Gaussian noise of std `sigma` (in [0, 1] pixel units), clipped to
  [0, 1]: float images."""
  images = to_float(images)
  return jnp.clip(images + sigma * jax.random.normal(rng, images.shape), 0.0, 1.0)
