"""Relative patch location (Doersch, Gupta, Efros, ICCV 2015): where does a patch lie
relative to the centre one of a 3x3 grid, of 8 places.

Per image, the 9 patches of a 3x3 grid at a random position, with gaps between them and a
random jitter of each (the paper's 96 px patches, 48 px gaps and 7 px jitter, scaled to the
image by default), pass a shared trunk; each of the 8 neighbours is fused late with the
centre patch (fc7, fc8) and classified: 8 pairs per image, as Kolesnikov et al. 2019 train
it, where the paper drew one pair per image. Guards against shortcuts, as the paper's: the
gaps and jitter (no continued edges or lines), and against chromatic aberration either
'projection' (remove the green-magenta component; the identity on gray images) or 'drop'
(keep one random channel, the others noise). The trunk runs conv1 at stride 2 on the small
patches, as jigsaw does; the probes use the backbone's stride 4.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from sslflax.tasks.base import LateFusionNet, Task, classification_loss, register
from sslflax.transforms.color import project_out_green_magenta, random_color_drop
from sslflax.transforms.geometry import (NEIGHBOURS, crop_patches, patch_grid_extent,
                                         random_patch_grid_offsets)

COLOR_GUARDS = ("projection", "drop", "none")
CENTRE = 4
# LateFusionNet groups: (centre, neighbour) for label 0..7; NEIGHBOURS[i] is (dy, dx) of label i.
PAIRS = tuple((CENTRE, cell) for cell in range(9) if cell != CENTRE)


MIN_PATCH = 4  # smaller patches carry nothing for the network to recognise


def default_geometry(image_size: int) -> tuple[int, int, int]:
  """(patch, gap, jitter) in the paper's 96 : 48 : 7 proportions, the largest that fit
  (64 px: 15, 7, 1; 224 px: 54, 27, 4)."""
  return resolve_geometry(image_size, None, None, None)


def resolve_geometry(image_size: int, patch: int | None, gap: int | None,
                     jitter: int | None) -> tuple[int, int, int]:
  """The configured geometry; a None patch is the largest whose default grid fits the image,
  a None gap half the patch, a None jitter 7/96 of it (at least 1 px)."""
  patch = int(image_size / (4 + 14 / 96)) if patch is None else patch
  gap = patch // 2 if gap is None else gap
  jitter = max(1, round(patch * 7 / 96)) if jitter is None else jitter
  return patch, gap, jitter


def min_image_size(patch: int | None, gap: int | None, jitter: int | None) -> int:
  """The smallest image side that holds the grid (default geometry: MIN_PATCH px patches)."""
  size = 1
  while True:
    p, g, j = resolve_geometry(size, patch, gap, jitter)
    if p >= MIN_PATCH and patch_grid_extent(p, g, j) <= size:
      return size
    size += 1


def guard_colors(rng: jax.Array, patches: jax.Array, guard: str) -> jax.Array:
  """Apply the chromatic-aberration guard to every patch (B, N, p, p, 3): float in [0, 1]
  out (not re-quantised: the projection puts 1 pixel in 6 exactly half-way between two
  levels), the uint8 patches unchanged for 'none'."""
  if guard == "none":
    return patches
  flat = patches.reshape((-1,) + patches.shape[2:])
  if guard == "projection":
    flat = project_out_green_magenta(flat)
  elif guard == "drop":
    flat = random_color_drop(rng, flat)
  else:
    raise ValueError(f"unknown color_guard {guard!r}; choose one of {COLOR_GUARDS}.")
  return flat.reshape(patches.shape)


def make_patch_location_batch(rng: jax.Array, images: jax.Array, patch: int | None = None,
                              gap: int | None = None, jitter: int | None = None,
                              color_guard: str = "projection"):
  """inputs: the 9 patches of each image's grid (B, 9, p, p, 3), row-major (patch 4 is the
  centre; guard_colors gives their dtype); targets: (8B,) labels 0..7, image-major: pair i of an image is its
  centre with neighbour PAIRS[i], lying NEIGHBOURS[i] = (dy, dx) cells from it.

  Random per image: the grid's position, each patch's jitter, and the colour guard.
  A geometry left None is default_geometry of the image side.
  """
  patch, gap, jitter = resolve_geometry(images.shape[1], patch, gap, jitter)
  k_grid, k_guard = jax.random.split(rng)
  offsets = random_patch_grid_offsets(k_grid, images.shape[0], images.shape[1], patch, gap,
                                      jitter)
  patches = guard_colors(k_guard, crop_patches(images, offsets, patch), color_guard)
  labels = jnp.tile(jnp.arange(len(PAIRS), dtype=jnp.int32), images.shape[0])
  return patches, labels


@register("patch_location")
def build(backbone: nn.Module, patch: int | None = None, gap: int | None = None,
          jitter: int | None = None, color_guard: str = "projection",
          tile_features: int = 1024, hidden: int = 2048, conv1_stride: int = 2) -> Task:
  """Relative-patch-location task: an 8-way head on late-fused (centre, neighbour) pairs.

  `patch`, `gap`, `jitter`: the grid's geometry in pixels (None: default_geometry of the
  pretraining images' side); `color_guard`: 'projection', 'drop' or 'none';
  `tile_features`/`hidden`: the per-patch fc and the pair's fc widths; `conv1_stride`:
  the trunk's conv1 stride on patches during pretraining.
  """
  if color_guard not in COLOR_GUARDS:
    raise ValueError(f"unknown color_guard {color_guard!r}; choose one of {COLOR_GUARDS}.")
  def make_batch(rng, images, labels=None):
    del labels
    return make_patch_location_batch(rng, images, patch, gap, jitter, color_guard)
  trunk = backbone.clone(num_fc=0, conv1_stride=conv1_stride)
  model = LateFusionNet(trunk, len(PAIRS), tile_features, hidden, groups=PAIRS)
  return Task("patch_location", make_batch, model, classification_loss,
              min_image_size=min_image_size(patch, gap, jitter))
