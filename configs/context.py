"""Experiment: context. See configs/common.py for the variants (default, smoke, paper[-60k|-120k])."""

from configs.common import get_base_config


def get_config(arg: str | None = None):
  config = get_base_config("context", arg)
  config.task.options.mask_kind = "blocks"  # random blocks: better features than the centre (Pathak 3.3; validation)
  config.task.options.overlap = 0  # L2 on the hidden region only (the published feature results)
  return config
