"""Images/s and step time of one device's training step at the paper's size: rotation on
AlexNet-BN (the paper's widths) and ResNet-50, in float32 and bfloat16 (model.compute_dtype).

  python benchmarks/bench_device.py                       # 224 px, batch 128, on device 0
  python benchmarks/bench_device.py --size 64 --batch 16 --steps 3   # a CPU check

The batch is uint8 and already on the device, so this is the step alone (the input
pipeline's own rate: benchmarks/bench_pipeline.py). Images/s counts source images (each
step trains on their 4 rotations). One line per (backbone, dtype): compile seconds, then the
mean step time over --steps steps after one warm-up step.
"""

from __future__ import annotations

import argparse
import time

from sslflax.hostmem import keep_freed_memory

keep_freed_memory()  # as the command lines do (sslflax/hostmem.py); before JAX starts its threads

import jax
import jax.numpy as jnp

from sslflax.build import build_run
from sslflax.configpath import load_config
from sslflax.train.loop import data_mesh, init_state, jit_train_step
from sslflax.train.optim import make_optimizer

BACKBONES = {"alexnet_bn": {"model.widths": (96, 256, 384, 384, 256), "model.fc_width": 4096},
             "resnet50": {"model.name": "resnet50"}}


def measure(backbone: str, dtype: str, size: int, batch: int, steps: int) -> str:
  config = load_config("configs/rotation.py")
  overrides = {**BACKBONES[backbone], "model.compute_dtype": dtype,
               "pretrain.image_size": size, "pretrain.batch_size": batch}
  for path, value in overrides.items():
    group, field = path.split(".")
    config[group][field] = value
  run = build_run(config)
  mesh = data_mesh(jax.devices()[:1])
  tx = make_optimizer(run.optimizer, 1000, 100)
  state = init_state(run.task, tx, mesh, size, 0)
  step = jit_train_step(run.task, tx, mesh, None)
  key = jax.random.key(0)
  images = jax.random.randint(key, (batch, size, size, 3), 0, 256, jnp.int32).astype(jnp.uint8)
  labels = jnp.zeros(batch, jnp.int32)
  start = time.perf_counter()
  state, metrics = step(state, images, labels)  # compiles
  jax.block_until_ready(metrics)
  compile_s = time.perf_counter() - start
  state, metrics = step(state, images, labels)  # warm-up
  jax.block_until_ready(metrics)
  start = time.perf_counter()
  for _ in range(steps):
    state, metrics = step(state, images, labels)
  jax.block_until_ready(metrics)
  per_step = (time.perf_counter() - start) / steps
  return (f"{backbone:11s} {dtype:9s} {size} px batch {batch}: {per_step * 1000:8.1f} ms/step "
          f"{batch / per_step:9.1f} img/s  (first step {compile_s:.1f} s)")


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--size", type=int, default=224)
  parser.add_argument("--batch", type=int, default=128)
  parser.add_argument("--steps", type=int, default=20)
  parser.add_argument("--backbones", default="alexnet_bn,resnet50")
  parser.add_argument("--dtypes", default="float32,bfloat16")
  args = parser.parse_args()
  print(f"device: {jax.devices()[0].device_kind} ({jax.devices()[0].platform}); "
        f"jax {jax.__version__}")
  for backbone in args.backbones.split(","):
    for dtype in args.dtypes.split(","):
      print(measure(backbone, dtype, args.size, args.batch, args.steps), flush=True)


if __name__ == "__main__":
  main()
