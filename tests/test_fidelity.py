"""Behaviours the papers and the seed define, each of which an earlier version got wrong:
context's random masks and overlap band, jigsaw's guards, colorization's prior and probe
input, and the paper variant's probe (Flowers' splits, no weight decay)."""

import jax
import jax.numpy as jnp
import numpy as np

from sslflax.build import build_run, optimizer_spec
from sslflax import transforms as T
from sslflax.tasks import make_task
from tests.helpers import load_config, run_experiment, tiny_backbone


def test_context_defaults_to_random_blocks_with_a_4px_band_weighted_10x(real_images):
  task = make_task("context", tiny_backbone(), decoder_width=16)
  images = jnp.asarray(real_images[:8])
  _, first = task.make_batch(jax.random.key(0), images)
  _, second = task.make_batch(jax.random.key(1), images)
  mask = np.asarray(first["mask"])
  assert not np.array_equal(mask, np.asarray(second["mask"]))  # random, not the centre
  assert not np.array_equal(mask[0], mask[1])  # drawn per image
  assert 0 < mask.mean() <= 0.25
  np.testing.assert_array_equal(first["band"], T.boundary_band(first["mask"], 4))
  config = load_config("context", None)
  assert (config.task.options.mask_kind, config.task.options.overlap,
          config.task.options.overlap_weight) == ("blocks", 4, 10.0)


def test_random_channel_shift_matches_a_numpy_oracle(real_images):
  images = real_images[:3, :20, :20]
  key = jax.random.key(3)
  shifted = np.asarray(T.random_channel_shift(key, jnp.asarray(images), 2))
  offsets = np.asarray(jax.random.randint(key, (3, 3, 2), 0, 5))
  padded = np.pad(images, ((0, 0), (2, 2), (2, 2), (0, 0)), mode="edge")
  for i in range(3):
    for c in range(3):
      dy, dx = offsets[i, c]
      np.testing.assert_array_equal(shifted[i, ..., c], padded[i, dy:dy + 20, dx:dx + 20, c])
  assert len({tuple(o) for o in offsets.reshape(-1, 2)}) > 1  # channels move apart


def test_jigsaw_shifts_channels_per_tile_normalises_per_channel_and_trains_conv1_at_stride_2(
    real_images):
  gray = np.repeat(real_images[:4, :63, :63].mean(-1, keepdims=True).astype(np.uint8), 3, -1)
  task = make_task("jigsaw", tiny_backbone(), num_permutations=8, tile_features=16, hidden=32,
                   grayscale_prob=0.0)
  tiles, _ = task.make_batch(jax.random.key(0), jnp.asarray(gray))
  tiles = np.asarray(tiles, np.int32)
  # A gray image's channels were equal; after the guard they differ within most tiles.
  differs = (tiles[..., 0] != tiles[..., 1]).any(axis=(-2, -1))
  assert differs.mean() > 0.5
  normed = np.asarray(T.normalize_per_tile(T.to_float(jnp.asarray(tiles, jnp.uint8))))
  np.testing.assert_allclose(normed.mean(axis=(-3, -2)), 0.0, atol=1e-4)
  np.testing.assert_allclose(normed.std(axis=(-3, -2)), 1.0, atol=1e-2)
  trunk = task.model.backbone
  assert trunk.conv1_stride == 2 and tiny_backbone().conv1_stride == 4
  # The same weights serve the probes at stride 4.
  x = jnp.zeros((1, 21, 21, 3), jnp.uint8)
  shapes = lambda m: jax.tree.map(jnp.shape, m.init(jax.random.key(0), x)["params"])
  assert shapes(trunk) == shapes(tiny_backbone().clone(num_fc=0))


