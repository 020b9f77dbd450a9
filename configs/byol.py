"""Experiment: BYOL. See configs/common.py for the variants (default, smoke, paper[-60k|-120k])."""

from configs.common import batch_scaled_lr, by_variant, get_base_config, share_of_steps


def get_config(arg: str | None = None):
  config = get_base_config("byol", arg)
  config.task.options.hidden = 1024
  config.task.options.out = 128
  config.task.options.predictor_hidden = 1024
  config.task.options.tau_base = 0.99  # 0.996 in the paper's 300-1000 epochs
  config.task.options.total_steps = share_of_steps(config, 1, 1)  # tau reaches 1 at the end
  config.task.options.crop_area = (0.08, 1.0)
  config.model.dropout = 0.0
  config.model.zero_init_residual = True  # with a ResNet (model.name=resnet18): as its code
  # LARS, warm-up and cosine (the paper): lr 0.2 x batch / 256, weight decay 1.5e-6.
  config.optim.name = "lars"
  config.optim.lr = batch_scaled_lr(config, 0.2, "linear")
  config.optim.weight_decay = 1.5e-6
  config.optim.warmup_steps = share_of_steps(config, 1, 10)
  return by_variant(
      config,
      # x 2 views. Adam 1e-3 (cosine, 20 warm-up steps), as the other defaults: on the
      # validation split it beat the paper's LARS at every layer (conv3: 0.847 against 0.837;
      # docs/results.md).
      default={"pretrain.batch_size": 128, "optim.name": "adam", "optim.lr": 1e-3,
               "optim.weight_decay": 0.0, "optim.warmup_steps": 20},
      smoke={"pretrain.batch_size": 16, "task.options.hidden": 32, "task.options.out": 16,
             "task.options.predictor_hidden": 32},
      paper={"task.options.tau_base": 0.996, "task.options.hidden": 4096,
             "task.options.out": 256, "task.options.predictor_hidden": 4096})
