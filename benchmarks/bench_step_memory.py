"""Peak host memory of a training step, with sslflax's kept heap (sslflax/hostmem.py) or
glibc's default malloc: a default config's step on one device, on random uint8 images.

  python benchmarks/bench_step_memory.py --model vit_ti --batch 16            # kept heap
  SSLFLAX_MALLOC=default python benchmarks/bench_step_memory.py --model vit_ti --batch 16

Prints the process's peak resident memory (VmHWM) every 5 steps.
"""

from __future__ import annotations

import argparse

from sslflax.hostmem import keep_freed_memory

KEPT = keep_freed_memory()  # False under SSLFLAX_MALLOC=default

import jax
import jax.numpy as jnp
import numpy as np

from sslflax.build import build_run
from sslflax.configpath import load_config
from sslflax.train.loop import data_mesh, init_state, jit_train_step
from sslflax.train.optim import make_optimizer


def peak_resident_mb() -> int:
  with open("/proc/self/status") as f:
    line = next(l for l in f if l.startswith("VmHWM"))
  return int(line.split()[1]) // 1024


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--config", default="rotation")
  parser.add_argument("--model", default="alexnet_bn")
  parser.add_argument("--batch", type=int, default=16)
  parser.add_argument("--size", type=int, default=64)
  parser.add_argument("--steps", type=int, default=21)
  args = parser.parse_args()
  config = load_config(f"configs/{args.config}.py")
  config.model.name, config.pretrain.batch_size = args.model, args.batch
  run = build_run(config)
  mesh = data_mesh(jax.devices()[:1])
  tx = make_optimizer(run.optimizer, 1000, 100)
  state = init_state(run.task, tx, mesh, args.size, 0)
  step = jit_train_step(run.task, tx, mesh, None)
  rng = np.random.default_rng(0)
  images = jnp.asarray(rng.integers(0, 256, (args.batch, args.size, args.size, 3), np.uint8))
  labels = jnp.zeros(args.batch, jnp.int32)
  print(f"{args.config} on {args.model}, batch {args.batch} at {args.size} px, "
        f"{'kept heap' if KEPT else 'default malloc'}")
  for i in range(args.steps):
    state, metrics = step(state, images, labels)
    jax.block_until_ready(metrics)
    if i % 5 == 0:
      print(f"step {i + 1}: peak resident {peak_resident_mb():,} MB", flush=True)


if __name__ == "__main__":
  main()
