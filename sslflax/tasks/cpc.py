"""Contrastive predictive coding, v2 (Hénaff et al., ICML 2020): predict the codes of patches
from a masked context of the patches before them, in each of the four directions.

As the paper, scaled to the input: each image is cut into a G x G grid of overlapping
patches, a patch a quarter of the side at half a patch's stride (Hénaff: 64 px patches at
stride 32 of a 256 px crop, 7 x 7; at 64 px: 16 px at stride 8, 7 x 7 again). Each patch is
augmented on its own (patch-wise: a random horizontal flip and, with probability
`color_drop`, colour dropping: two of its three channels set to mid-gray), encoded by the
backbone (the ResNet with layer norm in the config, so no statistic mixes patches) and
mean-pooled to a vector z. For each direction (v2 predicts from all four sides), the grid of
z is turned so that the direction runs top to bottom, and a masked (PixelCNN-style) context
network of its own gives c[i, j], a function of rows <= i only. Linear predictions W_k c[i, j]
for k = 1..K are scored against every patch vector of the batch (InfoNCE): the patch
k + SKIP_ROWS rows further on is the positive, every other patch of every image a negative.
SKIP_ROWS = 1 because neighbouring rows share half their pixels: the first row predicted is
the first that shares none with the context's own row (as CPC reimplementations do, Löwe et
al.'s Greedy InfoMax and rschwarz15/CPCV2-PyTorch; a shared row would be a pixel-copy
shortcut).

Departures (the authors' code is not public): a context network of `context_blocks` masked
residual blocks at the code width per direction (Hénaff's is wider and deeper); no spatial
jitter of the patches.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from sslflax.tasks.base import Task, register

MID_GRAY = 128
SKIP_ROWS = 1  # rows between a context's row and the first predicted: they share its pixels


def patch_grid_geometry(side: int) -> tuple[int, int, int]:
  """(patch, stride, grid) for a side: an even patch of about a quarter of the side, at half
  a patch's stride (so exactly one neighbouring row overlaps each row: SKIP_ROWS)."""
  patch = max(2 * (side // 8), 2)
  stride = patch // 2
  return patch, stride, (side - patch) // stride + 1


def extract_patches(images: jax.Array, patch: int, stride: int) -> jax.Array:
  """(B, H, W, C) -> (B, G, G, patch, patch, C), row-major: patch [i, j] starts at
  (i * stride, j * stride)."""
  grid = (images.shape[1] - patch) // stride + 1
  rows = [jnp.stack([images[:, i * stride:i * stride + patch, j * stride:j * stride + patch]
                     for j in range(grid)], axis=1) for i in range(grid)]
  return jnp.stack(rows, axis=1)


def augment_patches(rng: jax.Array, patches: jax.Array, color_drop: float) -> jax.Array:
  """Patch-wise augmentation of (B, G, G, p, p, 3) uint8 patches: each patch flipped
  horizontally with probability 1/2 and, with probability `color_drop`, two of its three
  channels (all but one chosen uniformly) set to mid-gray."""
  k_flip, k_drop, k_keep = jax.random.split(rng, 3)
  lead = patches.shape[:3]
  flip = jax.random.bernoulli(k_flip, 0.5, lead)[..., None, None, None]
  patches = jnp.where(flip, patches[..., ::-1, :], patches)
  drop = jax.random.bernoulli(k_drop, color_drop, lead)[..., None, None, None]
  keep = jax.nn.one_hot(jax.random.randint(k_keep, lead, 0, 3), 3, dtype=bool)[..., None, None, :]
  gray = jnp.asarray(MID_GRAY, patches.dtype)
  return jnp.where(drop & ~keep, gray, patches)


def make_cpc_batch(rng: jax.Array, images: jax.Array, labels: jax.Array | None = None,
                   color_drop: float = 0.5):
  """inputs: (B, G, G, p, p, 3) augmented patches of each image (the input dtype); targets:
  None (each patch's own code is its target)."""
  del labels
  patch, stride, _ = patch_grid_geometry(images.shape[1])
  return augment_patches(rng, extract_patches(images, patch, stride), color_drop), None


class RowCausalConv(nn.Module):
  """A convolution whose output at row i sees input rows i - (rows - 1) .. i only (all
  columns within `width // 2`): the masked convolution of a PixelCNN, by rows."""

  features: int
  rows: int = 2
  width: int = 3

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    x = jnp.pad(x, ((0, 0), (self.rows - 1, 0), (self.width // 2, self.width // 2), (0, 0)))
    return nn.Conv(self.features, (self.rows, self.width), padding="VALID")(x)


class MaskedContext(nn.Module):
  """Grid of codes (B, G, G, D) -> contexts (B, G, G, D), c[i] a function of rows <= i only:
  residual blocks of 1x1 -> row-causal 2x3 -> 1x1 convolutions (1x1 convolutions mix no
  positions, so every block stays causal)."""

  blocks: int = 3

  @nn.compact
  def __call__(self, z: jax.Array) -> jax.Array:
    width = z.shape[-1]
    x = z
    for i in range(self.blocks):
      y = nn.relu(nn.Conv(width, (1, 1), name=f"block{i}_in")(nn.relu(x)))
      y = nn.relu(RowCausalConv(width, name=f"block{i}_masked")(y))
      x = x + nn.Conv(width, (1, 1), name=f"block{i}_out")(y)
    return x


def turn(grid: jax.Array, direction: int) -> jax.Array:
  """A (B, G, G, ...) grid turned so that `direction` runs top to bottom: 0 top to bottom,
  1 left to right, 2 bottom to top, 3 right to left (quarter turns clockwise)."""
  return jnp.rot90(grid, k=-direction, axes=(1, 2))


class CPCNet(nn.Module):
  """Patch encoder (the backbone, each patch mean-pooled: its 'pool5') -> per direction, a
  masked context and K linear predictors. Outputs {'codes': (B, G, G, D), 'predictions':
  (directions, K, B, G, G, D)}, the predictions of direction d in its turned grid."""

  backbone: nn.Module
  steps_ahead: int = 3
  context_blocks: int = 3
  directions: int = 4

  @nn.compact
  def __call__(self, patches: jax.Array, train: bool = False):
    b, g, _, p, _, c = patches.shape
    _, taps = self.backbone(patches.reshape(b * g * g, p, p, c), train)
    codes = taps["pool5"].astype(jnp.float32).reshape(b, g, g, -1)
    predictions = []
    for d in range(self.directions):
      context = MaskedContext(self.context_blocks, name=f"context{d}")(turn(codes, d))
      predictions.append(jnp.stack([nn.Dense(codes.shape[-1], name=f"predict{d}_{k}")(context)
                                    for k in range(1, self.steps_ahead + 1)]))
    return {"codes": codes, "predictions": jnp.stack(predictions)}


def cpc_loss(outputs, targets=None) -> tuple[jax.Array, dict[str, jax.Array]]:
  """InfoNCE: in each direction's turned grid, each prediction W_k c[b, i, j] (with
  i + k + SKIP_ROWS < G) against every code of the batch, the code of the patch at
  [b, i + k + SKIP_ROWS, j] of that grid the positive. The mean cross-entropy over all
  predictions of all directions and k, and the share whose positive scores highest."""
  del targets
  codes, predictions = outputs["codes"], outputs["predictions"]
  b, g, _, d = codes.shape
  flat = codes.reshape(b * g * g, d)
  index = jnp.arange(b * g * g).reshape(b, g, g)
  losses, hits = [], []
  for direction in range(predictions.shape[0]):
    turned_index = turn(index, direction)
    for k in range(1, predictions.shape[1] + 1):
      ahead = k + SKIP_ROWS
      if ahead >= g:
        break
      queries = predictions[direction, k - 1][:, :g - ahead].reshape(-1, d)
      positives = turned_index[:, ahead:].reshape(-1)
      logits = queries @ flat.T
      losses.append(optax.softmax_cross_entropy_with_integer_labels(logits, positives))
      hits.append(jnp.argmax(logits, -1) == positives)
  if not losses:
    raise ValueError(f"cpc: a {g} x {g} grid leaves no row to predict; use larger images.")
  loss = jnp.mean(jnp.concatenate(losses))
  return loss, {"accuracy": jnp.mean(jnp.concatenate(hits))}


@register("cpc")
def build(backbone: nn.Module, steps_ahead: int = 3, context_blocks: int = 3,
          color_drop: float = 0.5, directions: int = 4) -> Task:
  """CPC v2. `steps_ahead` K rows predicted; `context_blocks` of each masked context network;
  `color_drop`: the probability a patch has two of its channels dropped; `directions`: 4 as
  v2 (1 predicts top to bottom only, as CPC v1)."""
  if steps_ahead < 1 or context_blocks < 1 or not 0.0 <= color_drop <= 1.0:
    raise ValueError(f"cpc steps_ahead={steps_ahead} and context_blocks={context_blocks} must "
                     f"be >= 1 and color_drop={color_drop} within [0, 1].")
  if directions not in (1, 2, 3, 4):
    raise ValueError(f"cpc directions={directions} must be 1 to 4 (4: CPC v2, 1: top to bottom "
                     "only).")
  def make_batch(rng, images, labels=None):
    return make_cpc_batch(rng, images, labels, color_drop)
  model = CPCNet(backbone.clone(num_fc=0), steps_ahead, context_blocks, directions)
  return Task("cpc", make_batch, model, cpc_loss, min_image_size=16)
