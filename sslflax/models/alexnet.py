"""AlexNet with batch norm: the paper's single backbone, for any input size.

Returns (features, taps): `features` is the fc7 output (or the pooled conv5
map when fc layers are off) and `taps` holds every conv stage after its ReLU,
so linear probes can read any layer (big_vision convention).
"""

from __future__ import annotations

import re
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from sslflax.models.conv import conv_general_dilated
from sslflax.models.registry import Backbone, register_backbone
from sslflax.transforms.color import to_float
from sslflax.transforms.normalize import standardize

TAP_NAMES = ("conv1", "conv2", "conv3", "conv4", "conv5")
# The standard per-layer probe protocol: each tap max-pooled to about 9k features.
PROBE_POOL = {"conv1": 12, "conv2": 7, "conv3": 5, "conv4": 5, "conv5": 6}


def adaptive_pool_matrix(in_size: int, out_size: int) -> jnp.ndarray:
  """(out, in) matrix whose rows are the averaging windows of PyTorch's adaptive average pool."""
  rows = []
  for i in range(out_size):
    start, end = (i * in_size) // out_size, -(-((i + 1) * in_size) // out_size)
    rows.append([1.0 / (end - start) if start <= j < end else 0.0 for j in range(in_size)])
  return jnp.array(rows, dtype=jnp.float32)


def adaptive_avg_pool(x: jax.Array, out_hw: tuple[int, int]) -> jax.Array:
  """Adaptive average pooling (B, H, W, C) -> (B, oh, ow, C), exactly as torch's."""
  ph = adaptive_pool_matrix(x.shape[1], out_hw[0]).astype(x.dtype)
  pw = adaptive_pool_matrix(x.shape[2], out_hw[1]).astype(x.dtype)
  return jnp.einsum("oh,bhwc,pw->bopc", ph, x, pw)


def adaptive_max_pool(x: jax.Array, out_hw: tuple[int, int]) -> jax.Array:
  """Adaptive max pooling (B, H, W, C) -> (B, oh, ow, C), the per-layer probe protocol's pooling."""
  def windows(in_size, out_size):
    return jnp.array([[(i * in_size) // out_size <= j < -(-((i + 1) * in_size) // out_size)
                       for j in range(in_size)] for i in range(out_size)])
  wh, ww = windows(x.shape[1], out_hw[0]), windows(x.shape[2], out_hw[1])
  neg = jnp.finfo(x.dtype).min
  rows = jnp.max(jnp.where(wh[None, :, :, None, None], x[:, None], neg), axis=2)  # (B, oh, W, C)
  return jnp.max(jnp.where(ww[None, None, :, :, None], rows[:, :, None], neg), axis=3)


def max_pool_3x3(x: jax.Array) -> jax.Array:
  """AlexNet's overlapping 3x3 stride-2 max pool; SAME padding keeps tiny inputs (>= 1 px) valid."""
  return nn.max_pool(x, (3, 3), strides=(2, 2), padding="SAME")


class AlexNetBN(nn.Module):
  """AlexNet-BN. Widths default to the paper's 96-256-384-384-256 and fc 4096.

  Input: uint8 images, standardised here with ImageNet statistics (XLA fuses
  this into conv1, so batches stay 8-bit until the first layer), or float
  inputs that a task has already normalised, used as they are.
  """

  widths: Sequence[int] = (96, 256, 384, 384, 256)
  fc_width: int = 4096
  num_fc: int = 2          # fc6, fc7; 0 gives a conv-only trunk
  pool_size: int = 6       # adaptive pool before fc6, so any input size fits
  dropout: float = 0.5
  conv1_stride: int = 4    # jigsaw pretrains its small tiles at 2 (Noroozi); probes use 4
  # Fine-tuning above a frozen layer: conv1..conv{frozen_layers} keep their BN in inference
  # mode (running statistics, never updated) and pass no gradient back.
  frozen_layers: int = 0
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> tuple[jax.Array, dict[str, jax.Array]]:
    norm = lambda name, frozen=False: nn.BatchNorm(use_running_average=not train or frozen,
                                                   momentum=0.9, name=name, dtype=self.dtype)
    specs = [(11, self.conv1_stride, 2), (5, 1, 2), (3, 1, 1), (3, 1, 1), (3, 1, 1)]  # kernel, stride, padding
    if x.dtype == jnp.uint8:
      x = standardize(to_float(x))
    x = x.astype(self.dtype)
    taps = {}
    for i, (width, (kernel, stride, pad)) in enumerate(zip(self.widths, specs), start=1):
      x = nn.Conv(width, (kernel, kernel), strides=(stride, stride), padding=pad,
                  use_bias=False, dtype=self.dtype, conv_general_dilated=conv_general_dilated,
                  name=f"conv{i}")(x)
      x = nn.relu(norm(f"bn{i}", frozen=i <= self.frozen_layers)(x))
      if i == self.frozen_layers:
        x = jax.lax.stop_gradient(x)
      taps[f"conv{i}"] = x
      if i in (1, 2, 5):
        x = max_pool_3x3(x)
    taps["last_map"] = taps["conv5"]  # the last conv map, which the decoder tasks build on
    x = adaptive_avg_pool(x, (self.pool_size, self.pool_size))
    x = x.reshape(x.shape[0], -1)
    taps["pool5"] = x
    for i in range(self.num_fc):
      x = nn.Dense(self.fc_width, use_bias=False, dtype=self.dtype, name=f"fc{6 + i}")(x)
      x = nn.relu(norm(f"bn_fc{6 + i}")(x))
      x = nn.Dropout(self.dropout, deterministic=not train)(x)
      taps[f"fc{6 + i}"] = x
    return x, taps


def layer_of(name: str) -> int | None:
  """conv<L> and bn<L> are layer L; the fc layers sit above the five conv layers."""
  match = re.fullmatch(r"(?:conv|bn)(\d+)", name)
  return int(match.group(1)) if match else None


def build(widths: Sequence[int] = AlexNetBN.widths, fc_width: int = AlexNetBN.fc_width,
          pool_size: int = AlexNetBN.pool_size, dropout: float = AlexNetBN.dropout) -> AlexNetBN:
  return AlexNetBN(widths=tuple(widths), fc_width=fc_width, pool_size=pool_size, dropout=dropout)


register_backbone(Backbone(
    name="alexnet_bn", module_type=AlexNetBN, build=build,
    fields=("widths", "fc_width", "pool_size", "dropout"),
    shape_fields=("widths", "fc_width", "pool_size"),
    taps=TAP_NAMES, layers=TAP_NAMES, layer_of=layer_of,
    probe_pool=lambda tap, channels: PROBE_POOL[tap]))
