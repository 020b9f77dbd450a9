"""The training state: parameters, BatchNorm statistics, optimiser state, step and base PRNG key."""

from __future__ import annotations

import functools
from typing import Any

import flax
import jax
import jax.numpy as jnp
import optax

from sslflax.tasks.base import Task


MEMORY_STREAM = 2  # fold_in(key, this): the task memory's randomness, apart from the others


class TrainState(flax.struct.PyTreeNode):
  step: jax.Array
  params: Any
  batch_stats: Any
  opt_state: Any
  rng: jax.Array  # base key; step keys are fold_in(rng, step), so a resumed run draws the same
  memory: Any = None  # the task's Memory (momentum encoder, queue); None for most tasks


def create_train_state(rng: jax.Array, task: Task, tx: optax.GradientTransformation,
                       example_images: jax.Array, example_labels: jax.Array | None = None) -> TrainState:
  """Initialise the task network on an example batch (shapes only matter).

  Compiled: run eagerly, a task that builds views would dispatch hundreds of small ops one
  by one (BYOL's tiny test network: 16.6 s eagerly, 3.2 s compiled on 2 CPU cores)."""
  init = jax.jit(functools.partial(_initial_state, task=task, tx=tx))
  return init(rng, example_images, example_labels)


def _initial_state(rng: jax.Array, example_images: jax.Array, example_labels: jax.Array | None,
                   *, task: Task, tx: optax.GradientTransformation) -> TrainState:
  k_init, k_batch, k_dropout, k_state = jax.random.split(rng, 4)
  inputs, _ = task.make_batch(k_batch, example_images, example_labels)
  variables = task.model.init({"params": k_init, "dropout": k_dropout}, inputs, train=False)
  params = variables["params"]
  batch_stats = variables.get("batch_stats", {})
  memory = None
  if task.memory is not None:  # its own key, so the other tasks' draws stay as they were
    memory = task.memory.init({"params": params, "batch_stats": batch_stats},
                              jax.random.fold_in(rng, MEMORY_STREAM))
  return TrainState(step=jnp.zeros((), jnp.int32), params=params, batch_stats=batch_stats,
                    opt_state=tx.init(params), rng=jax.random.key_data(k_state), memory=memory)
