"""Augmented pretraining streams: every step draws new views of the source images.

After Asano, Rupprecht and Vedaldi (ICLR 2020, "A critical analysis of self-supervision,
or what we can learn from a single image"): random resized crops with an area fraction
down to 1e-4 of the source and an aspect ratio in [3/4, 4/3], a rotation by up to 35
degrees, a horizontal flip and a per-image change of colour and intensity turn N source
images, N = 1 included, into an unbounded stream.

Each op is standalone (batched NHWC, jit-able, per-image parameters from an explicit
key); `stream_view` composes them as Asano et al.'s generator does: the crop is resized to
ceil(sqrt(2) * size), rotated, and its central size x size kept, so a rotation of up to
45 degrees never shows fill (fill='crop').
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np

from sslflax.transforms.color import (apply_color_affine, jitter_affine, jitter_factors,
                                      mean_luma, quantize, to_float)

FILL_MODES = ("constant", "nearest", "reflect")

# YIQ (NTSC) from RGB, as skimage.color.rgb2yiq: hue turns the (I, Q) chroma plane.
_YIQ_FROM_RGB = np.array([[0.299, 0.587, 0.114],
                          [0.59590059, -0.27455667, -0.32134392],
                          [0.21153661, -0.52273617, 0.31119955]], np.float32)
_RGB_FROM_YIQ = np.linalg.inv(_YIQ_FROM_RGB).astype(np.float32)


def check_crop_ranges(area: tuple[float, float], aspect: tuple[float, float]) -> None:
  if not 0 < area[0] <= area[1] <= 1:
    raise ValueError(f"crop area fractions must satisfy 0 < min <= max <= 1, got {area}.")
  if not 0 < aspect[0] <= aspect[1]:
    raise ValueError(f"aspect ratio range must satisfy 0 < min <= max, got {aspect}.")


def random_crop_boxes(rng: jax.Array, batch: int, image_hw: tuple[int, int],
                      area: tuple[float, float] = (0.08, 1.0),
                      aspect: tuple[float, float] = (3 / 4, 4 / 3), tries: int = 10) -> jax.Array:
  """(batch, 4) crop boxes (top, left, height, width) in pixels, as torchvision's
  RandomResizedCrop draws them, with continuous coordinates.

  Per image: an area fraction uniform in `area`, an aspect ratio (width / height)
  log-uniform in `aspect`, and a uniform position. Of `tries` draws the first that
  fits in the image is kept; if none fits, the last is shrunk to fit (the fallback
  keeps its aspect ratio but not its area).
  """
  h, w = image_hw
  check_crop_ranges(area, aspect)
  k_area, k_aspect, k_y, k_x = jax.random.split(rng, 4)
  fraction = jax.random.uniform(k_area, (batch, tries), minval=area[0], maxval=area[1])
  log_ratio = jax.random.uniform(k_aspect, (batch, tries), minval=math.log(aspect[0]),
                                 maxval=math.log(aspect[1]))
  ratio = jnp.exp(log_ratio)
  height = jnp.sqrt(fraction * h * w / ratio)
  width = height * ratio
  fits = (height <= h) & (width <= w)
  pick = jnp.where(fits.any(axis=1), jnp.argmax(fits, axis=1), tries - 1)
  height = jnp.take_along_axis(height, pick[:, None], 1)[:, 0]
  width = jnp.take_along_axis(width, pick[:, None], 1)[:, 0]
  shrink = jnp.minimum(1.0, jnp.minimum(h / height, w / width))
  height, width = height * shrink, width * shrink
  top = jax.random.uniform(k_y, (batch,)) * (h - height)
  left = jax.random.uniform(k_x, (batch,)) * (w - width)
  return jnp.stack([top, left, height, width], axis=1)


def crop_and_resize(images: jax.Array, boxes: jax.Array, size_hw: tuple[int, int]) -> jax.Array:
  """Each image's box (top, left, height, width; continuous pixels) resized to size_hw.

  Bilinear, antialiased when the box is larger than the output (a triangle filter
  widened by the scale, as PIL's resize with a box: the tests compare with it).
  Pixels just outside a box but inside the image take part in the filter, so crop
  borders show no edge artefacts. Returns float32 in the input's units ([0, 1] for uint8).
  """
  size_hw = tuple(size_hw)
  def one(image, box):
    scale = jnp.stack([size_hw[0] / box[2], size_hw[1] / box[3]])
    translation = -box[:2] * scale
    return jax.image.scale_and_translate(image, size_hw + image.shape[-1:], (0, 1), scale,
                                         translation, method="linear", antialias=True)
  return jax.vmap(one)(to_float(images), boxes.astype(jnp.float32))


def _fix_indices(index: jax.Array, size: int, fill: str) -> tuple[jax.Array, jax.Array]:
  """(index inside [0, size), whether the original index was inside) for one fill rule."""
  inside = (index >= 0) & (index < size)
  if fill == "reflect":  # half-sample symmetric: ... b a | a b c d | d c ...
    period = 2 * size
    index = jnp.mod(index, period)
    index = jnp.where(index >= size, period - 1 - index, index)
  return jnp.clip(index, 0, size - 1), inside


def bilinear_sample(image: jax.Array, ys: jax.Array, xs: jax.Array, fill: str = "constant",
                    fill_value: float = 0.0) -> jax.Array:
  """image (H, W, C) read at real coordinates (ys, xs) (pixel centres at integers), bilinear.

  Where a neighbour lies outside the image: 'constant' reads `fill_value`, 'nearest'
  the closest edge pixel, 'reflect' the mirror image (scipy.ndimage's 'grid-constant',
  'nearest' and 'reflect' modes).
  """
  if fill not in FILL_MODES:
    raise ValueError(f"unknown fill {fill!r}; choose one of {FILL_MODES}.")
  h, w = image.shape[:2]
  y0, x0 = jnp.floor(ys), jnp.floor(xs)
  wy, wx = (ys - y0)[..., None], (xs - x0)[..., None]
  y0, x0 = y0.astype(jnp.int32), x0.astype(jnp.int32)
  out = 0.0
  for dy, weight_y in ((0, 1 - wy), (1, wy)):
    y, y_in = _fix_indices(y0 + dy, h, fill)
    for dx, weight_x in ((0, 1 - wx), (1, wx)):
      x, x_in = _fix_indices(x0 + dx, w, fill)
      value = image[y, x]
      if fill == "constant":
        value = jnp.where((y_in & x_in)[..., None], value, fill_value)
      out = out + weight_y * weight_x * value
  return out


def rotate(images: jax.Array, angles: jax.Array, size_hw: tuple[int, int] | None = None,
           fill: str = "constant", fill_value: float = 0.0) -> jax.Array:
  """Rotate each image about its centre by its angle in degrees, counter-clockwise as
  displayed (y down), bilinear.

  `size_hw`: the output, centred on the input's centre (default: the input size); a
  smaller output is the central crop of the full rotation, computed directly.
  `fill`/`fill_value`: what shows where the rotated image does not cover the output
  (see bilinear_sample). Returns float32 in the input's units ([0, 1] for uint8).
  """
  h, w = images.shape[1:3]
  oh, ow = size_hw or (h, w)
  dy = jnp.arange(oh, dtype=jnp.float32)[:, None] - (oh - 1) / 2
  dx = jnp.arange(ow, dtype=jnp.float32)[None, :] - (ow - 1) / 2
  def one(image, angle):
    theta = jnp.deg2rad(angle)
    cos, sin = jnp.cos(theta), jnp.sin(theta)
    xs = (w - 1) / 2 + dx * cos - dy * sin
    ys = (h - 1) / 2 + dx * sin + dy * cos
    return bilinear_sample(image, ys, xs, fill, fill_value)
  return jax.vmap(one)(to_float(images), angles.astype(jnp.float32))


def random_flip(rng: jax.Array, images: jax.Array, prob: float = 0.5) -> jax.Array:
  """Mirror each image left-right with probability `prob`."""
  flip = jax.random.bernoulli(rng, prob, (images.shape[0], 1, 1, 1))
  return jnp.where(flip, images[:, :, ::-1], images)


def hue_matrix(angles: jax.Array) -> jax.Array:
  """(B, 3, 3) RGB maps that turn the hue by `angles` degrees: a rotation of the (I, Q)
  chroma plane of YIQ, so luma is kept and the map stays linear (unlike HSV's hue)."""
  theta = jnp.deg2rad(angles.astype(jnp.float32))
  cos, sin = jnp.cos(theta), jnp.sin(theta)
  zero, one = jnp.zeros_like(theta), jnp.ones_like(theta)
  turn = jnp.stack([jnp.stack([one, zero, zero], -1),
                    jnp.stack([zero, cos, -sin], -1),
                    jnp.stack([zero, sin, cos], -1)], -2)
  return jnp.asarray(_RGB_FROM_YIQ) @ turn @ jnp.asarray(_YIQ_FROM_RGB)


def color_intensity(images: jax.Array, factors: jax.Array, hue_angles: jax.Array) -> jax.Array:
  """Brightness, contrast and saturation `factors` (B, 3), then a hue turn of `hue_angles`
  (B,) degrees, as one affine colour map per image (jitter_affine, then hue_matrix);
  clipped to [0, 1]. Contrast pivots on the image's mean gray (mean_luma)."""
  matrix, offset = jitter_affine(factors, mean_luma(images))
  turn = hue_matrix(hue_angles)
  return apply_color_affine(images, turn @ matrix, (turn @ offset[..., None])[..., 0])


def random_color_intensity(rng: jax.Array, images: jax.Array, prob: float = 0.5,
                           brightness: float = 0.4, contrast: float = 0.4,
                           saturation: float = 0.4, hue: float = 36.0) -> jax.Array:
  """With probability `prob` per image, color_intensity with brightness, contrast and
  saturation factors uniform in [1 - s, 1 + s] and a hue turn uniform in [-hue, hue]
  degrees; other images pass unchanged (as float).

  Every part is linear in RGB, as the illumination-like colour and intensity changes
  of Asano et al.; hue 36 degrees matches torchvision's hue=0.1 of a full turn.
  """
  k_apply, k_factors, k_hue = jax.random.split(rng, 3)
  b = images.shape[0]
  apply = jax.random.bernoulli(k_apply, prob, (b,))
  factors = jitter_factors(k_factors, b, brightness, contrast, saturation)
  factors = jnp.where(apply[:, None], factors, 1.0)
  turn = jnp.where(apply, jax.random.uniform(k_hue, (b,), minval=-hue, maxval=hue), 0.0)
  return color_intensity(images, factors, turn)


@dataclasses.dataclass(frozen=True)
class AugmentSpec:
  """The augmentation of one experiment (config.pretrain.augment without source_size)."""
  crop_area: tuple[float, float] = (1e-4, 1.0)  # fraction of the source image's area
  aspect: tuple[float, float] = (3 / 4, 4 / 3)
  rotation: float = 35.0  # degrees, uniform in [-rotation, rotation]; 0: none
  fill: str = "crop"  # 'crop' (rotate a sqrt(2) larger crop, keep its centre) or FILL_MODES
  flip: float = 0.5  # probability of a left-right mirror
  color_prob: float = 0.5  # probability of the colour and intensity change
  brightness: float = 0.4
  contrast: float = 0.4
  saturation: float = 0.4
  hue: float = 36.0  # degrees

  def __post_init__(self):
    check_crop_ranges(self.crop_area, self.aspect)
    if self.fill != "crop" and self.fill not in FILL_MODES:
      raise ValueError(f"unknown augment fill {self.fill!r}; choose 'crop' or one of "
                       f"{FILL_MODES}.")
    if not 0 <= self.rotation <= 45 and self.fill == "crop":
      raise ValueError(f"augment rotation={self.rotation} degrees: fill='crop' hides the "
                       f"corners only up to 45 degrees; use a smaller angle or another fill.")


def stream_view(rng: jax.Array, images: jax.Array, spec: AugmentSpec, size: int) -> jax.Array:
  """One new size x size uint8 view of each source image (B, H, W, 3) for the augmented
  stream (an AugmentSpec): random resized crop, rotation, flip, colour and intensity, drawn
  per image (module docstring). The joint-embedding methods' views are
  `views.random_view` (a ViewSpec: SimCLR's order, blur, solarisation)."""
  k_box, k_angle, k_flip, k_color = jax.random.split(rng, 4)
  b, h, w = images.shape[:3]
  rotating = spec.rotation > 0
  crop = math.ceil(math.sqrt(2) * size) if rotating and spec.fill == "crop" else size
  boxes = random_crop_boxes(k_box, b, (h, w), tuple(spec.crop_area), tuple(spec.aspect))
  views = crop_and_resize(images, boxes, (crop, crop))
  if rotating:
    angles = jax.random.uniform(k_angle, (b,), minval=-spec.rotation, maxval=spec.rotation)
    fill = "constant" if spec.fill == "crop" else spec.fill
    views = rotate(views, angles, (size, size), fill)
  views = random_flip(k_flip, views, spec.flip)
  if spec.color_prob > 0:
    views = random_color_intensity(k_color, views, spec.color_prob, spec.brightness,
                                   spec.contrast, spec.saturation, spec.hue)
  return quantize(views)
