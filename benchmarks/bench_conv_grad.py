"""Where a training step's convolution time goes, layer by layer: the default half-width
AlexNet-BN's five convolutions, forward, forward + weight gradient (conv1's case: its input
needs none), forward + both gradients,
each timed as one jitted function on the same random inputs, in four formulations:

- XLA: `lax.conv_general_dilated` and its own gradients (what sslflax ran before issue 29);
- sslflax: `sslflax.models.conv.conv_general_dilated`, what AlexNet-BN runs: XLA's forward
  pass and input gradient, the weight gradient as a few large matrix products on the CPU;
- sliced weight grad: the weight gradient written as one slice of the padded input and one
  matmul per kernel offset (a custom VJP; issue 29's candidate);
- space-to-depth: a strided layer (conv1) as a stride-1 convolution of the input folded into
  stride x stride blocks, the kernel zero-padded to a multiple of the stride (the TPU trick);
  a stride-1 layer runs as XLA;

and PyTorch eager NCHW's (oneDNN) when torch is installed.

  python benchmarks/bench_conv_grad.py                    # 64 px batch 256 (rotation's 64 x 4)
  python benchmarks/bench_conv_grad.py --size 224 --batch 128

Prints milliseconds per call (best of --repeats) and each formulation's largest relative
difference from XLA's weight gradient.
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import time

from sslflax.hostmem import keep_freed_memory

keep_freed_memory()

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from sslflax.models import conv as sslflax_conv

NHWC = ("NHWC", "HWIO", "NHWC")

WIDTHS = (48, 128, 192, 192, 128)
SPECS = [(11, 4, 2), (5, 1, 2), (3, 1, 1), (3, 1, 1), (3, 1, 1)]  # kernel, stride, padding


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def _conv(x: jax.Array, kernel: jax.Array, strides: tuple[int, int],
          padding: tuple[tuple[int, int], ...]) -> jax.Array:
  return lax.conv_general_dilated(x, kernel, strides, padding, dimension_numbers=NHWC)


def _conv_fwd(x, kernel, strides, padding):
  return _conv(x, kernel, strides, padding), (x, kernel)


def weight_gradient(x: jax.Array, g: jax.Array, kernel_hw: tuple[int, int],
                    strides: tuple[int, int], padding: tuple[tuple[int, int], ...]) -> jax.Array:
  """dL/dW (KH, KW, C_in, C_out) of an NHWC/HWIO convolution, from its input x and the output
  gradient g: one slice of the padded input per kernel offset, one matmul each."""
  (kh, kw), (sh, sw) = kernel_hw, strides
  oh, ow = g.shape[1], g.shape[2]
  x_pad = jnp.pad(x, ((0, 0), padding[0], padding[1], (0, 0)))
  rows = []
  for i in range(kh):
    row = []
    for j in range(kw):
      patch = lax.slice(x_pad, (0, i, j, 0),
                        (x.shape[0], i + (oh - 1) * sh + 1, j + (ow - 1) * sw + 1, x.shape[3]),
                        (1, sh, sw, 1))
      row.append(jnp.einsum("bhwi,bhwo->io", patch, g))
    rows.append(jnp.stack(row))
  return jnp.stack(rows)


def _conv_bwd(strides, padding, residuals, g):
  x, kernel = residuals
  _, input_vjp = jax.vjp(
      lambda lhs: lax.conv_general_dilated(lhs, kernel, strides, padding, dimension_numbers=NHWC), x)
  (dx,) = input_vjp(g)
  dw = weight_gradient(x, g, kernel.shape[:2], strides, padding).astype(kernel.dtype)
  return dx, dw


_conv.defvjp(_conv_fwd, _conv_bwd)


def conv_sliced(x, kernel, strides, padding, dimension_numbers=NHWC):
  return _conv(x, kernel, tuple(strides), tuple(map(tuple, padding)))


def conv_space_to_depth(x, kernel, strides, padding, dimension_numbers=NHWC):
  """A stride-s convolution as a stride-1 one over s x s blocks of the input."""
  s, (p, _) = strides[0], padding[0]
  if s == 1:
    return lax.conv_general_dilated(x, kernel, strides, padding, dimension_numbers=NHWC)
  k, (b, h, w, c) = kernel.shape[0], x.shape
  blocks = -(-k // s)
  out_h, out_w = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
  need_h, need_w = s * (out_h - 1) + blocks * s, s * (out_w - 1) + blocks * s
  x = jnp.pad(x, ((0, 0), (p, max(need_h - h - p, 0)), (p, max(need_w - w - p, 0)), (0, 0)))
  x = x[:, :need_h, :need_w].reshape(b, need_h // s, s, need_w // s, s, c)
  x = x.transpose(0, 1, 3, 2, 4, 5).reshape(b, need_h // s, need_w // s, s * s * c)
  kernel = jnp.pad(kernel, ((0, blocks * s - k), (0, blocks * s - k), (0, 0), (0, 0)))
  kernel = kernel.reshape(blocks, s, blocks, s, c, -1).transpose(0, 2, 1, 3, 4, 5)
  kernel = kernel.reshape(blocks, blocks, s * s * c, -1)
  return lax.conv_general_dilated(x, kernel, (1, 1), "VALID", dimension_numbers=NHWC)


FORMULATIONS = {"XLA": lax.conv_general_dilated, "sslflax": sslflax_conv.conv_general_dilated,
                "sliced weight grad": conv_sliced,
                "space-to-depth": conv_space_to_depth}


def layer_shapes(size: int):
  """(input side, C_in, C_out, kernel, stride, pad) of each conv at `size` px."""
  side, channels, shapes = size, 3, []
  for i, (width, (kernel, stride, pad)) in enumerate(zip(WIDTHS, SPECS), start=1):
    shapes.append((side, channels, width, kernel, stride, pad))
    side = (side + 2 * pad - kernel) // stride + 1
    if i in (1, 2):
      side = -(-side // 2)  # 3x3 stride-2 SAME max pool
    channels = width
  return shapes


def best_ms(fn, *args, repeats: int) -> float:
  jax.block_until_ready(fn(*args))
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(fn(*args))
    times.append(time.perf_counter() - start)
  return 1000 * min(times)


def jax_times(conv, x, w, g, stride, pad, repeats):
  pads = ((pad, pad), (pad, pad))
  out = lambda x, w: conv(x, w, (stride, stride), pads, dimension_numbers=NHWC)
  loss = lambda x, w, g: jnp.vdot(out(x, w), g)  # g an argument: XLA folds no constant of it
  forward = jax.jit(out)
  weight_grad = jax.jit(jax.grad(loss, 1))
  both = jax.jit(jax.grad(loss, (0, 1)))
  times = [best_ms(forward, x, w, repeats=repeats)]
  times += [best_ms(f, x, w, g, repeats=repeats) for f in (weight_grad, both)]
  return times, both(x, w, g)[1]


def torch_times(x, w, g, stride, pad, repeats):
  import torch
  xt = torch.tensor(np.asarray(x).transpose(0, 3, 1, 2).copy(), requires_grad=True)
  wt = torch.tensor(np.asarray(w).transpose(3, 2, 0, 1).copy(), requires_grad=True)
  gt = torch.tensor(np.asarray(g).transpose(0, 3, 1, 2).copy())
  conv = lambda: torch.nn.functional.conv2d(xt, wt, stride=stride, padding=pad)

  def timed(fn):
    fn()
    times = []
    for _ in range(repeats):
      start = time.perf_counter()
      fn()
      times.append(time.perf_counter() - start)
    return 1000 * min(times)
  with torch.no_grad():
    forward = timed(conv)
  weight_grad = timed(lambda: torch.autograd.grad(
      torch.nn.functional.conv2d(xt.detach(), wt, stride=stride, padding=pad), wt, gt))
  both = timed(lambda: torch.autograd.grad(conv(), (xt, wt), gt))
  return [forward, weight_grad, both]


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--size", type=int, default=64)
  parser.add_argument("--batch", type=int, default=256)
  parser.add_argument("--repeats", type=int, default=5)
  args = parser.parse_args()
  with_torch = importlib.util.find_spec("torch") is not None
  rng = np.random.default_rng(0)
  print(f"{args.size} px, batch {args.batch}, ms per call (best of {args.repeats}): "
        f"forward / + weight grad / + both grads")
  names = list(FORMULATIONS) + (["PyTorch eager NCHW"] if with_torch else [])
  print(f"{'layer':6} {'shape':26} " + " ".join(f"{n:>20}" for n in names) + "  rel. diff")
  totals = np.zeros((len(names), 3))
  for i, (side, cin, cout, kernel, stride, pad) in enumerate(layer_shapes(args.size), start=1):
    x = jnp.asarray(rng.standard_normal((args.batch, side, side, cin), np.float32))
    w = jnp.asarray(rng.standard_normal((kernel, kernel, cin, cout), np.float32) * 0.05)
    out_side = (side + 2 * pad - kernel) // stride + 1
    g = jnp.asarray(rng.standard_normal((args.batch, out_side, out_side, cout), np.float32))
    rows, grads = [], []
    for conv in FORMULATIONS.values():
      times, dw = jax_times(conv, x, w, g, stride, pad, args.repeats)
      rows.append(times)
      grads.append(dw)
    if with_torch:
      rows.append(torch_times(x, w, g, stride, pad, args.repeats))
    diff = max(float(jnp.max(jnp.abs(dw - grads[0])) / jnp.max(jnp.abs(grads[0])))
               for dw in grads[1:])
    shape = f"{side}px {cin}->{cout} {kernel}x{kernel}/{stride}"
    cells = " ".join(f"{'/'.join(f'{t:.0f}' for t in r):>20}" for r in rows)
    print(f"conv{i:<2} {shape:26} {cells}  {diff:.1e}")
    totals += np.array(rows)
  print("total  " + ", ".join(f"{n}: {'/'.join(f'{t:.0f}' for t in totals[k])}"
                              for k, n in enumerate(names)))
  print_matmul(args.repeats, with_torch)


def print_matmul(repeats: int, with_torch: bool) -> None:
  """A plain float32 matmul of conv1's im2col shape at 224 px and a square one, XLA beside
  PyTorch: how far apart the two are without convolution kernels."""
  rng = np.random.default_rng(0)
  for m, k, n in [(96_800, 363, 48), (4096, 4096, 4096)]:
    a = rng.standard_normal((m, k), np.float32)
    b = rng.standard_normal((k, n), np.float32)
    ms = best_ms(jax.jit(jnp.matmul), jnp.asarray(a), jnp.asarray(b), repeats=repeats)
    line = f"matmul ({m} x {k}) @ ({k} x {n}): XLA {ms:.0f} ms"
    if with_torch:
      import torch
      at, bt = torch.from_numpy(a), torch.from_numpy(b)
      torch.matmul(at, bt)
      times = []
      for _ in range(repeats):
        start = time.perf_counter()
        torch.matmul(at, bt)
        times.append(time.perf_counter() - start)
      line += f", PyTorch {1000 * min(times):.0f} ms"
    print(line)


if __name__ == "__main__":
  main()
