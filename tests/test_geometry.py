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


def filters_used(x: np.ndarray, down: np.ndarray, methods=T.DOWNSAMPLE_METHODS) -> np.ndarray:
  """Index of the method whose resize each downsampled image equals (asserting it does)."""
  size = (x.shape[1] // 2, x.shape[2] // 2)
  crop = x[:, :2 * size[0], :2 * size[1]]
  candidates = np.stack([np.asarray(T.resize(crop, size, m)) for m in methods], 1)
  errors = np.abs(candidates - down[:, None]).max(axis=(2, 3, 4))
  assert errors.min(axis=1).max() < 1e-5, "an output equals no resize method"
  return errors.argmin(axis=1)


def test_quadrants_and_random_filter_downsample(real_images):
  x = T.to_float(real_images[:16])
  quads = T.quadrant_tiles(x)
  np.testing.assert_array_equal(quads[:, 3], x[:, 32:, 32:])
  down = np.asarray(T.downsample_random_filter(jax.random.key(0), x))
  assert down.shape == (16, 32, 32, 3)
  used = filters_used(np.asarray(x), down)
  # Every run of 4 consecutive images uses each of the 4 filters once, in a random order.
  assert all(sorted(run) == [0, 1, 2, 3] for run in used.reshape(4, 4).tolist())
  assert len({tuple(run) for run in used.reshape(4, 4).tolist()}) > 1
  area = np.asarray(T.resize(x, (32, 32), "area"))
  np.testing.assert_allclose(area[:, 0, 0], np.asarray(x[:, :2, :2]).mean(axis=(1, 2)), atol=1e-6)


@pytest.mark.parametrize("shape", [(6, 33, 50), (3, 2, 2)] + [
    pytest.param(shape, marks=pytest.mark.slow) for shape in [(9, 20, 18), (1, 8, 8)]])
def test_random_filter_downsample_odd_sizes_and_batches(shape):
  # Odd sides drop their last row/column, as resize of the even crop; a batch that is not
  # a multiple of 4 keeps the per-run permutation for its complete runs.
  x = np.random.default_rng(0).random(shape + (3,), dtype=np.float32)
  down = np.asarray(jax.jit(T.downsample_random_filter)(jax.random.key(1), jnp.asarray(x)))
  assert down.shape == (shape[0], shape[1] // 2, shape[2] // 2, 3)
  used = filters_used(x, down)
  if shape[1] > 2:  # at 1x1 output, several filters give the same pixel
    for start in range(0, shape[0] - 3, 4):
      assert sorted(used[start:start + 4]) == [0, 1, 2, 3]


def test_random_filter_downsample_uint8_and_subset_of_methods(real_images):
  methods = ("cubic", "nearest")
  x = real_images[:8]
  from_uint8 = np.asarray(T.downsample_random_filter(jax.random.key(2), x, methods))
  from_float = np.asarray(T.downsample_random_filter(jax.random.key(2), T.to_float(x), methods))
  np.testing.assert_allclose(from_uint8, from_float, atol=1e-6)
  used = filters_used(np.asarray(T.to_float(x)), from_float, methods)
  assert all(sorted(run) == [0, 1] for run in used.reshape(4, 2).tolist())


def test_downsample_by_2_equals_resize_for_every_method():
  x = jnp.asarray(np.random.default_rng(3).random((2, 14, 22, 3), dtype=np.float32))
  for method in T.DOWNSAMPLE_METHODS:
    np.testing.assert_allclose(T.downsample_by_2(x, method), T.resize(x, (7, 11), method),
                               atol=1e-6, err_msg=method)


def test_random_filter_downsample_rejects_tiny_images():
  with pytest.raises(ValueError, match="at least 2x2"):
    T.downsample_random_filter(jax.random.key(0), jnp.zeros((4, 1, 8, 3)))


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
