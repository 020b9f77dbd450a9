"""Experiment: SimCLR. See configs/common.py for the variants (default, smoke, paper[-60k|-120k])."""

from configs.common import batch_scaled_lr, by_variant, get_base_config, share_of_steps


def get_config(arg: str | None = None):
  config = get_base_config("simclr", arg)
  config.task.options.temperature = 0.5  # the paper's CIFAR setting (0.1 on ImageNet)
  config.task.options.hidden = 1024
  config.task.options.out = 128
  config.task.options.crop_area = (0.08, 1.0)
  config.task.options.color_strength = 0.5  # s: the paper's CIFAR setting (1.0 on ImageNet)
  config.task.options.blur_prob = 0.0  # the paper's CIFAR setting: no blur (0.5 on ImageNet)
  config.task.options.output_batch_norm = False  # its code: True (the paper variants); see design.md
  config.model.dropout = 0.0
  config.model.zero_init_residual = True  # with a ResNet (model.name=resnet18): as its code
  # LARS, linear warm-up and cosine decay (the paper); lr 0.075 sqrt(batch), its rule for
  # small batches and short runs (appendix B.1), weight decay 1e-6.
  config.optim.name = "lars"
  config.optim.lr = batch_scaled_lr(config, 0.075, "sqrt")
  config.optim.weight_decay = 1e-6
  config.optim.warmup_steps = share_of_steps(config, 1, 10)  # 10%, of any steps
  return by_variant(
      config,
      default={"pretrain.batch_size": 128},  # x 2 views: 256 forward images a step, as rotation's
      smoke={"pretrain.batch_size": 16, "task.options.hidden": 32, "task.options.out": 16},
      paper={"task.options.temperature": 0.1, "task.options.color_strength": 1.0,
             "task.options.blur_prob": 0.5, "task.options.hidden": 4096,
             "task.options.output_batch_norm": True,  # its code: the projection ends in BN
             "optim.lr": batch_scaled_lr(config, 0.3, "linear")})
