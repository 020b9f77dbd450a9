"""Experiment: DeepCluster. See configs/common.py for the variants (default, smoke, paper[-60k|-120k])."""

from configs.common import by_variant, get_base_config


def get_config(arg: str | None = None):
  config = get_base_config("deepcluster", arg)
  # The paper's 1.28M images in 10,000 clusters is 128 images a cluster: 150 for the 20k pool.
  config.task.options.num_clusters = 150
  config.task.options.pca_dim = 256
  config.task.options.kmeans_iterations = 20
  config.task.options.crop_area = (0.08, 1.0)
  # From one image (an augmented stream): the pool is this many views of it, drawn once,
  # as Asano et al. (2020) cut a dataset of crops from the one image; the default set's size.
  config.task.options.stream_pool = 20_000
  # The paper: SGD, momentum 0.9 (not Nesterov), lr 0.05, weight decay 1e-5, constant rate;
  # its top layer, re-initialised at each clustering, by SGD without momentum (optimizer_tl).
  config.optim.name = "sgd"
  config.optim.no_momentum = ("head",)
  config.optim.lr = 0.05
  config.optim.weight_decay = 1e-5
  config.optim.schedule = "constant"
  subset, batch = config.pretrain.get_ref("subset_size"), config.pretrain.get_ref("batch_size")
  return by_variant(
      config,
      default={"pretrain.batch_size": 128,
               "task.options.recluster_steps": 150},  # ~ an epoch of the 20k pool at batch 128
      smoke={"task.options.num_clusters": 8, "task.options.pca_dim": 16,
             "task.options.recluster_steps": 3,
             "pretrain.subset_size": 256},  # the pool is clustered whole: keep the smoke quick
      paper={"task.options.num_clusters": subset // 128,  # 234 for 30K
             "task.options.recluster_steps": subset // batch})  # an epoch
