"""Optimisers and learning-rate schedules (optax), from an `OptimizerSpec` (config.optim's
fields, built by sslflax.build)."""

from __future__ import annotations

import dataclasses

import jax
import optax

from sslflax.errors import ConfigError

OPTIMIZERS = ("adam", "adamw", "sgd", "lars")
SCHEDULES = ("constant", "cosine", "step", "exponential", "plateau")


@dataclasses.dataclass(frozen=True)
class OptimizerSpec:
  """config.optim's fields (the same names; configs/common.py says what each does)."""
  name: str
  lr: float
  schedule: str
  warmup_steps: int
  final_lr: float
  lars_kernels_only: bool
  decay_epochs: tuple[float, ...]
  decay_factor: float
  plateau_factor: float
  plateau_patience: int
  momentum: float
  nesterov: bool
  no_momentum: tuple[str, ...]
  weight_decay: float
  adam_b1: float

  def __post_init__(self):
    if self.name not in OPTIMIZERS:
      raise ValueError(f"unknown optim.name {self.name!r}; choose one of {OPTIMIZERS}.")
    if self.schedule not in SCHEDULES:
      raise ValueError(f"unknown optim.schedule {self.schedule!r}; choose one of {SCHEDULES}.")


def make_schedule(optim: OptimizerSpec, total_steps: int, steps_per_epoch: int) -> optax.Schedule:
  """optim.schedule: 'constant' | 'cosine' (with optim.warmup_steps) | 'step' (x optim.decay_factor
  at each epoch in optim.decay_epochs) | 'exponential' (x optim.decay_factor per epoch)."""
  lr = optim.lr
  if optim.schedule in ("constant", "plateau"):  # plateau: reduce_on_plateau scales the updates
    return optax.constant_schedule(lr)
  if optim.schedule == "cosine":
    return optax.warmup_cosine_decay_schedule(0.0, lr, min(optim.warmup_steps, total_steps // 2),
                                              max(total_steps, 1),
                                              end_value=optim.final_lr)
  if optim.schedule == "step":
    bounds = {int(e * steps_per_epoch): optim.decay_factor for e in optim.decay_epochs}
    return optax.piecewise_constant_schedule(lr, bounds)
  if optim.schedule == "exponential":
    return optax.exponential_decay(lr, max(steps_per_epoch, 1), optim.decay_factor)
  raise ValueError(f"unknown optim.schedule {optim.schedule!r}; choose one of {SCHEDULES}.")


def reduce_on_plateau(optim: OptimizerSpec, steps_per_epoch: int) -> optax.GradientTransformationExtraArgs:
  """PyTorch's ReduceLROnPlateau(mode='min', factor, patience, threshold=1e-4 relative), on
  the training loss averaged over each epoch (train_step passes the loss as `value`).

  PyTorch lowers the rate when more than `patience` epochs in a row fail to improve on the
  best; optax when `patience` do: hence optax's patience = ours + 1.
  """
  return optax.contrib.reduce_on_plateau(
      factor=optim.plateau_factor, patience=optim.plateau_patience + 1, rtol=1e-4,
      accumulation_size=max(steps_per_epoch, 1))


def make_optimizer(optim: OptimizerSpec, total_steps: int, steps_per_epoch: int) -> optax.GradientTransformation:
  """optim.name: 'adam' | 'adamw' | 'sgd' (see `sgd`) | 'lars' (see
  `lars`); weight decay optim.weight_decay (L2 added to the gradient for adam/sgd, decoupled
  for adamw, inside LARS's trust ratio for lars);
  optim.schedule 'plateau' adds `reduce_on_plateau`."""
  schedule = make_schedule(optim, total_steps, steps_per_epoch)
  if optim.schedule == "plateau":
    return optax.chain(_base_optimizer(optim, schedule), reduce_on_plateau(optim, steps_per_epoch))
  return _base_optimizer(optim, schedule)


def weights_only(params):
  """True for kernels, False for biases and BatchNorm scales and offsets (1-D leaves)."""
  return jax.tree.map(lambda p: p.ndim > 1, params)


def lars(optim: OptimizerSpec, schedule: optax.Schedule) -> optax.GradientTransformation:
  """LARS (You et al. 2017): momentum optim.momentum, trust coefficient 0.001. With
  optim.lars_kernels_only (SimCLR's, BYOL's), weight decay and the trust ratio apply to
  kernels only, biases and BatchNorm parameters excluded; without it to every parameter
  (SwAV's SGD wrapped in LARC, clip=False)."""
  mask = weights_only if optim.lars_kernels_only else True
  return optax.lars(schedule, weight_decay=optim.weight_decay, weight_decay_mask=mask,
                    trust_ratio_mask=mask, momentum=optim.momentum)


def sgd(optim: OptimizerSpec, schedule: optax.Schedule) -> optax.GradientTransformation:
  """SGD with momentum optim.momentum (Nesterov's when optim.nesterov; MoCo and DeepCluster
  use plain momentum), and plain SGD, without momentum, for the top-level parameters named in
  optim.no_momentum (DeepCluster's top layer: its own momentum-free optimiser)."""
  with_momentum = optax.sgd(schedule, momentum=optim.momentum,
                            nesterov=optim.nesterov)
  plain = optim.no_momentum
  if not plain:
    return with_momentum

  def labels(params):
    unknown = sorted(set(plain) - set(params))
    if unknown:
      raise ConfigError(f"optim.no_momentum names {unknown}, which the model does not have; "
                       f"its top-level parameters are {sorted(params)}.")
    return {name: "plain" if name in plain else "momentum" for name in params}

  return optax.multi_transform({"momentum": with_momentum, "plain": optax.sgd(schedule)}, labels)


def _base_optimizer(optim: OptimizerSpec, schedule: optax.Schedule) -> optax.GradientTransformation:
  if optim.name == "lars":
    return lars(optim, schedule)
  if optim.name == "adamw":
    return optax.adamw(schedule, b1=optim.adam_b1, weight_decay=optim.weight_decay)
  if optim.name == "adam":
    base = optax.adam(schedule, b1=optim.adam_b1)
  elif optim.name == "sgd":
    base = sgd(optim, schedule)
  else:
    raise ValueError(f"unknown optim.name {optim.name!r}; choose one of {OPTIMIZERS}.")
  if optim.weight_decay:
    return optax.chain(optax.add_decayed_weights(optim.weight_decay), base)
  return base
