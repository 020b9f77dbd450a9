"""Experiment: colorization. See configs/common.py for the variants (default, smoke, paper[-60k|-120k])."""

from configs.common import get_base_config


def get_config(arg: str | None = None):
  config = get_base_config("colorization", arg)
  config.task.options.rebalance_lambda = 0.5
  # The rebalancing prior: measured on the pretraining data ('data', cached beside it, as Zhang
  # et al. measured ImageNet's), 'shipped' (the embedded photos'), or a path to a .npy.
  config.task.options.prior = "data"
  if not config.variant.startswith("paper"):
    # Colour needs a colour source and the pool is grayscale: the 6 embedded photos, as an
    # augmented stream of new views at every step (crops down to 1e-3 of a photo's area).
    config.pretrain.dataset = "sslflax_sample/photos"
    config.pretrain.augment.enabled = True
    config.pretrain.augment.source_size = 256 if config.variant == "default" else 64
    config.pretrain.augment.crop_area = (1e-3, 1.0)
  return config
