"""The seed paper's study: experiments x pretraining-set sizes x seeds, each cell evaluated
on every downstream dataset. Run it with

  python -m sslflax.study --config=configs/study.py[:VARIANT] --workdir=DIR

Variants:
  (none)  the embedded sample on a CPU: every experiment pretrained on one image (the
          astronaut photo, as an augmented stream: Asano et al. 2020) and on its whole default
          set, probed at every layer on Fashion-MNIST and handwritten digits beside random
          init (32 cells: supervised needs labels, so it has no single-image cell), then
          each fine-tuned with conv1, conv1..conv3 and conv1..conv5 frozen (96 short cells).
  smoke   seconds per cell, for tests and for checking an install.
  paper   the seed paper on GPUs: ImageNet 30K/60K/120K, 50 epochs each, probed on
          CIFAR-10, SVHN and Oxford Flowers 102, probed at conv3 and fine-tuned above it (the
          seed's protocol), with the paper's numbers beside ours.

Each cell is one experiment run (configs/<experiment>.py with the matching variant),
changed only by the fields set here: seed, pretrain.subset_size (0: the whole set),
pretrain.steps (from pretrain_epochs when set), the downstream datasets and taps, the
single-image source and its augmentation, then `overrides` on top.
"""

from __future__ import annotations

import pathlib

import ml_collections

# Every experiment on AlexNet-BN, the random-init cell's backbone; cpc (a ResNet with layer
# norm) and scattering (a fixed transform) are measured beside their own baselines instead.
EXPERIMENTS = ("random", "supervised", "rotation", "counting", "jigsaw", "context", "colorize",
               "patch_location", "exemplar", "denoising", "multitask", "simclr", "byol", "moco", "swav",
               "deepcluster", "bigan")
# The single image of the default study: the astronaut photo (NASA, public domain) of the
# embedded sample, chosen before any run for its varied content (face, suit, flag, shelves).
SINGLE_IMAGE = (pathlib.Path(__file__).resolve().parents[1] / "sslflax" / "data" / "sample" /
                "photos" / "0_astronaut.jpg")


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  variant = arg or "default"
  c = ml_collections.ConfigDict()
  c.variant = variant
  c.config_dir = str(pathlib.Path(__file__).resolve().parent)  # where configs/<experiment>.py live
  c.experiment_variant = variant  # the variant of each experiment config
  c.experiments = EXPERIMENTS
  c.seeds = (0,)
  c.pretrain_epochs = 0.0  # > 0: steps = ceil(epochs * size / batch); 0: each config's steps
  c.downstream = ("sslflax_sample/fashion", "sslflax_sample/digits")
  c.taps = ("all",)  # conv1..conv5; ('conv3',) for the seed paper's single tap
  # Fine-tune every cell's checkpoint above each of these layers too (conv1..conv<L> frozen;
  # the seed's protocol is 3); () for the linear probes alone.
  c.freeze_layers = ()
  # Probe every cell's checkpoint with these shares of each downstream train split's labels
  # too (class-balanced, seeded; 1.0 is the probe cells themselves); () for every label.
  c.label_fractions = ()
  c.single_image = ""  # an image file: the source of the size-1 cells
  c.single_image_augment = ml_collections.ConfigDict()  # its config.pretrain.augment fields
  c.labelled_experiments = ("supervised",)  # labels: no single-image cell
  # Write sslflax.visualize's pictures (conv1 filters, attention maps, neighbours) into
  # every pretrained cell's workdir, beside random init (and supervised once it finished).
  c.pictures = True
  c.show_paper = False  # print the seed paper's published numbers beside ours
  c.workers = 1  # >1 runs cells in that many parallel processes
  c.gpus_per_worker = 0  # >0: each worker process sees only its own GPUs
  c.overrides = ml_collections.ConfigDict()  # merged into every cell's experiment config

  if variant == "default":
    c.subset_sizes = (1, 0)  # one image, and each experiment's whole default set
    c.single_image = str(SINGLE_IMAGE)
    c.single_image_augment = dict(enabled=True, source_size=384, crop_area=(1e-3, 1.0))
    # Half the single runs' steps: 29 cells took ~115 min before BiGAN and one-image
    # DeepCluster joined (32 now).
    c.overrides.pretrain = dict(steps=300)
    # A small freeze-layer sweep: 96 fine-tune cells of 3 epochs (87 took about 25 min).
    c.freeze_layers = (1, 3, 5)
    c.overrides.linear_eval = dict(finetune_epochs=3)
  elif variant == "smoke":
    c.subset_sizes = (32, 64)
    c.experiments = ("random", "supervised", "rotation")
    c.pretrain_epochs = 2.0
    c.taps = ("conv3",)
    c.pictures = False  # seconds per cell matter here; tests/test_visualize.py covers them
  elif variant == "paper":
    c.taps = ("conv3",)  # the seed's protocol; ('all',) adds the per-layer probes
    c.subset_sizes = (30_000, 60_000, 120_000)
    c.pretrain_epochs = 50.0
    c.downstream = ("cifar10", "svhn_cropped", "oxford_flowers102")
    c.freeze_layers = (3,)  # the seed's own protocol (its Figure 5), beside the conv3 probe
    c.show_paper = True
  else:
    raise ValueError(f"unknown study variant {variant!r}; choose default, smoke or paper.")
  return c
