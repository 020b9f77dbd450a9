"""Fine-tuning above a frozen layer (linear_eval.mode='finetune'), the seed's plateau schedule,
its pretraining crops, and the `paper` variant's settings read off the configs."""

import json
import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from flax import traverse_util
from jax.sharding import Mesh

from sslflax import experiment
from sslflax.build import build_run, optimizer_spec
from sslflax.evaluate import finetune as ft
from sslflax.models import get_backbone
from sslflax.train.loop import jit_train_step
from sslflax.train.optim import make_optimizer
from tests.helpers import Lines, load_config, logged_to, one_device, run_experiment, tiny_backbone

ALEXNET = get_backbone("alexnet_bn")


def flat(tree) -> dict[tuple[str, ...], np.ndarray]:
  return {k: np.asarray(v) for k, v in traverse_util.flatten_dict(jax.device_get(tree)).items()}


def layer_of(path: tuple[str, ...]) -> str:
  """'conv3' for ('backbone', 'bn3', 'mean'); the module name otherwise ('fc6', 'head')."""
  name = path[1] if path[0] == "backbone" else path[0]
  return "conv" + name[2:] if name.startswith("bn") and name[2:].isdigit() else name


@pytest.mark.parametrize("freeze_layer", [1, 3, pytest.param(5, marks=pytest.mark.slow)])
def test_frozen_layers_stay_bit_identical_and_the_layers_above_train(freeze_layer, real_images):
  """Three data-parallel steps over 8 devices: conv1..conv{L} (kernels, BN scale, bias and
  running statistics) are bit-identical; every layer above, fc6/fc7 and the new classifier (head) move."""
  mesh = Mesh(np.array(jax.devices()), ("data",))
  backbone = tiny_backbone()  # fc6, fc7: as rotation's
  variables = backbone.init(jax.random.key(1), jnp.zeros((2, 64, 64, 3), jnp.uint8))
  # Running statistics unlike their initial 0 / 1, so "unchanged" is not the default's.
  variables = dict(variables, batch_stats=jax.tree.map(
      lambda x: x + jax.random.uniform(jax.random.key(2), x.shape), variables["batch_stats"]))
  task = ft.finetune_task(backbone.clone(frozen_layers=freeze_layer), num_classes=4)
  le = ml_collections.ConfigDict(dict(lr=1e-3, decay_per_epoch=0.98, weight_decay=5e-4))
  tx = ft.finetune_optimizer(le, steps_per_epoch=2, freeze_layer=freeze_layer,
                             backbone=get_backbone("alexnet_bn"))
  state = ft.initial_state(task, tx, variables, jnp.zeros((8, 64, 64, 3), jnp.uint8), 0, mesh)
  before = flat({"params": state.params, "batch_stats": state.batch_stats})
  step = jit_train_step(task, tx, mesh)
  images, labels = real_images[:16], jnp.arange(16) % 4
  for _ in range(3):
    state, metrics = step(state, images, labels)
  assert np.isfinite(float(metrics["loss"]))
  after = flat({"params": state.params, "batch_stats": state.batch_stats})
  frozen = {f"conv{i}" for i in range(1, freeze_layer + 1)}
  for path, old in before.items():
    layer = layer_of(path[1:])
    if layer in frozen:
      assert np.array_equal(old, after[path]), path
    else:
      assert not np.array_equal(old, after[path]), path
  # In training mode the frozen layers' outputs are their inference-mode outputs.
  net = task.model.backbone
  v = {"params": state.params["backbone"], "batch_stats": state.batch_stats["backbone"]}
  (_, train_taps), _ = net.apply(v, images, train=True, mutable=["batch_stats"],
                                 rngs={"dropout": jax.random.key(0)})
  _, eval_taps = net.apply(v, images, train=False)
  np.testing.assert_allclose(train_taps[f"conv{freeze_layer}"], eval_taps[f"conv{freeze_layer}"],
                             rtol=1e-5, atol=1e-5)
  if freeze_layer < 5:
    above = f"conv{freeze_layer + 1}"
    assert not np.allclose(train_taps[above], eval_taps[above], atol=1e-3)


