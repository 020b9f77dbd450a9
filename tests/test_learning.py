"""Each pretext task learns: a few dozen Adam steps on real photos drive its loss clearly down."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from sslflax.tasks import make_task
from sslflax.train import create_train_state, train_step
from tests.helpers import TINY_TASK_OPTIONS, photo_crops, tiny_backbone

# Jigsaw must recognise tiles by content before any puzzle is solvable: it starts slower.
STEPS = {"jigsaw": 80, "moco": 80}
# As their configs: exemplar's views must agree on one embedding, so no dropout.
BACKBONE = {name: {"dropout": 0.0} for name in ("exemplar", "simclr", "byol", "moco", "swav")}
# Loss of the last 5 steps over the first 3 must fall below this ratio.
# Measured ratios (tests/test_learning.py -s): rotation 0.40, supervised 0.23, counting 0.43,
# jigsaw ~0.6, context 0.37, colorization 0.68, patch_location 0.64, denoising 0.50,
# multitask 0.72 (the sum of its three), simclr 0.66, byol 0.64, moco (below) 0.82, swav 0.72,
# deepcluster 0.42 (its clusters here are the 4 photos: the test gives labels),
# exemplar 0.87 (a triplet loss falls slowly while
# the views already match: test_classic_tasks.py checks that).
MAX_RATIO = {"rotation": 0.6, "supervised": 0.5, "counting": 0.75, "jigsaw": 0.8,
             "context": 0.6, "colorization": 0.8, "patch_location": 0.8, "denoising": 0.7,
             "multitask": 0.85, "exemplar": 0.95, "simclr": 0.85, "byol": 0.8, "moco": 0.92,
             "swav": 0.85, "deepcluster": 0.6}
# MoCo's queue starts as random unit vectors, easy negatives: as the keys of real images
# replace them its loss rises (1.24 over 40 steps with a queue of 4 batches). A queue of one
# batch holds real keys from the second step on, so its losses count from there.
OPTIONS = {"moco": {"queue_size": 16}}
FIRST = {"moco": 1}


@pytest.mark.parametrize("name", sorted(TINY_TASK_OPTIONS))
def test_task_learns_on_real_images(name):
  images = jnp.asarray(photo_crops(16, 64, seed=1))
  labels = jnp.arange(16) % 4  # the photo each crop came from: a real (4-class) label
  task = make_task(name, tiny_backbone(**BACKBONE.get(name, {})),
                   **{**TINY_TASK_OPTIONS[name], **OPTIONS.get(name, {})})
  tx = optax.adam(1e-3)
  state = create_train_state(jax.random.key(0), task, tx, images, labels)
  step = jax.jit(functools.partial(train_step, task, tx))
  losses = []
  for _ in range(STEPS.get(name, 40)):
    state, metrics = step(state, images, labels)
    losses.append(float(metrics["loss"]))
  assert np.all(np.isfinite(losses))
  first = losses[FIRST.get(name, 0):][:3]
  ratio = np.mean(losses[-5:]) / np.mean(first)
  print(f"{name}: loss {np.mean(first):.4f} -> {np.mean(losses[-5:]):.4f} (ratio {ratio:.2f})")
  assert ratio < MAX_RATIO[name], f"{name} did not learn: {losses}"
  if name == "counting":
    # A collapsed phi (all counts 0) also lowers the loss, to exactly the margin M = 10;
    # learning means going below it and telling its own image from another.
    assert np.mean(losses[-5:]) < 8.0, f"counting collapsed to the margin: {losses}"
    assert float(metrics["accuracy"]) > 0.7
