"""Multi-task self-supervision (Doersch & Zisserman, ICCV 2017; the seed paper's future work):
several registered pretext tasks train one shared backbone, each with its own head and its
own batch builder, in one jitted step.

combine='sum': every step builds every task's batch and minimises sum_i w_i * loss_i, so the
backbone's gradient mixes all tasks. combine='alternate': round-robin, step s updates with
task s mod K alone (weighted by its w); only that task's network runs (lax.switch), so a step
costs about one task's step. The backbone's BatchNorm statistics are updated by each task
that runs, in the order of `tasks`.

Parameters: {'backbone': the shared one, <task>: that task's head}, so a checkpoint feeds
the linear evaluation like any task's. Each task's batch builder and loss are its own; the
logged metrics are '<task>/loss' and '<task>/<metric>' beside the combined 'loss'; under
'alternate' a task's metrics are NaN on the steps it does not run, and left out of the log.
"""

from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from sslflax.tasks.base import Task, make_task, register, registered_tasks

COMBINE = ("sum", "alternate")


class MultiTaskModel:
  """The tasks' networks on one shared backbone, with the init/apply interface of a Flax
  module (the only part of one the engine uses). Variables: the shared backbone's under
  'backbone', each task's own under its name."""

  def __init__(self, tasks: Sequence[Task], combine: str):
    self.tasks, self.combine = tuple(tasks), combine

  def _split(self, variables, name: str) -> dict[str, Any]:
    """One task's variables: the shared backbone beside its own."""
    return {col: {"backbone": tree["backbone"], **tree.get(name, {})}
            for col, tree in variables.items()}

  def init(self, rngs, inputs, train: bool = False):
    rngs = rngs if isinstance(rngs, dict) else {"params": rngs}
    merged: dict[str, dict[str, Any]] = {}
    for index, task in enumerate(self.tasks):
      own_rngs = {k: jax.random.fold_in(v, index) for k, v in rngs.items()}
      variables = task.model.init(own_rngs, inputs[task.name], train=train)
      for col, tree in variables.items():
        shared = merged.setdefault(col, {}).setdefault("backbone", {})
        for key, value in tree.get("backbone", {}).items():
          shared.setdefault(key, value)  # the first task to use a shared layer draws it
        merged[col][task.name] = {k: v for k, v in tree.items() if k != "backbone"}
    return merged

  def _run(self, index: int, variables, inputs, train, rngs, mutable):
    """Task `index`'s outputs and, when mutable, every variable with its updates."""
    task = self.tasks[index]
    task_rngs = ({k: jax.random.fold_in(v, index) for k, v in rngs.items()}
                 if rngs else None)
    own = self._split(variables, task.name)
    if not mutable:
      return task.model.apply(own, inputs[task.name], train=train, rngs=task_rngs), variables
    out, updates = task.model.apply(own, inputs[task.name], train=train, rngs=task_rngs,
                                    mutable=mutable)
    variables = dict(variables)
    for col, tree in updates.items():
      variables[col] = {**variables[col], "backbone": tree["backbone"],
                        task.name: {k: v for k, v in tree.items() if k != "backbone"}}
    return out, variables

  def apply(self, variables, inputs, train: bool = False, rngs=None, mutable=False):
    """{task: outputs}; under 'alternate' the idle tasks' outputs are zeros of their shape."""
    variables = dict(variables)
    if self.combine == "alternate" and train and "active" in inputs:
      outputs, variables = self._alternate(variables, inputs, rngs, mutable)
    else:
      outputs = {}
      for i, task in enumerate(self.tasks):
        outputs[task.name], variables = self._run(i, variables, inputs, train, rngs, mutable)
    if not mutable:
      return outputs
    return outputs, {col: variables[col] for col in mutable}

  def _alternate(self, variables, inputs, rngs, mutable):
    """Only task `inputs['active']` runs; the others' outputs are zeros of their shape."""
    shapes = {t.name: jax.eval_shape(lambda v, i=i: self._run(i, v, inputs, True, rngs,
                                                              mutable)[0], variables)
              for i, t in enumerate(self.tasks)}
    def branch(i):
      def run(variables):
        out, variables = self._run(i, variables, inputs, True, rngs, mutable)
        outputs = {t.name: (out if j == i else jax.tree.map(
            lambda s: jnp.zeros(s.shape, s.dtype), shapes[t.name]))
                   for j, t in enumerate(self.tasks)}
        return outputs, variables
      return run
    return jax.lax.switch(inputs["active"], [branch(i) for i in range(len(self.tasks))],
                          variables)


