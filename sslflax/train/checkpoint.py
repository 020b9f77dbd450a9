"""Orbax checkpoints of the TrainState: periodic, atomic, last N kept, corrupt ones skipped."""

from __future__ import annotations

import errno
import json
import os
import shutil

import jax
import orbax.checkpoint as ocp

from sslflax.errors import WorkdirError
from sslflax.train.state import TrainState
from sslflax.log import log

RUN_FILE = "run.json"  # which experiment owns this workdir


def make_manager(workdir: str, every_steps: int, keep: int) -> ocp.CheckpointManager:
  options = ocp.CheckpointManagerOptions(max_to_keep=keep, save_interval_steps=every_steps,
                                         create=True)
  return ocp.CheckpointManager(os.path.join(os.path.abspath(workdir), "checkpoints"),
                               options=options)


_DISK_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EIO)


def save(manager: ocp.CheckpointManager, step: int, state: TrainState, force: bool) -> None:
  """Save a step (atomically: Orbax writes a temporary folder and renames it when complete)."""
  try:
    manager.save(step, args=ocp.args.StandardSave(state), force=force)
  except OSError as e:
    if e.errno not in _DISK_ERRORS:
      raise
    raise _disk_error(manager, step, e) from e


def wait_until_saved(manager: ocp.CheckpointManager) -> None:
  """Wait for an asynchronous save; a failed one is reported like a failed synchronous one."""
  try:
    manager.wait_until_finished()
  except OSError as e:
    if e.errno not in _DISK_ERRORS:
      raise
    raise _disk_error(manager, None, e) from e


def _disk_error(manager: ocp.CheckpointManager, step: int | None, error: OSError) -> WorkdirError:
  """The one-line error, naming the newest checkpoint that is complete on disk."""
  try:
    manager.wait_until_finished()  # an earlier asynchronous save may still be finishing
  except OSError:
    pass
  manager.reload()
  kept = manager.latest_step()
  what = f"the checkpoint of step {step}" if step is not None else "a checkpoint"
  return WorkdirError(
      f"could not write {what} in {manager.directory} ({error.strerror}); "
      + (f"the checkpoint of step {kept} is kept. " if kept is not None else "")
      + "Free disk space (or fix permissions) and rerun the same command to resume.")


def claim_workdir(workdir: str, experiment: str, task: str, shapes: dict | None = None) -> None:
  """Refuse a workdir that holds another experiment's checkpoints, or checkpoints of another
  network shape (`shapes`: the config fields that set parameter shapes); mark it as ours."""
  os.makedirs(workdir, exist_ok=True)
  path = os.path.join(workdir, RUN_FILE)
  mine = {"experiment": experiment, "task": task, "shapes": json.loads(json.dumps(shapes, default=str))}
  if not os.path.exists(path):
    with open(path, "w") as f:
      json.dump(mine, f)
    return
  with open(path) as f:
    owner = json.load(f)
  if (owner.get("experiment"), owner.get("task")) != (experiment, task):
    raise WorkdirError(f"workdir {workdir} holds checkpoints of experiment "
                       f"{owner.get('experiment')!r} (task {owner.get('task')!r}), not "
                       f"{experiment!r}; use another --workdir.")
  theirs = owner.get("shapes")
  if theirs is not None and shapes is not None and theirs != mine["shapes"]:
    changed = sorted(k for k in set(theirs) | set(mine["shapes"])
                     if theirs.get(k) != mine["shapes"].get(k))
    raise WorkdirError(f"workdir {workdir} holds checkpoints of a network with other "
                       f"{', '.join(changed)} ({', '.join(f'{theirs.get(k)}' for k in changed)}); "
                       f"use another --workdir, or the same settings to resume.")


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
      log.warning(f"warning: checkpoint at step {step} is unreadable ({type(e).__name__}); "
                  f"moved to {kept} and falling back to an older one.")
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
