"""Shared defaults for every experiment; each configs/<experiment>.py changes only what differs.

Variants (the part after ':' in --config=configs/rotation.py:VARIANT):
  (none)  the embedded sample on a CPU, minutes: a half-width AlexNet-BN at 64 px pretrained
          on the 20,000-image pool, probed at every layer beside random init.
  smoke   seconds: a tiny network, a few steps and probes on 500 test images, to check an
          install and for the tests.
  paper   the seed paper's protocol on GPUs: AlexNet-BN at 224 on an ImageNet
          subset (paper = 30K, paper-60k, paper-120k), linear evaluation on
          CIFAR-10, SVHN and Oxford Flowers 102.
"""

from __future__ import annotations

import ml_collections

# The seed paper (Macar & Liu, Columbia): its Adam learning rates per pretext task at batch 256.
PAPER_LR = {"rotation": 3e-3, "counting": 1e-4, "jigsaw": 1e-3, "context": 3e-4,
            "colorization": 3e-4, "supervised": 4e-3, "random": 0.0}
# The seed's ReduceLROnPlateau(factor=0.75) patience per task (its pretrain.py).
PAPER_PATIENCE = {"rotation": 2, "counting": 3, "jigsaw": 3, "context": 2, "colorization": 3,
                  "supervised": 3, "random": 3}
# Tasks the seed did not run take the rate and patience of its nearest task (not tuned).
PAPER_NEAREST = {"patch_location": "jigsaw", "exemplar": "rotation", "denoising": "context",
                 "multitask": "jigsaw"}
PAPER_LR.update({task: PAPER_LR[near] for task, near in PAPER_NEAREST.items()})
PAPER_PATIENCE.update({task: PAPER_PATIENCE[near] for task, near in PAPER_NEAREST.items()})
PAPER_SUBSETS = {"paper": 30_000, "paper-30k": 30_000, "paper-60k": 60_000, "paper-120k": 120_000}
VARIANTS = ("default", "smoke") + tuple(PAPER_SUBSETS)
FAMILIES = ("default", "smoke", "paper")  # what a config's settings differ by


def variant_family(variant: str) -> str:
  """The family of a variant: 'default', 'smoke' or 'paper' (paper, paper-30k, -60k, -120k:
  the same protocol on subsets of three sizes)."""
  if variant not in VARIANTS:
    raise ValueError(f"unknown config variant {variant!r}; choose one of {VARIANTS}.")
  return "paper" if variant in PAPER_SUBSETS else variant


def by_variant(config: ml_collections.ConfigDict, **settings: dict) -> ml_collections.ConfigDict:
  """Set the fields its variant's family names, e.g. by_variant(config, smoke={
  "pretrain.batch_size": 16}, paper={...}): dotted paths to values (a FieldReference follows
  its sources). The only place a config reads config.variant."""
  unknown = sorted(set(settings) - set(FAMILIES))
  if unknown:
    raise ValueError(f"by_variant: unknown families {unknown}; choose from {FAMILIES}.")
  for path, value in settings.get(variant_family(config.variant), {}).items():
    *parents, leaf = path.split(".")
    node = config
    for parent in parents:
      node = node[parent]
    node[leaf] = value
  return config


def share_of_steps(config, numerator: int, denominator: int) -> ml_collections.FieldReference:
  """numerator / denominator of pretrain.steps, rounded down. It follows the steps (a
  --config.pretrain.steps override moves it too) until it is set itself."""
  return config.pretrain.get_ref("steps") * numerator // denominator


def batch_scaled_lr(config, rate: float, rule: str) -> ml_collections.FieldReference:
  """A learning rate that follows pretrain.batch_size: rate x batch / 256 ('linear', the
  papers' rule at batch 256) or rate x sqrt(batch) ('sqrt', SimCLR's appendix B.1)."""
  rate_ref = ml_collections.FieldReference(rate, field_type=float)
  batch = config.pretrain.get_ref("batch_size")
  if rule == "linear":
    return rate_ref * batch / 256
  if rule == "sqrt":
    return rate_ref * batch ** 0.5
  raise ValueError(f"unknown learning-rate rule {rule!r}; choose 'linear' or 'sqrt'.")


