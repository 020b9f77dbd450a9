"""Pretraining: data-parallel jitted steps over a ('data',) mesh, checkpoints, metrics, progress."""

from __future__ import annotations

import functools
import json
import math
import os
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from sslflax import data as data_lib
from sslflax.console import format_eta
from sslflax.errors import ConfigError, DatasetError, UserError
from sslflax.build import PretrainData
from sslflax.tasks import Task
from sslflax.train import checkpoint as ckpt_lib
from sslflax.train.state import TrainState, create_train_state
from sslflax.train.step import Augment, train_step
from sslflax.log import log


class NonFiniteLossError(UserError, FloatingPointError):
  """The loss became NaN or inf: the run stops; the last good checkpoint stays."""


def data_mesh(devices=None) -> Mesh:
  """A 1-D ('data',) mesh over `devices` (default: every device of every host)."""
  return Mesh(np.array(devices if devices is not None else jax.devices()), ("data",))


def check_queue_fits(task: Task, source_images: int | None, batch_size: int) -> None:
  """A queue of negatives holding a quarter of the set or more would hold each query's own
  image, in a stale key, among its negatives (MoCo's 65,536 keys are 5% of ImageNet)."""
  held = task.memory.queued_images if task.memory is not None else 0
  if source_images and held > source_images // 4:
    fits = max(batch_size, source_images // 4 // batch_size * batch_size)
    raise ConfigError(f"task.options.queue_size={held} holds more than a quarter of the "
                      f"{source_images} pretraining images, so queries would meet stale keys "
                      f"of their own images as negatives; set --config.task.options.queue_size="
                      f"{fits} or less (a multiple of the batch).")


def check_has_color(images: np.ndarray, dataset: str, task: str) -> None:
  """A grayscale set stored as RGB (equal channels) would teach colorization nothing, silently."""
  if images.shape[-1] == 3 and (images[..., :1] == images).all():
    raise DatasetError(f"task {task!r} learns colour, but the first batch of {dataset!r} is "
                       f"grayscale (equal R, G and B); pretrain it on colour images.")


def host_batch(batch: dict[str, np.ndarray], sharding: NamedSharding) -> tuple[jax.Array, jax.Array]:
  """This host's part of the global batch -> global arrays sharded over the mesh."""
  images = jax.make_array_from_process_local_data(sharding, batch["image"])
  labels = jax.make_array_from_process_local_data(sharding, batch["label"])
  return images, labels


class MetricWriter:
  """Metrics to DIR/metrics.jsonl (one JSON object a line) and to TensorBoard (DIR/tb)."""

  def __init__(self, workdir: str, enabled: bool = True):
    self.enabled = enabled
    if not enabled:
      return
    import tensorflow as tf
    self._tf = tf
    self._jsonl = open(os.path.join(workdir, "metrics.jsonl"), "a")
    self._tb = tf.summary.create_file_writer(os.path.join(workdir, "tb"))

  def write(self, step: int, metrics: dict[str, float]) -> None:
    if not self.enabled:
      return
    self._jsonl.write(json.dumps({"step": step, **metrics}) + "\n")
    self._jsonl.flush()
    with self._tb.as_default():
      for key, value in metrics.items():
        self._tf.summary.scalar(key, value, step=step)
    self._tb.flush()

  def close(self) -> None:
    if self.enabled:
      self._jsonl.close()
      self._tb.close()


def init_state(task: Task, tx, mesh: Mesh, image_size: int, seed: int) -> TrainState:
  """A fresh state, replicated over the mesh (initialised from an all-zero example batch of
  image_size px images, with the run's seed)."""
  example = jnp.zeros((max(2, mesh.size), image_size, image_size, 3), jnp.uint8)
  labels = jnp.zeros((example.shape[0],), jnp.int32)
  replicated = NamedSharding(mesh, P())
  init = jax.jit(functools.partial(create_train_state, task=task, tx=tx),
                 out_shardings=replicated)
  return init(jax.random.key(seed), example_images=example, example_labels=labels)


def jit_train_step(task: Task, tx, mesh: Mesh, augment: Augment | None = None):
  """train_step under jit over the mesh: the state replicated, the batch split over 'data'."""
  data_sharding = NamedSharding(mesh, P("data"))
  replicated = NamedSharding(mesh, P())
  return jax.jit(functools.partial(train_step, task, tx, augment=augment),
                 in_shardings=(replicated, data_sharding, data_sharding),
                 out_shardings=(replicated, replicated), donate_argnums=0)


def window_mean(window: list[dict[str, float]]) -> dict[str, float]:
  """Each metric's mean over the window's steps. NaN marks a metric a step did not measure
  (multitask's idle tasks under 'alternate'): it is left out of the mean, and a metric no
  step measured is left out."""
  means = {}
  for key in window[0]:
    values = [m[key] for m in window if not math.isnan(m[key])]
    if values:
      means[key] = sum(values) / len(values)
  return means


def run_steps(state: TrainState, step_fn, batches, manager, mesh: Mesh, *, label: str,
              steps: int, batch_size: int, log_every: int, lr_field: str, writer: MetricWriter,
              first_batch_check=None) -> tuple[TrainState, dict[str, float], int]:
  """Steps int(state.step)..steps of `step_fn` on `batches`: metrics, progress with images/s
  and ETA, and a checkpoint every manager interval and at the end (only of states whose
  losses were all just checked finite). Returns (state, last window's mean metrics, images
  trained).

  A progress line reports the mean of the steps since the last line, and a rate and ETA
  timed from the end of this process's first step, which compiles the step.
  """
  data_sharding = NamedSharding(mesh, P("data"))
  last, trained_images = {}, 0
  window: list[tuple[int, Any]] = []  # (step, device metrics) since the last progress line
  timer_start, timed_images = None, 0
  start = int(state.step)
  try:
    for step in range(start, steps):
      batch = next(batches)
      if step == start and first_batch_check is not None:
        first_batch_check(batch["image"])
      images, labels = host_batch(batch, data_sharding)
      state, metrics = step_fn(state, images, labels)
      done = step + 1
      window.append((done, metrics))
      trained_images += batch_size
      if timer_start is None:
        jax.block_until_ready(metrics)  # compiled and ran: time the rate from here
        timer_start = time.time()
      else:
        timed_images += batch_size
      save = manager.should_save(done) or done == steps
      if done % log_every == 0 or save:
        values = [{k: float(v) for k, v in m.items()} for m in jax.device_get([m for _, m in window])]
        for (at, _), m in zip(window, values):
          if not all(math.isfinite(m[k]) for k in ("loss", "grad_norm") if k in m):
            raise NonFiniteLossError(
                f"loss is {m['loss']} at step {at} of {label}; stopping. The last good "
                f"checkpoint (step {manager.latest_step()}) is kept; lower {lr_field} or "
                f"check the input data.")
        window = []
        last = window_mean(values)
        rate = timed_images / max(time.time() - timer_start, 1e-9) if timed_images else None
        timer_start, timed_images = time.time(), 0
        if rate is not None:
          last["images_per_sec"] = rate
        writer.write(done, last)
      if save:
        ckpt_lib.save(manager, done, state, force=done == steps)
      if done % log_every == 0 or save:
        log.info(progress_line(label, done, steps, last, batch_size))
  finally:
    ckpt_lib.wait_until_saved(manager)
    writer.close()
  return state, last, trained_images


def progress_line(label: str, done: int, steps: int, means: dict[str, float],
                  batch_size: int) -> str:
  """'[task] step 50/600  loss 1.2345  accuracy 0.5000  1,234 img/s  ETA 0:05:12'."""
  metric = next((k for k in ("accuracy", "masked_mse", "corrupted_mse") if k in means), None)
  extra = f"  {metric} {means[metric]:.4f}" if metric else ""
  extra += "".join(f"  {k} {v:.4f}" for k, v in means.items() if k.endswith("/loss"))
  rate = means.get("images_per_sec")
  speed = (f"{rate:,.0f} img/s  ETA {format_eta((steps - done) * batch_size / rate)}"
           if rate else "first step (compiled)")
  return f"[{label}] step {done}/{steps}  loss {means['loss']:.4f}{extra}  {speed}"


def train(task: Task, tx, data: PretrainData, augment: Augment | None, workdir: str,
          mesh: Mesh, *, checkpoint_every: int, checkpoint_keep: int, log_every: int,
          lr_field: str, source_images: int | None) -> dict[str, Any]:
  """Pretrain `task` with `tx` on `data`; resumes from the workdir's last checkpoint.

  Returns the final metrics, images/s and wall time. Restarting the same
  command after a kill continues from the last checkpoint (state, optimiser,
  step and data position) and ends in the same state as an uninterrupted run.
  """
  state = init_state(task, tx, mesh, data.image_size, data.seed)
  manager = ckpt_lib.make_manager(workdir, checkpoint_every, checkpoint_keep)
  restored = ckpt_lib.restore_latest(manager, state)
  if restored is not None:
    state = restored
    log.info(f"resumed from step {int(state.step)} ({os.path.join(workdir, 'checkpoints')})")
  start = int(state.step)

  # DeepCluster draws its pool's views once (clustering.stream_pool) and trains on them.
  step_fn = jit_train_step(task, tx, mesh, None if task.clustering is not None else augment)
  run_kwargs = dict(batch_size=data.batch_size, log_every=log_every, lr_field=lr_field)
  make_writer = lambda: MetricWriter(workdir, enabled=jax.process_index() == 0)
  t0 = time.time()
  if task.clustering is not None:  # DeepCluster: epochs of clustering, then training
    from sslflax.train.clustering import run_clustered
    state, last, trained_images = run_clustered(data, task, state, tx, step_fn, manager, mesh,
                                                workdir, run_steps, make_writer,
                                                augment=augment, **run_kwargs)
  else:
    ds = data_lib.make_dataset(data.dataset, data.split, image_size=data.host_image_size,
                               batch_size=data.batch_size // jax.process_count(),
                               train=True, seed=data.seed, subset_size=data.subset_size,
                               data_dir=data.data_dir, host_id=jax.process_index(),
                               host_count=jax.process_count(), skip_batches=start,
                               need_labels=task.needs_labels, resize_to=data.resize_to,
                               flip=data.flip)
    first_batch_check = None
    if task.needs_color:
      first_batch_check = lambda images: check_has_color(images, data.dataset, task.name)
    state, last, trained_images = run_steps(
        state, step_fn, ds.as_numpy_iterator(), manager, mesh, label=task.name,
        steps=data.steps, writer=make_writer(),
        first_batch_check=first_batch_check, **run_kwargs)
  wall = time.time() - t0
  return {"steps": data.steps, "source_images": source_images, "final_metrics": last,
          "wall_time_s": wall,
          "images_per_sec": trained_images / wall if wall > 0 and trained_images else None,
          "state": state}