def test_colorization_prior_is_measured_on_the_pretraining_data_and_cached(tmp_path):
  from skimage import color as skcolor
  from sslflax import data as data_lib
  from sslflax.data import priors
  from tests.helpers import photo_crops
  from PIL import Image
  (tmp_path / "photos").mkdir()
  crops = photo_crops(6, 32, seed=4)
  for i, crop in enumerate(crops):
    Image.fromarray(crop).save(tmp_path / "photos" / f"{i}.png")
  data_dir = str(tmp_path / "tfds")
  prior = priors.measure_prior(str(tmp_path / "photos"), "train", 32, data_dir)
  stored = data_lib.make_dataset(str(tmp_path / "photos"), "train", image_size=32, batch_size=8,
                                 train=False, data_dir=data_dir, need_labels=False)
  images = next(stored.as_numpy_iterator())["image"]  # the folder keeps JPEG-encoded pixels
  assert len(images) == 6
  ab = skcolor.rgb2lab(images)[:, 2::4, 2::4, 1:]  # an independent Lab conversion
  np.testing.assert_allclose(prior, T.empirical_prior([ab]), atol=2e-3)
  assert not np.allclose(prior, T.default_prior(), atol=2e-3)  # not the shipped prior
  builder = data_lib.get_builder(str(tmp_path / "photos"), data_dir)
  cached = priors.prior_cache_path(builder, "train", 32, 2000, 0)
  np.save(cached, np.full(313, 1 / 313))
  np.testing.assert_allclose(priors.measure_prior(str(tmp_path / "photos"), "train", 32,
                                                  data_dir), 1 / 313)
  assert load_config("colorize", None).task.options.prior == "data"


def test_colorization_is_probed_on_lightness_and_rgb_on_request(real_images):
  from sslflax.tasks.colorization import lightness
  config = load_config("colorize")
  name, fn = build_run(config).probe_input
  assert name == "lightness" and fn is lightness
  rgb = jnp.asarray(real_images[:2])
  from sslflax.transforms.normalize import IMAGENET_MEAN, IMAGENET_STD
  seen = np.asarray(fn(rgb)) * np.array(IMAGENET_STD) + np.array(IMAGENET_MEAN)
  np.testing.assert_allclose(seen[..., 0], seen[..., 2], atol=1e-5)  # L in all three channels
  from skimage import color as skcolor
  np.testing.assert_allclose(seen[..., 0] * 100, skcolor.rgb2lab(real_images[:2])[..., 0],
                             atol=0.05)
  config.linear_eval.input = "rgb"
  assert build_run(config).probe_input == ("rgb", None)
  assert build_run(load_config("rotation")).probe_input[0] == "rgb"


def test_paper_probe_follows_the_seed():
  config = load_config("rotation", "paper")
  le = config.linear_eval
  from sslflax.evaluate.linear import probe_splits
  assert probe_splits(le, "oxford_flowers102") == ("train+test", "validation")
  assert probe_splits(le, "cifar10") == ("train", "test")
  assert le.weight_decay == 0.0


def test_per_dataset_probe_splits_are_used(tmp_path):
  config = load_config("random")
  config.linear_eval.taps = ("conv1",)
  config.linear_eval.splits_per_dataset = (("sslflax_sample/fashion", "validation",
                                            "test[:1000]"),)
  results = run_experiment(config, tmp_path)
  assert results["test_images"]["sslflax_sample/fashion"] == 1000


# --- The newer methods against their authors' code ----------------------------------------

def _joint_setup(name: str, seed: int = 0):
  """A tiny MoCo or BYOL, its initial variables and memory, and a batch of views."""
  from sslflax.tasks import make_task
  from tests.helpers import TINY_TASK_OPTIONS, photo_crops
  task = make_task(name, tiny_backbone(dropout=0.0), **TINY_TASK_OPTIONS[name])
  images = jnp.asarray(photo_crops(16, 32, seed=seed))
  inputs, targets = task.make_batch(jax.random.key(0), images)
  variables = jax.jit(task.model.init)(jax.random.key(1), inputs)
  memory = task.memory.init(variables, jax.random.key(2))
  return task, variables, memory, inputs, targets