def multitask_loss(tasks: Sequence[Task], weights: Sequence[float], combine: str):
  """loss(outputs, targets): the weighted sum of the tasks' losses ('sum'), or the active
  task's weighted loss ('alternate'), with every task's loss and metrics under its name."""
  def loss(outputs, targets):
    if combine == "sum" or "active" not in targets:
      total, metrics = 0.0, {}
      for task, w in zip(tasks, weights):
        value, task_metrics = task.loss(outputs[task.name], targets[task.name])
        total = total + w * value
        metrics.update(_named(task.name, value, task_metrics))
      return total, metrics
    def branch(i):
      def run(outputs):
        value, task_metrics = tasks[i].loss(outputs[tasks[i].name], targets[tasks[i].name])
        metrics = {}
        for j, task in enumerate(tasks):
          names = _named(task.name, value, task_metrics) if j == i else {
              k: jnp.nan for k in metric_names[task.name]}
          metrics.update({k: jnp.asarray(v, jnp.float32) for k, v in names.items()})
        return weights[i] * value, metrics
      return run
    metric_names = {t.name: _named(t.name, 0.0, jax.eval_shape(t.loss, outputs[t.name],
                                                               targets[t.name])[1])
                    for t in tasks}
    return jax.lax.switch(targets["active"], [branch(i) for i in range(len(tasks))], outputs)
  return loss


def _named(name: str, loss, metrics: dict[str, Any]) -> dict[str, Any]:
  return {f"{name}/loss": loss, **{f"{name}/{k}": v for k, v in metrics.items()}}


@register("multitask")
def build(backbone: nn.Module, tasks: Sequence[str] = ("rotation", "jigsaw", "colorization"),
          weights: Sequence[float] | None = None, combine: str = "sum",
          **task_options: dict[str, Any]) -> Task:
  """Multi-task self-supervision. `tasks`: registered task names (each at most once);
  `weights`: one per task (None: all 1); `combine`: 'sum' or 'alternate'; every other
  option is a task's own options under its name, e.g. jigsaw={'num_permutations': 100}."""
  tasks = tuple(tasks)
  weights = tuple(float(w) for w in weights) if weights is not None else (1.0,) * len(tasks)
  if combine not in COMBINE:
    raise ValueError(f"unknown combine {combine!r}; choose one of {COMBINE}.")
  if not tasks or len(set(tasks)) != len(tasks) or "multitask" in tasks:
    raise ValueError(f"multitask tasks={tasks!r}: name one or more different tasks (not "
                     f"'multitask'), e.g. ('rotation', 'jigsaw').")
  unknown = [t for t in tasks if t not in registered_tasks()]
  if unknown:
    raise ValueError(f"multitask tasks {unknown} are not registered; choose from "
                     f"{[t for t in registered_tasks() if t != 'multitask']}.")
  if len(weights) != len(tasks):
    raise ValueError(f"multitask weights={weights} must give one weight per task of {tasks}.")
  stray = sorted(set(task_options) - set(tasks))
  if stray:
    raise ValueError(f"multitask options {stray} name no task of {tasks}; options go under "
                     f"their task's name.")
  built = tuple(make_task(name, backbone, **dict(task_options.get(name) or {}))
                for name in tasks)
  stateful = [t.name for t in built if t.memory is not None or t.clustering is not None]
  if stateful:  # their memory or clustering would be dropped: silently wrong, or a crash
    raise ValueError(f"multitask cannot combine {stateful} yet: they keep state beside the "
                     f"parameters (a momentum encoder, a queue, clusters) that multitask does "
                     f"not carry; train them alone (SwAV without its queue: queue_size=0).")

  def make_batch(rng, images, labels=None, step=None):
    keys = jax.random.split(rng, len(built))
    inputs, targets = {}, {}
    for key, task in zip(keys, built):
      step_arg = {"step": step} if task.uses_step and step is not None else {}
      inputs[task.name], targets[task.name] = task.make_batch(key, images, labels, **step_arg)
    if combine == "alternate" and step is not None:
      inputs["active"] = targets["active"] = jnp.asarray(step, jnp.int32) % len(built)
    return inputs, targets

  probe_inputs = {t.probe_input for t in built}
  return Task("multitask", make_batch, MultiTaskModel(built, combine),
              multitask_loss(built, weights, combine),
              needs_labels=any(t.needs_labels for t in built),
              needs_color=any(t.needs_color for t in built),
              probe_input=probe_inputs.pop() if len(probe_inputs) == 1 else None,
              min_image_size=max(t.min_image_size for t in built), uses_step=True)
