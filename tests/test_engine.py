"""The main job end to end on CPU: every experiment's smoke variant, resume, NaN guard, bad input."""

import json

import jax
import numpy as np
import pytest
from PIL import Image

from sslflax import data as data_lib
from sslflax.errors import CheckpointError, WorkdirError
from sslflax.models import get_backbone
from sslflax.train import checkpoint as ckpt_lib
from sslflax.train.loop import NonFiniteLossError
from tests.helpers import (Lines, load_config, logged_to, rerun_at_default_optimisation, run_experiment,
                           run_pretrain)

EXPERIMENTS = ("rotation", "counting", "jigsaw", "context", "colorize", "supervised", "random",
               "patch_location", "exemplar", "denoising", "multitask", "simclr", "byol", "moco", "swav",
               "deepcluster", "bigan", "cpc")
# The fast tier runs rotation; the full suite every experiment.
EVERY_EXPERIMENT = [name if name == "rotation" else pytest.param(name, marks=pytest.mark.slow)
                    for name in EXPERIMENTS]


@pytest.mark.parametrize("name", EVERY_EXPERIMENT)
def test_smoke_experiment_end_to_end_on_the_embedded_sample(name, tmp_path, request):
  """Rotation's run is the session's shared smoke run (tests/conftest.py), the others run here."""
  if name == "rotation":
    run = request.getfixturevalue("rotation_smoke")
    config, results, tmp_path = run.config, run.results, run.workdir
  else:
    config = load_config(name)
    results = run_experiment(config, tmp_path)
  on_disk = json.loads((tmp_path / "results.json").read_text())
  tap = get_backbone(config.model.name).taps[2]  # conv3 of AlexNet-BN, res4 of a ResNet (CPC)
  top1 = on_disk["linear_eval"]["sslflax_sample/fashion"][tap]
  assert 0.0 <= top1 <= 1.0 and top1 == results["linear_eval"]["sslflax_sample/fashion"][tap]
  assert top1 > 0.2  # 10 classes: even random conv features beat chance (0.1) clearly
  assert on_disk["experiment"] == config.experiment
  assert on_disk["probe_input"] == ("lightness" if name == "colorize" else "rgb")
  assert on_disk["probe"]["optimizer"] == "adam" and on_disk["probe"]["lr"] == 1e-3
  # Every result stands beside random init on the same data and probe, with its SE.
  n = on_disk["test_images"]["sslflax_sample/fashion"]
  assert n == 500  # the smoke variant probes test[:500]
  row = on_disk["comparison"]["sslflax_sample/fashion"][tap]
  assert row["se"] == pytest.approx(np.sqrt(top1 * (1 - top1) / n))
  if name == "random":
    assert on_disk["random_init"] is None and "random_top1" not in row
  else:
    assert row["random_top1"] == on_disk["random_init"]["sslflax_sample/fashion"][tap]
    assert row["difference"] == pytest.approx(top1 - row["random_top1"])
    assert row["marked"] == (abs(row["difference_in_se"]) > 2)
  if name != "random":
    assert on_disk["pretext"]["steps"] == config.pretrain.steps
    assert np.isfinite(on_disk["pretext"]["final_metrics"]["loss"])
    assert (tmp_path / "metrics.jsonl").exists() and (tmp_path / "checkpoints").exists()


@pytest.mark.slow
def test_a_single_image_file_is_an_unbounded_augmented_stream(tmp_path):
  """pretrain.dataset = one image file: every batch holds copies of it; the augmentation makes
  each view new (tests/test_augment.py checks the views are all distinct)."""
  from skimage import data as skdata
  path = tmp_path / "one.png"
  Image.fromarray(skdata.chelsea()).save(path)
  config = load_config("rotation")
  config.pretrain.dataset = str(path)
  config.pretrain.augment.enabled = True
  config.pretrain.augment.source_size = 96
  config.pretrain.augment.crop_area = (1e-3, 1.0)
  batches = data_lib.make_dataset(str(path), "train", image_size=96, batch_size=16, train=True,
                                  need_labels=False).take(2).as_numpy_iterator()
  sources = np.concatenate([b["image"] for b in batches])
  assert sources.shape == (32, 96, 96, 3)
  lines = Lines()
  results = run_experiment(config, tmp_path / "run", log_to=lines)
  assert results["pretext"]["source_images"] == 1
  assert np.isfinite(results["pretext"]["final_metrics"]["loss"])
  assert any("rotation" in line and "random init" in line for line in lines)  # the result table


