"""sslflax's training step beside the same step in plain PyTorch (eager, NCHW), alternating
in one process, on the default half-width AlexNet-BN (48-128-192-192-128, fc 1024 with BN).

  rotation: all four rotations of each image, cross-entropy, Adam (dropout 0.5 in the fc's).
  simclr:   two views of each image through the net and the projection MLP (1024-1024-128),
            NT-Xent at t = 0.5, LARS (configs/simclr.py's default). PyTorch frameworks make the
            views in DataLoader workers, outside the step, so PyTorch's step takes ready views;
            sslflax's is timed both ways: its real step (views made on device, inside the
            jitted step) and on the same ready views ("ready views").

  python benchmarks/bench_vs_torch.py                       # both tasks; 64 px batch 64, 224 px batch 32
  python benchmarks/bench_vs_torch.py --tasks simclr --sizes 64 --batches 64 --rounds 3 --steps 5
  python benchmarks/bench_vs_torch.py --tasks rotation --compute-dtype bfloat16  # sslflax in bf16
  python benchmarks/bench_vs_torch.py --tasks rotation --xla-weight-gradient  # also the step
      # with XLA's own conv weight gradients, as before sslflax/models/conv.py

torch is optional (pip install torch; never in CI): without it the script prints sslflax's
figures and how to get the comparison. Images/s counts source images (x4 rotations or x2
views trained).
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import time
from unittest import mock

from sslflax.hostmem import keep_freed_memory

keep_freed_memory()  # as the command lines do; before JAX starts its threads

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from sslflax.build import build_run
from sslflax.configpath import load_config
from sslflax.train.loop import data_mesh, init_state, jit_train_step
from sslflax.train.optim import make_optimizer


def jax_stepper(size: int, batch: int, with_hlo: bool = False, task: str = "rotation",
                ready_views: bool = False, compute_dtype: str = "float32"):
  """n -> runs n default steps of `task`; with_hlo: also the compiled step's HLO text.
  ready_views (simclr): the step takes its two views ready-made, as PyTorch's does."""
  config = load_config(f"configs/{task}.py")
  config.pretrain.image_size, config.pretrain.batch_size = size, batch
  config.model.compute_dtype = compute_dtype
  run = build_run(config)
  mesh = data_mesh(jax.devices()[:1])
  tx = make_optimizer(run.optimizer, 1000, 100)
  state = init_state(run.task, tx, mesh, size, 0)
  images = jnp.asarray(np.random.default_rng(0).integers(0, 256, (batch, size, size, 3), np.uint8))
  task_ = run.task
  if ready_views:  # the views image-major, as make_view_batch returns them
    images = jnp.repeat(images, 2, axis=0)
    task_ = dataclasses.replace(task_, make_batch=lambda rng, views, labels=None: (views, None))
  step = jit_train_step(task_, tx, mesh, None)
  labels = jnp.zeros(len(images), jnp.int32)
  holder = [state]

  def steps(n: int) -> None:
    for _ in range(n):
      holder[0], metrics = step(holder[0], images, labels)
    jax.block_until_ready(metrics)
  steps(2)  # compile and warm up
  if with_hlo:
    return steps, step.lower(holder[0], images, labels).compile().as_text()
  return steps


def torch_alexnet(dropout: float):
  """The default half-width AlexNet-BN up to fc7 (1024, BN, ReLU), as sslflax's alexnet_bn."""
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
    layers += [nn.Linear(features, fc, bias=False), nn.BatchNorm1d(fc), nn.ReLU(inplace=True)]
    if dropout:
      layers.append(nn.Dropout(dropout))
    features = fc
  return nn.Sequential(*layers)


def torch_lars(params, lr: float, momentum: float = 0.9, weight_decay: float = 1e-6,
               trust: float = 0.001):
  """-> step(): LARS as optax.lars with kernels only (sslflax's lars_kernels_only): kernels
  get weight decay and the trust ratio, 1-D parameters plain momentum steps."""
  import torch
  buffers = [torch.zeros_like(p) for p in params]

  @torch.no_grad()
  def step() -> None:
    for p, buf in zip(params, buffers):
      g = p.grad
      if p.ndim > 1:
        g = g + weight_decay * p
        w_norm, g_norm = torch.linalg.norm(p), torch.linalg.norm(g)
        g = g * torch.where((w_norm > 0) & (g_norm > 0), trust * w_norm / g_norm, 1.0)
      buf.mul_(momentum).add_(g)
      p.sub_(lr * buf)
  return step


