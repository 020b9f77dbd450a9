"""Pieces the joint-embedding tasks share (SimCLR, MoCo v2, BYOL): views of each image, the
projection (and prediction) MLPs, and the momentum encoder, an exponential moving average
(EMA) of the online parameters kept in TrainState.memory.

Under jit over a ('data',) mesh the views, embeddings and losses are global arrays: a loss
that compares every view with every other (NT-Xent) sees the whole global batch, and XLA
inserts the gathers. BatchNorm statistics are global too (sync BN), which is SimCLR's answer
to the information leak through per-device BN statistics.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from sslflax.tasks.base import Memory
from sslflax.transforms.views import ViewSpec, multi_view


def l2_normalize(x: jax.Array, axis: int = -1, eps: float = 1e-12) -> jax.Array:
  """x / ||x|| along `axis`, in float32 (zero vectors stay zero)."""
  x = x.astype(jnp.float32)
  return x / jnp.maximum(jnp.linalg.norm(x, axis=axis, keepdims=True), eps)


def make_view_batch(rng: jax.Array, images: jax.Array, specs: Sequence[ViewSpec]) -> jax.Array:
  """The views of every image, image-major: (B * V, H, W, 3) uint8, row i * V + v for view
  v of image i (so a device's shard of images gives its shard of views: no traffic)."""
  return image_major(multi_view(rng, images, specs, (images.shape[1],) * len(specs)))


def split_views(x: jax.Array, num_views: int) -> jax.Array:
  """(B * V, ...) image-major -> (V, B, ...)."""
  x = x.reshape((x.shape[0] // num_views, num_views) + x.shape[1:])
  return jnp.swapaxes(x, 0, 1)


class MLP(nn.Module):
  """The heads: (Dense -> BN -> ReLU) x (layers - 1) -> Dense (BYOL's). `batch_norm=False`:
  no BN, the hidden Dense then with a bias (MoCo v2's Linear-ReLU-Linear).
  `output_batch_norm`: the last Dense without bias, then BN with a scale but no centre
  (SimCLR's code: `linear_layer(..., use_bias=False, use_bn=True)`, `center=use_bias`)."""

  hidden: int
  out: int
  layers: int = 2
  batch_norm: bool = True
  output_batch_norm: bool = False

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    for i in range(self.layers - 1):
      x = nn.Dense(self.hidden, use_bias=not self.batch_norm, name=f"dense{i}")(x)
      if self.batch_norm:
        x = nn.BatchNorm(use_running_average=not train, momentum=0.9, name=f"bn{i}")(x)
      x = nn.relu(x)
    last = self.layers - 1
    x = nn.Dense(self.out, use_bias=not self.output_batch_norm, name=f"dense{last}")(x)
    if self.output_batch_norm:
      x = nn.BatchNorm(use_running_average=not train, momentum=0.9, use_bias=False,
                       name=f"bn{last}")(x)
    return x


class EmbeddingNet(nn.Module):
  """Backbone features -> projection MLP (-> prediction MLP, BYOL's, when predictor_hidden
  is set). Returns {'projection': z} or {'projection': z, 'prediction': p}, float32.

  The input holds `views` views per image, image-major (make_view_batch). `separate=None`
  passes them all in one forward, so BatchNorm normalises every view together (SimCLR's
  code concatenates the views). `separate=(v, ...)` passes each listed view in a forward of
  its own, its BN statistics its own, and returns their outputs image-major: BYOL applies
  its networks per view (`byol_experiment.py`), MoCo's query encoder sees only the query
  view and its key encoder only the key view (`moco/builder.py`)."""

  backbone: nn.Module
  hidden: int = 1024
  out: int = 128
  predictor_hidden: int | None = None
  projector_batch_norm: bool = True
  projector_output_batch_norm: bool = False
  views: int = 1
  separate: tuple[int, ...] | None = None

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> dict[str, jax.Array]:
    projector = MLP(self.hidden, self.out, batch_norm=self.projector_batch_norm,
                    output_batch_norm=self.projector_output_batch_norm, name="projector")
    predictor = (MLP(self.predictor_hidden, self.out, name="predictor")
                 if self.predictor_hidden else None)

    def embed(images: jax.Array) -> dict[str, jax.Array]:
      features, _ = self.backbone(images, train)
      z = projector(features, train)
      outputs = {"projection": z.astype(jnp.float32)}
      if predictor is not None:
        outputs["prediction"] = predictor(z, train).astype(jnp.float32)
      return outputs

    if self.separate is None:
      return embed(x)
    per_view = split_views(x, self.views)
    passes = [embed(per_view[v]) for v in self.separate]
    return {k: image_major([p[k] for p in passes]) for k in passes[0]}


def image_major(per_view: Sequence[jax.Array]) -> jax.Array:
  """[(B, ...)] * V, one per view -> (B * V, ...) image-major, split_views' inverse."""
  stacked = jnp.stack(per_view, axis=1)
  return stacked.reshape((-1,) + stacked.shape[2:])


def ema_update(target: Any, online: Any, momentum: jax.Array | float) -> Any:
  """momentum * target + (1 - momentum) * online, leaf by leaf (the momentum encoder)."""
  return jax.tree.map(lambda t, o: momentum * t + (1.0 - momentum) * o, target, online)


def cosine_momentum(base: float, step: jax.Array, total_steps: int) -> jax.Array:
  """BYOL's schedule: 1 - (1 - base) (cos(pi k / K) + 1) / 2, from base at step 0 to 1 at K."""
  k = jnp.minimum(jnp.asarray(step, jnp.float32), total_steps)
  return 1.0 - (1.0 - base) * (jnp.cos(math.pi * k / max(total_steps, 1)) + 1.0) / 2.0


def momentum_forward(model: nn.Module, memory: dict[str, Any], variables: dict[str, Any],
                     inputs: jax.Array, rng: jax.Array) -> dict[str, jax.Array]:
  """The momentum encoder's outputs: the model with memory['params'], BN in training mode
  (batch statistics, as the online network's; the running ones it would update are
  dropped: only the online backbone is evaluated)."""
  outputs, _ = model.apply({"params": memory["params"], "batch_stats": variables["batch_stats"]},
                           inputs, train=True, rngs={"dropout": rng}, mutable=["batch_stats"])
  return outputs


def momentum_memory(model: nn.Module, momentum: Callable[[jax.Array], jax.Array],
                    read: Callable[..., Any],
                    extra_init: Callable[..., dict[str, Any]] | None = None,
                    extra_update: Callable[..., dict[str, Any]] | None = None) -> Memory:
  """A Memory holding a momentum encoder: {'params': EMA of the online params} (plus what
  extra_init adds). `momentum(step)` is the EMA's momentum at a step; `read(outputs of the
  momentum encoder, memory, targets)` -> the step's targets."""
  def init(variables, rng):
    memory = {"params": jax.tree.map(jnp.copy, variables["params"])}
    if extra_init is not None:
      memory.update(extra_init(rng))
    return memory

  def read_fn(memory, variables, inputs, targets, step, rng):
    return read(momentum_forward(model, memory, variables, inputs, rng), memory, targets)

  def update(memory, variables, outputs, targets, step):
    new = dict(memory, params=ema_update(memory["params"], variables["params"], momentum(step)))
    if extra_update is not None:
      new.update(extra_update(memory, outputs, targets))
    return new

  return Memory(init, read_fn, update)
