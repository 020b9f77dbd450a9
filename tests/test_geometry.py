import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sslflax import transforms as T


def test_all_rotations_are_exact_and_undo(real_images):
  x = real_images[:3]
  rotated, labels = T.all_rotations(x)
  assert rotated.shape == (12,) + x.shape[1:] and rotated.dtype == x.dtype
  for i in range(3):
    for k in range(4):
      np.testing.assert_array_equal(rotated[4 * i + k], np.rot90(x[i], k))
      np.testing.assert_array_equal(np.rot90(rotated[4 * i + k], -labels[4 * i + k]), x[i])


def test_all_rotations_rejects_non_square():
  with pytest.raises(ValueError, match="square"):
    T.all_rotations(jnp.zeros((1, 4, 6, 3)))


def test_tile_grid_round_trip(real_images):
  tiles = T.tile_grid(real_images[:2, :63, :63], 3)
  assert tiles.shape == (2, 9, 21, 21, 3)
  np.testing.assert_array_equal(T.untile_grid(tiles, 3), real_images[:2, :63, :63])
  np.testing.assert_array_equal(tiles[:, 5], real_images[:2, 21:42, 42:63])  # row 1, col 2


def test_random_tile_grid_crops_inside_each_cell(real_images):
  x = real_images[:2, :63, :63].astype(np.int32)
  tiles = np.asarray(T.random_tile_grid(jax.random.key(0), jnp.asarray(x), 3, 15))
  cells = np.asarray(T.tile_grid(jnp.asarray(x), 3))
  offsets = set()
  for b in range(2):
    for t in range(9):
      found = [(dy, dx) for dy in range(7) for dx in range(7)
               if np.array_equal(cells[b, t, dy:dy + 15, dx:dx + 15], tiles[b, t])]
      assert found, "tile is not a window of its own cell"
      offsets.add(found[0])
  assert len(offsets) > 3  # the gaps really vary


def test_random_tile_grid_rejects_oversized_tile():
  with pytest.raises(ValueError, match="does not fit"):
    T.random_tile_grid(jax.random.key(0), jnp.zeros((1, 30, 30, 3)), 3, 11)


def test_quadrants_and_random_filter_downsample(real_images):
  x = T.to_float(real_images[:16])
  quads = T.quadrant_tiles(x)
  np.testing.assert_array_equal(quads[:, 3], x[:, 32:, 32:])
  down = np.asarray(T.downsample_random_filter(jax.random.key(0), x))
  assert down.shape == (16, 32, 32, 3)
  candidates = np.stack([np.asarray(T.resize(x, (32, 32), m)) for m in T.DOWNSAMPLE_METHODS], 1)
  match = np.argmin(np.abs(candidates - down[:, None]).mean(axis=(2, 3, 4)), axis=1)
  assert np.allclose(np.take_along_axis(candidates, match[:, None, None, None, None], 1)[:, 0], down)
  assert len(set(match.tolist())) > 1  # different filters for different images
  area = np.asarray(T.resize(x, (32, 32), "area"))
  np.testing.assert_allclose(area[:, 0, 0], np.asarray(x[:, :2, :2]).mean(axis=(1, 2)), atol=1e-6)


def test_random_crop_is_window_and_center_crop(real_images):
  x = real_images[:4]
  crops = np.asarray(T.random_crop(jax.random.key(3), x, (40, 40)))
  for i in range(4):
    assert any(np.array_equal(x[i, y:y + 40, z:z + 40], crops[i]) for y in range(25) for z in range(25))
  np.testing.assert_array_equal(T.center_crop(x, (32, 32)), x[:, 16:48, 16:48])


def test_random_resized_crop_shape_and_range(real_images):
  out = jax.jit(T.random_resized_crop, static_argnums=2)(jax.random.key(0), T.to_float(real_images[:4]), (32, 32))
  assert out.shape == (4, 32, 32, 3)
  assert float(out.min()) >= -1e-3 and float(out.max()) <= 1 + 1e-3
