"""Quantised ab colour bins for colorization as classification (Zhang, Isola, Efros 2016).

The ab plane is cut into a grid of 10; the Q = 313 cells that hold colours
reachable from sRGB are the classes. Targets are soft-encoded over the 5
nearest bins (Gaussian, sigma 5); rare colours are up-weighted by class
rebalancing; predictions become colours by the annealed mean (T = 0.38).
"""

from __future__ import annotations

import functools
import importlib.resources

import jax
import jax.numpy as jnp
import numpy as np

GRID = 10.0
NUM_BINS = 313

# The published Q = 313 bin centres of Zhang et al. (their released
# pts_in_hull.npy), written as one contiguous run of b per value of a:
# a -> (lowest b, highest b), step 10. The set is a little wider than the
# cells that sRGB colours strictly reach (261 of them, all included; see
# compute_in_gamut_bins and its test), which is what the published models use.
_ZHANG_B_RANGE_PER_A = {
    -90: (50, 90), -80: (20, 90), -70: (0, 90), -60: (-20, 90), -50: (-30, 100),
    -40: (-40, 100), -30: (-50, 100), -20: (-50, 100), -10: (-60, 100), 0: (-70, 100),
    10: (-80, 90), 20: (-80, 90), 30: (-90, 90), 40: (-100, 90), 50: (-100, 80),
    60: (-110, 80), 70: (-110, 80), 80: (-110, 70), 90: (-110, 70), 100: (-90, 0),
}


def compute_in_gamut_bins(grid: float = GRID, levels: int = 256) -> np.ndarray:
  """ab centres (multiples of `grid`) of the cells that some sRGB colour falls into.

  Every one of levels**3 sRGB colours is converted to Lab (with skimage, the
  reference implementation) and its ab rounded to the nearest grid centre.
  For grid 10 this finds 261 cells, every one of them among the 313 published
  bins; use it to build bins for another grid size.
  """
  from skimage import color  # only needed to regenerate the asset
  values = np.linspace(0.0, 1.0, levels, dtype=np.float64)
  centres = set()
  for r in values:  # one red slice at a time keeps memory small
    g, b = np.meshgrid(values, values, indexing="ij")
    rgb = np.stack([np.full_like(g, r), g, b], axis=-1)
    ab = color.rgb2lab(rgb)[..., 1:].reshape(-1, 2)
    cells = np.unique(np.round(ab / grid).astype(np.int32), axis=0)
    centres.update(map(tuple, cells))
  bins = np.array(sorted(centres), dtype=np.float32) * grid
  return bins


@functools.lru_cache(maxsize=None)
def _load_asset(name: str) -> np.ndarray:
  with (importlib.resources.files("sslflax") / "assets" / name).open("rb") as f:
    return np.load(f)


@functools.lru_cache(maxsize=None)
def ab_bins() -> np.ndarray:
  """The (313, 2) float32 array of in-gamut ab bin centres (a-major, then b ascending)."""
  bins = [(a, b) for a, (lo, hi) in sorted(_ZHANG_B_RANGE_PER_A.items())
          for b in range(lo, hi + 1, int(GRID))]
  return np.array(bins, dtype=np.float32)


def default_prior() -> np.ndarray:
  """The shipped empirical bin distribution p (313,), measured on the embedded sample's photos."""
  return _load_asset("ab_prior_313.npy")


def k_smallest(values: jax.Array, k: int) -> tuple[jax.Array, jax.Array]:
  """The k smallest entries along the last axis, ascending, and their positions, each (..., k).

  The same as lax.top_k(-values, k) (ties go to the lower position), found by k argmin
  passes. On a batch sharded over devices, XLA all-gathered the whole batch onto every
  device for top_k; these elementwise passes stay on each device's shard. Positions
  are distinct as long as k entries are finite; an infinite pick can repeat one.
  """
  positions = jnp.arange(values.shape[-1])
  smallest, picks = [], []
  for _ in range(k):
    pick = jnp.argmin(values, axis=-1)
    smallest.append(jnp.take_along_axis(values, pick[..., None], axis=-1)[..., 0])
    picks.append(pick)
    values = jnp.where(positions == pick[..., None], jnp.inf, values)
  return jnp.stack(smallest, axis=-1), jnp.stack(picks, axis=-1)


def nearest_bins(ab: jax.Array, bins: jax.Array, k: int) -> tuple[jax.Array, jax.Array]:
  """Indices (..., k) and squared distances (..., k) of the k bins nearest each ab value."""
  d2, idx = k_smallest(jnp.sum((ab[..., None, :] - bins) ** 2, axis=-1), k)
  return idx, d2


def soft_encode(ab: jax.Array, bins: jax.Array, k: int = 5, sigma: float = 5.0) -> jax.Array:
  """Soft one-hot targets (..., Q): the k nearest bins weighted by a Gaussian of distance; rows sum to 1.

  Works for any bin set (brute-force distances). For the shipped grid,
  soft_encode_sparse gives the same targets in a form 60x smaller.
  """
  idx, d2 = nearest_bins(ab, bins, k)
  weights = jax.nn.softmax(-d2 / (2.0 * sigma ** 2), axis=-1)  # normalised Gaussian weights
  return jnp.sum(jax.nn.one_hot(idx, bins.shape[0], dtype=ab.dtype) * weights[..., None], axis=-2)


