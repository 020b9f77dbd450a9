"""Experiment: random. See configs/common.py for the variants (default, smoke, paper[-60k|-120k])."""

from configs.common import get_base_config


def get_config(arg: str | None = None):
  config = get_base_config("random", arg)
  config.task.name = "random"  # no pretraining: the backbone is evaluated at its random init
  config.pretrain.steps = 0
  return config
