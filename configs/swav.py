"""Experiment: SwAV. See configs/common.py for the variants (default, smoke, paper[-60k|-120k])."""

from configs.common import batch_scaled_lr, by_variant, get_base_config, share_of_steps


def get_config(arg: str | None = None):
  config = get_base_config("swav", arg)
  config.task.options.num_prototypes = 300  # the paper's 3,000 for 1.2M images; a 20k pool
  config.task.options.temperature = 0.1
  config.task.options.epsilon = 0.05
  config.task.options.sinkhorn_iterations = 3
  # 2 x 64 px global + 2 x 32 px local views: with 4 local views the default run took 11.4
  # minutes on 2 cores (the same probes), over the 10-minute budget of a default run.
  config.task.options.num_local = 2
  config.task.options.local_size = 32
  config.task.options.global_area = (0.14, 1.0)
  config.task.options.local_area = (0.05, 0.14)
  config.task.options.hidden = 1024
  config.task.options.out = 128
  # Batches under 256 need a queue for Sinkhorn's equipartition (the paper, section 4.3).
  config.task.options.queue_size = 1024  # 16 batches of 64
  config.task.options.queue_start_step = share_of_steps(config, 1, 6)  # 100 of 600
  config.task.options.freeze_prototypes_steps = share_of_steps(config, 1, 12)  # 50 of 600
  config.model.dropout = 0.0
  # LARS, warm-up and cosine, weight decay 1e-6 (the paper: lr 0.6 at batch 256).
  config.optim.name = "lars"
  config.optim.lr = batch_scaled_lr(config, 0.6, "linear")
  config.optim.weight_decay = 1e-6
  config.optim.warmup_steps = share_of_steps(config, 1, 10)
  return by_variant(
      config,
      default={"pretrain.batch_size": 64},  # x 4 crops (2 x 64 px, 2 x 32 px)
      smoke={"task.options.num_prototypes": 20, "task.options.num_local": 2,
             "task.options.local_size": 16, "task.options.hidden": 32, "task.options.out": 16,
             "task.options.queue_size": 32, "task.options.queue_start_step": 2,
             "task.options.freeze_prototypes_steps": 1},
      paper={"task.options.num_prototypes": 3000, "task.options.num_local": 6,
             "task.options.local_size": 96, "task.options.hidden": 2048,
             "task.options.queue_size": 3840,
             "task.options.queue_start_step": share_of_steps(config, 15, 50),  # epoch 15 of 50
             "task.options.freeze_prototypes_steps": share_of_steps(config, 1, 50),  # an epoch
             # SwAV's code: a 23 px blur kernel, sigma 0.1-2 px, on the 96 px crops too; SGD
             # in LARC (clip=False) with weight decay on every parameter; its batch-256
             # script: no warm-up, cosine from 0.6 to 0.0006.
             "task.options.blur_kernel": 23, "optim.lars_kernels_only": False,
             "optim.warmup_steps": 0,
             "optim.final_lr": batch_scaled_lr(config, 0.0006, "linear")})
