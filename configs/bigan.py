"""Experiment: BiGAN. See configs/common.py for the variants (default, smoke, paper[-60k|-120k])."""

from configs.common import by_variant, get_base_config


def get_config(arg: str | None = None):
  config = get_base_config("bigan", arg)
  config.task.options.z_dim = 200  # the paper's u-200 latent
  config.task.options.gan_size = None  # G and D at the pretraining side
  config.task.options.gan_width = 16  # G's and D's channel unit (the paper's 64): 6 min on 2 CPU cores
  # The authors' code: Adam lr 2e-4, beta1 0.5, L2 weight decay 2.5e-5, both players stepped
  # together on each batch. Constant rate (theirs decays over the second half of training).
  config.optim.name = "adam"
  config.optim.lr = 2e-4
  config.optim.adam_b1 = 0.5
  config.optim.weight_decay = 2.5e-5
  config.optim.schedule = "constant"
  config.model.dropout = 0.0  # E is the conv trunk: no fc layers to drop out of
  return by_variant(
      config,
      smoke={"task.options.z_dim": 16, "task.options.gan_width": 8},
      # The authors' ImageNet BiGAN: batch 128, G and D at 64 px with width 64; E sees the
      # paper's 224 px (their generalised BiGAN lets E see more than G draws).
      paper={"pretrain.batch_size": 128, "task.options.gan_size": 64,
             "task.options.gan_width": 64, "optim.schedule": "constant", "optim.lr": 2e-4})
