"""Everything a run can find wrong before it starts work: the config's values (check_values,
before the build), then what sslflax.build built from it (check_run: the objects, the
datasets, the workdir). Nothing here builds.

A run that would fail after minutes of pretraining (an unknown tap, a probe set without
labels, a subset larger than its split) fails here instead, in seconds, with one line that
names the bad value and the fix.
"""

from __future__ import annotations

import math
import os
import tempfile

from sslflax.build import PROBE_OPTIMIZERS, PretrainData, Run
from sslflax.errors import ConfigError, DatasetError, WorkdirError
from sslflax.results import RANDOM_INIT
from sslflax.tasks import Task
from sslflax.transforms.augment import AugmentSpec


# (field, smallest allowed value): integers a run divides by, loops over or sizes arrays with.
_AT_LEAST = (("pretrain.batch_size", 1), ("pretrain.image_size", 1), ("pretrain.steps", 1),
             ("checkpoint.every_steps", 1), ("checkpoint.keep", 1), ("log_every_steps", 1),
             ("linear_eval.epochs", 1), ("linear_eval.batch_size", 1),
             ("linear_eval.image_size", 8), ("pretrain.augment.source_size", 1),
             ("linear_eval.finetune_epochs", 1), ("optim.plateau_patience", 0))
_OPTIONAL_AT_LEAST = (("pretrain.subset_size", 1), ("linear_eval.train_subset", 1))


def field(config, path: str):
  for key in path.split("."):
    config = config[key]
  return config


def check_values(config) -> None:
  """Numbers in range: sizes and counts positive, the learning rate finite and not negative."""
  pretraining = config.task.name != RANDOM_INIT
  for path, least in _AT_LEAST + _OPTIONAL_AT_LEAST:
    value = field(config, path)
    if value is None or (not pretraining and path.startswith(("pretrain.", "checkpoint."))):
      continue
    if not isinstance(value, int) or value < least:
      raise ConfigError(f"{path}={value!r} must be an integer of at least {least}; "
                        f"set --config.{path}=<{least} or more>.")
  lr = config.optim.lr
  if pretraining and not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr >= 0):
    raise ConfigError(f"optim.lr={lr!r} must be a finite number >= 0 (e.g. 1e-3).")
  if config.linear_eval.input not in ("task", "rgb"):
    raise ConfigError(f"linear_eval.input={config.linear_eval.input!r}: choose 'task' (the "
                      f"task's own probe input, e.g. colorization's lightness) or 'rgb'.")
  le = config.linear_eval
  if le.probe_optimizer not in PROBE_OPTIMIZERS:
    raise ConfigError(f"linear_eval.probe_optimizer={le.probe_optimizer!r}: choose 'adam' or "
                      f"'sgd' (momentum 0.9, the per-layer protocol).")
  for name in ("probe_lr", "probe_weight_decay"):
    value = le[name]
    if value is not None and not (isinstance(value, (int, float)) and math.isfinite(value)
                                  and value >= 0):
      raise ConfigError(f"linear_eval.{name}={value!r} must be a finite number >= 0, or None "
                        f"for linear_eval.{name[len('probe_'):]}.")
  fraction = le.label_fraction
  if fraction is not None and not (isinstance(fraction, (int, float)) and 0 < fraction <= 1):
    raise ConfigError(f"linear_eval.label_fraction={fraction!r} must be in (0, 1], e.g. 0.01, "
                      f"0.1 or 1.0 (None: every label).")
  if fraction is not None and le.train_subset is not None:
    raise ConfigError(f"linear_eval.train_subset={le.train_subset} and label_fraction="
                      f"{fraction} both choose the probe's training images; set one of them.")
  if le.mode not in ("probe", "finetune"):
    raise ConfigError(f"linear_eval.mode={le.mode!r}: choose 'probe' (linear probes on frozen "
                      f"taps) or 'finetune' (train above linear_eval.freeze_layer).")
  if not 0 < config.optim.plateau_factor <= 1:
    raise ConfigError(f"optim.plateau_factor={config.optim.plateau_factor!r} must be in (0, 1] "
                      f"(the seed's is 0.75).")
  if not config.linear_eval.datasets:
    raise ConfigError("linear_eval.datasets is empty; name at least one labelled dataset, e.g. "
                      "--config.linear_eval.datasets=\"('sslflax_sample/fashion',)\".")