def test_pretraining_a_one_image_subset(tmp_path):
  config = load_config("rotation")
  config.pretrain.dataset = "sslflax_sample/photos"
  config.pretrain.subset_size = 1
  config.pretrain.augment.enabled = True
  config.pretrain.augment.source_size = 128
  out = run_pretrain(config, tmp_path)
  assert out["source_images"] == 1 and np.isfinite(out["final_metrics"]["loss"])


def test_eval_only_reads_the_checkpoint_and_all_taps(rotation_smoke, tmp_path, monkeypatch):
  """Evaluates the session's rotation smoke run (in a copy of its workdir)."""
  tmp_path = rotation_smoke.copy_to(tmp_path / "run")
  config = load_config("rotation")
  config.eval_only = True
  config.linear_eval.taps = ("all",)
  config.linear_eval.datasets = ("sslflax_sample/fashion", "sslflax_sample/digits")
  config.linear_eval.image_size_per_dataset = (("sslflax_sample/digits", 24),)
  sizes = {}
  make_dataset = data_lib.make_dataset
  def recording_make_dataset(name, split, **kwargs):
    sizes[name] = kwargs["image_size"]
    return make_dataset(name, split, **kwargs)
  monkeypatch.setattr(data_lib, "make_dataset", recording_make_dataset)
  results = run_experiment(config, tmp_path)
  for dataset in config.linear_eval.datasets:
    assert set(results["linear_eval"][dataset]) == {f"conv{i}" for i in range(1, 6)}
  assert results["pretext"] == {}
  # The paper probes Flowers at 224 px and the others at 64: sizes can differ per dataset.
  assert sizes == {"sslflax_sample/fashion": config.linear_eval.image_size,
                   "sslflax_sample/digits": 24}


def final_params(out):
  return jax.device_get(out["state"].params)


def test_resume_after_interruption_equals_uninterrupted_run(rotation_smoke, tmp_path):
  """The uninterrupted run is the session's rotation smoke run: the same 6 steps, checkpoints
  at 3 and 6 (its log interval of 2 does not change its steps)."""
  config = load_config("rotation")
  assert (config.pretrain.steps, config.checkpoint.every_steps) == (6, 3)
  config.log_every_steps = 1
  manager = ckpt_lib.make_manager(str(rotation_smoke.workdir), 3, 3)
  reference = manager.restore(6)["params"]

  def killed_at_step_4(line, **_):
    if "step 4/" in line:
      raise KeyboardInterrupt  # as if the job were killed after step 4 (checkpoint at 3)
  with pytest.raises(KeyboardInterrupt):
    run_pretrain(config, tmp_path / "killed", log_to=killed_at_step_4)
  lines = Lines()
  resumed = run_pretrain(config, tmp_path / "killed", log_to=lines)
  assert lines[0].startswith("resumed from step 3")
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6),
               final_params(resumed), reference)


def test_corrupt_latest_checkpoint_falls_back_to_the_previous(rotation_smoke, tmp_path):
  config = load_config("rotation")
  tmp_path = rotation_smoke.copy_to(tmp_path / "run")  # saved at steps 3 and 6
  latest = tmp_path / "checkpoints" / "6"
  for f in latest.rglob("*"):
    if f.is_file():
      f.write_bytes(b"garbage")  # a truncated, corrupt write
  lines = Lines()
  out = run_pretrain(config, tmp_path, log_to=lines)
  assert "unreadable" in lines[0]  # a warning through the same logger
  assert lines[1].startswith("resumed from step 3")
  assert int(out["state"].step) == 6


class StepCounter:
  """A train step's stand-in: state is the step number, loss the given value at that step."""

  def __init__(self, losses):
    self.losses = losses

  def __call__(self, state, images, labels):
    loss = self.losses[int(state.step)]
    return type(state)(step=state.step + 1), {"loss": jax.numpy.float32(loss),
                                              "rotation/loss": jax.numpy.float32(np.nan)}


def run_fake_steps(losses, log_every, monkeypatch, tmp_path, start=0):
  import dataclasses
  from jax.sharding import Mesh
  from sslflax.train import loop

  @dataclasses.dataclass
  class State:
    step: int

  class Manager:
    should_save = staticmethod(lambda step: False)
    latest_step = staticmethod(lambda: 0)

  monkeypatch.setattr(ckpt_lib, "save", lambda *a, **k: None)
  monkeypatch.setattr(ckpt_lib, "wait_until_saved", lambda manager: None)
  batch = {"image": np.zeros((8, 4, 4, 3), np.uint8), "label": np.zeros(8, np.int32)}
  lines = Lines()
  mesh = Mesh(np.array(jax.devices()[:1]), ("data",))
  with logged_to(lines):
    state, last, images = loop.run_steps(
        State(start), StepCounter(losses), iter([batch] * len(losses)), Manager(), mesh,
        label="fake", steps=len(losses), batch_size=8, log_every=log_every, lr_field="optim.lr",
        writer=loop.MetricWriter(str(tmp_path), enabled=False))
  return lines, last, images


