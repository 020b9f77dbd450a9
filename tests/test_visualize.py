"""sslflax.visualize: attention maps and neighbours against numpy, the PNGs of a finished run."""

import numpy as np
import pytest
import jax.numpy as jnp
from PIL import Image

from sslflax import visualize


def test_attention_is_the_channel_mean_of_squared_activations_scaled_per_map():
  rng = np.random.default_rng(0)
  a = rng.normal(size=(2, 3, 4, 5)).astype(np.float32)
  maps = visualize.attention_maps({"conv1": jnp.asarray(a)}, ("conv1",))["conv1"]
  for i in range(2):
    expect = (np.abs(a[i]) ** 2).mean(-1)
    expect = (expect - expect.min()) / (expect.max() - expect.min())
    np.testing.assert_allclose(maps[i], expect, rtol=1e-5, atol=1e-6)


def test_neighbours_match_a_brute_force_loop():
  rng = np.random.default_rng(1)
  q, g = rng.normal(size=(4, 6)), rng.normal(size=(30, 6))
  q /= np.linalg.norm(q, axis=1, keepdims=True)
  g /= np.linalg.norm(g, axis=1, keepdims=True)
  for row, found in zip(q, visualize.nearest(q, g, 3)):
    scores = [float(row @ x) for x in g]
    assert list(found) == sorted(range(30), key=lambda j: -scores[j])[:3]


def test_the_first_layer_kernel_is_found_by_the_backbone_contract():
  from sslflax.models import get_backbone
  contract = get_backbone("alexnet_bn")
  params = {"conv1": {"kernel": np.ones((11, 11, 3, 8))}, "conv2": {"kernel": np.ones((5, 5, 8, 4))}}
  assert visualize.first_layer_filters(params, contract.layer_of).shape == (8, 11, 11, 3)
  assert visualize.first_layer_filters({"conv2": params["conv2"]}, contract.layer_of) is None


def test_a_finished_run_gets_its_pictures_beside_random_init(rotation_smoke):
  """Three PNGs of the right size, values in range, and trained conv1 filters that differ
  from random init's."""
  out = visualize.write_for_run(rotation_smoke.config, str(rotation_smoke.workdir))
  assert out["models"] == ["rotation", "random"]
  shown, n, taps = out["shown"], visualize.QUERIES, ("conv1", "conv2", "conv3", "conv4", "conv5")
  trained, random = shown["filters"]["rotation"], shown["filters"]["random"]
  assert trained.shape == random.shape and trained.shape[-1] == 3
  assert trained.min() >= 0 and trained.max() <= 1
  assert not np.allclose(trained, random, atol=0.05)
  # ... and the difference is training's: the run's own initial filters are not the trained ones.
  from sslflax.build import build_run
  from sslflax.models import backbone_of
  from sslflax.train.loop import data_mesh, init_state
  from sslflax.train.optim import make_optimizer
  run = build_run(rotation_smoke.config)
  start = init_state(run.task, make_optimizer(run.optimizer, 6, 1), data_mesh(),
                     run.data.image_size, run.data.seed)
  initial = visualize.first_layer_filters(start.params["backbone"],
                                          backbone_of(run.backbone).layer_of)
  moved = np.abs(visualize.scale_each(initial) - trained)
  assert moved.max() > 1e-3 and np.mean(moved > 1e-4) > 0.5  # most weights moved
  for name in out["models"]:
    for tap in taps:
      maps = shown["attention"][name][tap]
      assert maps.shape[0] == n and maps.min() >= 0 and maps.max() <= 1
    idx = shown["neighbours"][name]
    assert idx.shape == (n, visualize.NEIGHBOURS) and idx.min() >= 0
  size = rotation_smoke.config.linear_eval.image_size
  attention = np.asarray(Image.open(out["paths"]["attention"]))
  assert attention.shape == (2 * n * (size + 1) + 1, (1 + len(taps)) * (size + 1) + 1, 3)
  neighbours = np.asarray(Image.open(out["paths"]["neighbours"]))
  assert neighbours.shape == (2 * n * (size + 1) + 1, (1 + visualize.NEIGHBOURS) * (size + 1) + 1, 3)
  filters = np.asarray(Image.open(out["paths"]["conv1_filters"]))
  assert filters.ndim == 3 and filters.std() > 10  # not a blank image
  assert (rotation_smoke.workdir / "pictures" / "README.txt").read_text().startswith("models")


@pytest.mark.slow  # a supervised run and a subprocess: 45 s
def test_the_command_pictures_a_run_beside_random_init_and_a_supervised_run(
    rotation_smoke, tmp_path):
  """`python -m sslflax.visualize --config=... --workdir=... --supervised_workdir=...`, the
  user's door: a third model in every picture, the supervised run's own conv1 filters."""
  import os
  import subprocess
  import sys
  from tests import helpers
  supervised_dir = tmp_path / "supervised"
  helpers.run_experiment(helpers.load_config("supervised"), supervised_dir)
  workdir = rotation_smoke.copy_to(tmp_path / "rotation")
  result = subprocess.run(
      [sys.executable, "-m", "sslflax.visualize", "--config=configs/rotation.py:smoke",
       f"--workdir={workdir}", f"--supervised_workdir={supervised_dir}"],
      cwd=helpers.ROOT, env=dict(os.environ, XLA_FLAGS=helpers.xla_flags(1)),
      capture_output=True, text=True, timeout=600)
  assert result.returncode == 0, result.stderr[-3000:]
  assert "Traceback" not in result.stderr
  pictures = workdir / "pictures"
  assert (pictures / "README.txt").read_text().split("\n")[0].endswith(
      "rotation, random, supervised")
  n, size = visualize.QUERIES, rotation_smoke.config.linear_eval.image_size
  attention = np.asarray(Image.open(pictures / "attention.png"))
  assert attention.shape[0] == 3 * n * (size + 1) + 1
  filters = np.asarray(Image.open(pictures / "conv1_filters.png")).astype(np.float32)
  third = filters.shape[1] // 3  # side by side: rotation | random | supervised
  assert not np.allclose(filters[:, :third], filters[:, -third:], atol=2)
