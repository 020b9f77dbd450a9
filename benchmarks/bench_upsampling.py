"""Why the decoders use UpConv2x: forward and gradient time of a 4x4 stride-2 transposed
convolution against the sub-pixel convolution that represents it exactly, at the size of
colorization's decoder in the default config (batch 64, 8x8x128 -> 16x16x128).

  python benchmarks/bench_upsampling.py [--batch 64] [--repeats 10]
"""

from __future__ import annotations

import argparse
import time

from sslflax.hostmem import keep_freed_memory

keep_freed_memory()  # as the command lines do; before JAX starts its threads

import flax.linen as nn  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from sslflax.models import UpConv2x  # noqa: E402


def milliseconds(fn, *args, repeats: int) -> float:
  fn = jax.jit(fn)
  jax.block_until_ready(fn(*args))  # compile
  start = time.perf_counter()
  for _ in range(repeats):
    out = fn(*args)
  jax.block_until_ready(out)
  return (time.perf_counter() - start) / repeats * 1000


def main() -> None:
  parser = argparse.ArgumentParser()
  parser.add_argument("--batch", type=int, default=64)
  parser.add_argument("--repeats", type=int, default=10)
  args = parser.parse_args()
  x = jax.random.normal(jax.random.key(0), (args.batch, 8, 8, 128))
  for name, layer in (("ConvTranspose 4x4 stride 2", nn.ConvTranspose(128, (4, 4), (2, 2),
                                                                      use_bias=False)),
                      ("UpConv2x (3x3 conv + depth-to-space)", UpConv2x(128))):
    params = layer.init(jax.random.key(1), x)
    forward = milliseconds(lambda p, x: layer.apply(p, x), params, x, repeats=args.repeats)
    gradient = milliseconds(lambda p, x: jax.grad(lambda p: layer.apply(p, x).sum())(p), params, x,
                            repeats=args.repeats)
    print(f"{name:<40} forward {forward:7.1f} ms   gradient {gradient:7.1f} ms   "
          f"({jax.devices()[0].platform})")


if __name__ == "__main__":
  main()