def test_progress_lines_report_the_window_mean_and_time_the_rate_after_compiling(
    monkeypatch, tmp_path):
  lines, last, images = run_fake_steps([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0], 3, monkeypatch,
                                       tmp_path)
  assert [line.split("  ")[1] for line in lines] == ["loss 2.0000", "loss 5.0000", "loss 7.0000"]
  assert all("img/s  ETA " in line for line in lines), lines  # the rate skips step 1's compile
  assert "rotation/loss" not in last and last["loss"] == 7.0 and images == 56
  lines, _, _ = run_fake_steps([1.0, 2.0], 1, monkeypatch, tmp_path)
  assert lines[0].endswith("loss 1.0000  first step (compiled)") and "ETA" in lines[1]


def test_a_non_finite_loss_between_progress_lines_stops_the_run(monkeypatch, tmp_path):
  with pytest.raises(NonFiniteLossError, match="loss is nan at step 2 of fake"):
    run_fake_steps([1.0, np.nan, 3.0, 4.0], 4, monkeypatch, tmp_path)


def test_nan_loss_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path):
  config = load_config("rotation")
  config.pretrain.steps = 30
  config.checkpoint.every_steps = 2
  config.log_every_steps = 1
  config.optim.lr = 1e30
  config.optim.schedule = "constant"
  with pytest.raises(NonFiniteLossError, match="lower optim.lr"):
    run_pretrain(config, tmp_path)
  manager = ckpt_lib.make_manager(str(tmp_path), 2, 3)
  assert manager.latest_step() is not None and manager.latest_step() < 30
  restored = manager.restore(manager.latest_step())
  leaves = jax.tree.leaves(restored["params"])
  assert all(np.all(np.isfinite(x)) for x in leaves)


def test_bad_inputs_fail_before_training(rotation_smoke, tmp_path):
  from sslflax import experiment
  config = load_config("rotation")
  config.task.name = "spin"
  with pytest.raises(ValueError, match="unknown task 'spin'"):
    run_experiment(config, tmp_path / "a")
  config = load_config("jigsaw")
  config.pretrain.image_size = 12
  with pytest.raises(ValueError, match="too small"):
    run_experiment(config, tmp_path / "b")
  config = load_config("rotation")
  config.pretrain.batch_size = 12  # on all 8 devices of the tests (the default mesh)
  with pytest.raises(ValueError, match="not divisible by the 8 devices"):
    experiment.run(config, str(tmp_path / "c"))
  config = load_config("rotation")
  config.eval_only = True
  with pytest.raises(CheckpointError, match="no readable checkpoint"):
    run_experiment(config, tmp_path / "d")
  finished = rotation_smoke.copy_to(tmp_path / "e")  # a finished rotation run's workdir
  with pytest.raises(WorkdirError, match="holds checkpoints of experiment 'rotation'"):
    run_experiment(load_config("counting"), finished)
  with pytest.raises(ValueError, match="unknown config variant 'huge'"):
    load_config("rotation", "huge")


# SimCLR and MoCo are not here: after one SGD step of 0.01 their 8-device weights differ from
# 1 device by up to 3.5e-4 (conv1), while jit against eager on one device already moves their
# gradient norm by 9e-4 of 124. Their sharded losses and gradients are checked in
# tests/test_joint.py; the step's discrepancy is an open question (docs/design.md).
@pytest.mark.parametrize("name", ["rotation"] + [
    pytest.param(n, marks=pytest.mark.slow)
    for n in ("jigsaw", "colorization", "multitask", "byol", "swav", "deepcluster", "bigan",
              "cpc")])
