"""Backbones, picked by name from a config: AlexNet-BN (the seed's), ResNet-18 and ResNet-50."""

from sslflax.models.alexnet import (
    TAP_NAMES, AlexNetBN, adaptive_avg_pool, adaptive_max_pool)
from sslflax.models.layers import UpConv2x, depth_to_space
from sslflax.models.resnet import RESNET_TAPS, ResNet, resnet

BACKBONES = ("alexnet_bn", "resnet18", "resnet50")


def make_backbone(name: str, **kwargs):
  """The backbone named `name`, built with kwargs from the config."""
  if name == "alexnet_bn":
    return AlexNetBN(**kwargs)
  if name in ("resnet18", "resnet50"):
    return resnet(name, **kwargs)
  raise ValueError(f"unknown backbone {name!r}; choose one of {list(BACKBONES)}.")


def tap_names(backbone) -> tuple[str, ...]:
  """The layers a backbone's per-layer probes read, first to last."""
  return RESNET_TAPS if isinstance(backbone, ResNet) else TAP_NAMES
