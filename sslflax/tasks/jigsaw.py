"""Jigsaw puzzles (Noroozi & Favaro 2016): which permutation shuffled the 3x3 tiles.

Guards against shortcuts, as in the paper and the seed: random gaps between tiles, grayscale
images (30%), each colour channel of each tile shifted in space by up to 2 px (chromatic
aberration), and each tile normalised per channel. The shared trunk runs conv1 at stride 2 on
the small tiles, as Noroozi trained it; the weights are the same at any stride, and the probes
(like the paper's transfer) use the backbone's stride 4.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from sslflax.tasks.base import LateFusionNet, Task, classification_loss, register
from sslflax.transforms.color import quantize, random_grayscale, to_float
from sslflax.transforms.geometry import random_channel_shift, random_tile_grid
from sslflax.transforms.permutations import apply_permutation, load_permutations


MIN_TILE = 4  # smaller tiles carry nothing for the network to recognise


def default_tile_size(image_size: int, grid: int = 3) -> int:
  """The paper's 64-px tile in a 75-px cell, scaled to the image (225 px -> 64)."""
  return max(1, (image_size // grid) * 64 // 75)


def min_image_size(grid: int = 3, tile: int | None = None) -> int:
  """Smallest image side whose grid cells hold the tiles (default tiles: at least MIN_TILE px)."""
  if tile is not None:
    return grid * tile
  return grid * -(-MIN_TILE * 75 // 64)  # smallest cell whose default tile reaches MIN_TILE


def make_jigsaw_batch(rng: jax.Array, images: jax.Array, permutations: jax.Array,
                      grid: int = 3, tile: int | None = None, grayscale_prob: float = 0.3,
                      channel_shift: int = 2):
  """inputs: shuffled uint8 tiles (B, grid^2, t, t, 3); targets: permutation index (B,).

  Random per image: the crop of each tile inside its cell (gaps), grayscale
  (prob. grayscale_prob), a spatial shift of each channel of each tile by up to
  `channel_shift` px, and the permutation drawn from `permutations`. LateFusionNet
  normalises each tile per channel as its first step.
  """
  k_gray, k_shift, k_tiles, k_perm = jax.random.split(rng, 4)
  tile = default_tile_size(images.shape[1], grid) if tile is None else tile
  b, n = images.shape[0], grid * grid
  tiles = random_tile_grid(k_tiles, images, grid, tile)
  # Grayscale per image, applied to its tiles laid side by side (fewer pixels than the image).
  strip = to_float(tiles.reshape(b, n * tile, tile, tiles.shape[-1]))
  tiles = quantize(random_grayscale(k_gray, strip, grayscale_prob)).reshape(tiles.shape)
  tiles = random_channel_shift(k_shift, tiles.reshape((b * n,) + tiles.shape[2:]), channel_shift)
  tiles = tiles.reshape(b, n, tile, tile, -1)
  index = jax.random.randint(k_perm, (b,), 0, permutations.shape[0])
  return apply_permutation(tiles, permutations[index]), index


@register("jigsaw")
def build(backbone: nn.Module, num_permutations: int = 1000, grid: int = 3,
          tile: int | None = None, tile_features: int = 1024, hidden: int = 4096,
          grayscale_prob: float = 0.3, channel_shift: int = 2, conv1_stride: int = 2) -> Task:
  """Jigsaw task: `num_permutations` classes from the max-Hamming set of grid^2 tiles.

  `tile`: tile side in pixels (None: the largest that leaves gaps in a grid cell);
  `tile_features`/`hidden`: the per-tile fc and the joint fc widths; `grayscale_prob`,
  `channel_shift`: chance of a grayscale image and the largest per-channel shift in pixels;
  `conv1_stride`: the trunk's conv1 stride on tiles during pretraining.
  """
  permutations = jnp.asarray(load_permutations(num_permutations, grid * grid))
  def make_batch(rng, images, labels=None):
    del labels
    return make_jigsaw_batch(rng, images, permutations, grid, tile, grayscale_prob,
                             channel_shift)
  trunk = backbone.clone(num_fc=0, conv1_stride=conv1_stride)
  model = LateFusionNet(trunk, num_permutations, tile_features, hidden)
  return Task("jigsaw", make_batch, model, classification_loss,
              min_image_size=min_image_size(grid, tile))