def _perturb_view(inputs: jax.Array, view: int) -> jax.Array:
  """The image-major views with view `view` of every image replaced by noise."""
  noise = jax.random.randint(jax.random.key(9), inputs.shape, 0, 256).astype(inputs.dtype)
  is_view = (jnp.arange(inputs.shape[0]) % 2 == view)[:, None, None, None]
  return jnp.where(is_view, noise, inputs)


def test_moco_keys_depend_only_on_the_key_images():
  """moco/builder.py: encoder_k(im_k) alone. Changing only the query images (view 1) leaves
  every key bit-identical (it moved them by up to 0.97 when both views were normalised
  together), and changing the keys' images leaves the queries."""
  task, variables, memory, inputs, targets = _joint_setup("moco")
  read = jax.jit(lambda x: task.memory.read(memory, variables, x, targets, 0, jax.random.key(3)))
  forward = jax.jit(lambda x: task.model.apply(variables, x, train=True,
                                               mutable=["batch_stats"])[0])
  keys, keys_after = read(inputs)["keys"], read(_perturb_view(inputs, 0))["keys"]
  assert keys.shape == (16, 16)
  np.testing.assert_array_equal(keys, keys_after)
  queries = forward(inputs)["projection"]
  np.testing.assert_array_equal(queries, forward(_perturb_view(inputs, 1))["projection"])
  assert not np.allclose(queries, forward(_perturb_view(inputs, 0))["projection"])


def test_byol_normalises_each_view_by_its_own_statistics():
  """byol_experiment.py applies the networks once per view: changing only view 1 leaves
  the target projection of view 2 (it moved by 1.88 with one BN over both views), and the
  online prediction of view 2, unchanged."""
  from sslflax.tasks.joint import split_views
  task, variables, memory, inputs, targets = _joint_setup("byol")
  read = jax.jit(lambda x: task.memory.read(memory, variables, x, targets, 0, jax.random.key(3)))
  forward = jax.jit(lambda x: task.model.apply(variables, x, train=True,
                                               mutable=["batch_stats"])[0])
  changed = _perturb_view(inputs, 0)
  target, target_after = split_views(read(inputs), 2), split_views(read(changed), 2)
  np.testing.assert_array_equal(target[1], target_after[1])
  assert not np.allclose(target[0], target_after[0])
  online = split_views(forward(inputs)["prediction"], 2)
  np.testing.assert_array_equal(online[1], split_views(forward(changed)["prediction"], 2)[1])


def test_moco_v2_views_and_projector_are_its_codes():
  """main_moco.py --aug-plus --mlp: ColorJitter(0.4, 0.4, 0.4, 0.1) at p 0.8, crop (0.2, 1),
  and a Linear-ReLU-Linear projector without BatchNorm."""
  from sslflax.transforms.views import MOCO_V2_VIEW
  assert (MOCO_V2_VIEW.brightness, MOCO_V2_VIEW.contrast, MOCO_V2_VIEW.saturation) == (0.4,) * 3
  assert MOCO_V2_VIEW.hue == 36.0  # degrees: 0.1 of a turn
  assert (MOCO_V2_VIEW.jitter_prob, MOCO_V2_VIEW.crop_area) == (0.8, (0.2, 1.0))
  _, variables, _, _, _ = _joint_setup("moco")
  projector = variables["params"]["projector"]
  assert set(projector) == {"dense0", "dense1"} and "bias" in projector["dense0"]
  assert "projector" not in variables["batch_stats"]


