"""ResNet-18/50 backbones: torchvision's parameter counts, tap shapes for both stems, every
task and the probes and fine-tuning on a ResNet, and the main job end to end."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from sslflax.evaluate.finetune import is_frozen
from sslflax.evaluate.linear import resolve_taps, tap_features
from sslflax.models import ResNet, get_backbone, make_backbone, tap_names
from sslflax.tasks import make_task
from sslflax.train import create_train_state, train_step
from tests.helpers import TINY_TASK_OPTIONS, load_config, photo_crops, run_experiment


def count(tree) -> int:
  return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(tree))


@pytest.mark.parametrize("name, torchvision", [("resnet18", 11_689_512), ("resnet50", 25_557_032)])
def test_parameter_count_equals_torchvisions_without_its_fc(name, torchvision):
  """torchvision.models.resnet18/50 hold 11,689,512 / 25,557,032 parameters, of which the
  1000-way fc holds 513,000 / 2,049,000."""
  net = make_backbone(name)
  shapes = jax.eval_shape(net.init, jax.random.key(0), jnp.zeros((1, 224, 224, 3), jnp.uint8))
  fc = {"resnet18": 512 * 1000 + 1000, "resnet50": 2048 * 1000 + 1000}[name]
  assert count(shapes["params"]) == torchvision - fc


@pytest.mark.parametrize("cifar_stem, sides", [(False, (16, 8, 4, 2)), (True, (64, 32, 16, 8))])
def test_tap_shapes_for_both_stems(cifar_stem, sides):
  net = make_backbone("resnet18", resnet_width=8, cifar_stem=cifar_stem)
  out = jax.eval_shape(lambda x: net.init_with_output(jax.random.key(0), x)[0],
                       jnp.zeros((2, 64, 64, 3), jnp.uint8))
  features, taps = out
  assert tap_names(net) == ("res2", "res3", "res4", "res5")
  assert [taps[t].shape for t in tap_names(net)] == [
      (2, s, s, 8 * 2 ** i) for i, s in enumerate(sides)]
  assert features.shape == (2, 64) and taps["last_map"].shape == taps["res5"].shape


def tiny_resnet(**overrides) -> ResNet:
  return ResNet(**{"stage_sizes": (1, 1, 1, 1), "width": 8, "cifar_stem": True, **overrides})


@pytest.mark.parametrize("name", [n if n == "rotation" else pytest.param(n, marks=pytest.mark.slow)
                                  for n in sorted(TINY_TASK_OPTIONS)])
def test_every_task_trains_on_a_resnet(name):
  task = make_task(name, tiny_resnet(), **TINY_TASK_OPTIONS[name])
  images = jnp.asarray(photo_crops(8, 32, seed=1))
  labels = jnp.arange(8) % 4
  tx = optax.sgd(0.01)
  state = create_train_state(jax.random.key(0), task, tx, images, labels)
  assert "res5_block0" in state.params["backbone"] or "res5_block0" in str(state.params)
  step = jax.jit(functools.partial(train_step, task, tx))
  new, metrics = step(state, images, labels)
  assert np.isfinite(float(metrics["loss"]))
  moved = jax.tree.map(lambda a, b: float(np.abs(np.asarray(a) - np.asarray(b)).max()),
                       new.params, state.params)
  assert max(jax.tree.leaves(moved)) > 0


def test_probe_features_of_resnet18_are_about_9k_per_tap():
  net = make_backbone("resnet18", cifar_stem=True)
  images = jnp.zeros((2, 64, 64, 3), jnp.uint8)
  variables = jax.eval_shape(net.init, jax.random.key(0), images)
  taps = resolve_taps(("all",), tap_names(net))
  out = jax.eval_shape(lambda v: tap_features(net, v, images, taps), variables)
  assert {t: out[t].shape[1] for t in taps} == {"res2": 9216, "res3": 8192, "res4": 9216,
                                               "res5": 8192}
  with pytest.raises(ValueError, match="res2"):
    resolve_taps(("conv3",), tap_names(net))


def test_freezing_a_resnet_up_to_res3():
  net = tiny_resnet(frozen_layers=3)
  task = make_task("rotation", net)
  images = jnp.asarray(photo_crops(4, 32, seed=2))
  tx = optax.sgd(0.1)
  state = create_train_state(jax.random.key(0), task, tx, images)
  new, _ = jax.jit(functools.partial(train_step, task, tx))(state, images, None)
  for layer in ("conv1", "bn1", "res2_block0", "res3_block0", "res4_block0", "res5_block0"):
    frozen = is_frozen(("backbone", layer), 3, get_backbone("resnet18"))
    assert frozen == (layer not in ("res4_block0", "res5_block0"))
    delta = max(jax.tree.leaves(jax.tree.map(
        lambda a, b: float(np.abs(np.asarray(a) - np.asarray(b)).max()),
        new.params["backbone"][layer], state.params["backbone"][layer])))
    assert (delta == 0) == frozen, (layer, delta)
  # Frozen layers keep their BN statistics.
  jax.tree.map(np.testing.assert_array_equal, new.batch_stats["backbone"]["res3_block0"],
               state.batch_stats["backbone"]["res3_block0"])


@pytest.mark.slow
def test_main_job_on_a_resnet_probes_then_fine_tunes_its_checkpoint(tmp_path):
  """Merged from one run per mode: the fine-tune reads the probe run's checkpoint
  (eval_only) instead of pretraining a second ResNet."""
  config = load_config("simclr")
  config.model.name = "resnet18"
  config.model.resnet_width = 8
  config.model.cifar_stem = True
  config.linear_eval.finetune_epochs = 1
  for mode, expect in (("probe", {"res2", "res3", "res4", "res5"}), ("finetune", {"freeze3"})):
    config.linear_eval.mode = mode
    config.eval_only = mode == "finetune"
    results = run_experiment(config, tmp_path)
    rows = results["linear_eval"]["sslflax_sample/fashion"]
    assert set(rows) == expect and all(0 <= v <= 1 for v in rows.values()), mode


def test_a_workdir_records_only_its_backbones_shape_fields():
  """AlexNet runs' workdirs from before the ResNet fields existed still resume; a ResNet
  run's records its width and stem, not AlexNet's widths."""
  from sslflax.build import shape_fields
  config = load_config("rotation", None)
  alexnet = shape_fields(config)
  assert "model.widths" in alexnet and not any("resnet" in k or "cifar" in k for k in alexnet)
  config.model.name = "resnet18"
  fields = shape_fields(config)
  assert {k for k in fields if k.startswith("model.")} == {
      "model.name", "model.resnet_width", "model.cifar_stem", "model.resnet_norm"}


def torchvision_to_flax(name: str, value: np.ndarray) -> tuple[str, tuple[str, ...], np.ndarray]:
  """One torchvision state_dict entry -> (collection, path, value) in sslflax's ResNet:
  layer{k}.{j} is res{k+1}_block{j}, downsample.0/.1 the shortcut and its BN, convolutions
  OIHW -> HWIO, BN weight/bias/running_mean/running_var -> scale/bias/mean/var."""
  parts = name.split(".")
  if parts[0].startswith("layer"):
    block = f"res{int(parts[0][5:]) + 1}_block{parts[1]}"
    module = {"downsample.0": "shortcut", "downsample.1": "shortcut_bn"}.get(
        ".".join(parts[2:4]), parts[2])
    path = (block, module)
  else:
    path = (parts[0],)
  leaf = parts[-1]
  if value.ndim == 4:
    return "params", path + ("kernel",), value.transpose(2, 3, 1, 0)
  collection, key = {"weight": ("params", "scale"), "bias": ("params", "bias"),
                     "running_mean": ("batch_stats", "mean"),
                     "running_var": ("batch_stats", "var")}[leaf]
  return collection, path + (key,), value


@pytest.mark.parametrize("name", ["resnet18", "resnet50"])
def test_same_weights_give_torchvisions_activations_at_64px(name):
  """A reference made once with torchvision (tools/make_resnet_reference.py; CI needs no
  torch): the same drawn weights in eval mode give torchvision's res2..res5 and pooled
  features. The stem's max pool padded "SAME" ((0, 1) on a 32 px map) failed this from res2."""
  import importlib.util
  from tests.helpers import ROOT
  spec = importlib.util.spec_from_file_location("make_resnet_reference",
                                                ROOT / "tools" / "make_resnet_reference.py")
  maker = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(maker)
  reference = np.load(maker.OUT)
  rng = np.random.default_rng(maker.SEED)
  variables = {"params": {}, "batch_stats": {}}
  for torch_name, shape in zip(reference[f"{name}/names"], reference[f"{name}/shapes"]):
    value = maker.draw_weight(str(torch_name), tuple(int(s) for s in str(shape).split(",")), rng)
    collection, path, value = torchvision_to_flax(str(torch_name), value)
    node = variables[collection]
    for key in path[:-1]:
      node = node.setdefault(key, {})
    node[path[-1]] = jnp.asarray(value)
  net = make_backbone(name)
  expected = jax.eval_shape(net.init, jax.random.key(0), jnp.zeros((1, 64, 64, 3)))
  assert jax.tree.structure(expected) == jax.tree.structure(variables)  # every weight mapped
  features, taps = jax.jit(functools.partial(net.apply, train=False))(
      variables, jnp.asarray(reference["image"]))
  for tap in ("res2", "res3", "res4", "res5"):
    want = reference[f"{name}/{tap}"]
    got = np.asarray(taps[tap])[..., :want.shape[-1]]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max(), err_msg=tap)
  want = reference[f"{name}/pool5"]
  np.testing.assert_allclose(np.asarray(features), want, rtol=1e-4, atol=1e-4 * np.abs(want).max())
