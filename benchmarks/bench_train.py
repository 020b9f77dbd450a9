"""Training throughput per task: real data from the input pipeline vs the same step on a
synthetic batch already on the device, so the input pipeline's cost is visible.

  python benchmarks/bench_train.py [--sizes 64,224] [--batch 32] [--steps 10] [--tasks rotation,...]

Real data: the embedded sample's photos through make_dataset (decode, resize,
crop, batch, prefetch) at the given size. The model is the config's AlexNet-BN
(paper widths); images/s counts input images (before rotations or tiles).
"""

from __future__ import annotations

import argparse
import functools
import time

from sslflax.hostmem import keep_freed_memory

keep_freed_memory()  # as the command lines do (sslflax/hostmem.py); before JAX starts its threads

import jax
import jax.numpy as jnp
import optax
from jax.sharding import NamedSharding, PartitionSpec as P

from sslflax import data
from sslflax.models import AlexNetBN
from sslflax.tasks import make_task
from sslflax.train import create_train_state, train_step
from sslflax.train.loop import data_mesh, host_batch


def time_steps(step_fn, state, batches, steps: int) -> tuple[float, object]:
  state, metrics = step_fn(state, *next(batches))  # compile + warm-up
  jax.block_until_ready(metrics)
  start = time.perf_counter()
  for _ in range(steps):
    state, metrics = step_fn(state, *next(batches))
  jax.block_until_ready(metrics)
  return time.perf_counter() - start, state


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--sizes", default="64,224")
  parser.add_argument("--batch", type=int, default=32)
  parser.add_argument("--steps", type=int, default=10)
  parser.add_argument("--tasks", default="rotation,counting,jigsaw,context,colorization,supervised")
  args = parser.parse_args()
  mesh = data_mesh()
  data_sharding, rep = NamedSharding(mesh, P("data")), NamedSharding(mesh, P())
  print(f"device: {jax.devices()[0].device_kind} x{jax.device_count()}, batch {args.batch}, "
        f"{args.steps} timed steps")
  print(f"{'task':<14}{'size':>6}{'real img/s':>12}{'synthetic img/s':>17}{'overhead':>10}")
  for size in map(int, args.sizes.split(",")):
    ds = data.make_dataset(data.SAMPLE_PHOTOS, "train", image_size=size, batch_size=args.batch,
                           train=True, seed=0)
    for name in args.tasks.split(","):
      options = {"num_classes": 6} if name == "supervised" else {}
      task = make_task(name, AlexNetBN(), **options)
      tx = optax.adam(1e-4)
      example = next(ds.as_numpy_iterator())
      state = jax.device_put(create_train_state(jax.random.key(0), task, tx,
                                                jnp.asarray(example["image"]),
                                                jnp.asarray(example["label"])), rep)
      step_fn = jax.jit(functools.partial(train_step, task, tx),
                        in_shardings=(rep, data_sharding, data_sharding),
                        out_shardings=(rep, rep), donate_argnums=0)
      real = (host_batch(b, data_sharding) for b in ds.as_numpy_iterator())
      real_time, state = time_steps(step_fn, state, real, args.steps)
      fixed = host_batch(example, data_sharding)
      synthetic = iter(lambda: fixed, None)
      synth_time, state = time_steps(step_fn, state, synthetic, args.steps)
      n = args.steps * args.batch
      print(f"{name:<14}{size:>6}{n / real_time:>12,.1f}{n / synth_time:>17,.1f}"
            f"{(real_time / synth_time - 1) * 100:>9.1f}%", flush=True)


if __name__ == "__main__":
  main()
