"""sslflax's rotation step beside the same step in plain PyTorch (eager, NCHW), alternating
in one process, on the default half-width AlexNet-BN (48-128-192-192-128, fc 1024 with BN and
dropout), all four rotations of each image, cross-entropy and Adam.

  python benchmarks/bench_vs_torch.py                       # 64 px batch 64, 224 px batch 32
  python benchmarks/bench_vs_torch.py --sizes 64 --batches 64 --rounds 3 --steps 5

torch is optional (pip install torch; never in CI): without it the script prints sslflax's
figures and how to get the comparison. Images/s counts source images (x4 rotations trained).
"""

from __future__ import annotations

import argparse
import importlib.util
import time

from sslflax.hostmem import keep_freed_memory

keep_freed_memory()  # as the command lines do; before JAX starts its threads

import jax
import jax.numpy as jnp
import numpy as np

from sslflax.build import build_run
from sslflax.configpath import load_config
from sslflax.train.loop import data_mesh, init_state, jit_train_step
from sslflax.train.optim import make_optimizer


def jax_stepper(size: int, batch: int, with_hlo: bool = False):
  """n -> runs n default rotation steps; with_hlo: also the compiled step's HLO text."""
  config = load_config("configs/rotation.py")
  config.pretrain.image_size, config.pretrain.batch_size = size, batch
  run = build_run(config)
  mesh = data_mesh(jax.devices()[:1])
  tx = make_optimizer(run.optimizer, 1000, 100)
  state = init_state(run.task, tx, mesh, size, 0)
  step = jit_train_step(run.task, tx, mesh, None)
  images = jnp.asarray(np.random.default_rng(0).integers(0, 256, (batch, size, size, 3), np.uint8))
  labels = jnp.zeros(batch, jnp.int32)
  holder = [state]

  def steps(n: int) -> None:
    for _ in range(n):
      holder[0], metrics = step(holder[0], images, labels)
    jax.block_until_ready(metrics)
  steps(2)  # compile and warm up
  if with_hlo:
    return steps, step.lower(holder[0], images, labels).compile().as_text()
  return steps


def torch_stepper(size: int, batch: int):
  import torch
  from torch import nn
  widths, fc = (48, 128, 192, 192, 128), 1024
  specs = [(11, 4, 2), (5, 1, 2), (3, 1, 1), (3, 1, 1), (3, 1, 1)]
  layers, channels = [], 3
  for i, (width, (kernel, stride, pad)) in enumerate(zip(widths, specs), start=1):
    layers += [nn.Conv2d(channels, width, kernel, stride, pad, bias=False),
               nn.BatchNorm2d(width), nn.ReLU(inplace=True)]
    if i in (1, 2, 5):
      layers.append(nn.MaxPool2d(3, 2, padding=1))
    channels = width
  layers += [nn.AdaptiveAvgPool2d(6), nn.Flatten()]
  features = channels * 36
  for _ in range(2):
    layers += [nn.Linear(features, fc, bias=False), nn.BatchNorm1d(fc), nn.ReLU(inplace=True),
               nn.Dropout(0.5)]
    features = fc
  model = nn.Sequential(*layers, nn.Linear(fc, 4))
  optimizer = torch.optim.Adam(model.parameters(), 1e-3)
  mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1) * 255
  std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1) * 255
  images = torch.randint(0, 256, (batch, 3, size, size), dtype=torch.uint8)
  labels = torch.arange(4).repeat_interleave(batch)

  def steps(n: int) -> None:
    for _ in range(n):
      x = (images.float() - mean) / std
      x = torch.cat([torch.rot90(x, k, (2, 3)) for k in range(4)])
      loss = nn.functional.cross_entropy(model(x), labels)
      optimizer.zero_grad(set_to_none=True)
      loss.backward()
      optimizer.step()
  steps(2)
  return steps


def rate(steps, n: int, batch: int) -> float:
  start = time.perf_counter()
  steps(n)
  return n * batch / (time.perf_counter() - start)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--sizes", default="64,224")
  parser.add_argument("--batches", default="64,32")
  parser.add_argument("--rounds", type=int, default=3)
  parser.add_argument("--steps", type=int, default=5)
  args = parser.parse_args()
  has_torch = importlib.util.find_spec("torch") is not None
  if has_torch:
    import torch
    print(f"torch {torch.__version__} ({torch.get_num_threads()} threads) beside jax "
          f"{jax.__version__} on {jax.devices()[0].device_kind}")
  else:
    print("torch is not installed: sslflax's figures only (pip install torch for the "
          "side-by-side comparison; it is optional and never used in CI)")
  for size, batch in zip(map(int, args.sizes.split(",")), map(int, args.batches.split(","))):
    ours = jax_stepper(size, batch)
    theirs = torch_stepper(size, batch) if has_torch else None
    for round_ in range(1, args.rounds + 1):
      line = f"{size} px batch {batch} round {round_}: sslflax {rate(ours, args.steps, batch):7.1f} img/s"
      if theirs is not None:
        jax_rate = float(line.split("sslflax")[1].split()[0])
        torch_rate = rate(theirs, args.steps, batch)
        line += f"  PyTorch eager NCHW {torch_rate:7.1f} img/s  ratio {jax_rate / torch_rate:.2f}x"
      print(line, flush=True)


if __name__ == "__main__":
  main()
