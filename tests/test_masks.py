import jax
import jax.numpy as jnp
import numpy as np

from sslflax import transforms as T


def test_central_square_is_a_quarter_of_the_area():
  mask = np.asarray(T.central_square_mask(2, 128, 128))
  assert mask.sum(axis=(1, 2)).tolist() == [64 * 64] * 2
  assert mask[0, 32:96, 32:96].all() and not mask[0, :32].any()


def test_random_blocks_vary_per_image_and_fill_with_mean(real_images):
  mask = np.asarray(T.random_block_mask(jax.random.key(0), 4, 64, 64, num_blocks=3))
  assert mask.any(axis=(1, 2)).all()
  assert not np.array_equal(mask[0], mask[1])
  assert (mask.sum(axis=(1, 2)) <= 3 * 16 * 16).all()
  x = T.to_float(real_images[:4])
  mean = jnp.array([0.5, 0.4, 0.3])
  filled = np.asarray(T.fill_masked(x, jnp.asarray(mask), mean))
  np.testing.assert_allclose(filled[mask], np.broadcast_to([0.5, 0.4, 0.3], filled[mask].shape))
  np.testing.assert_array_equal(filled[~mask], np.asarray(x)[~mask])


def test_boundary_band_surrounds_the_hole():
  mask = T.central_square_mask(1, 16, 16)
  band = np.asarray(T.boundary_band(mask, 2))[0]
  assert band.sum() == 12 * 12 - 8 * 8
  assert not (band & np.asarray(mask)[0]).any()