def test_frozen_parameters_are_exactly_the_frozen_layers():
  assert ft.is_frozen(("backbone", "conv3", "kernel"), 3, ALEXNET)
  assert ft.is_frozen(("backbone", "bn3", "scale"), 3, ALEXNET)
  assert not ft.is_frozen(("backbone", "conv4", "kernel"), 3, ALEXNET)
  assert not ft.is_frozen(("backbone", "bn_fc6", "scale"), 5, ALEXNET)
  assert not ft.is_frozen(("backbone", "fc6", "kernel"), 5, ALEXNET)
  assert not ft.is_frozen(("head", "kernel"), 5, ALEXNET)
  assert not ft.is_frozen(("backbone", "conv1", "kernel"), 0, ALEXNET)


def finetune_config():
  config = load_config("rotation")
  config.linear_eval.mode = "finetune"
  config.linear_eval.finetune_epochs = 2
  config.linear_eval.batch_size = 32  # 200 train images: 7 steps an epoch, 14 in all
  config.checkpoint.every_steps = 5
  config.log_every_steps = 1
  return config


def run_finetune(config, workdir, variables, log_to=None):
  from sslflax.build import backbone_from_config, evaluation
  with logged_to(log_to):
    return ft.finetune(backbone_from_config(config), variables, "sslflax_sample/fashion",
                       evaluation(config), one_device(), str(workdir), "rotation")


@pytest.mark.slow
def test_a_killed_finetune_resumes_to_the_same_result(tmp_path):
  config = finetune_config()
  variables = experiment.random_backbone(build_run(config), num_fc=2)
  top1, n, state = run_finetune(config, tmp_path / "straight", variables)
  assert int(state.step) == 14 and n == 500  # the smoke variant's test[:500]

  def killed_at_step_7(line, **_):
    if "step 7/" in line:
      raise KeyboardInterrupt  # killed after step 7; the checkpoint of step 5 is on disk
  with pytest.raises(KeyboardInterrupt):
    run_finetune(config, tmp_path / "killed", variables, log_to=killed_at_step_7)
  lines = Lines()
  top1_resumed, _, resumed = run_finetune(config, tmp_path / "killed", variables,
                                          log_to=lines)
  assert "resumed from step 5" in lines[0]
  assert top1_resumed == top1
  for path, value in flat(state.params).items():
    np.testing.assert_allclose(flat(resumed.params)[path], value, rtol=1e-5, atol=1e-6)

  # A finished fine-tune is reused as it is; another backbone starts a new one beside it.
  again = Lines()
  assert run_finetune(config, tmp_path / "killed", variables, log_to=again)[0] == top1
  assert "resumed from step 14" in again[0] and not any("step 1/" in l for l in again)
  other = jax.tree.map(lambda x: x * 1.01, variables)
  run_finetune(config, tmp_path / "killed", other)
  runs = os.listdir(tmp_path / "killed" / "finetune" / "rotation" / "sslflax_sample_fashion")
  assert len(runs) == 2 and all(r.startswith("freeze3-") for r in runs)


@pytest.mark.slow
def test_finetune_mode_end_to_end_beside_random_init_and_the_probes(rotation_smoke, tmp_path):
  """Probe, then fine-tune, in one workdir on one checkpoint: two results files. The probe
  run is the session's rotation smoke run (a copy of its workdir)."""
  tmp_path = rotation_smoke.copy_to(tmp_path / "run")
  config = load_config("rotation")
  config.linear_eval.mode = "finetune"
  config.linear_eval.freeze_layer = 2
  lines = Lines()
  results = run_experiment(config, tmp_path, log_to=lines)
  on_disk = json.loads((tmp_path / "results-finetune-freeze2.json").read_text())
  assert on_disk["mode"] == "finetune" and on_disk["freeze_layer"] == 2
  row = on_disk["comparison"]["sslflax_sample/fashion"]["freeze2"]
  assert row["top1"] == results["linear_eval"]["sslflax_sample/fashion"]["freeze2"] > 0.1
  assert "random_top1" in row and row["marked"] == (abs(row["difference_in_se"]) > 2)
  assert json.loads((tmp_path / "results.json").read_text())["mode"] == "probe"
  assert any(line.startswith("fine-tune (conv1..conv2 frozen) top-1") for line in lines)
  # The random baseline has rotation's architecture: fc6 and fc7 under the classifier.
  assert os.listdir(tmp_path / "finetune" / "random" / "sslflax_sample_fashion")


