"""Experiment: multitask. See configs/common.py for the variants (default, smoke, paper[-60k|-120k]).

Rotation, jigsaw and colorization on one backbone (Doersch & Zisserman 2017). Each task's
options go under its name, as its own config sets them.
"""

import ml_collections

from configs.common import by_variant, get_base_config, photo_stream


def get_config(arg: str | None = None):
  config = get_base_config("multitask", arg)
  options = config.task.options
  options.tasks = ("rotation", "jigsaw", "colorization")
  options.weights = (1.0, 1.0, 1.0)
  options.combine = "sum"  # or 'alternate': round-robin, one task per step
  options.jigsaw = ml_collections.ConfigDict({"num_permutations": 1000})
  options.colorization = ml_collections.ConfigDict({"rebalance_lambda": 0.5, "prior": "data"})
  # Colorization needs colour and the pool is gray: every task learns from the 6 embedded
  # photos as an augmented stream, as configs/colorize.py.
  return by_variant(
      config,
      default={**photo_stream(256),
               "pretrain.steps": 300},  # three tasks a step: about as long as jigsaw's 600
      smoke={**photo_stream(64),
             "task.options.jigsaw": ml_collections.ConfigDict(
                 {"num_permutations": 24, "tile_features": 32, "hidden": 64}),
             "task.options.colorization.decoder_width": 32})