def photo_stream(source_size: int) -> dict:
  """The default's colour source: the pool is grayscale, so colorization (and multitask,
  which includes it) learns from the 6 embedded photos as an augmented stream of new views at
  every step (crops down to 1e-3 of a photo's area), handed over at `source_size`."""
  return {"pretrain.dataset": "sslflax_sample/photos", "pretrain.augment.enabled": True,
          "pretrain.augment.source_size": source_size, "pretrain.augment.crop_area": (1e-3, 1.0)}


def get_base_config(experiment: str, variant: str | None) -> ml_collections.ConfigDict:
  variant = variant or "default"
  variant_family(variant)  # an unknown variant fails here
  c = ml_collections.ConfigDict()
  c.experiment = experiment
  c.variant = variant
  c.seed = 0
  c.eval_only = False  # True: skip pretraining, evaluate the checkpoint in the workdir

  c.task = ml_collections.ConfigDict()
  c.task.name = experiment  # 'random' has no pretext task
  c.task.options = ml_collections.ConfigDict()

  c.model = ml_collections.ConfigDict()
  c.model.name = "alexnet_bn"
  c.model.widths = (48, 128, 192, 192, 128)  # half the paper's widths: minutes on a CPU
  c.model.fc_width = 1024
  c.model.pool_size = 6
  c.model.dropout = 0.5
  # model.name 'resnet18' or 'resnet50' (taps res2..res5) reads these two instead of the above.
  c.model.resnet_width = 64  # res2's width (torchvision's 64)
  c.model.zero_init_residual = False  # ResNet: each block's last BN gamma starts at 0
  c.model.cifar_stem = False  # True: a 3x3 stride-1 stem without max pool, for 32-64 px input
  c.model.resnet_norm = "batch"  # or 'layer': layer norm over each map (CPC v2)
  # 'bfloat16': mixed precision (bf16 compute; float32 parameters, BatchNorm statistics,
  # heads and losses), for GPUs and TPUs; on a CPU float32 is faster.
  c.model.compute_dtype = "float32"
  c.model.patch_size = 8  # 'vit_ti', 'vit_s': 64 px -> 8 x 8 (paper: 16, 224 px -> 14 x 14)

  c.pretrain = ml_collections.ConfigDict()
  c.pretrain.dataset = "sslflax_sample/fashion_pool"  # 20,000 real images, none in a probe split
  c.pretrain.split = "train"
  c.pretrain.subset_size = ml_collections.FieldReference(None, field_type=int)
  c.pretrain.image_size = 64
  c.pretrain.batch_size = 64  # global, over all devices and hosts
  c.pretrain.steps = 600
  c.pretrain.data_dir = ml_collections.FieldReference(None, field_type=str)
  # Host-side crops: shorter side to resize_to (None: image_size), a random image_size crop,
  # and a horizontal flip with probability 1/2 when flip is set.
  c.pretrain.resize_to = ml_collections.FieldReference(None, field_type=int)
  c.pretrain.flip = False
  # Augmented stream (sslflax.transforms.augment, Asano et al. 2020): the host hands
  # source_size images and every step draws new image_size views of them on the device.
  c.pretrain.augment = ml_collections.ConfigDict()
  c.pretrain.augment.enabled = False
  c.pretrain.augment.source_size = 64
  c.pretrain.augment.crop_area = (0.2, 1.0)  # fraction of the source's area (down to 1e-4)
  c.pretrain.augment.aspect = (3 / 4, 4 / 3)
  c.pretrain.augment.rotation = 35.0  # degrees
  c.pretrain.augment.fill = "crop"
  c.pretrain.augment.flip = 0.5
  c.pretrain.augment.color_prob = 0.5
  c.pretrain.augment.brightness = 0.4
  c.pretrain.augment.contrast = 0.4
  c.pretrain.augment.saturation = 0.4
  c.pretrain.augment.hue = 36.0

  c.optim = ml_collections.ConfigDict()
  c.optim.name = "adam"
  c.optim.lr = 1e-3
  c.optim.schedule = "cosine"
  c.optim.warmup_steps = 20
  c.optim.final_lr = 0.0  # cosine: the rate it ends at
  c.optim.lars_kernels_only = True  # lars: decay and trust ratio on kernels only (SimCLR's)
  c.optim.decay_epochs = (10, 20)
  c.optim.decay_factor = 0.1
  c.optim.plateau_factor = 0.75  # schedule 'plateau': x this after plateau_patience + 1
  c.optim.plateau_patience = 3   # epochs without improvement of the epoch's mean loss
  c.optim.momentum = 0.9
  c.optim.adam_b1 = 0.9  # adam, adamw: beta1 (BiGAN's 0.5, DCGAN's)
  c.optim.nesterov = False  # sgd: plain momentum, as MoCo's and DeepCluster's code
  c.optim.no_momentum = ()  # sgd: top-level parameters trained without momentum
  c.optim.weight_decay = 0.0

  c.checkpoint = ml_collections.ConfigDict()
  c.checkpoint.every_steps = 100
  c.checkpoint.keep = 3

  c.log_every_steps = 20
  # JAX's persistent compilation cache: a folder, or 'off'. None: $SSLFLAX_COMPILATION_CACHE,
  # else ~/.cache/sslflax/jax (sslflax/compilation_cache.py).
  c.compilation_cache = ml_collections.FieldReference(None, field_type=str)

  c.linear_eval = ml_collections.ConfigDict()
  c.linear_eval.datasets = ("sslflax_sample/fashion",)
  c.linear_eval.train_split = "train"
  c.linear_eval.test_split = "test"
  c.linear_eval.image_size = 64  # as pretraining; at 32 px rotation gained half as much
  c.linear_eval.image_size_per_dataset = ()  # ((dataset, size), ...) where it differs
  c.linear_eval.squash = False  # True: resize the whole image to image_size^2 (no crop)
  c.linear_eval.splits_per_dataset = ()  # ((dataset, train split, test split), ...) where they differ
  c.linear_eval.taps = ("all",)  # conv1..conv5 in one pass; ('conv3',) for the seed's tap
  c.linear_eval.epochs = 30
  c.linear_eval.batch_size = 256
  c.linear_eval.lr = 1e-3
  c.linear_eval.decay_per_epoch = 0.98
  c.linear_eval.weight_decay = 5e-4
  c.linear_eval.train_subset = ml_collections.FieldReference(None, field_type=int)
  # A class-balanced, seeded share of the probe train split's labels (e.g. 0.01, 0.1; None or
  # 1.0: all of them), for probes and fine-tunes: the label-fraction protocol of SimCLR, SwAV
  # and CPC v2. Each class keeps its share; the images drawn are the same for every model.
  c.linear_eval.label_fraction = ml_collections.FieldReference(None, field_type=float)
  # The probe's optimiser: 'adam' (lr, weight_decay above) or 'sgd' (momentum 0.9: the
  # per-layer protocol of Kolesnikov et al., VISSL, RotNet); probe_lr and probe_weight_decay
  # replace lr and weight_decay for the probe only (None: the same as the fine-tune's).
  c.linear_eval.probe_optimizer = "adam"
  c.linear_eval.probe_lr = ml_collections.FieldReference(None, field_type=float)
  c.linear_eval.probe_weight_decay = ml_collections.FieldReference(None, field_type=float)
  c.linear_eval.input = "task"  # 'task': the task's own probe input (colorization: lightness); 'rgb'
  c.linear_eval.compare_random = True  # probe random init beside the result (same data, probe, seed)
  # 'probe': linear probes on frozen taps. 'finetune': conv1..conv{freeze_layer} frozen (BN in
  # inference mode), the layers above and a new linear classifier trained for finetune_epochs
  # with the probe's lr, decay_per_epoch, batch_size and weight_decay (the seed's protocol).
  c.linear_eval.mode = "probe"
  c.linear_eval.freeze_layer = 3
  c.linear_eval.finetune_epochs = 10  # 3,000 Fashion images: 120 steps, ~20 s a model on 2 CPU cores
  # One protocol for every method, the seed's: its fine-tuned fc6 and fc7 take dropout 0.5,
  # whatever model.dropout the pretraining used (0 for the view-based tasks).
  c.linear_eval.finetune_dropout = 0.5

  subset = PAPER_SUBSETS.get(variant)
  paper = {
      "model.widths": (96, 256, 384, 384, 256), "model.fc_width": 4096, "model.patch_size": 16,
      "pretrain.dataset": "imagenet2012", "pretrain.subset_size": subset,
      "pretrain.image_size": 224, "pretrain.batch_size": 256,
      "pretrain.steps": 50 * subset // 256 if subset else None,  # 50 epochs
      "checkpoint.every_steps": 1000, "log_every_steps": 100,
      "linear_eval.datasets": ("cifar10", "svhn_cropped", "oxford_flowers102"),
      # the seed resized CIFAR/SVHN to 64 and kept Flowers at 224
      "linear_eval.image_size": 64, "linear_eval.image_size_per_dataset": (("oxford_flowers102", 224),),
      "linear_eval.squash": True,  # the seed's Resize((224, 224)): Flowers squashed, not cropped
      # The seed trained Flowers on 6,552 images and tested on 818 (an 80/10 split of all
      # 8,189). TFDS's train (1,020) is 10 per class; its larger split is test (6,149). The
      # nearest with TFDS's splits: train on train+test (7,169), test on validation (1,020).
      "linear_eval.splits_per_dataset": (("oxford_flowers102", "train+test", "validation"),),
      "linear_eval.weight_decay": 0.0,  # the seed's had none
      # The seed's finetune.py (its Figure 5): conv1..conv3 frozen, conv4, conv5, fc6, fc7 and
      # a new classifier trained, Adam 1e-4 x0.98 per epoch, 50 epochs, batch 512.
      "linear_eval.mode": "finetune", "linear_eval.freeze_layer": 3,
      "linear_eval.finetune_epochs": 50,
      "linear_eval.taps": ("conv3",),  # with --config.linear_eval.mode=probe: the paper's text
      "linear_eval.epochs": 50, "linear_eval.batch_size": 512, "linear_eval.lr": 1e-4,
      "linear_eval.decay_per_epoch": 0.98,
      # --config.linear_eval.mode=probe: the per-layer protocol the surveys compare with
      "linear_eval.probe_optimizer": "sgd", "linear_eval.probe_lr": 0.01,
      "linear_eval.probe_weight_decay": 5e-4,
  }
  if experiment in PAPER_LR:  # the joint-embedding methods' configs set their own papers'
    paper.update({
        # The seed's ReduceLROnPlateau x0.75 per epoch; it watched the held-out pretext loss,
        # sslflax the training loss averaged over each epoch (no pretext validation pass).
        "optim.lr": PAPER_LR[experiment], "optim.schedule": "plateau",
        "optim.plateau_factor": 0.75, "optim.plateau_patience": PAPER_PATIENCE[experiment],
        # The seed's pretraining augmentation: Resize(int(size * 4 / 3.5)), RandomCrop(size),
        # RandomHorizontalFlip (256 -> 224).
        "pretrain.resize_to": int(224 * 4 / 3.5), "pretrain.flip": True})
  # The view-based methods (SimCLR, MoCo, BYOL, SwAV, DeepCluster) crop and flip their own
  # views, from the shorter side at 224 (a random 224 square of it): a second host crop
  # would keep their "0.08 to 1 of the area" inside 0.77 of the image's centre.
  smoke = {
      "model.widths": (16, 32, 32, 32, 32), "model.fc_width": 64, "model.pool_size": 2,
      "pretrain.batch_size": 16, "pretrain.steps": 6, "optim.warmup_steps": 2,
      "checkpoint.every_steps": 3, "log_every_steps": 2, "linear_eval.epochs": 2,
      "linear_eval.train_subset": 200,
      "linear_eval.test_split": "test[:500]",  # a slice: seconds, not a measurement
      "linear_eval.image_size": 32,
  }
  return by_variant(c, smoke=smoke, paper=paper)

