"""Experiment: jigsaw. See configs/common.py for the variants (default, smoke, paper[-60k|-120k])."""

from configs.common import by_variant, get_base_config


def get_config(arg: str | None = None):
  config = get_base_config("jigsaw", arg)
  config.task.options.num_permutations = 1000
  return by_variant(
      config,
      smoke={"task.options.num_permutations": 24, "task.options.tile_features": 32,
             "task.options.hidden": 64},
      paper={"pretrain.image_size": 225,  # 3x3 cells of 75 px, 64-px tiles, as the paper
             "pretrain.resize_to": 257})  # the seed's 8/7 ratio (256 for 224)
