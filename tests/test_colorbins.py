import jax
import jax.numpy as jnp
import numpy as np

from sslflax import transforms as T
from sslflax.transforms import colorbins


def test_313_bins_on_a_grid_of_10_containing_every_srgb_cell():
  bins = T.ab_bins()
  assert bins.shape == (313, 2)
  assert np.all(bins % 10 == 0) and len({tuple(b) for b in bins.tolist()}) == 313
  reachable = T.compute_in_gamut_bins(levels=32)
  assert {tuple(b) for b in reachable.tolist()} <= {tuple(b) for b in bins.tolist()}
  assert len(reachable) > 250


def test_soft_encoding_five_nearest_gaussian():
  bins = jnp.asarray(T.ab_bins())
  ab = jnp.array([[3.0, -12.0], [40.0, 41.0], [0.0, 0.0]])
  soft = np.asarray(T.soft_encode(ab, bins))
  np.testing.assert_allclose(soft.sum(-1), 1.0, atol=1e-6)
  assert ((soft > 0).sum(-1) == 5).all()
  d2 = ((np.asarray(ab)[:, None] - T.ab_bins()[None]) ** 2).sum(-1)
  for i in range(3):
    nearest = np.argsort(d2[i])[:5]
    expect = np.exp(-d2[i, nearest] / (2 * 25.0))
    np.testing.assert_allclose(soft[i, nearest], expect / expect.sum(), rtol=1e-5)


def test_k_smallest_equals_top_k_with_ties_and_infinities():
  """It replaces lax.top_k (which all-gathers a sharded batch): same values, same positions."""
  rng = np.random.default_rng(0)
  values = rng.integers(0, 6, (500, 16)).astype(np.float32)  # many ties
  values[rng.random((500, 16)) < 0.4] = np.inf  # missing candidates, as in the sparse window
  values[:, :5] = np.minimum(values[:, :5], 9.0)  # k finite entries per row
  smallest, positions = colorbins.k_smallest(jnp.asarray(values), 5)
  neg, expect_positions = jax.lax.top_k(-jnp.asarray(values), 5)
  np.testing.assert_array_equal(np.asarray(positions), np.asarray(expect_positions))
  np.testing.assert_array_equal(np.asarray(smallest), -np.asarray(neg))


def test_rebalance_weights_have_unit_expectation_and_favour_rare_bins():
  prior = T.default_prior()
  np.testing.assert_allclose(prior.sum(), 1.0, atol=1e-5)
  w = T.rebalance_weights(prior, 0.5)
  np.testing.assert_allclose(np.sum(prior * w), 1.0, atol=1e-5)
  assert w[np.argmin(prior)] > w[np.argmax(prior)]
  uniform = np.full(313, 1 / 313)
  np.testing.assert_allclose(T.rebalance_weights(uniform), 1.0, atol=1e-5)


def test_empirical_prior_puts_mass_where_the_colours_are():
  ab = np.tile(np.array([[20.0, 30.0]]), (100, 1))
  prior = T.empirical_prior([ab])
  top = T.ab_bins()[np.argmax(prior)]
  np.testing.assert_array_equal(top, [20, 30])
  np.testing.assert_allclose(prior.sum(), 1.0, atol=1e-5)


def test_annealed_mean_interpolates_mode_and_mean():
  bins = jnp.asarray(T.ab_bins())
  logits = jax.random.normal(jax.random.key(0), (7, 313))
  mode = bins[jnp.argmax(logits, -1)]
  np.testing.assert_allclose(T.annealed_mean(logits, bins, 1e-3), mode, atol=1e-3)
  mean = jax.nn.softmax(logits) @ bins
  np.testing.assert_allclose(T.annealed_mean(logits, bins, 1.0), mean, atol=1e-4)
  # Round trip on a confident prediction: decoding a soft encoding's logits gives back the colour.
  ab = jnp.array([[12.0, -37.0]])
  decoded = T.annealed_mean(jnp.log(T.soft_encode(ab, bins) + 1e-12), bins, 0.38)
  assert float(jnp.abs(decoded - ab).max()) < 4.0


def test_sparse_soft_encoding_equals_dense_on_every_srgb_colour(real_images):
  v = np.linspace(0, 1, 40, dtype=np.float32)
  rgb = np.stack(np.meshgrid(v, v, v, indexing="ij"), -1).reshape(-1, 3)
  rgb = np.concatenate([rgb, real_images[:2].reshape(-1, 3) / 255.0]).astype(np.float32)
  ab = T.rgb_to_lab(jnp.asarray(rgb))[:, 1:]
  dense = np.asarray(T.soft_encode(ab, jnp.asarray(T.ab_bins())))
  idx, weights = T.soft_encode_sparse(ab)
  sparse = np.zeros_like(dense)
  np.put_along_axis(sparse, np.asarray(idx), np.asarray(weights), -1)
  np.testing.assert_allclose(sparse, dense, atol=1e-6)
