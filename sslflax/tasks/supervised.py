"""Supervised classification: the topline baseline, pretrained on the same images with labels."""

from __future__ import annotations

import jax
import flax.linen as nn

from sslflax.tasks.base import ClassifierNet, Task, classification_loss, register


def make_supervised_batch(rng: jax.Array, images: jax.Array, labels: jax.Array | None = None):
  """The images as they are (the backbone standardises uint8) and their labels.

  Deterministic (`rng` unused).
  """
  del rng
  if labels is None:
    raise ValueError("the supervised task needs labels; use a labelled dataset.")
  return images, labels


@register("supervised")
def build(backbone: nn.Module, num_classes: int = 10) -> Task:
  """The supervised baseline: a `num_classes`-way linear head trained on the dataset's labels."""
  return Task("supervised", make_supervised_batch, ClassifierNet(backbone, num_classes),
              classification_loss, needs_labels=True)
