"""Experiment: CPC v2. See configs/common.py for the variants (default, smoke, paper[-60k|-120k])."""

from configs.common import by_variant, get_base_config


def get_config(arg: str | None = None):
  config = get_base_config("cpc", arg)
  config.task.options.steps_ahead = 3  # rows predicted below each context (grid 7 x 7)
  config.task.options.context_blocks = 3
  config.task.options.color_drop = 0.5
  config.task.options.directions = 4  # v2: predict from all four sides (1: CPC v1's top-down)
  # Hénaff et al.'s encoder: a ResNet with layer norm, each patch mean-pooled. A CIFAR stem
  # for the 16 px patches of a 64 px image; width 8 (an eighth of torchvision's) for 2 cores:
  # 39 images (1,900 patches) a second, where width 16 ran 11.
  config.model.name = "resnet18"
  config.model.resnet_norm = "layer"
  config.model.cifar_stem = True
  config.model.resnet_width = 8
  config.model.dropout = 0.0
  config.optim.name = "adam"
  config.optim.lr = 2e-4  # the paper's Adam rate
  return by_variant(
      config,
      # x 49 patches: 1,568 encoder inputs a step, 1.05 s on 2 cores; 300 steps (5 minutes)
      # keep the whole run, with the ResNet probes, within 10 minutes.
      default={"pretrain.batch_size": 32, "pretrain.steps": 300},
      smoke={"model.resnet_width": 4, "task.options.context_blocks": 1},
      # The paper's grid at 224 px: 56 px patches at stride 28 (Hénaff: 64 of a 256 crop).
      paper={"model.resnet_width": 64, "model.cifar_stem": False})
