"""The config's one reader: `build_run` turns an experiment's ConfigDict into the `Run` of
objects it needs (the backbone, the task on it, the optimiser's spec, the data and
augmentation, the evaluation, the checkpoint's shape fields, the probed taps), once per run.

checks validates what was built; experiment hands its parts to train/, evaluate/ and data/,
which take built objects and explicit arguments, never the config.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from typing import Any, Callable

import jax.numpy as jnp

from sslflax.errors import ConfigError
from sslflax.models import Backbone, backbone_of, get_backbone
from sslflax.results import RANDOM_INIT
from sslflax.tasks import Task, make_task
from sslflax.train.optim import OptimizerSpec
from sslflax.train.step import Augment
from sslflax.transforms.augment import AugmentSpec, stream_view

# linear_eval.probe_optimizer: ours (Adam), or SGD with momentum, the per-layer protocol
PROBE_OPTIMIZERS = ("adam", "sgd")


# model.compute_dtype: what the backbone computes in. Parameters and BatchNorm statistics
# stay float32 either way (mixed precision); the heads and losses take float32.
COMPUTE_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


def backbone_from_config(config):
  """config.model.name's backbone, built from the config.model fields its family reads, in
  config.model.compute_dtype."""
  family = get_backbone(config.model.name)
  module = family.build(**{field: config.model[field] for field in family.fields})
  dtype = config.model.get("compute_dtype", "float32")
  if dtype not in COMPUTE_DTYPES:
    raise ConfigError(f"model.compute_dtype={dtype!r}: choose one of {list(COMPUTE_DTYPES)} "
                      f"(bfloat16: mixed precision, for GPUs and TPUs).")
  return module.clone(dtype=COMPUTE_DTYPES[dtype])


def task_from_config(config, measure_prior: bool = False, backbone=None) -> Task:
  """The config's task on its backbone. A prior option (colorization) is measured on the
  pretraining data only with `measure_prior`; otherwise the shipped one stands in, which
  gives the same shapes (enough to check a config or restore a checkpoint)."""
  from sslflax.data.priors import resolve_prior
  def with_prior(options: dict) -> dict:  # multitask: a task's options nest under its name
    options = {k: with_prior(v) if isinstance(v, dict) else v for k, v in options.items()}
    if "prior" in options:
      pc = config.pretrain
      options["prior"] = (resolve_prior(options["prior"], pc.dataset, pc.split,
                                        host_image_size(config), pc.data_dir, config.seed)
                          if measure_prior else None)
    return options
  return make_task(config.task.name, backbone or backbone_from_config(config),
                   **with_prior(config.task.options.to_dict()))


def augment_spec(config) -> AugmentSpec | None:
  """config.pretrain.augment as an AugmentSpec; None when the stream is off."""
  aug = config.pretrain.augment
  if not aug.enabled:
    return None
  fields = {k: tuple(v) if isinstance(v, (list, tuple)) else v for k, v in aug.items()
            if k not in ("enabled", "source_size")}
  return AugmentSpec(**fields)


def augment_from_config(config) -> Augment | None:
  """(key, source images) -> pretrain.image_size views, or None without augmentation."""
  spec = augment_spec(config)
  if spec is None:
    return None
  return functools.partial(stream_view, spec=spec, size=config.pretrain.image_size)


def shape_fields(config) -> dict[str, Any]:
  """The config fields that set the checkpoint's parameter shapes, flattened ('model.widths')."""
  model = config.model.to_dict()
  keep = ("name",) + get_backbone(model["name"]).shape_fields
  fields = {f"model.{k}": model[k] for k in keep}
  fields.update({f"task.options.{k}": v for k, v in config.task.options.to_dict().items()})
  return {k: list(v) if isinstance(v, tuple) else v for k, v in fields.items()}


def host_image_size(config) -> int:
  """The side of the images the host hands over: the augmentation's source, else the input."""
  aug = config.pretrain.augment
  return aug.source_size if aug.enabled else config.pretrain.image_size


@dataclasses.dataclass(frozen=True)
class PretrainData:
  """What pretraining reads, from config.pretrain and config.seed: the set, its split and
  subset, the network's input side and the host's (the augmentation's source, else the
  same), the global batch, the steps, the host's resize and flip, the seed."""
  dataset: str
  split: str
  image_size: int
  host_image_size: int
  batch_size: int
  steps: int
  subset_size: int | None
  data_dir: str | None
  resize_to: int | None
  flip: bool
  seed: int


def pretrain_data(config) -> PretrainData:
  pc = config.pretrain
  return PretrainData(dataset=pc.dataset, split=pc.split, image_size=pc.image_size,
                      host_image_size=host_image_size(config), batch_size=pc.batch_size,
                      steps=pc.steps, subset_size=pc.subset_size, data_dir=pc.data_dir,
                      resize_to=pc.resize_to, flip=pc.flip, seed=config.seed)


