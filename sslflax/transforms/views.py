"""Views for joint-embedding methods (SimCLR, BYOL, MoCo v2, SwAV): the SimCLR family of
augmentations as standalone JAX ops, and their composition into 2 or more views per image.

SimCLR (Chen et al. 2020, appendix A): random resized crop (area 0.08-1, aspect 3/4-4/3) and
flip; with p = 0.8 a colour jitter of brightness, contrast and saturation 0.8 s and hue 0.2 s
of a turn, the four in random order (torchvision's ColorJitter), s = 1; grayscale with
p = 0.2; a Gaussian blur with p = 0.5, sigma uniform in [0.1, 2.0] and a kernel of 10% of
the side. BYOL (Grill et al. 2020, table 6) uses two different distributions: blur with p = 1
and 0.1, solarisation with p = 0 and 0.2, colour jitter 0.4, 0.4, 0.2, 0.1.

Colours follow torchvision's tensor ops, which the authors' code uses (SimCLR's TF code calls
tf.image's equivalents): gray is 0.2989 R + 0.587 G + 0.114 B; brightness multiplies,
contrast pivots on the image's mean gray, saturation on each pixel's gray, and hue shifts the
HSV hue. Each op is clipped to [0, 1], so their order matters, and is drawn per image. (The
other augmentations, sslflax.transforms.augment, keep Rec. 709 gray and a linear YIQ hue.)
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import jax
import jax.numpy as jnp

from sslflax.transforms.augment import (check_crop_ranges, crop_and_resize, random_crop_boxes,
                                        random_flip)
from sslflax.transforms.color import (apply_color_affine, quantize, random_grayscale,
                                      rgb_to_grayscale, to_float)

JITTER_OPS = ("brightness", "contrast", "saturation", "hue")
# torchvision's rgb_to_grayscale (and tf.image's): the gray of the views' jitter and grayscale
VIEW_LUMA = (0.2989, 0.587, 0.114)


def rgb_to_hsv(images: jax.Array) -> jax.Array:
  """float RGB in [0, 1] -> HSV, each in [0, 1] (torchvision's _rgb2hsv; gray has hue 0)."""
  r, g, b = images[..., 0], images[..., 1], images[..., 2]
  maxc, minc = images.max(axis=-1), images.min(axis=-1)
  flat = maxc == minc
  chroma = maxc - minc
  saturation = chroma / jnp.where(flat, 1.0, maxc)
  divisor = jnp.where(flat, 1.0, chroma)
  rc, gc, bc = (maxc - r) / divisor, (maxc - g) / divisor, (maxc - b) / divisor
  hue = jnp.where(maxc == r, bc - gc, jnp.where(maxc == g, 2.0 + rc - bc, 4.0 + gc - rc))
  hue = jnp.mod(hue / 6.0 + 1.0, 1.0)
  return jnp.stack([hue, saturation, maxc], axis=-1)


def hsv_to_rgb(hsv: jax.Array) -> jax.Array:
  """HSV in [0, 1] -> float RGB (torchvision's _hsv2rgb): the sextant's (v, q, p, ...) pick."""
  h, s, v = hsv[..., 0], hsv[..., 1], hsv[..., 2]
  sextant = jnp.floor(h * 6.0)
  f = h * 6.0 - sextant
  sextant = sextant.astype(jnp.int32) % 6
  p = jnp.clip(v * (1.0 - s), 0.0, 1.0)
  q = jnp.clip(v * (1.0 - s * f), 0.0, 1.0)
  t = jnp.clip(v * (1.0 - s * (1.0 - f)), 0.0, 1.0)
  picks = [[v, q, p, p, t, v], [t, v, v, q, p, p], [p, p, t, v, v, q]]
  in_sextant = [sextant == k for k in range(6)]  # elementwise: no gather, so no collective
  return jnp.stack([jnp.select(in_sextant, channel) for channel in picks], axis=-1)


def adjust_hue(images: jax.Array, turns: jax.Array) -> jax.Array:
  """Shift each image's HSV hue by `turns` (B,) of a turn (torchvision's adjust_hue)."""
  hsv = rgb_to_hsv(to_float(images))
  hue = jnp.mod(hsv[..., 0] + turns[:, None, None], 1.0)
  return hsv_to_rgb(jnp.concatenate([hue[..., None], hsv[..., 1:]], axis=-1))


def gaussian_kernels(sigmas: jax.Array, size: int) -> jax.Array:
  """(B, size) normalised 1-D Gaussian kernels, one per sigma (in pixels)."""
  offsets = jnp.arange(size, dtype=jnp.float32) - (size - 1) / 2
  weights = jnp.exp(-0.5 * (offsets / jnp.maximum(sigmas[:, None], 1e-6)) ** 2)
  return weights / jnp.sum(weights, axis=1, keepdims=True)


def gaussian_blur(images: jax.Array, sigmas: jax.Array, kernel_size: int) -> jax.Array:
  """Blur each image with its own Gaussian (sigma in pixels; kernel_size odd), separably,
  with reflected borders (as torchvision's gaussian_blur). Float in the input's units."""
  if kernel_size < 1 or kernel_size % 2 == 0:
    raise ValueError(f"gaussian_blur kernel_size={kernel_size}: use an odd size >= 1.")
  x = to_float(images)
  kernels = gaussian_kernels(sigmas.astype(jnp.float32), kernel_size)
  r = kernel_size // 2
  for axis in (1, 2):
    pad = [(0, 0)] * 4
    pad[axis] = (r, r)
    padded = jnp.pad(x, pad, mode="reflect")
    n = x.shape[axis]
    x = sum(kernels[:, k, None, None, None] * jax.lax.slice_in_dim(padded, k, k + n, axis=axis)
            for k in range(kernel_size))
  return x


def blur_kernel_size(side: int, fraction: float = 0.1) -> int:
  """SimCLR's kernel: `fraction` of the image side, made odd (23 at 224 px, 7 at 64)."""
  size = int(round(side * fraction))
  return max(1, size + 1 - size % 2)


def random_gaussian_blur(rng: jax.Array, images: jax.Array, prob: float = 0.5,
                         sigma: tuple[float, float] = (0.1, 2.0),
                         kernel_size: int | None = None) -> jax.Array:
  """With probability `prob` per image, a Gaussian blur with sigma uniform in `sigma` (pixels
  at the image's own size); the kernel defaults to 10% of the side (blur_kernel_size)."""
  k_apply, k_sigma = jax.random.split(rng)
  b = images.shape[0]
  size = kernel_size or blur_kernel_size(images.shape[1])
  sigmas = jax.random.uniform(k_sigma, (b,), minval=sigma[0], maxval=sigma[1])
  blurred = gaussian_blur(images, sigmas, size)
  apply = jax.random.bernoulli(k_apply, prob, (b, 1, 1, 1))
  return jnp.where(apply, blurred, to_float(images))


def solarize(images: jax.Array, threshold: float = 0.5) -> jax.Array:
  """Invert every value at or above `threshold` (x -> 1 - x), as PIL's ImageOps.solarize."""
  x = to_float(images)
  return jnp.where(x >= threshold, 1.0 - x, x)


def random_solarize(rng: jax.Array, images: jax.Array, prob: float,
                    threshold: float = 0.5) -> jax.Array:
  """solarize each image with probability `prob`."""
  apply = jax.random.bernoulli(rng, prob, (images.shape[0], 1, 1, 1))
  return jnp.where(apply, solarize(images, threshold), to_float(images))


def _jitter_maps(op: jax.Array, factor: jax.Array, pivot: jax.Array
                 ) -> tuple[jax.Array, jax.Array]:
  """Per image, the (3x3 matrix, offset) of brightness, contrast or saturation (op 0-2) with
  its factor; the identity for the hue (op 3), which is not affine in RGB."""
  eye = jnp.eye(3, dtype=jnp.float32)
  gray = jnp.broadcast_to(jnp.asarray(VIEW_LUMA, jnp.float32), (3, 3))  # every channel <- gray
  f = factor[:, None, None]
  identity = jnp.broadcast_to(eye, f.shape[:1] + (3, 3))
  matrices = jnp.stack([f * eye,                                 # brightness: x * b
                        f * eye,                                 # contrast: m + c (x - m)
                        gray + f * (eye - gray),                 # saturation: g + s (x - g)
                        identity], axis=1)                       # (B, 4, 3, 3)
  zero = jnp.zeros_like(factor)
  offsets = jnp.stack([zero, (1.0 - factor) * pivot, zero, zero], axis=1)  # (B, 4)
  pick = op[:, None, None, None]
  matrix = jnp.take_along_axis(matrices, pick, axis=1)[:, 0]
  offset = jnp.take_along_axis(offsets, op[:, None], axis=1)
  return matrix, jnp.broadcast_to(offset, (op.shape[0], 3))


def color_jitter_in_order(images: jax.Array, order: jax.Array, factors: jax.Array,
                          angles: jax.Array) -> jax.Array:
  """Per image, the JITTER_OPS in `order` (B, 4): brightness, contrast and saturation with
  `factors` (B, 3), an HSV hue shift of `angles` (B,) degrees; each op clipped to [0, 1]."""
  out = to_float(images)
  b = out.shape[0]
  factors = jnp.concatenate([factors, jnp.ones((b, 1), jnp.float32)], axis=1)  # hue: unused
  for position in range(len(JITTER_OPS)):
    op = order[:, position]
    factor = jnp.take_along_axis(factors, op[:, None], axis=1)[:, 0]
    matrix, offset = _jitter_maps(op, factor, jnp.mean(rgb_to_grayscale(out, False, VIEW_LUMA), axis=(1, 2, 3)))
    affine = apply_color_affine(out, matrix, offset)
    hue = jnp.clip(adjust_hue(out, angles / 360.0), 0.0, 1.0)
    out = jnp.where((op == JITTER_OPS.index("hue"))[:, None, None, None], hue, affine)
  return out


def jitter_params(rng: jax.Array, batch: int, brightness: float, contrast: float,
                  saturation: float, hue: float) -> tuple[jax.Array, jax.Array, jax.Array]:
  """torchvision's ColorJitter draws: a uniform random order of the 4 ops (B, 4), factors
  uniform in [1 - s, 1 + s] and at least 0 (B, 3), hue angles uniform in [-hue, hue] (B,)."""
  k_order, k_factor, k_hue = jax.random.split(rng, 3)
  spread = jnp.array([brightness, contrast, saturation], jnp.float32)
  factors = jnp.maximum(0.0, 1.0 + spread * jax.random.uniform(k_factor, (batch, 3),
                                                              minval=-1.0, maxval=1.0))
  angles = jax.random.uniform(k_hue, (batch,), minval=-hue, maxval=hue)
  order = jax.vmap(lambda k: jax.random.permutation(k, len(JITTER_OPS)))(
      jax.random.split(k_order, batch))
  return order, factors, angles


def random_color_jitter(rng: jax.Array, images: jax.Array, prob: float = 0.8,
                        brightness: float = 0.8, contrast: float = 0.8,
                        saturation: float = 0.8, hue: float = 72.0) -> jax.Array:
  """With probability `prob` per image, torchvision's ColorJitter: brightness, contrast and
  saturation factors uniform in [1 - s, 1 + s], a hue turn uniform in [-hue, hue] degrees
  (72 = 0.2 of a turn), the four in a random order per image, each clipped to [0, 1]
  (jitter_params, color_jitter_in_order). Other images pass unchanged (as float)."""
  k_apply, k_params = jax.random.split(rng)
  x = to_float(images)
  out = color_jitter_in_order(x, *jitter_params(k_params, x.shape[0], brightness, contrast,
                                                saturation, hue))
  apply = jax.random.bernoulli(k_apply, prob, (x.shape[0], 1, 1, 1))
  return jnp.where(apply, out, x)


@dataclasses.dataclass(frozen=True)
class ViewSpec:
  """One view distribution of the SimCLR family (defaults: SimCLR's, s = 1)."""
  crop_area: tuple[float, float] = (0.08, 1.0)  # fraction of the image's area
  aspect: tuple[float, float] = (3 / 4, 4 / 3)
  flip: float = 0.5
  jitter_prob: float = 0.8
  brightness: float = 0.8
  contrast: float = 0.8
  saturation: float = 0.8
  hue: float = 72.0  # degrees (0.2 of a turn)
  grayscale_prob: float = 0.2
  blur_prob: float = 0.5
  blur_sigma: tuple[float, float] = (0.1, 2.0)  # pixels at 224 px; scaled with the view's side
  # 0: a kernel of 10% of the view's side, blur_sigma scaled from 224 px (SimCLR's). > 0: that
  # kernel, with blur_sigma in the view's own pixels, at every view size (SwAV's 23 px).
  blur_kernel: int = 0
  solarize_prob: float = 0.0

  def __post_init__(self):
    check_crop_ranges(tuple(self.crop_area), tuple(self.aspect))
    for name in ("flip", "jitter_prob", "grayscale_prob", "blur_prob", "solarize_prob"):
      value = getattr(self, name)
      if not 0.0 <= value <= 1.0:
        raise ValueError(f"view {name}={value} is not a probability in [0, 1].")


SIMCLR_VIEW = ViewSpec()
# BYOL's two asymmetric distributions (Grill et al. 2020, table 6).
BYOL_VIEWS = (ViewSpec(brightness=0.4, contrast=0.4, saturation=0.2, hue=36.0, blur_prob=1.0,
                       solarize_prob=0.0),
              ViewSpec(brightness=0.4, contrast=0.4, saturation=0.2, hue=36.0, blur_prob=0.1,
                       solarize_prob=0.2))
# MoCo v2's views (main_moco.py --aug-plus): crop 0.2-1 of the area, ColorJitter(0.4, 0.4,
# 0.4, 0.1) at p 0.8 ("not strengthened", unlike SimCLR's 0.8 s), grayscale p 0.2, blur p 0.5.
MOCO_V2_VIEW = ViewSpec(crop_area=(0.2, 1.0), brightness=0.4, contrast=0.4, saturation=0.4,
                        hue=36.0)
BLUR_REFERENCE_SIDE = 224  # the papers' sigmas are in pixels of a 224 px view


def random_view(rng: jax.Array, images: jax.Array, spec: ViewSpec, size: int) -> jax.Array:
  """One size x size uint8 view of each image (B, H, W, 3) drawn from `spec`, in SimCLR's
  order: crop and resize, flip, colour jitter, grayscale, blur, solarisation."""
  k_box, k_flip, k_jitter, k_gray, k_blur, k_solar = jax.random.split(rng, 6)
  b, h, w = images.shape[:3]
  boxes = random_crop_boxes(k_box, b, (h, w), tuple(spec.crop_area), tuple(spec.aspect))
  x = random_flip(k_flip, crop_and_resize(images, boxes, (size, size)), spec.flip)
  if spec.jitter_prob > 0:
    x = random_color_jitter(k_jitter, x, spec.jitter_prob, spec.brightness, spec.contrast,
                            spec.saturation, spec.hue)
  if spec.grayscale_prob > 0:
    x = random_grayscale(k_gray, x, spec.grayscale_prob, VIEW_LUMA)
  if spec.blur_prob > 0 and spec.blur_kernel:
    x = random_gaussian_blur(k_blur, x, spec.blur_prob, tuple(spec.blur_sigma), spec.blur_kernel)
  elif spec.blur_prob > 0:
    x = random_gaussian_blur(k_blur, x, spec.blur_prob, scaled_sigma(spec.blur_sigma, size))
  if spec.solarize_prob > 0:
    x = random_solarize(k_solar, x, spec.solarize_prob)
  return quantize(x)


def multi_view(rng: jax.Array, images: jax.Array, specs: Sequence[ViewSpec],
               sizes: Sequence[int]) -> list[jax.Array]:
  """One view per (spec, size) of every image, each (B, size, size, 3) uint8, with
  independent draws: two SimCLR views, BYOL's asymmetric pair, or SwAV's multi-crop
  (2 global views and N smaller local ones, see multi_crop_specs)."""
  if len(specs) != len(sizes):
    raise ValueError(f"multi_view: {len(specs)} specs but {len(sizes)} sizes; give one each.")
  keys = jax.random.split(rng, len(specs))
  return [random_view(k, images, spec, size) for k, spec, size in zip(keys, specs, sizes)]


def multi_crop_specs(global_size: int, local_size: int, num_local: int,
                     global_area: tuple[float, float] = (0.14, 1.0),
                     local_area: tuple[float, float] = (0.05, 0.14),
                     base: ViewSpec = SIMCLR_VIEW) -> tuple[tuple[ViewSpec, ...], tuple[int, ...]]:
  """SwAV's multi-crop (Caron et al. 2020): 2 global views (area 0.14-1) at global_size and
  num_local local views (area 0.05-0.14) at local_size (224 and 96 in the paper)."""
  glob = dataclasses.replace(base, crop_area=tuple(global_area))
  local = dataclasses.replace(base, crop_area=tuple(local_area))
  return (glob, glob) + (local,) * num_local, (global_size,) * 2 + (local_size,) * num_local


def scaled_sigma(sigma: tuple[float, float], size: int) -> tuple[float, float]:
  """A sigma range given in pixels of a 224 px view, in pixels of a `size` view."""
  return (sigma[0] * size / BLUR_REFERENCE_SIDE, sigma[1] * size / BLUR_REFERENCE_SIDE)

