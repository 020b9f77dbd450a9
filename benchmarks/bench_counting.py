"""Where the counting batch builder's time goes (input images/s of each part, jitted).

  python benchmarks/bench_counting.py [--size 224] [--batch 128] [--seconds 3] [--default-malloc]

Counting is the slowest builder at 224 px. This breaks it into its parts and puts three
references beside them: the cubic filter on every image (what the random-filter downsample
would cost if every image paid for the widest filter), converting the batch to float32, and
a floor builder (nearest 2x downsample and tiles in uint8, no colour), the least work any
counting builder can do. --default-malloc shows what sslflax/hostmem.py saves.
"""

from __future__ import annotations

import argparse
import sys
import time

from sslflax.hostmem import keep_freed_memory

if "--default-malloc" not in sys.argv:
  keep_freed_memory()  # as sslflax.main does; before JAX starts its threads

import jax
import jax.numpy as jnp
import numpy as np

from sslflax.tasks.counting import make_counting_batch
from sslflax.transforms.color import (apply_color_affine, jitter_affine, jitter_factors,
                                     mean_luma, quantize, to_float)
from sslflax.transforms.geometry import (downsample_by_2, downsample_random_filter,
                                        quadrant_tiles)


def images_per_second(fn, *args, seconds: float) -> float:
  fn = jax.jit(fn)
  jax.block_until_ready(fn(*args))  # compile
  count, start = 0, time.perf_counter()
  while time.perf_counter() - start < seconds:
    jax.block_until_ready(fn(*args))
    count += 1
  return count * args[-1].shape[0] / (time.perf_counter() - start)


def colour_change(rng, images):
  """The ops make_counting_batch uses for its colour parameters (its key split is left out)."""
  b = images.shape[0]
  gray = jax.random.bernoulli(rng, 0.3, (b,))
  return jitter_affine(jitter_factors(rng, b, 0.4, 0.4, 0.4), mean_luma(images), gray)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--size", type=int, default=224)
  parser.add_argument("--batch", type=int, default=128)
  parser.add_argument("--seconds", type=float, default=3.0)
  parser.add_argument("--default-malloc", action="store_true",
                      help="leave glibc malloc as it is (see sslflax/hostmem.py)")
  args = parser.parse_args()
  rng = jax.random.key(0)
  images = jnp.asarray(np.random.default_rng(0).integers(
      0, 256, (args.batch, args.size, args.size, 3), dtype=np.uint8))
  matrix, offset = jax.jit(colour_change)(rng, images)
  parts = {
      "whole builder": (lambda r, x: make_counting_batch(r, x), rng),
      "random-filter downsample": (downsample_random_filter, rng),
      "colour + tiles (uint8 out)": (
          lambda m, o, x: quadrant_tiles(quantize(apply_color_affine(x, m, o))), matrix, offset),
      "colour parameters": (colour_change, rng),
      "reference: cubic on every image": (lambda x: downsample_by_2(x, "cubic"),),
      "reference: uint8 -> float32": (to_float,),
      "reference: floor builder": (lambda x: (x[:, ::2, ::2], quadrant_tiles(x)),),
  }
  print(f"device: {jax.devices()[0].device_kind} x{jax.device_count()}, "
        f"batch {args.batch}, {args.size} px, "
        f"{'default' if args.default_malloc else 'kept (sslflax.hostmem)'} malloc")
  for name, (fn, *inputs) in parts.items():
    rate = images_per_second(fn, *inputs, images, seconds=args.seconds)
    print(f"{name:<30}{rate:>12,.0f} img/s", flush=True)


if __name__ == "__main__":
  main()
