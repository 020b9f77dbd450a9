"""Colour-space conversions and colour augmentations in pure JAX.

All functions take batched NHWC float images with RGB values in [0, 1]
(Lab images carry L in [0, 100] and a, b in about [-110, 110]). Random
functions draw one set of parameters per image from the key they are given.
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

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


def quantize(images: jax.Array) -> jax.Array:
  """float [0, 1] -> uint8 [0, 255] (rounded): 4x less memory for pixels that stay 8-bit."""
  return jnp.round(jnp.clip(images, 0.0, 1.0) * 255.0).astype(jnp.uint8)


def _srgb_to_linear_float(rgb: jax.Array) -> jax.Array:
  return jnp.where(rgb > 0.04045, ((rgb + 0.055) / 1.055) ** 2.4, rgb / 12.92)


# uint8 input has only 256 values: a table lookup replaces the power function.
_SRGB_TO_LINEAR_LUT = _srgb_to_linear_float(jnp.arange(256, dtype=jnp.float32) / 255.0)


def srgb_to_linear(rgb: jax.Array) -> jax.Array:
  """Undo the sRGB gamma curve: uint8 [0, 255] (by table lookup) or float [0, 1]."""
  if rgb.dtype == jnp.uint8:
    return _SRGB_TO_LINEAR_LUT[rgb]
  return _srgb_to_linear_float(rgb.astype(jnp.float32))


def linear_to_srgb(rgb: jax.Array) -> jax.Array:
  """Apply the sRGB gamma curve (values in [0, 1])."""
  safe = jnp.maximum(rgb, 0.0031308)  # keeps the power's gradient finite at 0
  return jnp.where(rgb > 0.0031308, 1.055 * safe ** (1 / 2.4) - 0.055, 12.92 * rgb)


def _lab_f(t: jax.Array) -> jax.Array:
  return jnp.where(t > _EPSILON, jnp.cbrt(t), _KAPPA * t + 16.0 / 116.0)


def rgb_to_lab(rgb: jax.Array) -> jax.Array:
  """sRGB (..., 3), uint8 or float in [0, 1] -> CIE Lab under D65, matching skimage.color.rgb2lab."""
  xyz = srgb_to_linear(rgb) @ _XYZ_FROM_RGB.T
  f = _lab_f(xyz / _D65_WHITE)
  fx, fy, fz = f[..., 0], f[..., 1], f[..., 2]
  return jnp.stack([116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)], axis=-1)


def rgb_to_lightness(rgb: jax.Array) -> jax.Array:
  """The L channel of rgb_to_lab alone, (..., 1): cheaper when a and b are not needed."""
  y = srgb_to_linear(rgb) @ _XYZ_FROM_RGB[1]
  return (116.0 * _lab_f(y) - 16.0)[..., None]


def lab_to_rgb(lab: jax.Array) -> jax.Array:
  """CIE Lab (D65) -> sRGB clipped to [0, 1], matching skimage.color.lab2rgb."""
  fy = (lab[..., 0] + 16.0) / 116.0
  fx = lab[..., 1] / 500.0 + fy
  fz = jnp.maximum(fy - lab[..., 2] / 200.0, 0.0)  # skimage clips negative z the same way
  f = jnp.stack([fx, fy, fz], axis=-1)
  xyz = jnp.where(f > 0.2068966, f ** 3, (f - 16.0 / 116.0) / _KAPPA) * _D65_WHITE
  rgb = linear_to_srgb(xyz @ _RGB_FROM_XYZ.T)
  return jnp.clip(rgb, 0.0, 1.0)


def rgb_to_grayscale(rgb: jax.Array, keep_channels: bool = True,
                     weights: Sequence[float] | jax.Array = _LUMA) -> jax.Array:
  """Luma (Rec. 709 weights unless given: the views take torchvision's, 0.2989/0.587/0.114);
  keeps 3 identical channels unless asked not to."""
  gray = to_float(rgb) @ jnp.asarray(weights, jnp.float32)
  gray = gray[..., None]
  return jnp.repeat(gray, 3, axis=-1) if keep_channels else gray


def random_grayscale(rng: jax.Array, images: jax.Array, prob: float,
                     weights: Sequence[float] | jax.Array = _LUMA) -> jax.Array:
  """Turn each image to (3-channel) grayscale with probability `prob`."""
  images = to_float(images)
  pick = jax.random.bernoulli(rng, prob, (images.shape[0], 1, 1, 1))
  return jnp.where(pick, rgb_to_grayscale(images, weights=weights), images)


def jitter_factors(rng: jax.Array, batch: int, brightness: float = 0.4, contrast: float = 0.4,
                   saturation: float = 0.4) -> jax.Array:
  """(batch, 3) brightness, contrast and saturation factors, each uniform in [1 - s, 1 + s]."""
  spread = jnp.array([brightness, contrast, saturation], jnp.float32)
  return 1.0 + spread * jax.random.uniform(rng, (batch, 3), minval=-1.0, maxval=1.0)


def mean_luma(images: jax.Array, stride: int = 4) -> jax.Array:
  """Mean gray level (B,) in [0, 1] of each image, read on a stride x stride subsample.

  The pivot of the contrast change; subsampling makes it a cheap read (within
  about one grey level of the full mean on photos).
  """
  sample = images[:, ::stride, ::stride]
  if sample.dtype == jnp.uint8:
    # Sum the levels as integers: exact, and about 3x faster on CPU than a float reduction.
    sums = jnp.sum(sample.astype(jnp.int32), axis=(1, 2)).astype(jnp.float32)
    return (sums / (255.0 * sample.shape[1] * sample.shape[2])) @ _LUMA
  return jnp.mean(to_float(sample) @ _LUMA, axis=(1, 2))


# The colour change is a per-image combination of three fixed affine maps, rows of
# (3x3 matrix, offset): luma on every channel (G), saturation (I - G), and a constant offset.
_LUMA_ROWS = np.broadcast_to(np.asarray(_LUMA), (3, 3))  # row i: channel i <- luma
_JITTER_BASIS = np.zeros((3, 12), np.float32)
_JITTER_BASIS[0, :9] = _LUMA_ROWS.ravel()
_JITTER_BASIS[1, :9] = (np.eye(3) - _LUMA_ROWS).ravel()
_JITTER_BASIS[2, 9:] = 1.0


def jitter_affine(factors: jax.Array, pivot: jax.Array, grayscale: jax.Array | None = None
                  ) -> tuple[jax.Array, jax.Array]:
  """The colour change as one affine map per image: out = clip(M @ rgb + offset).

  Brightness (x * b), contrast around the mean gray (m + c (x - m)) and
  saturation around each pixel's gray (g + s (x - g)) are all linear in rgb,
  so together with an optional switch to grayscale they fold into a 3x3
  matrix and an offset: M = b c G + b c s (I - G) (s = 0 for grayscale),
  offset = (1 - c) b mean, where G maps rgb to its luma on every channel.

  The maps are combined by one small matrix product on purpose: XLA keeps a
  dot out of elementwise fusions, so M and the offset are computed once per
  image. Written elementwise, XLA:CPU fused the whole chain from random bits
  to M into every pixel of the consumers, which made counting's builder
  about a third slower (python benchmarks/bench_counting.py).
  """
  b, c, s = factors[:, 0], factors[:, 1], factors[:, 2]
  if grayscale is not None:
    s = jnp.where(grayscale, 0.0, s)
  coefficients = jnp.stack([b * c, b * c * s, (1.0 - c) * b * pivot], axis=1)
  affine = coefficients @ _JITTER_BASIS  # (B, 12): M row-major, then the offset
  return affine[:, :9].reshape(-1, 3, 3), affine[:, 9:]


def apply_color_affine(images: jax.Array, matrix: jax.Array, offset: jax.Array) -> jax.Array:
  """clip(matrix @ rgb + offset) per image: one fused pass (a broadcast sum, not an einsum)."""
  x = to_float(images)
  out = offset[:, None, None, :]
  for i in range(3):
    out = out + x[..., i:i + 1] * matrix[:, None, None, :, i]
  return jnp.clip(out, 0.0, 1.0)


def color_jitter(rng: jax.Array, images: jax.Array, brightness: float = 0.4,
                 contrast: float = 0.4, saturation: float = 0.4,
                 grayscale_prob: float = 0.0) -> jax.Array:
  """Random brightness, contrast, saturation (and grayscale with grayscale_prob) per image.

  Factors are uniform in [1 - s, 1 + s] (torchvision's ranges), applied in
  that order without intermediate clipping; the result is clipped to [0, 1].
  """
  k_factors, k_gray = jax.random.split(rng)
  factors = jitter_factors(k_factors, images.shape[0], brightness, contrast, saturation)
  gray = jax.random.bernoulli(k_gray, grayscale_prob, (images.shape[0],))
  matrix, offset = jitter_affine(factors, mean_luma(images), gray)
  return apply_color_affine(images, matrix, offset)


def channel_jitter(rng: jax.Array, images: jax.Array, max_shift: float = 0.1) -> jax.Array:
  """Shift each colour channel of each image by its own uniform intensity offset in
  [-max_shift, max_shift] (a colour cast). It does not hide chromatic aberration, which
  shifts channels in space: `geometry.random_channel_shift` does that.
  """
  images = to_float(images)
  shift = jax.random.uniform(rng, (images.shape[0], 1, 1, images.shape[-1]),
                             minval=-max_shift, maxval=max_shift)
  return jnp.clip(images + shift, 0.0, 1.0)


# Doersch et al.'s green-magenta axis: lenses' chromatic aberration shifts green against
# magenta (red + blue), which tells where a patch lay in the photo.
_GREEN_MAGENTA = np.array([-1.0, 2.0, -1.0], np.float32) / np.sqrt(6.0)


def project_out_green_magenta(images: jax.Array) -> jax.Array:
  """Remove each pixel's green-magenta component (Doersch et al.'s "projection" guard against
  chromatic aberration), clipped to [0, 1]. Gray pixels have none, so gray images pass
  unchanged."""
  images = to_float(images)
  axis = jnp.asarray(_GREEN_MAGENTA)
  return jnp.clip(images - (images @ axis)[..., None] * axis, 0.0, 1.0)


def random_color_drop(rng: jax.Array, images: jax.Array, noise: float = 0.01) -> jax.Array:
  """Doersch et al.'s "color dropping": keep one random channel of each image and replace the
  other two by Gaussian noise around its mean, with `noise` times its standard deviation
  (the paper's 1/100), so no colour fringe survives."""
  images = to_float(images)
  k_keep, k_noise = jax.random.split(rng)
  b, c = images.shape[0], images.shape[-1]
  keep = jax.random.randint(k_keep, (b,), 0, c)
  kept = jnp.take_along_axis(images, keep[:, None, None, None], axis=-1)
  mean = kept.mean(axis=(1, 2, 3), keepdims=True)
  std = kept.std(axis=(1, 2, 3), keepdims=True)
  filler = mean + noise * std * jax.random.normal(k_noise, images.shape)
  chosen = jnp.arange(c) == keep[:, None, None, None]
  return jnp.clip(jnp.where(chosen, images, filler), 0.0, 1.0)
