"""Vision Transformer (Dosovitskiy et al. 2021): ViT-Ti and ViT-S, pre-norm blocks, a class
token and learned position embeddings, for any input size.

Returns (features, taps) like every backbone: `features` is the class token after the final
LayerNorm, and `taps` holds block1..blockN as (B, h, w, D) maps of the patch tokens (the
class token left out), 'last_map' (the final normed patch tokens as a map, which the decoder
tasks build on) and 'pool5' (= features).

The position embeddings are stored on the 14 x 14 grid of 224 px at patch 16 (so the
parameter counts are the published ones) and resampled bilinearly to the input's grid, as
big_vision does when it changes resolution. Patch 8 suits 32-64 px inputs (64 px: 8 x 8).
"""

from __future__ import annotations

import re

import flax.linen as nn
import jax
import jax.numpy as jnp

from sslflax.errors import ConfigError
from sslflax.models.registry import Backbone, register_backbone, side_for_features
from sslflax.transforms.color import to_float
from sslflax.transforms.normalize import standardize

# name: (width, depth, heads, MLP width), the paper's Table 1 and DeiT's ViT-Ti.
SIZES = {"vit_ti": (192, 12, 3, 768), "vit_s": (384, 12, 6, 1536)}


class EncoderBlock(nn.Module):
  """x + MHSA(LN(x)), then x + MLP(LN(x)), the MLP with GELU."""

  heads: int
  mlp_width: int
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    y = nn.LayerNorm(dtype=self.dtype, name="norm1")(x)
    x = x + nn.MultiHeadDotProductAttention(num_heads=self.heads, dtype=self.dtype,
                                            name="attention")(y, y)
    y = nn.LayerNorm(dtype=self.dtype, name="norm2")(x)
    y = nn.Dense(self.mlp_width, dtype=self.dtype, name="mlp1")(y)
    return x + nn.Dense(x.shape[-1], dtype=self.dtype, name="mlp2")(nn.gelu(y))


class ViT(nn.Module):
  """ViT trunk. `frozen_layers` L (fine-tuning) passes no gradient below block L (the patch
  embedding counts as layer 1 with block1). It has no BatchNorm, so nothing is in inference
  mode to freeze besides that.

  `num_fc`, `pool_size` and `dropout` keep the interface the tasks clone with: a ViT has no
  fc layers (num_fc must be 0); `conv1_stride`, when set, is the patch embedding's stride
  (overlapping patches for the patch tasks' small tiles, as AlexNet's conv1 stride).
  """

  width: int = 192
  depth: int = 12
  heads: int = 3
  mlp_width: int = 768
  patch_size: int = 16
  posemb_grid: int = 14
  frozen_layers: int = 0
  num_fc: int = 0
  pool_size: int = 1
  dropout: float = 0.0
  conv1_stride: int | None = None
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> tuple[jax.Array, dict[str, jax.Array]]:
    del train  # no BatchNorm, no dropout
    if self.num_fc:
      raise ValueError(f"ViT has no fc layers (num_fc={self.num_fc}); its tasks' heads sit on "
                       f"the class token.")
    if x.dtype == jnp.uint8:
      x = standardize(to_float(x))
    p = self.patch_size
    stride = self.conv1_stride or p
    if min(x.shape[1:3]) < p:  # no patch would fit: only the class token, which learns nothing
      raise ConfigError(f"model.patch_size={p} is larger than this ViT's {x.shape[1]}x"
                        f"{x.shape[2]} px input (a task's tiles?); set --config.model.patch_size="
                        f"{max(1, min(x.shape[1:3]) // 2)} or use larger images.")
    x = nn.Conv(self.width, (p, p), strides=(stride, stride), padding="VALID", dtype=self.dtype,
                name="embedding")(x.astype(self.dtype))
    batch, h, w, _ = x.shape
    grid = self.posemb_grid
    posemb = self.param("posemb", nn.initializers.normal(0.02), (1, 1 + grid * grid, self.width))
    patches = posemb[:, 1:].reshape(1, grid, grid, self.width)
    if (h, w) != (grid, grid):
      patches = jax.image.resize(patches, (1, h, w, self.width), "bilinear")
    cls = self.param("cls", nn.initializers.zeros, (1, 1, self.width))
    tokens = jnp.concatenate([jnp.broadcast_to(cls + posemb[:, :1], (batch, 1, self.width)),
                              (x + patches).reshape(batch, h * w, self.width)], axis=1)
    taps = {}
    for i in range(1, self.depth + 1):
      tokens = EncoderBlock(self.heads, self.mlp_width, self.dtype, name=f"block{i}")(tokens)
      if i == self.frozen_layers:
        tokens = jax.lax.stop_gradient(tokens)
      taps[f"block{i}"] = tokens[:, 1:].reshape(batch, h, w, self.width)
    tokens = nn.LayerNorm(dtype=self.dtype, name="norm")(tokens)
    taps["last_map"] = tokens[:, 1:].reshape(batch, h, w, self.width)
    taps["pool5"] = tokens[:, 0]
    return tokens[:, 0], taps


def layer_of(name: str) -> int | None:
  """block<L> is layer L; the patch embedding, class token and position embeddings go with
  block1 (layer 1); the final LayerNorm sits above the blocks."""
  if name in ("embedding", "cls", "posemb"):
    return 1
  match = re.fullmatch(r"block(\d+)", name)
  return int(match.group(1)) if match else None


for _name, (_width, _depth, _heads, _mlp) in SIZES.items():
  register_backbone(Backbone(
      name=_name, module_type=ViT,
      build=lambda patch_size=16, _size=(_width, _depth, _heads, _mlp): ViT(
          *_size, patch_size=patch_size),
      fields=("patch_size",), shape_fields=("patch_size",),
      taps=tuple(f"block{i}" for i in range(1, _depth + 1)),
      layers=tuple(f"block{i}" for i in range(1, _depth + 1)), layer_of=layer_of,
      probe_pool=lambda tap, channels: side_for_features(channels)))
