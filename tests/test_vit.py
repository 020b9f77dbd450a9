"""ViT-Ti and ViT-S: the published sizes, probes at every block, fine-tuning above a frozen
block, and the tasks on a ViT."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from sslflax.errors import ConfigError
from sslflax.evaluate.finetune import is_frozen
from sslflax.evaluate.linear import resolve_taps, tap_features
from sslflax.models import get_backbone, make_backbone, tap_names
from sslflax.models.vit import ViT
from sslflax.tasks import make_task
from sslflax.train import create_train_state, train_step
from tests.helpers import TINY_TASK_OPTIONS, fast_for, photo_crops


def count(tree) -> int:
  return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(tree))


@pytest.mark.parametrize("name, published", [("vit_ti", 5_717_416), ("vit_s", 22_050_664)])
def test_parameter_counts_equal_the_published_without_the_head(name, published):
  """timm's vit_tiny_patch16_224 / vit_small_patch16_224 (DeiT-Ti / DeiT-S): 5,717,416 and
  22,050,664 parameters, of which the 1000-way head holds 193,000 / 385,000."""
  net = make_backbone(name, patch_size=16)
  shapes = jax.eval_shape(net.init, jax.random.key(0), jnp.zeros((1, 224, 224, 3), jnp.uint8))
  width = {"vit_ti": 192, "vit_s": 384}[name]
  assert count(shapes["params"]) == published - (width * 1000 + 1000)
  assert "batch_stats" not in shapes


def tiny_vit(**overrides) -> ViT:
  return ViT(**{"width": 32, "depth": 3, "heads": 2, "mlp_width": 64, "patch_size": 8,
                **overrides})


def test_any_input_size_gives_block_maps_and_probes_of_about_9k():
  net = make_backbone("vit_ti", patch_size=8)
  images = jnp.zeros((2, 64, 64, 3), jnp.uint8)
  variables = jax.eval_shape(net.init, jax.random.key(0), images)
  taps = resolve_taps(("all",), tap_names(net))
  assert taps == tuple(f"block{i}" for i in range(1, 13))
  out = jax.eval_shape(lambda v: tap_features(net, v, images, taps), variables)
  assert {out[t].shape for t in taps} == {(2, 7 * 7 * 192)}  # 9,408 features a block
  _, maps = jax.eval_shape(lambda v: net.apply(v, jnp.zeros((1, 96, 96, 3), jnp.uint8)),
                           variables)  # the same parameters at another grid (12 x 12)
  assert maps["block5"].shape == (1, 12, 12, 192) and maps["pool5"].shape == (1, 192)


def test_fine_tuning_above_block_2_keeps_the_blocks_below_bit_identical():
  from sslflax.evaluate.finetune import finetune_task
  family = get_backbone("vit_ti")
  assert family.freeze_label(2) == "block1..block2 frozen"
  net = tiny_vit(frozen_layers=2)
  task = finetune_task(net, num_classes=4)
  images, labels = jnp.asarray(photo_crops(8, 32, seed=3)), jnp.arange(8) % 4
  le = type("LE", (), {"lr": 1e-2, "decay_per_epoch": 1.0, "weight_decay": 0.0})
  from sslflax.evaluate.finetune import finetune_optimizer
  tx = finetune_optimizer(le, 1, 2, family)
  state = create_train_state(jax.random.key(0), task, tx, images, labels)
  new, _ = jax.jit(functools.partial(train_step, task, tx))(state, images, labels)
  for name in state.params["backbone"]:
    same = jax.tree.all(jax.tree.map(np.array_equal, new.params["backbone"][name],
                                     state.params["backbone"][name]))
    assert same == is_frozen(("backbone", name), 2, family), name
  assert {n for n in state.params["backbone"] if is_frozen(("backbone", n), 2, family)} == {
      "embedding", "cls", "posemb", "block1", "block2"}


@pytest.mark.parametrize("name", fast_for(sorted(TINY_TASK_OPTIONS), fast=("rotation", "simclr")))
def test_every_task_trains_a_step_on_a_vit(name):
  """At 32 px, patch_location's 7 px tiles hold no 8 px patch: it says so in one line, and
  trains at patch 4."""
  images, labels = jnp.asarray(photo_crops(8, 32, seed=1)), jnp.arange(8) % 4
  tx = optax.adam(1e-3)
  if name == "patch_location":
    with pytest.raises(ConfigError, match="model.patch_size=8 is larger than this ViT's 7x7"):
      task = make_task(name, tiny_vit(), **TINY_TASK_OPTIONS[name])
      create_train_state(jax.random.key(0), task, tx, images, labels)
  task = make_task(name, tiny_vit(patch_size=4 if name == "patch_location" else 8),
                   **TINY_TASK_OPTIONS[name])
  state = create_train_state(jax.random.key(0), task, tx, images, labels)
  new, metrics = jax.jit(functools.partial(train_step, task, tx))(state, images, labels)
  assert np.isfinite(float(metrics["loss"]))
  moved = jax.tree.map(lambda a, b: float(np.abs(np.asarray(a) - np.asarray(b)).max()),
                       new.params, state.params)
  assert max(jax.tree.leaves(moved)) > 0
