"""Experiment: patch_location. See configs/common.py for the variants (default, smoke, paper[-60k|-120k])."""

from configs.common import by_variant, get_base_config


def get_config(arg: str | None = None):
  config = get_base_config("patch_location", arg)
  # None: the paper's 96 : 48 : 7 patch, gap and jitter, scaled to the image (64 px: 15, 7, 1).
  config.task.options.patch = None
  config.task.options.gap = None
  config.task.options.jitter = None
  config.task.options.color_guard = "projection"  # a no-op on the gray pool; 'drop' for colour
  return by_variant(
      config,
      smoke={"task.options.tile_features": 32, "task.options.hidden": 64},
      # the paper's fc6 per patch and fc7 of the pair
      paper={"task.options.tile_features": 4096, "task.options.hidden": 4096})
