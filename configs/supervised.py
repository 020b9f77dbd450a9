"""Experiment: supervised. See configs/common.py for the variants (default, smoke, paper[-60k|-120k])."""

from configs.common import by_variant, get_base_config


def get_config(arg: str | None = None):
  config = get_base_config("supervised", arg)
  # sslflax's supervised baseline: AlexNet-BN trained with labels on the same images as the
  # pretext tasks. The seed's Figure 5 "supervised" was torchvision's AlexNet trained on all of
  # ImageNet (1.28M images, no BN), a stronger topline than any subset allows; the study's
  # paper table labels it so.
  # The pretraining set's classes: the default pool's 10 Fashion-MNIST classes, ImageNet's 1000.
  config.task.options.num_classes = 10
  return by_variant(config, paper={"task.options.num_classes": 1000})
