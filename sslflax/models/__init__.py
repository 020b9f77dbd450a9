"""Backbones by name (sslflax/models/registry.py): AlexNet-BN (the seed's), ResNet-18 and
ResNet-50, ViT-Ti and ViT-S. Each family registers itself at the end of its own file."""

from sslflax.models import alexnet, resnet, scattering, vit  # noqa: F401  (registers the families)
from sslflax.models.alexnet import AlexNetBN, adaptive_avg_pool, adaptive_max_pool
from sslflax.models.layers import UpConv2x, depth_to_space
from sslflax.models.registry import (Backbone, all_taps, backbone_of, get_backbone,
                                     register_backbone, registered_backbones)
from sslflax.models.resnet import ResNet


def make_backbone(name: str, **fields):
  """The backbone `name`, built from its config.model `fields`."""
  return get_backbone(name).build(**fields)


def tap_names(backbone) -> tuple[str, ...]:
  """The layers a backbone's per-layer probes read, first to last."""
  return backbone_of(backbone).taps