@dataclasses.dataclass(frozen=True)
class Evaluation:
  """What the probes and fine-tunes read: config.linear_eval's fields (the same names), and
  the run's seed, data folder, checkpointing and logging."""
  datasets: tuple[str, ...]
  train_split: str
  test_split: str
  image_size: int
  image_size_per_dataset: tuple[tuple[str, int], ...]
  splits_per_dataset: tuple[tuple[str, str, str], ...]
  squash: bool
  taps: tuple[str, ...]
  epochs: int
  batch_size: int
  lr: float
  decay_per_epoch: float
  weight_decay: float
  train_subset: int | None
  label_fraction: float | None
  probe_optimizer: str
  probe_lr: float | None
  probe_weight_decay: float | None
  mode: str
  freeze_layer: int
  finetune_epochs: int
  finetune_dropout: float
  seed: int
  data_dir: str | None
  checkpoint_every: int
  checkpoint_keep: int
  log_every: int


def optimizer_spec(optim) -> OptimizerSpec:
  """config.optim (a ConfigDict, or any mapping of its fields) as an OptimizerSpec."""
  fields = {f.name for f in dataclasses.fields(OptimizerSpec)}
  values = {name: optim[name] for name in fields}
  values.update(decay_epochs=tuple(optim["decay_epochs"]),
                no_momentum=tuple(optim["no_momentum"]))
  return OptimizerSpec(**values)


def evaluation(config) -> Evaluation:
  le = config.linear_eval
  nested = lambda pairs: tuple(tuple(p) for p in pairs)
  fields = {f.name for f in dataclasses.fields(Evaluation)} - {
      "seed", "data_dir", "checkpoint_every", "checkpoint_keep", "log_every"}
  values = {name: le[name] for name in fields}
  values.update(datasets=tuple(le.datasets), taps=tuple(le.taps),
                image_size_per_dataset=nested(le.image_size_per_dataset),
                splits_per_dataset=nested(le.splits_per_dataset))
  return Evaluation(**values, seed=config.seed, data_dir=config.pretrain.data_dir,
                    checkpoint_every=config.checkpoint.every_steps,
                    checkpoint_keep=config.checkpoint.keep, log_every=config.log_every_steps)


def probe_input(config, task: Task | None) -> tuple[str, Callable | None]:
  """(name, transform) of what the probes feed the backbones: the task's own probe input
  (linear_eval.input='task'; colorization: lightness) or the RGB images ('rgb')."""
  fn = task.probe_input if task is not None and config.linear_eval.input == "task" else None
  return (fn.__name__, fn) if fn is not None else ("rgb", None)


@dataclasses.dataclass(frozen=True)
class Run:
  """Everything one experiment needs, built once from its config by `build_run`.

  `task` carries the shipped colorization prior (the same shapes: enough to check a config
  or restore a checkpoint); `measured_task()` builds it again with the prior measured on the
  pretraining data, for pretraining. Random init has no task (None)."""
  experiment: str
  variant: str | None
  task_name: str
  family: Backbone
  backbone: Any  # the flax module, with config.model's fc layers
  task: Task | None
  measured_task: Callable[[], Task] | None
  optimizer: OptimizerSpec
  data: PretrainData
  augment_spec: AugmentSpec | None
  augment: Augment | None
  evaluation: Evaluation
  taps: tuple[str, ...]
  shape_fields: dict[str, Any]
  probe_input: tuple[str, Callable | None]
  head_classes: int | None  # task.options.num_classes (supervised), checked against the labels
  eval_only: bool
  compare_random: bool
  checkpoint_every: int
  checkpoint_keep: int
  log_every: int
  compilation_cache: str | None
  config_json: dict[str, Any]  # the whole config, written into results.json


def build_run(config) -> Run:
  """The config's Run. A builder's error (an unknown task, backbone, optimiser, schedule or
  tap; a bad augmentation) becomes a one-line ConfigError naming the value and the choices."""
  try:
    pretraining = config.task.name != RANDOM_INIT
    backbone = backbone_from_config(config)
    task = task_from_config(config, backbone=backbone) if pretraining else None
    return Run(
        experiment=config.experiment, variant=config.get("variant"), task_name=config.task.name,
        family=get_backbone(config.model.name), backbone=backbone, task=task,
        measured_task=(functools.partial(task_from_config, config, measure_prior=True,
                                         backbone=backbone) if pretraining else None),
        optimizer=optimizer_spec(config.optim), data=pretrain_data(config),
        augment_spec=augment_spec(config), augment=augment_from_config(config),
        evaluation=evaluation(config),
        taps=_resolve_taps(config.linear_eval.taps, backbone), shape_fields=shape_fields(config),
        probe_input=probe_input(config, task),
        head_classes=config.task.options.get("num_classes"), eval_only=config.eval_only,
        compare_random=config.linear_eval.compare_random,
        checkpoint_every=config.checkpoint.every_steps, checkpoint_keep=config.checkpoint.keep,
        log_every=config.log_every_steps, compilation_cache=config.get("compilation_cache"),
        config_json=json.loads(config.to_json_best_effort()))
  except ConfigError:
    raise
  except (ValueError, TypeError) as e:  # the builders' own messages name the value and choices
    raise ConfigError(str(e)) from e


def _resolve_taps(taps, backbone) -> tuple[str, ...]:
  from sslflax.evaluate.linear import resolve_taps  # evaluate imports TensorFlow
  return resolve_taps(taps, backbone_of(backbone).taps)
