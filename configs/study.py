"""The seed paper's study: experiments x pretraining-set sizes x seeds, each cell evaluated
on every downstream dataset. Run it with

  python -m sslflax.study --config=configs/study.py[:VARIANT] --workdir=DIR

Variants:
  (none)  the embedded sample on a CPU: 3 class-balanced subsets (300/600/1200 crops) of
          sslflax_sample/photos, probed on Fashion-MNIST and handwritten digits. A half-width
          AlexNet-BN keeps all 19 cells (7 experiments, random once) well under an hour.
  smoke   seconds per cell, for tests and for checking an install.
  paper   the seed paper on GPUs: ImageNet 30K/60K/120K, 50 epochs each, probed on
          CIFAR-10, SVHN and Oxford Flowers 102, with the paper's numbers beside ours.

Each cell is one experiment run (configs/<experiment>.py with the matching variant),
changed only by the fields set here: seed, pretrain.subset_size, pretrain.steps (from
pretrain_epochs), the downstream datasets and taps, then `overrides` on top.
"""

from __future__ import annotations

import pathlib

import ml_collections

EXPERIMENTS = ("random", "supervised", "rotation", "counting", "jigsaw", "context", "colorize")


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  variant = arg or "default"
  c = ml_collections.ConfigDict()
  c.variant = variant
  c.config_dir = str(pathlib.Path(__file__).resolve().parent)  # where configs/<experiment>.py live
  c.experiment_variant = variant  # the variant of each experiment config
  c.experiments = EXPERIMENTS
  c.seeds = (0,)
  c.pretrain_epochs = 8.0  # steps = ceil(epochs * size / batch), like the paper's fixed epochs
  c.downstream = ("sslflax_sample/fashion", "sslflax_sample/digits")
  c.taps = ("conv3",)  # ('all',) adds the per-layer probe curve conv1..conv5
  c.show_paper = False  # print the seed paper's published numbers beside ours
  c.workers = 1  # >1 runs cells in that many parallel processes
  c.gpus_per_worker = 0  # >0: each worker process sees only its own GPUs
  c.overrides = ml_collections.ConfigDict()  # merged into every cell's experiment config

  if variant == "default":
    c.subset_sizes = (300, 600, 1200)
    c.overrides.model = dict(widths=(48, 128, 192, 192, 128), fc_width=1024)
    c.overrides.linear_eval = dict(epochs=20)
  elif variant == "smoke":
    c.subset_sizes = (32, 64)
    c.experiments = ("random", "supervised", "rotation")
    c.pretrain_epochs = 2.0
  elif variant == "paper":
    c.subset_sizes = (30_000, 60_000, 120_000)
    c.pretrain_epochs = 50.0
    c.downstream = ("cifar10", "svhn_cropped", "oxford_flowers102")
    c.show_paper = True
  else:
    raise ValueError(f"unknown study variant {variant!r}; choose default, smoke or paper.")
  return c
