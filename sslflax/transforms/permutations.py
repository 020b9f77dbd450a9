"""Jigsaw permutation sets with maximal minimum Hamming distance (Noroozi & Favaro 2016).

The greedy algorithm of the paper: start from one random permutation, then
repeatedly add the candidate whose minimum Hamming distance to the chosen set
is largest. Distances are kept as one vector updated per pick, so 1000
permutations of 9 (362,880 candidates) take seconds instead of hours.
"""

from __future__ import annotations

import functools
import itertools
import importlib.resources

import jax.numpy as jnp
import numpy as np

SHIPPED_NUM_ITEMS = 9
SHIPPED_SIZES = (1000,)
SHIPPED_SEED = 0


def all_permutations(num_items: int) -> np.ndarray:
  """Every permutation of range(num_items) in lexicographic order, int8 (n!, num_items)."""
  return np.array(list(itertools.permutations(range(num_items))), dtype=np.int8)


def maximal_hamming_permutations(count: int, num_items: int = 9, seed: int = 0) -> np.ndarray:
  """`count` permutations chosen greedily for maximal minimum Hamming distance.

  Deterministic for (count, num_items, seed). Ties between equally distant
  candidates are broken at random (seeded), as in the paper's 'maximal' set.
  """
  candidates = all_permutations(num_items)
  if not 1 <= count <= len(candidates):
    raise ValueError(f"count must be in [1, {len(candidates)}] for {num_items} items, got {count}.")
  rng = np.random.default_rng(seed)
  chosen = [int(rng.integers(len(candidates)))]
  min_dist = (candidates != candidates[chosen[0]]).sum(axis=1).astype(np.int16)
  for _ in range(count - 1):
    best = np.flatnonzero(min_dist == min_dist.max())
    pick = int(best[rng.integers(len(best))])
    chosen.append(pick)
    np.minimum(min_dist, (candidates != candidates[pick]).sum(axis=1), out=min_dist)
  return candidates[np.array(chosen)].astype(np.int32)


def hamming_stats(perms: np.ndarray) -> dict[str, float]:
  """Minimum and mean pairwise Hamming distance of a permutation set."""
  dist = (perms[:, None, :] != perms[None, :, :]).sum(-1)
  off_diag = dist[~np.eye(len(perms), dtype=bool)]
  return {"min": float(off_diag.min()), "mean": float(off_diag.mean())}


def _shipped_path(count: int):
  return importlib.resources.files("sslflax") / "assets" / f"permutations_{count}.npy"


@functools.lru_cache(maxsize=None)
def load_permutations(count: int = 1000, num_items: int = 9, seed: int = SHIPPED_SEED) -> np.ndarray:
  """The permutation set for a jigsaw task: the shipped file when it matches, else computed.

  Never downloads anything; computing a set of 9 takes a few seconds.
  """
  if num_items == SHIPPED_NUM_ITEMS and seed == SHIPPED_SEED and count in SHIPPED_SIZES:
    with _shipped_path(count).open("rb") as f:
      return np.load(f).astype(np.int32)
  if num_items == SHIPPED_NUM_ITEMS and seed == SHIPPED_SEED and count < max(SHIPPED_SIZES):
    # The greedy set is a prefix-closed sequence: the first `count` picks of a
    # larger run are exactly the run of size `count`.
    return load_permutations(max(SHIPPED_SIZES), num_items, seed)[:count]
  return maximal_hamming_permutations(count, num_items, seed)


def apply_permutation(tiles, perm):
  """Shuffle tiles (B, N, ...) so that position i holds tile perm[b, i]."""
  idx = perm.reshape(perm.shape + (1,) * (tiles.ndim - 2))
  return jnp.take_along_axis(tiles, idx, axis=1)


def invert_permutation(perm):
  """The inverse permutations (B, N) of perm (B, N)."""
  return jnp.argsort(perm, axis=-1)
