"""Exact rotations, crops, resizes and tilings of batched NHWC images in pure JAX."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

DOWNSAMPLE_METHODS = ("nearest", "linear", "cubic", "area")


def rotate90(images: jax.Array, k: int) -> jax.Array:
  """Rotate every image by k * 90 degrees counter-clockwise, exactly (no resampling)."""
  return jnp.rot90(images, k=k, axes=(1, 2))


def all_rotations(images: jax.Array) -> tuple[jax.Array, jax.Array]:
  """The 4 exact rotations (0, 90, 180, 270 degrees) of each square image.

  Returns (rotated, labels) with rotated of shape (4B, H, W, C) ordered image-major
  (image 0 at 0/90/180/270, then image 1, ...) so that a batch sharded over its
  first axis stays on the device that holds the source image; labels in {0, 1, 2, 3}.
  """
  b, h, w = images.shape[:3]
  if h != w:
    raise ValueError(f"all_rotations needs square images, got {h}x{w}; crop or resize first.")
  stacked = jnp.stack([rotate90(images, k) for k in range(4)], axis=1)
  labels = jnp.tile(jnp.arange(4, dtype=jnp.int32), b)
  return stacked.reshape((4 * b,) + images.shape[1:]), labels


def random_crop_offsets(rng: jax.Array, batch: int, image_hw: tuple[int, int],
                        crop_hw: tuple[int, int]) -> jax.Array:
  """Uniform top-left corners (batch, 2) for crops of crop_hw inside image_hw."""
  (h, w), (ch, cw) = image_hw, crop_hw
  if ch > h or cw > w:
    raise ValueError(f"crop {ch}x{cw} is larger than the image {h}x{w}.")
  k_y, k_x = jax.random.split(rng)
  ys = jax.random.randint(k_y, (batch,), 0, h - ch + 1)
  xs = jax.random.randint(k_x, (batch,), 0, w - cw + 1)
  return jnp.stack([ys, xs], axis=-1)


def crop_at(images: jax.Array, offsets: jax.Array, crop_hw: tuple[int, int]) -> jax.Array:
  """Crop each image (B, H, W, C) at its own (y, x) offset to crop_hw."""
  def one(image, offset):
    return jax.lax.dynamic_slice(image, (offset[0], offset[1], 0), crop_hw + (image.shape[-1],))
  return jax.vmap(one)(images, offsets)


def random_crop(rng: jax.Array, images: jax.Array, crop_hw: tuple[int, int]) -> jax.Array:
  """An independent uniform random crop of crop_hw from each image."""
  offsets = random_crop_offsets(rng, images.shape[0], images.shape[1:3], crop_hw)
  return crop_at(images, offsets, crop_hw)


def center_crop(images: jax.Array, crop_hw: tuple[int, int]) -> jax.Array:
  """The central crop_hw window of every image."""
  h, w = images.shape[1:3]
  top, left = (h - crop_hw[0]) // 2, (w - crop_hw[1]) // 2
  return images[:, top:top + crop_hw[0], left:left + crop_hw[1]]


def resize(images: jax.Array, size_hw: tuple[int, int], method: str = "linear") -> jax.Array:
  """Resize a batch to size_hw with jax.image.resize ('area' = box filter for integer factors)."""
  images = images.astype(jnp.float32)
  b, h, w, c = images.shape
  if method == "area":
    fy, fx = h // size_hw[0], w // size_hw[1]
    if fy * size_hw[0] != h or fx * size_hw[1] != w:
      raise ValueError(f"'area' resize needs integer factors, got {h}x{w} -> {size_hw}.")
    return images.reshape(b, size_hw[0], fy, size_hw[1], fx, c).mean(axis=(2, 4))
  return jax.image.resize(images, (b,) + tuple(size_hw) + (c,), method=method, antialias=True)


def random_resized_crop(rng: jax.Array, images: jax.Array, size_hw: tuple[int, int],
                        min_scale: float = 0.35) -> jax.Array:
  """Per image: a random square crop with side in [min_scale, 1] of the shorter side,
  at a random position, resized to size_hw (bilinear, antialiased).

  Uses jax.image.scale_and_translate, so crop sizes vary per image while the
  output shape stays static under jit.
  """
  b, h, w, _ = images.shape
  k_side, k_y, k_x = jax.random.split(rng, 3)
  side = jax.random.uniform(k_side, (b,), minval=min_scale, maxval=1.0) * min(h, w)
  top = jax.random.uniform(k_y, (b,)) * (h - side)
  left = jax.random.uniform(k_x, (b,)) * (w - side)
  def one(image, side, top, left):
    scale = jnp.stack([size_hw[0] / side, size_hw[1] / side])
    translation = -jnp.stack([top, left]) * scale
    return jax.image.scale_and_translate(
        image, tuple(size_hw) + image.shape[-1:], (0, 1), scale, translation,
        method="linear", antialias=True)
  return jax.vmap(one)(images.astype(jnp.float32), side, top, left)


def tile_grid(images: jax.Array, grid: int) -> jax.Array:
  """Cut each image into a grid x grid array of equal cells, row-major.

  (B, H, W, C) -> (B, grid*grid, H//grid, W//grid, C); any remainder at the
  bottom/right edge is dropped.
  """
  b, h, w, c = images.shape
  ch, cw = h // grid, w // grid
  cells = images[:, :ch * grid, :cw * grid].reshape(b, grid, ch, grid, cw, c)
  return cells.transpose(0, 1, 3, 2, 4, 5).reshape(b, grid * grid, ch, cw, c)


def untile_grid(tiles: jax.Array, grid: int) -> jax.Array:
  """Inverse of tile_grid: (B, grid*grid, h, w, C) -> (B, grid*h, grid*w, C)."""
  b, _, th, tw, c = tiles.shape
  return tiles.reshape(b, grid, grid, th, tw, c).transpose(0, 1, 3, 2, 4, 5).reshape(
      b, grid * th, grid * tw, c)


def random_tile_grid(rng: jax.Array, images: jax.Array, grid: int, tile: int) -> jax.Array:
  """Jigsaw tiles: a grid x grid split, then an independent random tile x tile crop per cell.

  The random crop inside each cell leaves gaps of random width between
  neighbouring tiles, so edges and continued lines cannot solve the puzzle.
  Returns (B, grid*grid, tile, tile, C).
  """
  cells = tile_grid(images, grid)
  b, n, ch, cw, c = cells.shape
  if tile > min(ch, cw):
    raise ValueError(f"tile {tile} does not fit in a grid cell of {ch}x{cw} "
                     f"(image {images.shape[1]}x{images.shape[2]}, grid {grid}); "
                     f"use a larger image or a smaller tile.")
  flat = cells.reshape(b * n, ch, cw, c)
  return random_crop(rng, flat, (tile, tile)).reshape(b, n, tile, tile, c)


def random_channel_shift(rng: jax.Array, images: jax.Array, max_shift: int = 2) -> jax.Array:
  """Shift each channel of each image by its own integer offset (dy, dx), each uniform in
  [-max_shift, max_shift], edges repeated: (B, H, W, C) -> the same shape and dtype.

  Noroozi & Favaro's guard against chromatic aberration: a lens shifts colour channels
  against each other towards the image's borders, which tells a tile's position; independent
  shifts per tile and channel make that cue useless.
  """
  if max_shift <= 0:
    return images
  b, h, w, c = images.shape
  offsets = jax.random.randint(rng, (b, c, 2), 0, 2 * max_shift + 1)
  padded = jnp.pad(images, ((0, 0), (max_shift, max_shift), (max_shift, max_shift), (0, 0)),
                   mode="edge")
  def one_channel(plane, offset):  # plane (H + 2m, W + 2m); offset 0..2m = shift + m
    return jax.lax.dynamic_slice(plane, (offset[0], offset[1]), (h, w))
  per_image = jax.vmap(one_channel, in_axes=(2, 0), out_axes=2)
  return jax.vmap(per_image)(padded, offsets)


def quadrant_tiles(images: jax.Array) -> jax.Array:
  """The 2x2 tiles T1..T4 of each image: (B, H, W, C) -> (B, 4, H/2, W/2, C)."""
  return tile_grid(images, 2)


DOWNSAMPLE_TAPS = 8  # the widest 2x kernel here (antialiased cubic) spans 8 inputs


@functools.lru_cache(maxsize=None)
def _banded_resize_weights(in_size: int, out_size: int, method: str,
                           taps: int = DOWNSAMPLE_TAPS) -> np.ndarray:
  """(out, taps) weights of a 1-D downsampling by 2, read off jax.image.resize's own matrix.

  Output o reads inputs 2o - taps/2 + 1 ... 2o + taps/2; weights outside the
  image are 0 (resize already renormalises at the borders).
  """
  if method == "area":
    dense = np.zeros((out_size, in_size), np.float32)
    for o in range(out_size):
      dense[o, 2 * o:2 * o + 2] = 0.5
  else:
    with jax.ensure_compile_time_eval():  # a constant, also when called under jit
      eye = jnp.eye(in_size, dtype=jnp.float32)[:, :, None, None]  # resize each basis vector
      dense = np.asarray(jax.image.resize(eye, (in_size, out_size, 1, 1), method, antialias=True))
    dense = dense[:, :, 0, 0].T  # (out, in)
  weights = np.zeros((out_size, taps), np.float32)
  for o in range(out_size):
    for t in range(taps):
      i = 2 * o - taps // 2 + 1 + t
      if 0 <= i < in_size:
        weights[o, t] = dense[o, i]
  return weights


def _filter_by_2(x: jax.Array, weights: np.ndarray, axis: int, scale: float = 1.0) -> jax.Array:
  """Downsample by 2 along `axis` with constant banded weights (out, taps).

  Runs of outputs with the same weights (the interior, where the kernel is
  shift-invariant) are each one sum of strided slices times scalars; only the
  few border outputs, where resize renormalises, form runs of their own. The
  input is never padded or copied, nor converted to float before its taps are read
  (`scale` multiplies the weights, e.g. 1/255 for uint8 input).
  """
  taps = weights.shape[1]
  runs = []  # (first output, count) of consecutive outputs sharing their weights
  for o in range(weights.shape[0]):
    if runs and np.array_equal(weights[o], weights[runs[-1][0]]):
      runs[-1][1] += 1
    else:
      runs.append([o, 1])

  def outputs(first: int, count: int) -> jax.Array:
    def tap(t: int) -> jax.Array:
      start = 2 * first - taps // 2 + 1 + t
      return jax.lax.slice_in_dim(x, start, start + 2 * count - 1, 2, axis).astype(jnp.float32)
    kernel = weights[first]
    total = 0.0
    for t in range(taps // 2):  # symmetric pairs share one multiply
      mirror = taps - 1 - t
      if kernel[t] == kernel[mirror] != 0:
        total = total + (tap(t) + tap(mirror)) * (kernel[t] * scale)
      else:
        for u in (t, mirror):
          if kernel[u] != 0:  # zero taps cost nothing
            total = total + tap(u) * (kernel[u] * scale)
    return total

  pieces = [outputs(first, count) for first, count in runs]
  return jnp.concatenate(pieces, axis=axis) if len(pieces) > 1 else pieces[0]


def downsample_by_2(images: jax.Array, method: str) -> jax.Array:
  """resize(images, (H/2, W/2), method), float32 in [0, 1], as separable strided filters.

  Equal to jax.image.resize up to float rounding: only the nonzero taps of this one
  filter are read, and no dense resize matrix is applied.
  """
  h, w = images.shape[1] // 2, images.shape[2] // 2
  scale = 1.0 / 255.0 if images.dtype == jnp.uint8 else 1.0  # as to_float
  x = _filter_by_2(images, _banded_resize_weights(2 * h, h, method), axis=1, scale=scale)
  return _filter_by_2(x, _banded_resize_weights(2 * w, w, method), axis=2)


def downsample_random_filter(rng: jax.Array, images: jax.Array,
                             methods: tuple[str, ...] = DOWNSAMPLE_METHODS) -> jax.Array:
  """Downsample each image by 2 with a filter drawn per image from `methods`.

  Counting (Noroozi et al. 2017) does this so the network cannot tell the
  downsampled image from a tile by its interpolation artefacts. Each result
  equals resize(image, (H/2, W/2), method) for the image's method.

  Each run of len(methods) consecutive images gets a random permutation of
  `methods`: every image's filter is uniform over them, and the number of
  images per filter is fixed, so each filter runs with its own constant taps
  on its own images, instead of every image paying for the widest filter
  (python benchmarks/bench_counting.py measures both). On a sharded batch, the runs
  stay within each device's shard when its share of the batch is a multiple of
  len(methods); otherwise XLA moves images between devices (same results).
  """
  b, h, w, _ = images.shape
  if h < 2 or w < 2:
    raise ValueError(f"downsample_random_filter needs images of at least 2x2, got {h}x{w}.")
  m = len(methods)
  groups = -(-b // m)
  if groups * m != b:  # complete the last run with blank images, dropped at the end
    images = jnp.pad(images, ((0, groups * m - b), (0, 0), (0, 0), (0, 0)))
  # order[g, j]: which image of run g gets filter j (a random permutation per run).
  order = jnp.argsort(jax.random.uniform(rng, (groups, m)), axis=1)
  runs = images.reshape((groups, m) + images.shape[1:])
  def images_for(j: int) -> jax.Array:
    return jnp.take_along_axis(runs, order[:, j, None, None, None, None], axis=1)[:, 0]
  by_filter = [downsample_by_2(images_for(j), method) for j, method in enumerate(methods)]
  # Back to image order by selects rather than a second gather: XLA fuses the last filter
  # passes into them, which on CPU was faster and needed less temporary memory.
  def image_in_slot(s: int) -> jax.Array:
    out = by_filter[0]
    for j in range(1, m):
      out = jnp.where((order[:, j] == s)[:, None, None, None], by_filter[j], out)
    return out
  down = jnp.stack([image_in_slot(s) for s in range(m)], axis=1)
  return down.reshape((groups * m,) + down.shape[2:])[:b]


# The 8 neighbours of a 3x3 grid's centre cell, row-major: label i is (dy, dx) = NEIGHBOURS[i].
NEIGHBOURS = ((-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1))


def patch_grid_extent(patch: int, gap: int, jitter: int) -> int:
  """The side of the square a 3x3 grid of `patch` px patches, `gap` px apart, spans when each
  patch may move by up to `jitter` px."""
  return 3 * patch + 2 * gap + 2 * jitter


def random_patch_grid_offsets(rng: jax.Array, batch: int, image_size: int, patch: int,
                              gap: int, jitter: int) -> jax.Array:
  """Top-left corners (batch, 9, 2) of a 3x3 grid of patches per image (row-major, the centre
  is patch 4), as Doersch et al. sample them: the grid at a uniform position, `gap` px between
  neighbouring patches, and each patch moved by its own uniform offset in [-jitter, jitter]
  along y and x. With gap >= 2 * jitter no two patches overlap or touch edge to edge."""
  extent = patch_grid_extent(patch, gap, jitter)
  if extent > image_size:
    raise ValueError(f"a 3x3 grid of {patch} px patches with {gap} px gaps and {jitter} px "
                     f"jitter spans {extent} px, more than the {image_size} px image; use "
                     f"smaller patches or a larger image.")
  if gap < 2 * jitter:
    raise ValueError(f"gap {gap} < 2 x jitter {jitter}: jittered patches could overlap; "
                     f"use a gap of at least {2 * jitter}.")
  k_origin, k_jitter = jax.random.split(rng)
  origin = jax.random.randint(k_origin, (batch, 1, 2), 0, image_size - extent + 1)
  cells = jnp.array([(r, c) for r in range(3) for c in range(3)], jnp.int32) * (patch + gap)
  moves = jax.random.randint(k_jitter, (batch, 9, 2), -jitter, jitter + 1)
  return origin + jitter + cells[None] + moves


def crop_patches(images: jax.Array, offsets: jax.Array, patch: int) -> jax.Array:
  """(B, H, W, C) and top-left corners (B, N, 2) -> the N patch x patch crops (B, N, p, p, C)."""
  def one_image(image, corners):
    return crop_at(jnp.broadcast_to(image, (corners.shape[0],) + image.shape), corners,
                   (patch, patch))
  return jax.vmap(one_image)(images, offsets)
