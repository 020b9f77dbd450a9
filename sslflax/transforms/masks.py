"""Inpainting masks (Pathak et al. 2016) as boolean (B, H, W) arrays, True = hidden."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def central_square_mask(batch: int, height: int, width: int, fraction: float = 0.25) -> jax.Array:
  """The centred square covering `fraction` of the area (1/4: 64x64 of 128x128)."""
  side_h = int(round(height * fraction ** 0.5))
  side_w = int(round(width * fraction ** 0.5))
  rows = jnp.arange(height)
  cols = jnp.arange(width)
  top, left = (height - side_h) // 2, (width - side_w) // 2
  mask = (((rows >= top) & (rows < top + side_h))[:, None]
          & ((cols >= left) & (cols < left + side_w))[None, :])
  return jnp.broadcast_to(mask, (batch, height, width))


def random_block_mask(rng: jax.Array, batch: int, height: int, width: int,
                      num_blocks: int = 4, block_fraction: float = 0.25) -> jax.Array:
  """Union of `num_blocks` squares per image, each of side block_fraction * side, at uniform positions."""
  side_h = max(1, int(round(height * block_fraction)))
  side_w = max(1, int(round(width * block_fraction)))
  k_y, k_x = jax.random.split(rng)
  tops = jax.random.randint(k_y, (batch, num_blocks, 1, 1), 0, height - side_h + 1)
  lefts = jax.random.randint(k_x, (batch, num_blocks, 1, 1), 0, width - side_w + 1)
  rows = jnp.arange(height)[None, None, :, None]
  cols = jnp.arange(width)[None, None, None, :]
  blocks = (rows >= tops) & (rows < tops + side_h) & (cols >= lefts) & (cols < lefts + side_w)
  return jnp.any(blocks, axis=1)


def boundary_band(mask: jax.Array, width: int) -> jax.Array:
  """Visible pixels within `width` pixels (Chebyshev) of a hidden one: Pathak's overlap band."""
  if width <= 0:
    return jnp.zeros_like(mask)
  grown = jax.lax.reduce_window(mask.astype(jnp.float32), 0.0, jax.lax.max,
                                (1, 2 * width + 1, 2 * width + 1), (1, 1, 1), "SAME")
  return (grown > 0) & ~mask


def fill_masked(images: jax.Array, mask: jax.Array, fill_value: jax.Array | float) -> jax.Array:
  """Replace hidden pixels by `fill_value` (a scalar or a per-channel mean such as the dataset's)."""
  fill = jnp.broadcast_to(jnp.asarray(fill_value, images.dtype), images.shape[-1:])
  return jnp.where(mask[..., None], fill, images)