_WINDOW = 2  # candidates: the 4x4 grid points around each colour's cell


@functools.lru_cache(maxsize=None)
def _bin_index_grid() -> tuple[np.ndarray, float]:
  """(n, n) table: bin index of the grid point (a, b), or -1 where the grid has no bin.

  Padded by _WINDOW cells of -1 on every side so windows never leave the table.
  """
  bins = ab_bins()
  low = float(bins.min()) - _WINDOW * GRID
  size = int(round((float(bins.max()) - low) / GRID)) + 1 + _WINDOW
  table = -np.ones((size, size), np.int32)
  cells = np.round((bins - low) / GRID).astype(np.int32)
  table[cells[:, 0], cells[:, 1]] = np.arange(len(bins))
  return table, low


def soft_encode_sparse(ab: jax.Array, k: int = 5, sigma: float = 5.0) -> tuple[jax.Array, jax.Array]:
  """The soft targets of soft_encode for the shipped 313 bins, as (bin indices, weights), each (..., k).

  Only the 7x7 grid cells around each colour are candidates (a table lookup,
  no search over all 313 bins); for any colour reachable from sRGB the k nearest
  bins always lie among them, which the tests check against soft_encode.
  """
  table, low = _bin_index_grid()
  table = jnp.asarray(table)
  offsets = jnp.arange(-_WINDOW + 1, _WINDOW + 1)
  centre = jnp.floor((ab - low) / GRID).astype(jnp.int32)
  centre = jnp.clip(centre, _WINDOW, table.shape[0] - 1 - _WINDOW)
  ca = centre[..., 0, None, None] + offsets[:, None]  # (..., 7, 1)
  cb = centre[..., 1, None, None] + offsets[None, :]  # (..., 1, 7)
  idx = table[ca, cb].reshape(ab.shape[:-1] + (-1,))
  grid_a = (low + ca * GRID).astype(ab.dtype)
  grid_b = (low + cb * GRID).astype(ab.dtype)
  d2 = ((ab[..., 0, None, None] - grid_a) ** 2 + (ab[..., 1, None, None] - grid_b) ** 2)
  d2 = jnp.where(idx >= 0, d2.reshape(idx.shape), jnp.inf)
  d2, pick = k_smallest(d2, k)
  weights = jax.nn.softmax(-d2 / (2.0 * sigma ** 2), axis=-1)
  return jnp.take_along_axis(idx, pick, axis=-1), weights


def smooth_distribution(prob: np.ndarray, bins: np.ndarray, sigma: float = 5.0) -> np.ndarray:
  """Gaussian smoothing (sigma in ab units) of a distribution over the bins; sums to 1."""
  d2 = ((bins[:, None, :] - bins[None, :, :]) ** 2).sum(-1)
  kernel = np.exp(-d2 / (2.0 * sigma ** 2))
  smoothed = kernel @ prob
  return (smoothed / smoothed.sum()).astype(np.float32)


def empirical_prior(ab_batches, bins: np.ndarray | None = None, sigma: float = 5.0) -> np.ndarray:
  """The smoothed empirical bin distribution p over an iterable of ab arrays (..., 2).

  Feed it the ab channels of a dataset's images (e.g. rgb_to_lab(images)[..., 1:])
  to recompute the rebalancing prior for that dataset.
  """
  bins = ab_bins() if bins is None else np.asarray(bins)
  counts = np.zeros(len(bins), dtype=np.float64)
  for ab in ab_batches:
    idx, _ = nearest_bins(jnp.asarray(ab, jnp.float32).reshape(-1, 2), jnp.asarray(bins), 1)
    counts += np.bincount(np.asarray(idx[:, 0]), minlength=len(bins))
  if counts.sum() == 0:
    raise ValueError("empirical_prior got no ab values; pass at least one non-empty batch.")
  return smooth_distribution(counts / counts.sum(), bins, sigma)


def rebalance_weights(prior: np.ndarray, lam: float = 0.5) -> np.ndarray:
  """w_q proportional to ((1 - lam) p_q + lam / Q)^-1, normalised so that E_p[w] = 1."""
  prior = np.asarray(prior, np.float64)
  w = 1.0 / ((1.0 - lam) * prior + lam / len(prior))
  return (w / np.sum(prior * w)).astype(np.float32)


def annealed_mean(logits: jax.Array, bins: jax.Array, temperature: float = 0.38) -> jax.Array:
  """ab (..., 2) from bin logits (..., Q): the mean of softmax(logits / T).

  T -> 0 gives the mode (vivid but patchy), T = 1 the mean (desaturated);
  0.38 is the paper's compromise.
  """
  return jax.nn.softmax(logits / temperature, axis=-1) @ bins
