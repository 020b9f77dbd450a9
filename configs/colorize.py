"""Experiment: colorization. See configs/common.py for the variants (default, smoke, paper[-60k|-120k])."""

from configs.common import by_variant, get_base_config, photo_stream


def get_config(arg: str | None = None):
  config = get_base_config("colorization", arg)
  config.task.options.rebalance_lambda = 0.5
  # The rebalancing prior: measured on the pretraining data ('data', cached beside it, as Zhang
  # et al. measured ImageNet's), 'shipped' (the embedded photos'), or a path to a .npy.
  config.task.options.prior = "data"
  return by_variant(config, default=photo_stream(256), smoke=photo_stream(64))
