"""The config's readers: the objects a run needs, built from its ConfigDict (the backbone,
the task on it, the augmentation, the checkpoint's shape fields, the probed taps).

checks and experiment build them here, and train/, evaluate/ and data/ take what was built
(`PretrainData`, `Evaluation`, the task, the optimiser) and explicit arguments, never the
config. (The optimiser is still built from the config's `optim` part, by train/optim.py.)
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

from sslflax.models import backbone_of, get_backbone
from sslflax.tasks import Task, make_task
from sslflax.train.step import Augment
from sslflax.transforms.augment import AugmentSpec, random_views

# linear_eval.probe_optimizer: ours (Adam), or SGD with momentum, the per-layer protocol
PROBE_OPTIMIZERS = ("adam", "sgd")


def backbone_from_config(config):
  """config.model.name's backbone, built from the config.model fields its family reads."""
  family = get_backbone(config.model.name)
  return family.build(**{field: config.model[field] for field in family.fields})


def task_from_config(config, measure_prior: bool = False) -> Task:
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
  return make_task(config.task.name, backbone_from_config(config),
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
  return functools.partial(random_views, spec=spec, size=config.pretrain.image_size)


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


def config_taps(config) -> tuple[str, ...]:
  """The taps a config probes, for its model."""
  from sslflax.evaluate.linear import resolve_taps  # evaluate imports TensorFlow
  return resolve_taps(config.linear_eval.taps, backbone_of(backbone_from_config(config)).taps)


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
