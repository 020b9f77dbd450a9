"""Orbax checkpoints of the TrainState: periodic, atomic, last N kept, corrupt ones skipped."""

from __future__ import annotations

import json
import logging
import os
import shutil

import jax
import orbax.checkpoint as ocp

from sslflax.train.state import TrainState

RUN_FILE = "run.json"  # which experiment owns this workdir


def make_manager(workdir: str, every_steps: int, keep: int) -> ocp.CheckpointManager:
  options = ocp.CheckpointManagerOptions(max_to_keep=keep, save_interval_steps=every_steps,
                                         create=True)
  return ocp.CheckpointManager(os.path.join(os.path.abspath(workdir), "checkpoints"),
                               options=options)


def claim_workdir(workdir: str, experiment: str, task: str) -> None:
  """Refuse a workdir that holds another experiment's checkpoints; mark it as ours."""
  os.makedirs(workdir, exist_ok=True)
  path = os.path.join(workdir, RUN_FILE)
  if os.path.exists(path):
    with open(path) as f:
      owner = json.load(f)
    if (owner.get("experiment"), owner.get("task")) != (experiment, task):
      raise ValueError(f"workdir {workdir} holds checkpoints of experiment "
                       f"{owner.get('experiment')!r} (task {owner.get('task')!r}), not "
                       f"{experiment!r}; use another --workdir.")
    return
  with open(path, "w") as f:
    json.dump({"experiment": experiment, "task": task}, f)


def restore_latest(manager: ocp.CheckpointManager, target: TrainState) -> TrainState | None:
  """The newest checkpoint that restores cleanly onto `target`'s structure and shardings.

  A truncated or corrupt checkpoint is reported and the one before it is used.
  Returns None when there is none.
  """
  abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
  for step in sorted(manager.all_steps(), reverse=True):
    try:
      return manager.restore(step, args=ocp.args.StandardRestore(abstract))
    except Exception as e:  # noqa: BLE001 - any failure to read means: use an older one
      kept = _set_aside(manager, step)
      logging.warning("checkpoint at step %d is unreadable (%s); moved to %s.", step,
                      type(e).__name__, kept)
      print(f"warning: checkpoint at step {step} is unreadable ({type(e).__name__}); "
            f"moved to {kept} and falling back to an older one.", flush=True)
  return None


def _set_aside(manager: ocp.CheckpointManager, step: int) -> str:
  """Move an unreadable step out of the manager's way (kept for inspection, never deleted)."""
  source = os.path.join(str(manager.directory), str(step))
  target = os.path.join(os.path.dirname(str(manager.directory)), "unreadable_checkpoints", str(step))
  os.makedirs(os.path.dirname(target), exist_ok=True)
  if os.path.exists(target):
    shutil.rmtree(target)
  shutil.move(source, target)
  manager.reload()
  return target
