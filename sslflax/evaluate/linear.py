"""Linear evaluation: a frozen backbone (BatchNorm in inference mode) and a linear softmax
classifier trained on the features of one tap (conv3 by default) of a labelled dataset."""

from __future__ import annotations

import functools
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import NamedSharding, PartitionSpec as P

from sslflax import data as data_lib
from sslflax.build import PROBE_OPTIMIZERS, Evaluation
from sslflax.console import format_eta
from sslflax.errors import ConfigError
from sslflax.models import adaptive_max_pool, backbone_of
from sslflax.log import log

def probe_splits(le, dataset: str) -> tuple[str, str]:
  """(train split, test split) of a probe dataset: linear_eval.splits_per_dataset where it
  names the dataset, else linear_eval.train_split and test_split."""
  for name, train, test in le.splits_per_dataset:
    if name == dataset:
      return train, test
  return le.train_split, le.test_split


def train_subset_size(le, dataset: str, builder) -> int | None:
  """How many images of `dataset`'s probe train split the probes and fine-tunes train on, drawn
  class-balanced and seeded: linear_eval.train_subset, or label_fraction of the split; None
  for the whole split (label_fraction None or 1.0)."""
  if le.label_fraction is None or le.label_fraction == 1.0:
    return le.train_subset
  train_split = probe_splits(le, dataset)[0]
  return round(le.label_fraction * data_lib.pipeline.split_size(builder, train_split))


def resolve_taps(taps, names: tuple[str, ...]) -> tuple[str, ...]:
  """linear_eval.taps checked against the backbone's tap `names`; ('all',) is all of them."""
  taps = tuple(taps)
  if not taps:
    raise ConfigError(f"linear_eval.taps is empty, so nothing would be probed; name at least "
                      f"one of {list(names)}, or ('all',).")
  if taps == ("all",):
    return tuple(names)
  unknown = [t for t in taps if t not in names]
  if unknown:
    raise ConfigError(f"unknown linear_eval.taps {unknown}; this backbone's are {list(names)} "
                      f"(or ('all',)).")
  return taps


def tap_features(backbone, variables, images: jax.Array, taps: tuple[str, ...],
                 input_fn=None) -> dict[str, jax.Array]:
  """Frozen forward pass (on input_fn(images) when given): each tap max-pooled to its probe
  size and flattened."""
  if input_fn is not None:
    images = input_fn(images)
  _, out = backbone.apply(variables, images, train=False)
  pool = backbone_of(backbone).probe_pool
  return {t: adaptive_max_pool(out[t], (pool(t, out[t].shape[-1]),) * 2
                               ).reshape(images.shape[0], -1).astype(jnp.float32)
          for t in taps}


