"""Experiment: the scattering baseline (Oyallon et al. 2017; Asano et al. 2020 compare early
layers with it). No pretraining: a fixed scattering transform (J = 2, L = 8: 81 maps per
colour channel at a quarter of the side) stands where conv1 and conv2 would, with AlexNet's
conv3..conv5 (random) above it. Probed like any layer ('scattering' tap), and fine-tuned with
the transform frozen and the layers above trained:

  python -m sslflax.main --config=configs/scattering.py --workdir=workdir/scattering
  python -m sslflax.main --config=configs/scattering.py --workdir=workdir/scattering \
      --config.linear_eval.mode=finetune --config.linear_eval.freeze_layer=1

Compare it with AlexNet-BN's conv1 and conv2 (configs/random.py and the pretrained runs; the
README's table), and its fine-tune with theirs at --config.linear_eval.freeze_layer=2.
See configs/common.py for the variants.
"""

from configs.common import get_base_config


def get_config(arg: str | None = None):
  config = get_base_config("scattering", arg)
  config.task.name = "random"  # nothing to pretrain: the transform is fixed
  config.pretrain.steps = 0
  config.model.name = "scattering"
  config.linear_eval.freeze_layer = 1  # finetune mode: the transform frozen, conv3.. trained
  return config