@pytest.mark.slow
def test_a_label_fraction_probes_and_fine_tunes_on_that_share_of_each_class(rotation_smoke,
                                                                              tmp_path):
  """linear_eval.label_fraction=0.1 of Fashion's 3,000 train images: the probes and the
  fine-tune train on 300 of them, 30 per class, and write their own results files beside the
  every-label ones (the session's rotation smoke run, evaluated again)."""
  from sslflax.data import get_builder
  from sslflax.data.pipeline import _ids_and_labels, balanced_subset_indices
  from sslflax.evaluate.linear import train_subset_size
  tmp_path = rotation_smoke.copy_to(tmp_path / "run")
  config = load_config("rotation", **{"eval_only": True, "linear_eval.train_subset": None,
                                      "linear_eval.label_fraction": 0.1})
  spec = build_run(config).evaluation
  builder = get_builder("sslflax_sample/fashion")
  assert train_subset_size(spec, "sslflax_sample/fashion", builder) == 300
  _, labels = _ids_and_labels(builder, "train")
  chosen = labels[balanced_subset_indices(labels, 300, config.seed)]
  assert np.bincount(chosen).tolist() == [30] * 10
  lines = Lines()
  run_experiment(config, tmp_path, log_to=lines)
  assert any("features of 300 train" in line for line in lines), lines[:5]
  probed = json.loads((tmp_path / "results-labels0.1.json").read_text())
  assert probed["config"]["linear_eval"]["label_fraction"] == 0.1
  every_label = json.loads((tmp_path / "results.json").read_text())
  assert probed["linear_eval"] != every_label["linear_eval"]  # trained on other images
  config.linear_eval.mode = "finetune"
  lines.clear()
  run_experiment(config, tmp_path, log_to=lines)
  assert (tmp_path / "results-finetune-freeze3-labels0.1.json").exists()
  # 300 images make the fine-tune's steps: ceil(300 / batch size) an epoch.
  steps = config.linear_eval.finetune_epochs * -(-300 // config.linear_eval.batch_size)
  assert any(f"step {steps}/{steps}" in line for line in lines), lines[-8:]


def pytorch_reduce_on_plateau(epoch_losses, factor, patience, threshold=1e-4):
  """An independent oracle: torch.optim.lr_scheduler.ReduceLROnPlateau's documented rule
  (mode 'min', threshold_mode 'rel', cooldown 0), stepped once per epoch."""
  best, bad, scale, scales = float("inf"), 0, 1.0, []
  for loss in epoch_losses:
    if loss < best * (1 - threshold):
      best, bad = loss, 0
    else:
      bad += 1
    if bad > patience:
      scale, bad = scale * factor, 0
    scales.append(scale)
  return scales


@pytest.mark.parametrize("patience", [2, 3])
def test_plateau_schedule_matches_pytorch_reduce_lr_on_plateau(patience):
  optim = load_config("rotation", "paper").optim
  optim.plateau_patience = patience
  steps_per_epoch = 3
  tx = make_optimizer(optimizer_spec(optim), total_steps=100, steps_per_epoch=steps_per_epoch)
  params = {"w": jnp.ones(3)}
  state = tx.init(params)
  epoch_losses = [5.0, 4.0, 4.0, 4.1, 3.9996, 4.0, 4.0, 3.0, 3.0, 3.0, 3.0, 3.0, 2.0, 2.5, 2.5]
  scales = []
  for loss in epoch_losses:
    for offset in (-0.5, 0.0, 0.5):  # the epoch's mean is `loss`
      _, state = tx.update(params, state, params, value=jnp.float32(loss + offset))
    scales.append(float(state[-1].scale))
  assert scales == pytest.approx(pytorch_reduce_on_plateau(epoch_losses, 0.75, patience))
  assert min(scales) < 1.0  # the sequence does plateau


PAPER_VARIANTS = ("paper", "paper-60k", "paper-120k")
SEED_LR = {"rotation": 3e-3, "counting": 1e-4, "jigsaw": 1e-3, "context": 3e-4,
           "colorize": 3e-4, "supervised": 4e-3}
SEED_PATIENCE = {"rotation": 2, "counting": 3, "jigsaw": 3, "context": 2, "colorize": 3,
                 "supervised": 3}


@pytest.mark.parametrize("name", sorted(SEED_LR))
@pytest.mark.parametrize("variant", PAPER_VARIANTS)
def test_paper_variant_reproduces_the_seed_settings(name, variant):
  """Every setting of the seed's finetune.py and pretrain.py, read off the config."""
  c = load_config(name, variant)
  le = c.linear_eval
  # finetune.py: --freeze_layer 3, Adam 1e-4, ExponentialLR 0.98 per epoch, 50 epochs, batch
  # 512, weight decay 0; CIFAR-10 / SVHN at 64 px, Flowers at 224.
  assert (le.mode, le.freeze_layer, le.lr, le.decay_per_epoch) == ("finetune", 3, 1e-4, 0.98)
  assert (le.finetune_epochs, le.batch_size, le.weight_decay) == (50, 512, 0.0)
  assert tuple(le.datasets) == ("cifar10", "svhn_cropped", "oxford_flowers102")
  assert le.image_size == 64 and dict(le.image_size_per_dataset) == {"oxford_flowers102": 224}
  # pretrain.py: Adam at the task's rate, ReduceLROnPlateau x0.75 with the task's patience,
  # batch 256, 50 epochs of the subset, Resize(size * 8/7) + RandomCrop + RandomHorizontalFlip.
  assert (c.optim.name, c.optim.lr, c.optim.weight_decay) == ("adam", SEED_LR[name], 0.0)
  assert (c.optim.schedule, c.optim.plateau_factor) == ("plateau", 0.75)
  assert c.optim.plateau_patience == SEED_PATIENCE[name]
  assert c.pretrain.batch_size == 256 and c.pretrain.flip
  assert c.pretrain.steps == 50 * c.pretrain.subset_size // 256
  size = {"counting": 448, "jigsaw": 225}.get(name, 224)  # counting: 2x, so tiles are 224
  assert c.pretrain.image_size == size and c.pretrain.resize_to == int(size * 4 / 3.5)
  assert tuple(c.model.widths) == (96, 256, 384, 384, 256) and c.model.fc_width == 4096


def test_seed_crops_resize_then_crop_then_flip():
  """preprocess(resize_to=R, size=S, flip): an S crop of the image's shorter side resized to
  R, mirrored for about half the seeds."""
  import tensorflow as tf
  from sslflax.data.pipeline import preprocess
  rng = np.random.default_rng(0)
  image = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)  # already R: no resampling
  crops, mirrored = 0, 0
  for seed in range(24):
    out = preprocess(tf.constant(image), 48, True, tf.constant([seed, 7], tf.int64),
                     resize_to=64, flip=True).numpy()
    found = [(y, x, m) for y in range(17) for x in range(17) for m in (False, True)
             if np.array_equal(out, (image[:, ::-1] if m else image)[y:y + 48, x:x + 48])]
    assert found, seed
    crops += 1
    mirrored += found[0][2]
  assert crops == 24 and 4 <= mirrored <= 20
