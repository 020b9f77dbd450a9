"""Rotation prediction (Gidaris et al. 2018): which of 0/90/180/270 degrees was applied."""

from __future__ import annotations

import jax
import flax.linen as nn

from sslflax.tasks.base import ClassifierNet, Task, classification_loss, register
from sslflax.transforms.geometry import all_rotations


def make_rotation_batch(rng: jax.Array, images: jax.Array, labels: jax.Array | None = None):
  """All 4 exact rotations of every image: inputs (4B, H, W, 3) in the input dtype
  (uint8 stays uint8), targets (4B,) in {0..3}.

  Deterministic: `rng` is unused (every image gets every rotation).
  """
  del rng, labels
  return all_rotations(images)


@register("rotation")
def build(backbone: nn.Module) -> Task:
  """Rotation task: a 4-way linear head on the backbone's features; options: none."""
  return Task("rotation", make_rotation_batch, ClassifierNet(backbone, 4), classification_loss)
