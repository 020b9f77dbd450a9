"""Throughput of every task's jitted batch builder (input images per second).

  python benchmarks/bench_transforms.py [--sizes 64,224] [--batch 128] [--seconds 3] [--default-malloc]

Images are uint8, already on the device, as the training step receives them;
the timing covers the whole jitted builder (augmentations, tiles, masks, Lab,
soft-encoding), with compilation excluded.
"""

from __future__ import annotations

import argparse
import sys
import time

from sslflax.hostmem import keep_freed_memory

if "--default-malloc" not in sys.argv:
  keep_freed_memory()  # as the command lines do (sslflax/hostmem.py); before JAX starts threads

import jax
import jax.numpy as jnp
import numpy as np

from sslflax.models import AlexNetBN
from sslflax.tasks import make_task, registered_tasks


def images_per_second(make_batch, images, labels, seconds: float) -> float:
  """Input images/s of make_batch, jitted with its key folded in from the step, as the
  train step does (sslflax/train/step.py), so the timing includes no eager dispatch."""
  @jax.jit
  def build(step, images, labels):
    return make_batch(jax.random.fold_in(jax.random.key(0), step), images, labels)

  jax.block_until_ready(build(0, images, labels))  # compile
  count, start = 0, time.perf_counter()
  while time.perf_counter() - start < seconds:
    jax.block_until_ready(build(count, images, labels))
    count += 1
  return count * images.shape[0] / (time.perf_counter() - start)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--sizes", default="64,224")
  parser.add_argument("--batch", type=int, default=128)
  parser.add_argument("--seconds", type=float, default=3.0)
  parser.add_argument("--tasks", default=",".join(registered_tasks()))
  parser.add_argument("--default-malloc", action="store_true",
                      help="leave glibc malloc as it is (see sslflax/hostmem.py)")
  args = parser.parse_args()
  print(f"device: {jax.devices()[0].device_kind} x{jax.device_count()}, batch {args.batch}")
  print(f"{'task':<14}" + "".join(f"{s:>6} px img/s" for s in map(int, args.sizes.split(","))))
  rng = np.random.default_rng(0)
  for name in args.tasks.split(","):
    task = make_task(name, AlexNetBN())
    row = f"{name:<14}"
    for size in map(int, args.sizes.split(",")):
      images = jnp.asarray(rng.integers(0, 256, (args.batch, size, size, 3), dtype=np.uint8))
      labels = jnp.zeros((args.batch,), jnp.int32)
      rate = images_per_second(task.make_batch, images, labels, args.seconds)
      row += f"{rate:>15,.0f}"
    print(row, flush=True)


if __name__ == "__main__":
  main()
