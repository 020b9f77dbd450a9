"""One optimisation step of a pretext task: pure, jit-able, the same on 1 or N devices."""

from __future__ import annotations

from typing import Callable

import jax
import optax

from sslflax.tasks.base import Task
from sslflax.train.state import MEMORY_STREAM, TrainState


AUGMENT_STREAM = 1  # fold_in(step key, this) draws the augmentation, apart from the task's keys

Augment = Callable[[jax.Array, jax.Array], jax.Array]  # (key, source images) -> uint8 views


def train_step(task: Task, tx: optax.GradientTransformation, state: TrainState,
               images: jax.Array, labels: jax.Array | None = None,
               augment: Augment | None = None) -> tuple[TrainState, dict[str, jax.Array]]:
  """Augment the source images (when given), build the pretext batch on device, forward,
  backward, update.

  The step's randomness (augmentation, batch building, dropout) comes from
  fold_in(rng, step), so a run restarted from a checkpoint takes exactly the same
  steps. Under jit with a batch sharded over a mesh, BatchNorm statistics and the
  mean loss are computed over the global batch, so N devices give the update of 1.
  """
  step_key = jax.random.fold_in(jax.random.wrap_key_data(state.rng), state.step)
  k_batch, k_dropout = jax.random.split(step_key)
  if augment is not None:
    images = augment(jax.random.fold_in(step_key, AUGMENT_STREAM), images)
  step_arg = {"step": state.step} if task.uses_step else {}
  inputs, targets = task.make_batch(k_batch, images, labels, **step_arg)
  memory = state.memory
  if task.memory is not None:
    targets = jax.lax.stop_gradient(task.memory.read(
        memory, {"params": state.params, "batch_stats": state.batch_stats}, inputs, targets,
        state.step, jax.random.fold_in(step_key, MEMORY_STREAM)))

  def loss_fn(params):
    outputs, updates = task.model.apply(
        {"params": params, "batch_stats": state.batch_stats}, inputs, train=True,
        rngs={"dropout": k_dropout}, mutable=["batch_stats"])
    loss, metrics = task.loss(outputs, targets)
    return loss, (metrics, updates.get("batch_stats", {}), outputs)  # {}: a model without BN

  (loss, (metrics, batch_stats, outputs)), grads = jax.value_and_grad(
      loss_fn, has_aux=True)(state.params)
  updates, opt_state = tx.update(grads, state.opt_state, state.params, value=loss)  # value: reduce-on-plateau
  params = optax.apply_updates(state.params, updates)
  metrics = dict(metrics, loss=loss, grad_norm=optax.global_norm(grads))
  if task.memory is not None:
    memory = task.memory.update(memory, {"params": params, "batch_stats": batch_stats},
                                jax.lax.stop_gradient(outputs), targets, state.step)
  new_state = state.replace(step=state.step + 1, params=params, batch_stats=batch_stats,
                            opt_state=opt_state, memory=memory)
  return new_state, metrics
