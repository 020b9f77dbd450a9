"""Experiment: exemplar. See configs/common.py for the variants (default, smoke, paper[-60k|-120k])."""

from configs.common import by_variant, get_base_config


def get_config(arg: str | None = None):
  config = get_base_config("exemplar", arg)
  config.task.options.copies = 8  # views per image (Kolesnikov et al. 2019)
  config.task.options.embed_dim = 1000
  config.task.options.margin = 0.5
  config.task.options.grayscale_prob = 0.66
  config.task.options.crop_area = (0.5, 1.0)
  config.task.options.rotation = 20.0  # degrees (Dosovitskiy et al.)
  # No dropout: the views of one image would get different masks on the embedding they must
  # agree on (on real photos the triplet loss fell from 0.48 to 0.47 in 120 steps with it,
  # to 0.25 without). Kolesnikov et al.'s ResNet has none.
  config.model.dropout = 0.0
  return by_variant(
      config,
      default={"pretrain.batch_size": 32},  # x 8 views: 256 forward images a step, as rotation's
      smoke={"task.options.copies": 2, "task.options.embed_dim": 16},
      paper={"pretrain.batch_size": 64})  # Kolesnikov et al.'s 64 images x 8 views
