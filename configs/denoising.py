"""Experiment: denoising. See configs/common.py for the variants (default, smoke, paper[-60k|-120k])."""

from configs.common import get_base_config


def get_config(arg: str | None = None):
  config = get_base_config("denoising", arg)
  config.task.options.noise = "masking"  # or 'gaussian' (std sigma in [0, 1] units)
  config.task.options.fraction = 0.25  # of components zeroed (Vincent et al.'s 25%)
  config.task.options.sigma = 0.3
  config.task.options.loss_on = "all"  # or 'corrupted' (Vincent et al. 2010's emphasis)
  return config