def test_simclr_projector_ends_in_batch_norm_without_centre_and_sums_both_views_losses():
  """SimCLR's code: the last linear_layer(use_bias=False, use_bn=True) normalises with a
  scale and no centre; the objective is loss_a + loss_b, twice the mean over 2N anchors."""
  from sslflax.tasks import make_task
  from sslflax.tasks.simclr import nt_xent_loss
  from tests.helpers import TINY_TASK_OPTIONS, photo_crops
  default = make_task("simclr", tiny_backbone(dropout=0.0), **TINY_TASK_OPTIONS["simclr"])
  assert not default.model.projector_output_batch_norm  # an option until measured (design.md)
  assert load_config("simclr", "paper").task.options.output_batch_norm  # the authors' setting
  task = make_task("simclr", tiny_backbone(dropout=0.0), output_batch_norm=True,
                   **TINY_TASK_OPTIONS["simclr"])
  inputs, targets = task.make_batch(jax.random.key(0), jnp.asarray(photo_crops(8, 32)))
  variables = jax.jit(task.model.init)(jax.random.key(1), inputs)
  projector = variables["params"]["projector"]
  assert set(projector["bn1"]) == {"scale"} and "bias" not in projector["dense1"]
  outputs, _ = task.model.apply(variables, inputs, train=True, mutable=["batch_stats"])
  loss, _ = task.loss(outputs, targets)
  mean = nt_xent_loss(outputs["projection"], 0.1)[0]  # the task's default temperature
  np.testing.assert_allclose(float(loss), 2 * float(mean), rtol=1e-6)


def test_every_method_fine_tunes_with_the_seeds_dropout():
  """The seed fine-tunes every model with dropout 0.5: the view-based methods pretrain
  without dropout, and their fine-tunes (and random init's beside them) ran without it."""
  from sslflax.evaluate.finetune import finetune_network
  from sslflax.build import backbone_from_config
  from tests.helpers import CONFIGS
  experiments = sorted(p.stem for p in CONFIGS.glob("*.py")
                       if p.stem not in ("common", "study", "__init__"))
  assert len(experiments) >= 16
  for name in experiments:
    config = load_config(name, "paper")
    net = finetune_network(backbone_from_config(config),
                           {"params": {"fc6": {}, "fc7": {}}}, config.linear_eval)
    # The scattering baseline freezes only its fixed first stage (layer 1).
    frozen = 1 if name == "scattering" else 3
    assert net.dropout == 0.5 and net.num_fc == 2 and net.frozen_layers == frozen, name
    # the seed's Resize((224, 224)): Flowers squashed whole, not cropped (tests/test_data.py)
    assert config.linear_eval.squash and not load_config(name, None).linear_eval.squash, name


def test_moco_queue_fits_every_paper_subset_and_a_larger_one_is_refused():
  import pytest
  from sslflax.errors import ConfigError
  from sslflax.tasks import make_task
  from sslflax.train.loop import check_queue_fits
  for variant in ("paper", "paper-60k", "paper-120k"):
    config = load_config("moco", variant)
    queue, subset = config.task.options.queue_size, config.pretrain.subset_size
    assert queue <= subset // 4 and queue % config.pretrain.batch_size == 0, variant
    task = make_task("moco", tiny_backbone(), queue_size=queue)
    check_queue_fits(task, subset, config.pretrain.batch_size)
  config = load_config("moco", "paper")
  task = make_task("moco", tiny_backbone(), queue_size=65536)
  with pytest.raises(ConfigError, match=r"queue_size=65536 .* 30000 .*queue_size=7424 or less"):
    check_queue_fits(task, 30_000, config.pretrain.batch_size)


def test_view_based_paper_variants_take_no_second_host_crop():
  """SimCLR's, MoCo's, BYOL's, SwAV's and DeepCluster's crops work on the whole image: no
  Resize(256) + RandomCrop(224) + flip before their own views. The seed's tasks keep it."""
  for name in ("simclr", "moco", "byol", "swav", "deepcluster"):
    config = load_config(name, "paper")
    assert (config.pretrain.resize_to, config.pretrain.flip) == (None, False), name
  for name in ("rotation", "jigsaw", "supervised"):
    config = load_config(name, "paper")
    assert config.pretrain.resize_to >= 256 and config.pretrain.flip, name  # jigsaw's: 257