def padded_batches(ds, mesh):
  """(images sharded over the mesh, real count, labels) of each batch of a finite dataset;
  every batch padded with zeros to one shape (the first's, rounded up to the mesh), so one
  compiled function serves them all."""
  data_sharding, batch_size = NamedSharding(mesh, P("data")), None
  for batch in ds.as_numpy_iterator():
    n = len(batch["label"])
    batch_size = batch_size or -(-n // mesh.size) * mesh.size
    images = np.zeros((batch_size,) + batch["image"].shape[1:], np.uint8)
    images[:n] = batch["image"]
    yield jax.device_put(images, data_sharding), n, batch["label"]


def extract(backbone, variables, ds, taps, mesh, input_fn=None
            ) -> tuple[dict[str, np.ndarray], np.ndarray]:
  """Features and labels of a whole (finite) dataset, sharded over the mesh."""
  fn = jax.jit(functools.partial(tap_features, backbone, taps=taps, input_fn=input_fn),
               out_shardings=NamedSharding(mesh, P()))
  feats, labels = {t: [] for t in taps}, []
  for images, n, batch_labels in padded_batches(ds, mesh):
    out = jax.device_get(fn(variables, images))
    for t in taps:
      feats[t].append(out[t][:n])
    labels.append(batch_labels)
  return {t: np.concatenate(v) for t, v in feats.items()}, np.concatenate(labels)


def probe_protocol(le) -> dict[str, Any]:
  """The probe's optimiser settings: linear_eval.probe_lr and probe_weight_decay fall back
  to linear_eval.lr and weight_decay (which the fine-tune uses too)."""
  return {"optimizer": le.probe_optimizer,
          "lr": le.lr if le.probe_lr is None else le.probe_lr,
          "weight_decay": le.weight_decay if le.probe_weight_decay is None
          else le.probe_weight_decay,
          "decay_per_epoch": le.decay_per_epoch, "epochs": le.epochs}


def describe_probe(protocol: dict[str, Any]) -> str:
  """'Adam lr 0.001, wd 0.0005' or 'SGD momentum 0.9 lr 0.01, wd 0.0005'."""
  name = "Adam" if protocol["optimizer"] == "adam" else "SGD momentum 0.9"
  return f"{name} lr {protocol['lr']:g}, wd {protocol['weight_decay']:g}"


def probe_optimizer(optimizer: str, lr: float, weight_decay: float, decay_per_epoch: float,
                    steps_per_epoch: int) -> optax.GradientTransformation:
  """The probe's optax transform, lr decayed per epoch. 'adam': ours. 'sgd': momentum 0.9
  with L2 weight decay in the gradient, the per-layer protocol of Kolesnikov et al., VISSL
  and RotNet (PyTorch's SGD: v = 0.9 v + g + wd w; w -= lr v)."""
  schedule = optax.exponential_decay(lr, steps_per_epoch, decay_per_epoch)
  if optimizer not in PROBE_OPTIMIZERS:
    raise ConfigError(f"linear_eval.probe_optimizer={optimizer!r}: choose one of "
                      f"{list(PROBE_OPTIMIZERS)}.")
  step = optax.adam(schedule) if optimizer == "adam" else optax.sgd(schedule, momentum=0.9)
  return optax.chain(optax.add_decayed_weights(weight_decay), step)


def train_linear_classifier(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray,
                            y_test: np.ndarray, num_classes: int, *, epochs: int, batch_size: int,
                            lr: float, decay_per_epoch: float, weight_decay: float, seed: int,
                            optimizer: str = "adam") -> float:
  """Softmax regression on standardised features (`probe_optimizer`); returns test top-1."""
  mean, std = x_train.mean(0), x_train.std(0) + 1e-6  # a parameter-free BatchNorm before the probe
  x_train = jnp.asarray((x_train - mean) / std)
  x_test = jnp.asarray((x_test - mean) / std)
  y_train = jnp.asarray(y_train)
  steps_per_epoch = max(1, -(-len(y_train) // batch_size))
  tx = probe_optimizer(optimizer, lr, weight_decay, decay_per_epoch, steps_per_epoch)
  params = {"w": jnp.zeros((x_train.shape[1], num_classes)), "b": jnp.zeros((num_classes,))}
  opt_state = tx.init(params)

  @jax.jit
  def step(params, opt_state, idx):
    def loss_fn(p):
      logits = x_train[idx] @ p["w"] + p["b"]
      return optax.softmax_cross_entropy_with_integer_labels(logits, y_train[idx]).mean()
    grads = jax.grad(loss_fn)(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state

  rng = np.random.default_rng(seed)
  for _ in range(epochs):
    order = rng.permutation(len(y_train))
    for i in range(steps_per_epoch):
      idx = order[i * batch_size:(i + 1) * batch_size]
      if len(idx) < batch_size:  # keep one shape: fill the last batch from the start
        idx = np.concatenate([idx, order[: batch_size - len(idx)]])
      params, opt_state = step(params, opt_state, jnp.asarray(idx))
  predictions = jnp.argmax(x_test @ params["w"] + params["b"], -1)
  return float(jnp.mean(predictions == jnp.asarray(y_test)))


def linear_eval(backbone, models: dict[str, Any], le: Evaluation, mesh, *,
                input_fn=None) -> tuple[dict[str, dict[str, dict[str, float]]], dict[str, int]]:
  """Probe each model of `models` ({name: backbone variables}) on every dataset of `le`
  (build.evaluation): ({name: {dataset: {tap: top-1 on its test split}}}, {dataset: test
  images}).

  The models share each dataset's images, the probe's settings, its input transform
  (`input_fn`, e.g. colorization's lightness) and its seed, so their numbers compare
  (random init beside a pretrained backbone).
  """
  protocol = probe_protocol(le)
  taps = resolve_taps(le.taps, backbone_of(backbone).taps)
  results: dict[str, dict[str, dict[str, float]]] = {name: {} for name in models}
  test_images = {}
  total = len(le.datasets) * len(models) * len(taps)
  done, start = 0, time.time()
  for dataset in le.datasets:
    builder = data_lib.get_builder(dataset, le.data_dir)
    classes = data_lib.num_classes(builder)
    image_size = dict(le.image_size_per_dataset).get(dataset, le.image_size)
    common = dict(image_size=image_size, batch_size=le.batch_size, train=False,
                  seed=le.seed, data_dir=le.data_dir, squash=le.squash)
    train_split, test_split = probe_splits(le, dataset)
    subset = train_subset_size(le, dataset, builder)
    train_ds = data_lib.make_dataset(dataset, train_split, subset_size=subset, **common)
    test_ds = data_lib.make_dataset(dataset, test_split, **common)
    for name, variables in models.items():
      t0 = time.time()
      x_train, y_train = extract(backbone, variables, train_ds, taps, mesh, input_fn)
      x_test, y_test = extract(backbone, variables, test_ds, taps, mesh, input_fn)
      seconds = time.time() - t0
      log.info(f"[linear eval] {name}: features of {len(y_train)} {train_split} + "
               f"{len(y_test)} {test_split} images of {dataset} in {seconds:.0f} s "
               f"({(len(y_train) + len(y_test)) / max(seconds, 1e-9):,.0f} img/s)")
      test_images[dataset] = len(y_test)
      results[name][dataset] = {}
      for tap in taps:
        top1 = train_linear_classifier(
            x_train[tap], y_train, x_test[tap], y_test, classes, epochs=le.epochs,
            batch_size=min(le.batch_size, len(y_train)), lr=protocol["lr"],
            decay_per_epoch=le.decay_per_epoch, weight_decay=protocol["weight_decay"],
            seed=le.seed, optimizer=protocol["optimizer"])
        results[name][dataset][tap] = top1
        done += 1
        eta = (time.time() - start) / done * (total - done)
        log.info(f"[linear eval {done}/{total}] {name}: {dataset} {tap} "
                 f"({x_train[tap].shape[1]} features): top-1 {top1:.4f}  ETA {format_eta(eta)}")
  return results, test_images