def test_eight_devices_compute_the_update_of_one(name, request):
  """jit over an 8-device ('data',) mesh == one device, same global batch (BatchNorm included).

  Colorization and BYOL run in a subprocess at XLA's default optimisation level: at the
  tests' level 0 their 8-way reductions round otherwise (colorization: 2 of 36,864 weights
  off by 1.3e-5; BYOL: up to 5e-4, differently from run to run), past these tolerances."""
  if name in ("colorization", "byol") and rerun_at_default_optimisation(request):
    return
  import functools
  import optax
  from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
  from sslflax.tasks import make_task
  from sslflax.train import create_train_state, train_step
  from tests.helpers import TINY_TASK_OPTIONS, photo_crops, tiny_backbone
  task = make_task(name, tiny_backbone(dropout=0.0), **TINY_TASK_OPTIONS[name])
  # SGD: the update is linear in the gradient. (Adam's g / sqrt(v) turns float round-off in
  # near-zero gradients into full-size steps of either sign, which says nothing about sharding.)
  # Multitask sums three tasks' gradients (norm 26 at the first step): at 0.1 one SGD step
  # moves the tiny net by 2.6, and the second step's gradient then amplifies float round-off
  # (2e-4 in 0.2% of weights, the same after one step). A smaller step keeps the comparison
  # about sharding, as it is for each single task. CPC's first loss (23 at 4 directions) moves
  # it by 0.7 at 0.1, and its second step then parts the two by 1.3e-4 at the tests'
  # optimisation level (both within 1e-6 after one step): 0.03 as well. BYOL's loss is
  # steeper still: one small step, compared at 1e-4.
  joint = name in ("byol", "swav")
  tx = optax.sgd(0.01 if joint else 0.03 if name in ("multitask", "cpc") else 0.1)
  # BYOL normalises each view by its own statistics (8 images of 16), where reductions in
  # another order move 14 of 9,216 conv weights by up to 1.5e-4: compared at 2e-4.
  steps, atol = (1, 2e-4 if name == "byol" else 1e-4) if joint else (2, 1e-5)
  images = jax.numpy.asarray(photo_crops(16, 64, seed=5))
  labels = jax.numpy.arange(16) % 4
  results = []
  for devices in (jax.devices()[:1], jax.devices()):
    mesh = Mesh(np.array(devices), ("data",))
    data, rep = NamedSharding(mesh, P("data")), NamedSharding(mesh, P())
    state = jax.device_put(create_train_state(jax.random.key(0), task, tx, images, labels), rep)
    step = jax.jit(functools.partial(train_step, task, tx), in_shardings=(rep, data, data),
                   out_shardings=(rep, rep))
    for _ in range(steps):
      state, metrics = step(state, jax.device_put(images, data), jax.device_put(labels, data))
    results.append((jax.device_get(state.params), jax.device_get(state.batch_stats),
                    float(metrics["loss"]), jax.device_get(state.memory)))
  (p1, s1, l1, m1), (p8, s8, l8, m8) = results
  np.testing.assert_allclose(l1, l8, rtol=1e-4)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-3, atol=atol), p1, p8)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-3, atol=atol), s1, s8)
  # SwAV's queue holds raw forward embeddings of 16 px local-size crops through BN over 16
  # images, where reductions in another order move 4 of 1,024 values by up to 3.3e-4.
  memory_atol = 1e-3 if name == "swav" else atol
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-3, atol=memory_atol), m1, m8)


# One experiment per way the pretraining reads its data (sslflax/train/loop.py::pretrain):
# images only, images with labels, colour images with a prior measured on them and a lightness
# probe, and a clustering pool. The other experiments read their data as rotation does, and
# each of them runs end to end on the embedded sample above, which is itself a TFDS dataset.
# (Narrowed from all 16 experiments, which cost 3.5 of the full suite's 29 minutes.)
DATA_PATHS = ("rotation", "supervised", "colorize", "deepcluster")


@pytest.mark.slow
@pytest.mark.parametrize("name", DATA_PATHS)
def test_smoke_experiment_on_mock_standard_datasets(name, tmp_path):
  """The paper's dataset names wired end to end (imagenette -> cifar10, svhn) on mock data,
  for each way of reading the pretraining data (DATA_PATHS)."""
  from unittest import mock
  import tensorflow_datasets as tfds
  config = load_config(name)
  config.pretrain.dataset = "imagenette"
  config.linear_eval.datasets = ("cifar10", "svhn_cropped")
  config.linear_eval.train_subset = None
  config.pretrain.subset_size = None  # a mock split holds 32 images (deepcluster's smoke: 256)
  if name == "supervised":
    config.task.options.num_classes = 10
  with tfds.testing.mock_data(num_examples=32, data_dir=str(tmp_path / "tfds")), \
       mock.patch.object(tfds.core.DatasetBuilder, "is_prepared", return_value=True):
    results = run_experiment(config, tmp_path / "run")
  assert set(results["linear_eval"]) == {"cifar10", "svhn_cropped"}
  assert all(0 <= v["conv3"] <= 1 for v in results["linear_eval"].values())
