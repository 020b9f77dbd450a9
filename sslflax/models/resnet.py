"""ResNet-18 and ResNet-50 (He et al. 2016) with batch norm, as torchvision builds them (v1.5:
the stride of a bottleneck sits on its 3x3 convolution), without the final fc layer.

Returns (features, taps) like AlexNetBN: `features` is the global average pool of res5 (512
or 2048 wide), and `taps` holds conv1 (the stem), res2..res5 (each stage's output), 'pool5'
(= features) and 'last_map' (res5's map, which the decoder tasks build on).

Normalisation: batch norm (torchvision's), or with norm='layer' layer norm over each example's
map (H, W, C), per-channel scale and offset, which CPC v2 uses so that no statistic mixes the
patches of a batch (Hénaff et al. 2020). The layers keep the BN names (bn1, ...).

Stems: ImageNet's 7x7 stride-2 convolution and 3x3 stride-2 max pool, or, with cifar_stem,
a 3x3 stride-1 convolution and no pool (SimCLR's CIFAR-10 ResNet; for 32-64 px inputs, which
the ImageNet stem shrinks 4x before res2).
"""

from __future__ import annotations

import re
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from sslflax.models.registry import Backbone, register_backbone, side_for_features
from sslflax.transforms.color import to_float
from sslflax.transforms.normalize import standardize

RESNET_TAPS = ("res2", "res3", "res4", "res5")
STAGES = {"resnet18": ((2, 2, 2, 2), "basic"), "resnet50": ((3, 4, 6, 3), "bottleneck")}


class ResidualBlock(nn.Module):
  """A basic (two 3x3) or bottleneck (1x1, 3x3, 1x1 x4) block; a 1x1 projection shortcut
  where the shape changes."""

  width: int
  strides: int = 1
  bottleneck: bool = False
  frozen: bool = False
  dtype: jnp.dtype = jnp.float32
  zero_init_last_bn: bool = False
  norm: str = "batch"

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    conv = lambda w, k, s, name: nn.Conv(w, (k, k), strides=(s, s), padding=k // 2,
                                         use_bias=False, dtype=self.dtype, name=name)
    norm = lambda name, scale_init=nn.initializers.ones: normalization(
        self.norm, train and not self.frozen, self.dtype, name, scale_init)
    # The residual branch's last BN starts at gamma = 0 (each block the identity), as SimCLR's
    # and BYOL's ResNets; torchvision's default (zero_init_residual=False) starts it at 1.
    last_scale = nn.initializers.zeros if self.zero_init_last_bn else nn.initializers.ones
    if self.bottleneck:
      out_width = 4 * self.width
      y = nn.relu(norm("bn1")(conv(self.width, 1, 1, "conv1")(x)))
      y = nn.relu(norm("bn2")(conv(self.width, 3, self.strides, "conv2")(y)))
      y = norm("bn3", last_scale)(conv(out_width, 1, 1, "conv3")(y))
    else:
      out_width = self.width
      y = nn.relu(norm("bn1")(conv(self.width, 3, self.strides, "conv1")(x)))
      y = norm("bn2", last_scale)(conv(self.width, 3, 1, "conv2")(y))
    if x.shape[-1] != out_width or self.strides != 1:
      x = norm("shortcut_bn")(conv(out_width, 1, self.strides, "shortcut")(x))
    return nn.relu(x + y)


NORMS = ("batch", "layer")


def normalization(kind: str, train: bool, dtype, name: str,
                  scale_init=nn.initializers.ones) -> nn.Module:
  """BatchNorm (running statistics outside training), or LayerNorm over (H, W, C)."""
  if kind == "batch":
    return nn.BatchNorm(use_running_average=not train, momentum=0.9, dtype=dtype,
                        scale_init=scale_init, name=name)
  if kind == "layer":
    return nn.LayerNorm(reduction_axes=(-3, -2, -1), feature_axes=-1, dtype=dtype,
                        scale_init=scale_init, name=name)
  raise ValueError(f"unknown model.resnet_norm {kind!r}; choose one of {NORMS}.")


def stem_pool(x: jax.Array) -> jax.Array:
  """The stem's 3x3 max pool, stride 2, as torchvision's MaxPool2d(3, 2, padding=1): one
  pixel of -inf on every side. (padding="SAME" pads an even map by (0, 1), which shifted
  every later activation by a pixel from torchvision's.)"""
  return nn.max_pool(x, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))


