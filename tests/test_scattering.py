"""The scattering transform against kymatio's numpy frontend (a stored output), and the
hybrid backbone above it."""

import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sslflax.models.scattering import ScatterNet, num_channels, scattering2d

REFERENCE = pathlib.Path(__file__).resolve().parent / "reference" / "scattering_kymatio_32px.npz"


def test_scattering_matches_kymatio():
  """Every one of the 81 coefficients maps of two images, kymatio 0.3's Scattering2D(J=2,
  L=8), from tools/make_scattering_reference.py."""
  ref = np.load(REFERENCE)
  ours = np.asarray(jax.jit(lambda x: scattering2d(x, int(ref["J"]), int(ref["L"])))(
      jnp.asarray(ref["inputs"])))
  assert ours.shape == ref["scattering"].shape == (2, num_channels(2, 8), 8, 8)
  scale = np.abs(ref["scattering"]).max()
  np.testing.assert_allclose(ours, ref["scattering"], atol=1e-5 * scale, rtol=1e-4)


def test_an_input_side_not_a_multiple_of_2_to_the_j_is_refused():
  with pytest.raises(ValueError, match="multiple of 2\\^J"):
    scattering2d(jnp.zeros((1, 30, 30)), 2, 8)


def test_the_hybrid_backbone_taps_and_freezing():
  """3 colour channels x 81 coefficients at a quarter of the side, then conv3..conv5; with
  frozen_layers=1 no gradient reaches below conv3."""
  net = ScatterNet(widths=(8, 8, 16, 16, 8))
  images = jnp.asarray(np.random.default_rng(0).integers(0, 256, (2, 32, 32, 3)), jnp.uint8)
  variables = net.init(jax.random.key(0), images)
  features, taps = net.apply(variables, images)
  assert taps["scattering"].shape == (2, 8, 8, 3 * 81)
  assert [taps[t].shape[-1] for t in ("conv3", "conv4", "conv5")] == [16, 16, 8]
  assert features.shape == (2, 8)
  frozen = ScatterNet(widths=(8, 8, 16, 16, 8), frozen_layers=1)
  def loss(params):
    out, _ = frozen.apply({**variables, "params": params}, images, train=True,
                          mutable=["batch_stats"])
    return jnp.sum(out[0] ** 2)
  grads = jax.grad(loss)(variables["params"])
  assert float(jnp.abs(grads["scattering_bn"]["scale"]).max()) == 0
  assert float(jnp.abs(grads["conv3"]["kernel"]).max()) > 0