def test_sgd_is_plain_momentum_and_deepclusters_top_layer_has_none():
  """MoCo's and DeepCluster's SGD: momentum 0.9, not Nesterov. DeepCluster's top layer has
  its own optimiser without momentum (optimizer_tl). Two steps on a quadratic."""
  import optax
  from sslflax.train.optim import make_optimizer
  params = {"backbone": jnp.array([1.0, -2.0]), "head": jnp.array([3.0])}
  grad = lambda p: jax.tree.map(lambda x: 2 * x, p)  # of sum(x^2)

  def two_steps(tx, p):
    state = tx.init(p)
    for _ in range(2):
      updates, state = tx.update(grad(p), state, p)
      p = optax.apply_updates(p, updates)
    return p

  moco = load_config("moco", "paper").optim
  moco.weight_decay, moco.schedule = 0.0, "constant"
  lr = moco.lr if isinstance(moco.lr, float) else float(moco.lr)
  ours = two_steps(make_optimizer(optimizer_spec(moco), 100, 10), params)
  theirs = two_steps(optax.sgd(lr, 0.9, nesterov=False), params)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6), ours, theirs)
  nesterov = two_steps(optax.sgd(lr, 0.9, nesterov=True), params)
  assert not np.allclose(ours["backbone"], nesterov["backbone"])

  deepcluster = load_config("deepcluster", None).optim
  deepcluster.weight_decay = 0.0
  ours = two_steps(make_optimizer(optimizer_spec(deepcluster), 100, 10), params)
  np.testing.assert_allclose(ours["head"], two_steps(optax.sgd(0.05), params)["head"], rtol=1e-6)
  np.testing.assert_allclose(ours["backbone"],
                             two_steps(optax.sgd(0.05, 0.9), params)["backbone"], rtol=1e-6)


def test_resnet_stem_pools_as_torchvisions_maxpool_with_one_pixel_of_padding():
  """MaxPool2d(3, 2, padding=1), by a numpy loop over -inf-padded maps, even and odd sides.
  (padding="SAME" pads an even map by (0, 1) and fails this.)"""
  from sslflax.models.resnet import stem_pool
  rng = np.random.default_rng(0)
  for side in (8, 9):
    x = rng.normal(size=(2, side, side, 3)).astype(np.float32)
    padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), constant_values=-np.inf)
    out = (side + 2 - 3) // 2 + 1
    expect = np.empty((2, out, out, 3), np.float32)
    for i in range(out):
      for j in range(out):
        expect[:, i, j] = padded[:, 2 * i:2 * i + 3, 2 * j:2 * j + 3].max(axis=(1, 2))
    np.testing.assert_array_equal(np.asarray(stem_pool(jnp.asarray(x))), expect)


def test_swav_paper_variant_follows_its_code():
  """main_swav.py's batch-256 script: LARC over every parameter (weight decay included), no
  warm-up, cosine from 0.6 to 0.0006; a 23 px blur kernel with sigma 0.1-2 px on every crop."""
  import optax
  from sslflax.train.optim import make_optimizer, make_schedule
  config = load_config("swav", "paper")
  optim, steps = config.optim, config.pretrain.steps
  assert (optim.name, optim.warmup_steps, config.task.options.blur_kernel) == ("lars", 0, 23)
  schedule = make_schedule(optimizer_spec(optim), steps, 100)
  np.testing.assert_allclose([float(schedule(0)), float(schedule(steps))], [0.6, 0.0006],
                             rtol=1e-5)
  params = {"kernel": jnp.ones((3, 2)), "bias": jnp.array([0.5, -1.0])}
  grads = {"kernel": jnp.full((3, 2), 0.1), "bias": jnp.array([0.2, 0.3])}
  ours = make_optimizer(optimizer_spec(optim), steps, 100)
  theirs = optax.lars(schedule, weight_decay=optim.weight_decay, momentum=0.9)
  updates = [tx.update(grads, tx.init(params), params)[0] for tx in (ours, theirs)]
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6), *updates)
  simclr = load_config("simclr", "paper").optim  # SimCLR's LARS leaves biases out
  kernels_only = make_optimizer(optimizer_spec(simclr), steps, 100)
  update = kernels_only.update(grads, kernels_only.init(params), params)[0]
  assert not np.allclose(update["bias"], updates[1]["bias"])