class ResNet(nn.Module):
  """ResNet trunk. `stage_sizes`, `block` ('basic' | 'bottleneck') and `width` (64) set the
  depth and widths; `cifar_stem`; `frozen_layers` L (fine-tuning) keeps the stem (L >= 1)
  and res2..resL in inference-mode BN and passes no gradient below them.

  `num_fc`, `pool_size`, `dropout` and `conv1_stride` keep the AlexNetBN interface the tasks
  clone with: ResNet has no fc layers (num_fc must be 0) and pools globally; conv1_stride,
  when set, replaces the stem convolution's stride (the patch tasks' small tiles).
  """

  stage_sizes: Sequence[int] = (2, 2, 2, 2)
  block: str = "basic"
  width: int = 64
  cifar_stem: bool = False
  frozen_layers: int = 0
  num_fc: int = 0
  pool_size: int = 1
  dropout: float = 0.0
  conv1_stride: int | None = None
  dtype: jnp.dtype = jnp.float32
  zero_init_residual: bool = False  # each block's last BN starts at gamma 0 (SimCLR, BYOL)
  norm: str = "batch"  # or 'layer' (CPC v2)

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> tuple[jax.Array, dict[str, jax.Array]]:
    if self.num_fc:
      raise ValueError(f"ResNet has no fc layers (num_fc={self.num_fc}); its tasks' heads sit "
                       f"on the pooled res5 features.")
    if x.dtype == jnp.uint8:
      x = standardize(to_float(x))
    x = x.astype(self.dtype)
    frozen = lambda layer: layer <= self.frozen_layers
    kernel, stride = (3, 1) if self.cifar_stem else (7, 2)
    stride = self.conv1_stride or stride
    x = nn.Conv(self.width, (kernel, kernel), strides=(stride, stride), padding=kernel // 2,
                use_bias=False, dtype=self.dtype, name="conv1")(x)
    x = nn.relu(normalization(self.norm, train and not frozen(1), self.dtype, "bn1")(x))
    if self.frozen_layers == 1:
      x = jax.lax.stop_gradient(x)
    taps = {"conv1": x}
    if not self.cifar_stem:
      x = stem_pool(x)
    for i, blocks in enumerate(self.stage_sizes):
      layer = i + 2
      for j in range(blocks):
        x = ResidualBlock(self.width * 2 ** i, 2 if i > 0 and j == 0 else 1,
                          self.block == "bottleneck", frozen(layer), self.dtype,
                          self.zero_init_residual, self.norm,
                          name=f"res{layer}_block{j}")(x, train)
      if layer == self.frozen_layers:
        x = jax.lax.stop_gradient(x)
      taps[f"res{layer}"] = x
    taps["last_map"] = x
    features = jnp.mean(x, axis=(1, 2))
    taps["pool5"] = features
    return features, taps


def resnet(name: str, **kwargs) -> ResNet:
  """'resnet18' or 'resnet50' with kwargs (width, cifar_stem, ...)."""
  stage_sizes, block = STAGES[name]
  return ResNet(stage_sizes=stage_sizes, block=block, **kwargs)


def layer_of(name: str) -> int | None:
  """The stem (conv1, bn1) is layer 1; res<L>_block<j> is layer L (2..5)."""
  match = re.fullmatch(r"(?:conv|bn|res)(\d+)(?:_block\d+)?", name)
  return int(match.group(1)) if match else None


for _name in STAGES:
  register_backbone(Backbone(
      name=_name, module_type=ResNet,
      build=lambda resnet_width=64, cifar_stem=False, zero_init_residual=False,
                   resnet_norm="batch", _name=_name:
          resnet(_name, width=resnet_width, cifar_stem=cifar_stem,
                 zero_init_residual=zero_init_residual, norm=resnet_norm),
      fields=("resnet_width", "cifar_stem", "zero_init_residual", "resnet_norm"),
      shape_fields=("resnet_width", "cifar_stem", "resnet_norm"),
      taps=RESNET_TAPS, layers=("conv1",) + RESNET_TAPS, layer_of=layer_of,
      # res2..res5 pooled to ~9k features: ResNet-18's sides 12, 8, 6, 4; ResNet-50's 6, 4, 3, 2.
      probe_pool=lambda tap, channels: side_for_features(channels)))