def torch_stepper(size: int, batch: int, task: str = "rotation"):
  import torch
  from torch import nn
  mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1) * 255
  std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1) * 255
  if task == "rotation":
    model = nn.Sequential(torch_alexnet(0.5), nn.Linear(1024, 4))
    optimizer = torch.optim.Adam(model.parameters(), 1e-3)
    images = torch.randint(0, 256, (batch, 3, size, size), dtype=torch.uint8)
    labels = torch.arange(4).repeat_interleave(batch)

    def one_step() -> None:
      x = (images.float() - mean) / std
      x = torch.cat([torch.rot90(x, k, (2, 3)) for k in range(4)])
      loss = nn.functional.cross_entropy(model(x), labels)
      optimizer.zero_grad(set_to_none=True)
      loss.backward()
      optimizer.step()
  else:  # simclr, on ready views, image-major (rows 2i and 2i + 1: image i's views)
    model = nn.Sequential(torch_alexnet(0.0), nn.Linear(1024, 1024, bias=False),
                          nn.BatchNorm1d(1024), nn.ReLU(inplace=True), nn.Linear(1024, 128))
    params = list(model.parameters())
    lars_step = torch_lars(params, 0.1)
    views = torch.randint(0, 256, (2 * batch, 3, size, size), dtype=torch.uint8)
    positive = torch.arange(2 * batch) ^ 1
    eye = torch.eye(2 * batch, dtype=torch.bool)

    def one_step() -> None:
      z = nn.functional.normalize(model((views.float() - mean) / std), dim=1)
      logits = (z @ z.T / 0.5).masked_fill(eye, float("-inf"))
      loss = 2.0 * nn.functional.cross_entropy(logits, positive)
      for p in params:
        p.grad = None
      loss.backward()
      lars_step()

  def steps(n: int) -> None:
    for _ in range(n):
      one_step()
  steps(2)
  return steps


def rate(steps, n: int, batch: int) -> float:
  start = time.perf_counter()
  steps(n)
  return n * batch / (time.perf_counter() - start)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--tasks", default="rotation,simclr")
  parser.add_argument("--sizes", default="64,224")
  parser.add_argument("--batches", default="64,32")
  parser.add_argument("--rounds", type=int, default=3)
  parser.add_argument("--steps", type=int, default=5)
  parser.add_argument("--compute-dtype", default="float32", choices=("float32", "bfloat16"),
                      help="sslflax's model.compute_dtype (PyTorch's step stays float32)")
  parser.add_argument("--xla-weight-gradient", action="store_true",
                      help="also time sslflax's step with XLA's own conv weight gradients")
  args = parser.parse_args()
  tasks = args.tasks.split(",")
  if not set(tasks) <= {"rotation", "simclr"}:
    parser.error(f"--tasks={args.tasks}: each task must be rotation or simclr")
  has_torch = importlib.util.find_spec("torch") is not None
  if has_torch:
    import torch
    print(f"torch {torch.__version__} ({torch.get_num_threads()} threads) beside jax "
          f"{jax.__version__} on {jax.devices()[0].device_kind}")
  else:
    print("torch is not installed: sslflax's figures only (pip install torch for the "
          "side-by-side comparison; it is optional and never used in CI)")
  for task in tasks:
    for size, batch in zip(map(int, args.sizes.split(",")), map(int, args.batches.split(","))):
      dtype = args.compute_dtype
      contenders = {"sslflax": jax_stepper(size, batch, task=task, compute_dtype=dtype)}
      if args.xla_weight_gradient:  # the step traced with lax's convolution in AlexNet-BN
        with mock.patch("sslflax.models.alexnet.conv_general_dilated", lax.conv_general_dilated):
          contenders["sslflax XLA wgrad"] = jax_stepper(size, batch, task=task, compute_dtype=dtype)
      if task == "simclr":
        contenders["sslflax ready views"] = jax_stepper(size, batch, task=task, ready_views=True,
                                                        compute_dtype=dtype)
      if has_torch:
        contenders["PyTorch eager NCHW"] = torch_stepper(size, batch, task)
      for steps in contenders.values():  # an untimed round: the heap's first pages fault in
        steps(args.steps)
      for round_ in range(1, args.rounds + 1):
        rates = {name: rate(steps, args.steps, batch) for name, steps in contenders.items()}
        line = f"{task} {size} px batch {batch} round {round_}: " + "  ".join(
            f"{name} {value:7.1f} img/s" for name, value in rates.items())
        if has_torch:
          theirs = rates["PyTorch eager NCHW"]
          line += "  ratio " + ", ".join(f"{value / theirs:.2f}x" for name, value in rates.items()
                                         if name != "PyTorch eager NCHW")
        print(line, flush=True)


if __name__ == "__main__":
  main()
