"""What every pretext task provides, and the registry that finds a task by name.

A Task bundles three pure pieces:
  make_batch(rng, images, labels) -> (inputs, targets)   runs on device, inside jit
  model: a Flax module (backbone + task head); model.apply(vars, inputs, train) -> outputs
  loss(outputs, targets) -> (scalar loss, {metric name: scalar})
The backbone always lives under the parameter name 'backbone', so any task's
checkpoint feeds the same linear evaluation.

Batch builders keep pixels compact: where pixels are only moved (rotations,
tiles, masks) or re-quantised after a colour change, inputs stay uint8 and the
network standardises them in its first layer. That keeps the builders
memory-light, which is what bounds their speed.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from sslflax.transforms.color import to_float
from sslflax.transforms.normalize import standardize

BatchFn = Callable[[jax.Array, jax.Array, "jax.Array | None"], tuple[Any, Any]]
LossFn = Callable[[Any, Any], tuple[jax.Array, dict[str, jax.Array]]]


@dataclasses.dataclass(frozen=True)
class Task:
  name: str
  make_batch: BatchFn
  model: nn.Module
  loss: LossFn
  needs_labels: bool = False
  needs_color: bool = False  # learns from colour: a grayscale pretraining set is an error
  # What the probes feed the backbone, from uint8 RGB (None: the images as they are); the
  # linear evaluation uses it for every model it compares, random init included.
  probe_input: Callable[[jax.Array], jax.Array] | None = None
  min_image_size: int = 1  # smallest square input side the task can work with


_BUILDERS: dict[str, Callable[..., Task]] = {}


def register(name: str, *, replace: bool = False):
  """Decorator: make `build(backbone, **options) -> Task` available as make_task(name, ...).

  A second registration of a name is an error (two modules claiming one task), unless
  replace=True: a notebook cell that defines a task can then be run again.
  """
  def wrap(build):
    if name in _BUILDERS and not replace:
      raise ValueError(f"task {name!r} is registered twice; pass replace=True to redefine it.")
    _BUILDERS[name] = build
    return build
  return wrap


def registered_tasks() -> list[str]:
  """The names make_task accepts, sorted."""
  return sorted(_BUILDERS)


def make_task(name: str, backbone: nn.Module, **options) -> Task:
  """Build the task registered under `name` on top of `backbone`."""
  if name not in _BUILDERS:
    raise ValueError(f"unknown task {name!r}; registered tasks are {registered_tasks()}.")
  return _BUILDERS[name](backbone, **options)


def prepare_images(images: jax.Array) -> jax.Array:
  """uint8 or [0, 1] images -> standardised float32 (ImageNet statistics), as the backbone sees them."""
  return standardize(to_float(images))


def classification_loss(logits: jax.Array, labels: jax.Array) -> tuple[jax.Array, dict[str, jax.Array]]:
  """Mean softmax cross-entropy and top-1 accuracy for integer labels."""
  loss = optax.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32), labels).mean()
  accuracy = jnp.mean(jnp.argmax(logits, -1) == labels)
  return loss, {"accuracy": accuracy}


class ClassifierNet(nn.Module):
  """Backbone features -> one linear layer: the rotation and supervised heads."""

  backbone: nn.Module
  num_classes: int

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    features, _ = self.backbone(x, train)
    return nn.Dense(self.num_classes, name="head")(features)
