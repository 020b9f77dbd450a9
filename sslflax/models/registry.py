"""Backbones by name, each with the contract that evaluation, checks and reports read.

A backbone family is one file in sslflax/models/ that ends with `register_backbone(...)`.
Nothing outside that file names it: the config's `model.name` picks it, `fields` says which
`config.model` fields its builder takes, and the rest of sslflax reads only this contract.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable

import flax.linen as nn


@dataclasses.dataclass(frozen=True)
class Backbone:
  """A backbone family's contract.

  Its modules map images to (features, taps): `taps` holds every name in `taps` plus
  'last_map' (the spatial map the decoder tasks build on) and 'pool5' (the pooled features
  the heads sit on).
  """

  name: str
  build: Callable[..., nn.Module]  # build(**{field: config.model[field] for field in fields})
  module_type: type  # the class of what `build` returns
  fields: tuple[str, ...]  # the config.model fields `build` takes
  shape_fields: tuple[str, ...]  # those that set parameter shapes (a workdir records them)
  taps: tuple[str, ...]  # what the per-layer probes read, first to last
  layers: tuple[str, ...]  # layers 1..N in order: freeze_layer=L freezes layers[:L]
  layer_of: Callable[[str], int | None]  # a top-level parameter name -> its layer (None: above)
  probe_pool: Callable[[str, int], int]  # (tap, channels) -> the side its probe max-pools to

  def freeze_label(self, layer: int) -> str:
    """0 -> 'nothing frozen', 1 -> 'conv1 frozen', 3 -> 'conv1..conv3 frozen'."""
    if layer == 0:
      return "nothing frozen"
    return f"{self.layers[0]} frozen" if layer == 1 else (
        f"{self.layers[0]}..{self.layers[layer - 1]} frozen")


_REGISTRY: dict[str, Backbone] = {}


def register_backbone(backbone: Backbone) -> Backbone:
  if backbone.name in _REGISTRY:
    raise ValueError(f"backbone {backbone.name!r} is registered twice.")
  _REGISTRY[backbone.name] = backbone
  return backbone


def registered_backbones() -> tuple[str, ...]:
  return tuple(_REGISTRY)


def get_backbone(name: str) -> Backbone:
  if name not in _REGISTRY:
    raise ValueError(f"unknown backbone {name!r}; choose one of {list(_REGISTRY)}.")
  return _REGISTRY[name]


def backbone_of(module: nn.Module) -> Backbone:
  """The contract of a built module (the first family whose module type it is)."""
  for backbone in _REGISTRY.values():
    if isinstance(module, backbone.module_type):
      return backbone
  raise ValueError(f"{type(module).__name__} is not a registered backbone's module.")


def side_for_features(channels: int, features: int = 9216) -> int:
  """The side a probe pools a `channels`-wide map to for about `features` features (the
  per-layer probe protocol's ~9k)."""
  return max(1, round(math.sqrt(features / channels)))


def all_taps() -> tuple[str, ...]:
  """Every registered family's taps, in registration order, each once (the report's order)."""
  return tuple(dict.fromkeys(t for b in _REGISTRY.values() for t in b.taps))