def test_a_fixed_blur_kernel_keeps_sigma_in_the_views_own_pixels(real_images):
  """ViewSpec.blur_kernel=23 (SwAV's): the blur of a 32 px view is gaussian_blur(view, sigma,
  23) with sigma unscaled; the default scales sigma and the kernel with the side."""
  from sslflax.transforms.views import ViewSpec, gaussian_blur, random_view
  plain = ViewSpec(crop_area=(1.0, 1.0), aspect=(1.0, 1.0), flip=0.0, jitter_prob=0.0,
                   grayscale_prob=0.0, blur_prob=0.0)
  import dataclasses
  images = jnp.asarray(real_images[:4, :32, :32])
  view = random_view(jax.random.key(0), images, plain, 32)
  np.testing.assert_array_equal(view, images)  # nothing else changes the view
  fixed = dataclasses.replace(plain, blur_prob=1.0, blur_sigma=(1.5, 1.5), blur_kernel=23)
  blurred = np.asarray(random_view(jax.random.key(0), images, fixed, 32), np.float32)
  expect = np.asarray(gaussian_blur(images, jnp.full((4,), 1.5), 23))
  assert np.abs(blurred - np.clip(np.round(255 * expect), 0, 255)).max() <= 1  # [0, 1] floats
  scaled = dataclasses.replace(fixed, blur_kernel=0)  # sigma 1.5 * 32 / 224, kernel 3
  assert not np.allclose(np.asarray(random_view(jax.random.key(0), images, scaled, 32),
                                    np.float32), blurred, atol=2)


def test_simclr_and_byol_resnets_start_each_block_at_the_identity():
  """SimCLR's and BYOL's ResNets zero-initialise each residual branch's last BN gamma;
  torchvision's default keeps 1, and the other configs follow it."""
  from sslflax.build import backbone_from_config
  for name, zero in (("simclr", True), ("byol", True), ("rotation", False)):
    config = load_config(name, "smoke")
    config.model.name, config.model.resnet_width, config.model.cifar_stem = "resnet18", 8, True
    net = backbone_from_config(config)
    params = jax.jit(net.init)(jax.random.key(0), jnp.zeros((1, 32, 32, 3), jnp.uint8))["params"]
    for block, leaves in params.items():
      if block.startswith("res"):
        assert (np.asarray(leaves["bn2"]["scale"]) == 0).all() == zero, (name, block)
        assert (np.asarray(leaves["bn1"]["scale"]) == 1).all()


def test_the_paper_probe_is_sgd_with_momentum_as_the_per_layer_protocol():
  """Kolesnikov et al., VISSL and RotNet probe each layer with SGD, momentum 0.9, lr 0.01,
  weight decay 5e-4; the :paper variants do, the default keeps Adam. Three steps of the
  probe's optimiser on a quadratic equal PyTorch's SGD written as a numpy loop."""
  from sslflax.evaluate.linear import probe_optimizer, probe_protocol
  paper, default = probe_protocol(load_config("rotation", "paper").linear_eval), \
      probe_protocol(load_config("rotation", None).linear_eval)
  assert (paper["optimizer"], paper["lr"], paper["weight_decay"]) == ("sgd", 0.01, 5e-4)
  assert (default["optimizer"], default["lr"], default["weight_decay"]) == ("adam", 1e-3, 5e-4)
  target = np.array([1.0, -2.0, 0.5], np.float32)
  tx = probe_optimizer("sgd", 0.01, 5e-4, decay_per_epoch=0.5, steps_per_epoch=2)
  w = jnp.zeros(3) + 0.3
  state = tx.init(w)
  expect, velocity = np.full(3, 0.3, np.float64), np.zeros(3)
  for step in range(3):
    w_update, state = tx.update(w - target, state, w)  # the gradient of 0.5 |w - target|^2
    w = w + w_update
    lr = 0.01 * 0.5 ** (step / 2)  # exponential decay per epoch of 2 steps, as optax's
    velocity = 0.9 * velocity + (expect - target) + 5e-4 * expect
    expect = expect - lr * velocity
  np.testing.assert_allclose(np.asarray(w), expect, rtol=1e-6)
