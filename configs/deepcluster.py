"""Experiment: DeepCluster. See configs/common.py for the variants (default, smoke, paper[-60k|-120k])."""

from configs.common import get_base_config


def get_config(arg: str | None = None):
  config = get_base_config("deepcluster", arg)
  # The paper's 1.28M images in 10,000 clusters is 128 images a cluster: 150 for the 20k pool.
  config.task.options.num_clusters = 150
  config.task.options.pca_dim = 256
  config.task.options.kmeans_iterations = 20
  config.task.options.crop_area = (0.08, 1.0)
  if config.variant == "default":
    config.pretrain.batch_size = 128
    config.task.options.recluster_steps = 150  # ~ an epoch of the 20k pool at batch 128
  # The paper: SGD, momentum 0.9 (not Nesterov), lr 0.05, weight decay 1e-5, constant rate;
  # its top layer, re-initialised at each clustering, by SGD without momentum (optimizer_tl).
  config.optim.name = "sgd"
  config.optim.no_momentum = ("head",)
  config.optim.lr = 0.05
  config.optim.weight_decay = 1e-5
  config.optim.schedule = "constant"
  if config.variant == "smoke":
    config.task.options.num_clusters = 8
    config.task.options.pca_dim = 16
    config.task.options.recluster_steps = 3
    config.pretrain.subset_size = 256  # the pool is clustered whole: keep the smoke quick
  elif config.variant.startswith("paper"):
    config.task.options.num_clusters = config.pretrain.subset_size // 128  # 234 for 30K
    config.task.options.recluster_steps = config.pretrain.subset_size // config.pretrain.batch_size
  return config
