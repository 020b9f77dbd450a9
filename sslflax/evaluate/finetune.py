"""Fine-tuning above a frozen layer: the seed's downstream protocol (its finetune.py).

conv1..conv{L} are frozen, with their BatchNorm in inference mode; the layers above them
(conv{L+1}..conv5 and the task's fc layers, if it had any) and a new linear classifier on
their output (fc7, or pooled conv5 for tasks without fc layers) are trained on a labelled
set with Adam and an exponential decay per epoch, the fc layers with dropout
linear_eval.finetune_dropout (0.5, the seed's) for every method. L = 0 fine-tunes everything.

It is a training run like pretraining: data-parallel over the mesh through the same
`train_step`, checkpointed, and a killed fine-tune resumes to the same result. Each
fine-tune lives in WORKDIR/finetune/<model>/<dataset>/freeze<L>-<key>/, where the key
hashes the starting backbone and the settings: a changed backbone or setting starts a
new fine-tune and never resumes (or reuses) a stale one.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import traverse_util
from jax.sharding import NamedSharding, PartitionSpec as P

from sslflax import data as data_lib
from sslflax.build import Evaluation
from sslflax.evaluate.linear import padded_batches, probe_splits, train_subset_size
from sslflax.models.registry import Backbone, backbone_of
from sslflax.tasks.base import ClassifierNet, Task, classification_loss
from sslflax.train import checkpoint as ckpt_lib
from sslflax.train.loop import MetricWriter, jit_train_step, run_steps
from sslflax.train.state import TrainState, create_train_state
from sslflax.log import log

def row_name(freeze_layer: int) -> str:
  """The results row of a fine-tune: 'freeze3' = conv1..conv3 frozen."""
  return f"freeze{freeze_layer}"


def num_fc_layers(variables: dict[str, Any]) -> int:
  """How many fc layers (fc6, fc7) a backbone's variables hold: 2 for rotation, counting and
  supervised; 0 for jigsaw, context and colorization, whose heads sit on conv5."""
  return sum(1 for name in variables["params"] if re.fullmatch(r"fc\d+", name))


def is_frozen(path: tuple[str, ...], freeze_layer: int, backbone: Backbone) -> bool:
  """Whether a parameter (its path in the task's params) belongs to layers 1..freeze_layer of
  `backbone` (its contract's layer_of)."""
  if len(path) < 2 or path[0] != "backbone":
    return False
  layer = backbone.layer_of(path[1])
  return layer is not None and layer <= freeze_layer


def finetune_task(backbone: nn.Module, num_classes: int,
                  input_fn: Callable[[jax.Array], jax.Array] | None = None) -> Task:
  """Labelled images (through `input_fn`, e.g. colorization's lightness) -> class logits."""
  def make_batch(rng, images, labels):
    del rng
    return (input_fn(images) if input_fn is not None else images), labels
  # The backbone (fc layers included, if the task had them) and a new linear classifier.
  return Task("finetune", make_batch, ClassifierNet(backbone, num_classes), classification_loss,
              needs_labels=True)


def finetune_network(backbone: nn.Module, variables: dict[str, Any], le) -> nn.Module:
  """The backbone as fine-tuned: its fc layers (as many as `variables` hold), conv1..conv{L}
  frozen, dropout linear_eval.finetune_dropout whatever the pretraining used."""
  return backbone.clone(num_fc=num_fc_layers(variables), frozen_layers=le.freeze_layer,
                        dropout=le.finetune_dropout)


def finetune_optimizer(le, steps_per_epoch: int, freeze_layer: int,
                       backbone: Backbone) -> optax.GradientTransformation:
  """Adam at linear_eval.lr, x linear_eval.decay_per_epoch after every epoch (PyTorch's
  ExponentialLR stepped per epoch), L2 linear_eval.weight_decay, on the trained parameters
  only: the frozen ones get no update at all (not even weight decay)."""
  schedule = optax.exponential_decay(le.lr, max(steps_per_epoch, 1), le.decay_per_epoch,
                                     staircase=True)
  trained = optax.adam(schedule)
  if le.weight_decay:
    trained = optax.chain(optax.add_decayed_weights(le.weight_decay), trained)
  labels = lambda params: traverse_util.path_aware_map(
      lambda path, _: "frozen" if is_frozen(path, freeze_layer, backbone) else "trained", params)
  return optax.multi_transform({"trained": trained, "frozen": optax.set_to_zero()}, labels)


def initial_state(task: Task, tx: optax.GradientTransformation, variables: dict[str, Any],
                  example_images: jax.Array, seed: int, mesh) -> TrainState:
  """The pretrained (or random) backbone with a new classifier (seeded), replicated over the mesh."""
  state = create_train_state(jax.random.key(seed), task, tx, example_images,
                             jnp.zeros((example_images.shape[0],), jnp.int32))
  params = dict(state.params, backbone=variables["params"])
  stats = variables["batch_stats"]  # a backbone without BatchNorm (a ViT) has none
  state = state.replace(params=params, batch_stats={"backbone": stats} if stats else {},
                        opt_state=tx.init(params))
  # A copy: the jitted step donates its state, and `variables` must outlive this fine-tune.
  return jax.device_put(jax.tree.map(jnp.array, state), NamedSharding(mesh, P()))


def fingerprint(variables: dict[str, Any], settings: dict[str, Any]) -> str:
  """A short hash of a backbone's variables and the fine-tune's settings."""
  h = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode())
  for path, leaf in sorted(traverse_util.flatten_dict(jax.device_get(variables)).items()):
    h.update("/".join(path).encode())
    h.update(np.ascontiguousarray(leaf).tobytes())
  return h.hexdigest()[:10]


def top1_accuracy(task: Task, variables: dict[str, Any], ds, mesh) -> tuple[float, int]:
  """Top-1 of the fine-tuned network (inference mode) on a finite dataset, sharded over the mesh."""
  def predict(v, images):
    inputs, _ = task.make_batch(None, images, None)
    return jnp.argmax(task.model.apply(v, inputs, train=False), -1)

  fn = jax.jit(predict, out_shardings=NamedSharding(mesh, P()))
  correct = total = 0
  for images, n, labels in padded_batches(ds, mesh):
    correct += int((jax.device_get(fn(variables, images))[:n] == labels).sum())
    total += n
  return correct / max(total, 1), total


def safe_name(name: str) -> str:
  return re.sub(r"[^\w.-]", "_", name)


def finetune(backbone: nn.Module, variables: dict[str, Any], dataset: str, le: Evaluation, mesh,
             workdir: str, model_name: str, *,
             input_fn: Callable[[jax.Array], jax.Array] | None = None
             ) -> tuple[float, int, TrainState]:
  """Fine-tune `variables` above conv{linear_eval.freeze_layer} on `dataset`'s probe train
  split: (top-1 on its test split, test images, final state). Resumes from its checkpoint."""
  layer = le.freeze_layer
  builder = data_lib.get_builder(dataset, le.data_dir)
  classes = data_lib.num_classes(builder)
  image_size = dict(le.image_size_per_dataset).get(dataset, le.image_size)
  train_split, test_split = probe_splits(le, dataset)
  subset = train_subset_size(le, dataset, builder)
  train_images = subset or data_lib.pipeline.split_size(builder, train_split)
  steps_per_epoch = math.ceil(train_images / le.batch_size)
  steps = le.finetune_epochs * steps_per_epoch

  net = finetune_network(backbone, variables, le)
  task = finetune_task(net, classes, input_fn)
  tx = finetune_optimizer(le, steps_per_epoch, layer, backbone_of(backbone))
  settings = {k: getattr(le, k) for k in ("freeze_layer", "finetune_epochs", "batch_size", "lr",
                                 "decay_per_epoch", "weight_decay", "train_subset",
                                 "finetune_dropout", "squash")}
  if subset != le.train_subset:
    settings["label_fraction"] = le.label_fraction  # a new key only where it changes the data
  settings.update(dataset=dataset, split=train_split, image_size=image_size, seed=le.seed,
                  input=None if input_fn is None else input_fn.__name__)
  key = fingerprint(variables, settings)
  run_dir = os.path.join(workdir, "finetune", safe_name(model_name), safe_name(dataset),
                         f"{row_name(layer)}-{key}")
  os.makedirs(run_dir, exist_ok=True)
  with open(os.path.join(run_dir, "settings.json"), "w") as f:
    json.dump(settings, f, indent=2)
  manager = ckpt_lib.make_manager(run_dir, le.checkpoint_every, le.checkpoint_keep)
  example = jnp.zeros((max(2, mesh.size), image_size, image_size, 3), jnp.uint8)
  state = initial_state(task, tx, variables, example, le.seed, mesh)
  restored = ckpt_lib.restore_latest(manager, state)
  if restored is not None:
    state = restored
    log.info(f"[finetune] {model_name} on {dataset}: resumed from step {int(state.step)} "
             f"({run_dir})")
  common = dict(image_size=image_size, seed=le.seed, data_dir=le.data_dir,
                squash=le.squash)
  train_ds = data_lib.make_dataset(
      dataset, train_split, batch_size=le.batch_size // jax.process_count(), train=True,
      subset_size=subset, host_id=jax.process_index(), host_count=jax.process_count(),
      skip_batches=int(state.step), **common)
  label = f"finetune {model_name} {dataset} freeze{layer}"
  state, _, _ = run_steps(
      state, jit_train_step(task, tx, mesh), train_ds.as_numpy_iterator(), manager, mesh,
      label=label, steps=steps, batch_size=le.batch_size, log_every=le.log_every,
      lr_field=f"linear_eval.lr (now {le.lr})",
      writer=MetricWriter(run_dir, enabled=jax.process_index() == 0))
  test_ds = data_lib.make_dataset(dataset, test_split, batch_size=le.batch_size, train=False,
                                  **common)
  top1, n = top1_accuracy(task, {"params": state.params, "batch_stats": state.batch_stats},
                          test_ds, mesh)
  return top1, n, state


def finetune_eval(backbone: nn.Module, models: dict[str, Any], le: Evaluation, mesh,
                  workdir: str, *, input_fn=None
                  ) -> tuple[dict[str, dict[str, dict[str, float]]], dict[str, int]]:
  """Fine-tune each model of `models` ({name: backbone variables}) above
  conv{linear_eval.freeze_layer} on every linear_eval dataset, with the same data, settings
  and seed: ({name: {dataset: {'freeze<L>': top-1}}}, {dataset: test images}), the shape
  of linear.linear_eval's result."""
  results: dict[str, dict[str, dict[str, float]]] = {name: {} for name in models}
  test_images = {}
  for dataset in le.datasets:
    for name, variables in models.items():
      top1, n, _ = finetune(backbone, variables, dataset, le, mesh, workdir, name,
                            input_fn=input_fn)
      results[name][dataset] = {row_name(le.freeze_layer): top1}
      test_images[dataset] = n
      frozen = backbone_of(backbone).freeze_label(le.freeze_layer)
      log.info(f"[finetune] {name}: {dataset} ({frozen}): top-1 {top1:.4f} on {n} test images")
  return results, test_images
