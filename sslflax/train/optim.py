"""Optimisers and learning-rate schedules from a config (optax)."""

from __future__ import annotations

import optax

OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = ("constant", "cosine", "step", "exponential")


def make_schedule(optim, total_steps: int, steps_per_epoch: int) -> optax.Schedule:
  """optim.schedule: 'constant' | 'cosine' (with optim.warmup_steps) | 'step' (x optim.decay_factor
  at each epoch in optim.decay_epochs) | 'exponential' (x optim.decay_factor per epoch)."""
  lr = optim.lr
  if optim.schedule == "constant":
    return optax.constant_schedule(lr)
  if optim.schedule == "cosine":
    return optax.warmup_cosine_decay_schedule(0.0, lr, min(optim.warmup_steps, total_steps // 2),
                                              max(total_steps, 1))
  if optim.schedule == "step":
    bounds = {int(e * steps_per_epoch): optim.decay_factor for e in optim.decay_epochs}
    return optax.piecewise_constant_schedule(lr, bounds)
  if optim.schedule == "exponential":
    return optax.exponential_decay(lr, max(steps_per_epoch, 1), optim.decay_factor)
  raise ValueError(f"unknown optim.schedule {optim.schedule!r}; choose one of {SCHEDULES}.")


def make_optimizer(optim, total_steps: int, steps_per_epoch: int) -> optax.GradientTransformation:
  """optim.name: 'adam' | 'adamw' | 'sgd' (Nesterov momentum optim.momentum); weight decay
  optim.weight_decay (L2 added to the gradient for adam/sgd, decoupled for adamw)."""
  schedule = make_schedule(optim, total_steps, steps_per_epoch)
  if optim.name == "adamw":
    return optax.adamw(schedule, weight_decay=optim.weight_decay)
  if optim.name == "adam":
    base = optax.adam(schedule)
  elif optim.name == "sgd":
    base = optax.sgd(schedule, momentum=optim.momentum, nesterov=True)
  else:
    raise ValueError(f"unknown optim.name {optim.name!r}; choose one of {OPTIMIZERS}.")
  if optim.weight_decay:
    return optax.chain(optax.add_decayed_weights(optim.weight_decay), base)
  return base
