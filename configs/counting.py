"""Experiment: counting. See configs/common.py for the variants (default, smoke, paper[-60k|-120k])."""

from configs.common import by_variant, get_base_config


def get_config(arg: str | None = None):
  config = get_base_config("counting", arg)
  config.task.options.num_counts = 1000
  # No dropout: the downsampled image and its 4 tiles would get different dropout masks, and
  # the only counts equal under any masks are all zeros (the collapse, loss = M).
  config.model.dropout = 0.0
  return by_variant(
      config,
      default={"pretrain.steps": 500,  # 5 forward images per input: about 7 min on a 2-core CPU
               "optim.lr": 1e-4},  # the seed's counting rate (its loss is a squared norm of counts)
      smoke={"task.options.num_counts": 32},
      # The seed doubled the input for counting (448 from 512) so that each tile and the
      # downsampled image are 224 px.
      paper={"pretrain.image_size": 448, "pretrain.resize_to": 512})