def check_built(run: Run, num_devices: int) -> None:
  """What only the built objects tell: the batches split over the devices, the image large
  enough for the task, a task that draws its own views without the augmented stream."""
  spec = run.evaluation
  if spec.mode == "finetune" and spec.batch_size % num_devices:
    raise ConfigError(f"linear_eval.batch_size={spec.batch_size} is not divisible by the "
                      f"{num_devices} devices; use a multiple of {num_devices} to fine-tune.")
  layers = run.family.layers
  if not isinstance(spec.freeze_layer, int) or spec.freeze_layer not in range(len(layers) + 1):
    raise ConfigError(f"linear_eval.freeze_layer={spec.freeze_layer!r} must be 0..{len(layers)} "
                      f"({layers[0]}..{layers[-1]}: that many layers frozen; 0 fine-tunes "
                      f"everything).")
  if run.task is not None:
    check_task_fits(run.task, run.data, run.augment_spec, num_devices)


def check_task_fits(task: Task, data: PretrainData, augment: AugmentSpec | None,
                    num_devices: int) -> None:
  """Errors a pretraining run would otherwise hit later (or never notice)."""
  batch = data.batch_size
  if batch % num_devices:
    raise ConfigError(f"pretrain.batch_size={batch} is not divisible by the {num_devices} devices; "
                     f"use a multiple of {num_devices} (e.g. {num_devices * max(1, batch // num_devices)}).")
  if data.image_size < task.min_image_size:
    raise ConfigError(f"pretrain.image_size={data.image_size} is too small for task "
                     f"{task.name!r}, which needs at least {task.min_image_size} px.")
  if task.clustering is not None and augment is not None and (
      task.clustering.stream_pool < task.clustering.num_clusters):
    raise ConfigError(f"task {task.name!r} clusters {task.clustering.stream_pool} views of the "
                      f"augmented stream into {task.clustering.num_clusters} clusters; raise "
                      f"--config.task.options.stream_pool.")


def check_datasets(run: Run) -> None:
  """Every dataset the run reads exists, is prepared (or builds locally), has the split, the
  labels and the colour it needs, and holds the subset asked of it."""
  from sslflax import data as data_lib
  from sslflax.data.pipeline import check_split, split_size
  from sslflax.evaluate.linear import probe_splits, train_subset_size
  data, spec, task = run.data, run.evaluation, run.task
  if task is not None and not run.eval_only:
    builder = data_lib.get_builder(data.dataset, data.data_dir)
    check_split(builder, data.split)
    if task.needs_labels:
      data_lib.num_classes(builder)
    if task.needs_color and builder.info.features["image"].shape[-1] == 1:
      raise DatasetError(f"task {task.name!r} learns colour, but {data.dataset!r} is grayscale; "
                         f"pretrain it on colour images (e.g. sslflax_sample/photos).")
    _check_subset(data.dataset, data.subset_size, split_size(builder, data.split),
                  "pretrain.subset_size")
  for dataset in spec.datasets:
    builder = data_lib.get_builder(dataset, spec.data_dir)
    classes = data_lib.num_classes(builder)
    train_split, test_split = probe_splits(spec, dataset)
    for split in (train_split, test_split):
      check_split(builder, split)
    available = split_size(builder, train_split)
    _check_subset(dataset, spec.train_subset, available, "linear_eval.train_subset")
    subset = train_subset_size(spec, dataset, builder)
    if spec.label_fraction is not None and subset is not None and subset < classes:
      raise DatasetError(
          f"linear_eval.label_fraction={spec.label_fraction} keeps {subset} of the {available} "
          f"{train_split} images of {dataset!r}, fewer than its {classes} classes; ask for at "
          f"least {math.ceil(classes / available * 1000) / 1000:g}.")


def _check_subset(dataset: str, asked: int | None, available: int | None, path: str) -> None:
  if asked is not None and available is not None and asked > available:
    raise DatasetError(f"{path}={asked} but {dataset!r} has {available} images in that split; "
                       f"ask for at most {available}.")


def check_workdir(workdir: str) -> None:
  """The workdir is a directory this process can create and write in."""
  if os.path.exists(workdir) and not os.path.isdir(workdir):
    raise WorkdirError(f"--workdir={workdir} is a file, not a directory; choose another path.")
  try:
    os.makedirs(workdir, exist_ok=True)
    with tempfile.TemporaryFile(dir=workdir):
      pass
  except OSError as e:
    raise WorkdirError(f"cannot write in --workdir={workdir} ({e.strerror}); choose a "
                       f"directory you can write to.") from e


def check_run(run: Run, workdir: str, num_devices: int) -> None:
  """All of the above on a built run (after check_values on its config), cheapest first."""
  check_built(run, num_devices)
  check_workdir(workdir)
  check_datasets(run)


def check_num_classes(run: Run, dataset_classes: int) -> None:
  """A head with fewer classes than the labels would train on out-of-range labels silently."""
  head = run.head_classes
  if head is not None and head < dataset_classes:
    raise ConfigError(f"task.options.num_classes={head} but {run.data.dataset!r} has "
                     f"{dataset_classes} classes; set --config.task.options.num_classes="
                     f"{dataset_classes}.")
