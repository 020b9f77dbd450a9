"""Experiment: MoCo v2. See configs/common.py for the variants (default, smoke, paper[-60k|-120k])."""

from configs.common import batch_scaled_lr, by_variant, get_base_config


def get_config(arg: str | None = None):
  config = get_base_config("moco", arg)
  config.task.options.temperature = 0.2
  config.task.options.momentum = 0.99  # 0.999 in the paper's 200 epochs; 600 steps need less
  config.task.options.queue_size = 4096  # 32 batches (65,536 in the paper)
  config.task.options.hidden = 1024
  config.task.options.out = 128
  config.task.options.crop_area = (0.2, 1.0)
  config.model.dropout = 0.0
  # MoCo v2: SGD momentum 0.9, lr 0.03 x batch / 256, weight decay 1e-4, cosine.
  config.optim.name = "sgd"
  config.optim.lr = batch_scaled_lr(config, 0.03, "linear")
  config.optim.weight_decay = 1e-4
  subset, batch = config.pretrain.get_ref("subset_size"), config.pretrain.get_ref("batch_size")
  return by_variant(
      config,
      default={"pretrain.batch_size": 128},  # x 2 views (one through the momentum encoder)
      smoke={"pretrain.batch_size": 16, "task.options.queue_size": 64,
             "task.options.hidden": 32, "task.options.out": 16},
      # The paper's 65,536 keys are 5% of ImageNet, but 2.2 epochs of the 30K subset: a
      # quarter of the subset at most (a multiple of the batch): 7,424 keys for 30K.
      paper={"task.options.momentum": 0.999,
             "task.options.queue_size": subset // 4 // batch * batch,
             "task.options.hidden": 2048})
