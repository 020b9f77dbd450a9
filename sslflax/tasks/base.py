"""What every pretext task provides, and the registry that finds a task by name.

A Task bundles three pure pieces:
  make_batch(rng, images, labels) -> (inputs, targets)   runs on device, inside jit
                                   (with uses_step, also step=: the training step)
  model: a Flax module (backbone + task head); model.apply(vars, inputs, train) -> outputs
         (or any object with a module's init and apply: multitask's)
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
from sslflax.transforms.normalize import normalize_per_tile, standardize

BatchFn = Callable[[jax.Array, jax.Array, "jax.Array | None"], tuple[Any, Any]]
LossFn = Callable[[Any, Any], tuple[jax.Array, dict[str, jax.Array]]]


@dataclasses.dataclass(frozen=True)
class Memory:
  """What a task keeps beside its trained parameters, outside the gradient (a momentum
  encoder, a queue of keys): TrainState.memory, checkpointed with the rest.

  init(variables, rng) -> memory, from the freshly initialised {'params', 'batch_stats'};
  read(memory, variables, inputs, targets, step, rng) -> targets, before the forward (e.g.
    the momentum encoder's outputs joined to the targets; no gradient flows through it);
  update(memory, variables, outputs, targets, step) -> memory, after the optimiser's update,
    with the updated variables and the step's outputs and (read) targets.
  queued_images: how many earlier images' keys it holds as negatives (MoCo's queue K); the
    training loop refuses more than a quarter of the pretraining set (MoCo's K is 5% of
    ImageNet), where each query would meet stale keys of its own image.
  """
  init: Callable[..., Any]
  read: Callable[..., Any]
  update: Callable[..., Any]
  queued_images: int = 0


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
  uses_step: bool = False  # make_batch takes step= (the batch depends on the training step)
  memory: Memory | None = None  # state beside the parameters (momentum encoders, queues)
  # DeepCluster's outer loop (tasks/deepcluster.Clustering): the training loop clusters the
  # pool's features every clustering.every_steps and trains on the clusters as labels.
  clustering: Any = None


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


class LateFusionNet(nn.Module):
  """Patch tasks' siamese net: a shared conv trunk per patch -> a per-patch fc -> the patches
  of each group concatenated -> fc -> num_classes logits (Noroozi's jigsaw, Doersch's late
  fusion).

  Input (B, N, p, p, C) uint8 patches; `groups` (G, K) int indices pick which K patches are
  fused, giving (B * G) logits in order (image, group); None fuses all N (G = 1). Each patch
  is normalised per channel first, which hides the brightness, contrast and colour cast
  that neighbouring patches share.
  """

  backbone: nn.Module
  num_classes: int
  tile_features: int = 1024
  hidden: int = 4096
  groups: tuple[tuple[int, ...], ...] | None = None

  @nn.compact
  def __call__(self, tiles: jax.Array, train: bool = False) -> jax.Array:
    b, n = tiles.shape[:2]
    tiles = normalize_per_tile(to_float(tiles))
    _, taps = self.backbone(tiles.reshape((b * n,) + tiles.shape[2:]), train)
    x = nn.Dense(self.tile_features, name="tile_fc")(taps["pool5"])
    x = nn.relu(x).reshape(b, n, self.tile_features)
    groups = jnp.asarray(self.groups if self.groups is not None else (tuple(range(n)),))
    x = x[:, groups].reshape(b * groups.shape[0], groups.shape[1] * self.tile_features)
    x = nn.Dense(self.hidden, use_bias=False, name="fc7")(x)
    x = nn.relu(nn.BatchNorm(use_running_average=not train, momentum=0.9, name="bn_fc7")(x))
    x = nn.Dropout(0.5, deterministic=not train)(x)
    return nn.Dense(self.num_classes, name="head")(x)
