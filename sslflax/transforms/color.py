"""Colour-space conversions and colour augmentations in pure JAX.

All functions take batched NHWC float images with RGB values in [0, 1]
(Lab images carry L in [0, 100] and a, b in about [-110, 110]). Random
functions draw one set of parameters per image from the key they are given.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

# sRGB (D65) primaries, as in skimage.color and the sRGB standard.
_XYZ_FROM_RGB = jnp.array(
    [[0.412453, 0.357580, 0.180423],
     [0.212671, 0.715160, 0.072169],
     [0.019334, 0.119193, 0.950227]], dtype=jnp.float32)
_RGB_FROM_XYZ = jnp.linalg.inv(_XYZ_FROM_RGB)
_D65_WHITE = jnp.array([0.95047, 1.0, 1.08883], dtype=jnp.float32)
_LUMA = jnp.array([0.2125, 0.7154, 0.0721], dtype=jnp.float32)  # Rec. 709, as skimage.rgb2gray.
_EPSILON = 0.008856  # (6/29)^3: where the Lab cube root turns linear.
_KAPPA = 7.787


def to_float(images: jax.Array) -> jax.Array:
  """uint8 [0, 255] -> float32 [0, 1]; float images pass through unchanged."""
  if jnp.issubdtype(images.dtype, jnp.integer):
    return images.astype(jnp.float32) / 255.0
  return images.astype(jnp.float32)


def srgb_to_linear(rgb: jax.Array) -> jax.Array:
  """Undo the sRGB gamma curve (values in [0, 1])."""
  return jnp.where(rgb > 0.04045, ((rgb + 0.055) / 1.055) ** 2.4, rgb / 12.92)


def linear_to_srgb(rgb: jax.Array) -> jax.Array:
  """Apply the sRGB gamma curve (values in [0, 1])."""
  safe = jnp.maximum(rgb, 0.0031308)  # keeps the power's gradient finite at 0
  return jnp.where(rgb > 0.0031308, 1.055 * safe ** (1 / 2.4) - 0.055, 12.92 * rgb)


def rgb_to_lab(rgb: jax.Array) -> jax.Array:
  """sRGB in [0, 1] (..., 3) -> CIE Lab under D65, matching skimage.color.rgb2lab."""
  xyz = srgb_to_linear(to_float(rgb)) @ _XYZ_FROM_RGB.T
  xyz = xyz / _D65_WHITE
  f = jnp.where(xyz > _EPSILON, jnp.cbrt(xyz), _KAPPA * xyz + 16.0 / 116.0)
  fx, fy, fz = f[..., 0], f[..., 1], f[..., 2]
  return jnp.stack([116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)], axis=-1)


def lab_to_rgb(lab: jax.Array) -> jax.Array:
  """CIE Lab (D65) -> sRGB clipped to [0, 1], matching skimage.color.lab2rgb."""
  fy = (lab[..., 0] + 16.0) / 116.0
  fx = lab[..., 1] / 500.0 + fy
  fz = jnp.maximum(fy - lab[..., 2] / 200.0, 0.0)  # skimage clips negative z the same way
  f = jnp.stack([fx, fy, fz], axis=-1)
  xyz = jnp.where(f > 0.2068966, f ** 3, (f - 16.0 / 116.0) / _KAPPA) * _D65_WHITE
  rgb = linear_to_srgb(xyz @ _RGB_FROM_XYZ.T)
  return jnp.clip(rgb, 0.0, 1.0)


def rgb_to_grayscale(rgb: jax.Array, keep_channels: bool = True) -> jax.Array:
  """Luma (Rec. 709 weights); keeps 3 identical channels unless asked not to."""
  gray = to_float(rgb) @ _LUMA
  gray = gray[..., None]
  return jnp.repeat(gray, 3, axis=-1) if keep_channels else gray


def _per_image(rng: jax.Array, images: jax.Array, low: float, high: float) -> jax.Array:
  """One uniform factor per image, shaped to broadcast over (H, W, C)."""
  return jax.random.uniform(rng, (images.shape[0], 1, 1, 1), minval=low, maxval=high)


def random_grayscale(rng: jax.Array, images: jax.Array, prob: float) -> jax.Array:
  """Turn each image to (3-channel) grayscale with probability `prob`."""
  images = to_float(images)
  pick = jax.random.bernoulli(rng, prob, (images.shape[0], 1, 1, 1))
  return jnp.where(pick, rgb_to_grayscale(images), images)


def color_jitter(rng: jax.Array, images: jax.Array, brightness: float = 0.4,
                 contrast: float = 0.4, saturation: float = 0.4) -> jax.Array:
  """Random brightness, contrast and saturation per image (torchvision-style factors).

  Each factor is drawn uniformly from [1 - s, 1 + s]; the output is clipped to [0, 1].
  """
  images = to_float(images)
  k_b, k_c, k_s = jax.random.split(rng, 3)
  images = images * _per_image(k_b, images, 1 - brightness, 1 + brightness)
  mean = jnp.mean(rgb_to_grayscale(images, keep_channels=False), axis=(1, 2, 3), keepdims=True)
  images = mean + (images - mean) * _per_image(k_c, images, 1 - contrast, 1 + contrast)
  gray = rgb_to_grayscale(images)
  images = gray + (images - gray) * _per_image(k_s, images, 1 - saturation, 1 + saturation)
  return jnp.clip(images, 0.0, 1.0)


def channel_jitter(rng: jax.Array, images: jax.Array, max_shift: float = 0.1) -> jax.Array:
  """Shift each colour channel of each image by its own uniform offset in [-max_shift, max_shift].

  Breaks the chromatic cues (e.g. lens aberration) a network can use to solve
  a spatial pretext task without learning about objects.
  """
  images = to_float(images)
  shift = jax.random.uniform(rng, (images.shape[0], 1, 1, images.shape[-1]),
                             minval=-max_shift, maxval=max_shift)
  return jnp.clip(images + shift, 0.0, 1.0)
