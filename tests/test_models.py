import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sslflax.models import adaptive_avg_pool, adaptive_max_pool, make_backbone
from sslflax.models.alexnet import TAP_NAMES
from tests.helpers import tiny_backbone


def test_adaptive_pools_match_their_definition():
  x = jax.random.normal(jax.random.key(0), (2, 13, 10, 3))
  avg = np.asarray(adaptive_avg_pool(x, (6, 4)))
  mx = np.asarray(adaptive_max_pool(x, (6, 4)))
  xn = np.asarray(x)
  for i in range(6):
    for j in range(4):
      ys = slice(i * 13 // 6, -(-(i + 1) * 13 // 6))
      xs = slice(j * 10 // 4, -(-(j + 1) * 10 // 4))
      np.testing.assert_allclose(avg[:, i, j], xn[:, ys, xs].mean(axis=(1, 2)), rtol=1e-5, atol=1e-6)
      np.testing.assert_allclose(mx[:, i, j], xn[:, ys, xs].max(axis=(1, 2)), rtol=1e-6)


@pytest.mark.parametrize("size", [32, 64, 97])
def test_any_input_size_gives_same_feature_size_and_all_taps(size):
  model = tiny_backbone()
  x = jnp.zeros((2, size, size, 3))
  variables = model.init(jax.random.key(0), x)
  features, taps = model.apply(variables, x)
  assert features.shape == (2, 64)
  assert set(TAP_NAMES) <= set(taps)
  assert taps["conv1"].shape[-1] == 16 and taps["conv5"].shape[-1] == 32


def test_paper_widths_by_default():
  model = make_backbone("alexnet_bn")
  x = jnp.zeros((1, 224, 224, 3))
  shapes = jax.eval_shape(lambda: model.init(jax.random.key(0), x))["params"]
  assert shapes["conv1"]["kernel"].shape == (11, 11, 3, 96)
  assert [shapes[f"conv{i}"]["kernel"].shape[-1] for i in range(1, 6)] == [96, 256, 384, 384, 256]
  assert shapes["fc6"]["kernel"].shape == (256 * 36, 4096)
  _, taps = jax.eval_shape(lambda: model.apply(model.init(jax.random.key(0), x), x))
  assert taps["conv1"].shape == (1, 55, 55, 96) and taps["conv5"].shape == (1, 14, 14, 256)


def test_unknown_backbone_is_a_clear_error():
  with pytest.raises(ValueError, match="unknown backbone 'vgg'"):
    make_backbone("vgg")


def test_dropout_only_in_training():
  model = tiny_backbone(dropout=0.5)
  x = jax.random.normal(jax.random.key(0), (4, 32, 32, 3))
  v = model.init(jax.random.key(1), x)
  a, _ = model.apply(v, x)
  b, _ = model.apply(v, x)
  np.testing.assert_array_equal(a, b)
  (c, _), _ = model.apply(v, x, train=True, rngs={"dropout": jax.random.key(2)}, mutable=["batch_stats"])
  assert float((c == 0).mean()) > 0.3


def test_upconv2x_represents_a_4x4_stride_2_transposed_convolution_exactly():
  """The decoders' up-convolution (flax ConvTranspose 4x4, stride 2, SAME) mapped onto UpConv2x:
  UpConv2x output (2i + a, 2j + b) reads inputs i-1..i+1, j-1..j+1 with the 3x3 kernel of parity
  (a, b); its entries are the transposed convolution's impulse responses."""
  import flax.linen as nn
  from sslflax.models import UpConv2x
  cin, cout = 3, 5
  transposed = nn.ConvTranspose(cout, (4, 4), strides=(2, 2), use_bias=False)
  t_params = transposed.init(jax.random.key(0), jnp.zeros((1, 5, 5, cin)))
  kernel = np.zeros((3, 3, cin, 2, 2, cout), np.float32)
  for c in range(cin):
    impulse = np.zeros((1, 5, 5, cin), np.float32)
    impulse[0, 2, 2, c] = 1.0
    response = np.asarray(transposed.apply(t_params, jnp.asarray(impulse)))[0]  # (10, 10, cout)
    for dy in range(3):
      for dx in range(3):
        for a in range(2):
          for b in range(2):
            kernel[dy, dx, c, a, b] = response[2 * (3 - dy) + a, 2 * (3 - dx) + b]
  up = UpConv2x(cout)
  params = {"params": {"conv": {"kernel": jnp.asarray(kernel.reshape(3, 3, cin, 4 * cout))}}}
  x = jnp.asarray(np.random.default_rng(0).normal(size=(2, 7, 6, cin)).astype(np.float32))
  np.testing.assert_allclose(up.apply(params, x), transposed.apply(t_params, x), atol=1e-5)


# --- the backbone contract (sslflax/models/registry.py) ------------------------------------

SMALL_FIELDS = {"alexnet_bn": {"widths": (8, 16, 16, 16, 16), "fc_width": 32, "pool_size": 2},
                "resnet18": {"resnet_width": 8, "cifar_stem": True},
                "resnet50": {"resnet_width": 8, "cifar_stem": True},
                "vit_ti": {"patch_size": 8}, "vit_s": {"patch_size": 16},
                "scattering": {"widths": (8, 8, 16, 16, 8)}}


@pytest.mark.parametrize("name", sorted(SMALL_FIELDS))
def test_every_backbone_keeps_its_contract(name):
  """Its taps, 'last_map' and 'pool5' come out; every trunk parameter belongs to one of its
  layers (or sits above them), every layer has parameters; its probe pools fit its taps."""
  from flax import traverse_util
  from sslflax.models import get_backbone, registered_backbones
  assert set(SMALL_FIELDS) == set(registered_backbones())  # a new family: add it above
  family = get_backbone(name)
  net = family.build(**SMALL_FIELDS[name])
  assert family.fields and set(family.shape_fields) <= set(family.fields)
  x = jnp.zeros((2, 64, 64, 3), jnp.uint8)
  (_, taps), variables = jax.eval_shape(
      lambda x: net.init_with_output(jax.random.key(0), x), x)
  assert set(family.taps) | {"last_map", "pool5"} <= set(taps)
  top = {path[0] for path in traverse_util.flatten_dict(variables["params"])}
  layers = {n: family.layer_of(n) for n in top}
  assert {l for l in layers.values() if l is not None} == set(range(1, len(family.layers) + 1))
  for tap in family.taps:
    assert 1 <= family.probe_pool(tap, taps[tap].shape[-1]) <= max(taps[tap].shape[1:3]) * 12
  assert family.freeze_label(0) == "nothing frozen"
  assert family.freeze_label(2) == f"{family.layers[0]}..{family.layers[1]} frozen"


def test_report_keeps_taps_no_backbone_names():
  from sslflax import report
  rows = [{"downstream": "d", "tap": t} for t in ("conv3", "block7", "conv1", "freeze3")]
  assert report.taps_of(rows, "d", report.TAP_ORDER) == ["conv1", "conv3", "block7"]
  assert report.taps_of(rows, "d", report.FREEZE_ORDER) == ["freeze3"]
  assert report.freeze_label("freeze3") == "conv1..conv3 frozen"
  assert report.freeze_label("freeze3", "resnet18") == "conv1..res3 frozen"
