"""Experiment: context. See configs/common.py for the variants (default, smoke, paper[-60k|-120k])."""

from configs.common import get_base_config


def get_config(arg: str | None = None):
  config = get_base_config("context", arg)
  config.task.options.mask_kind = "blocks"  # random regions for feature learning (Pathak 3.3)
  config.task.options.overlap = 4  # the band around the hole, weighted 10x (the paper's code)
  config.task.options.overlap_weight = 10.0
  return config
