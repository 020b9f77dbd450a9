"""Backbones, picked by name from a config."""

from sslflax.models.alexnet import (
    TAP_NAMES, AlexNetBN, adaptive_avg_pool, adaptive_max_pool)
from sslflax.models.layers import UpConv2x, depth_to_space

BACKBONES = {"alexnet_bn": AlexNetBN}


def make_backbone(name: str, **kwargs) -> AlexNetBN:
  """The backbone registered under `name`, built with kwargs from the config."""
  if name not in BACKBONES:
    raise ValueError(f"unknown backbone {name!r}; choose one of {sorted(BACKBONES)}.")
  return BACKBONES[name](**kwargs)
