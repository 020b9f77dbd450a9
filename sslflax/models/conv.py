"""A convolution whose weight gradient XLA:CPU runs as matrix products (issue 29).

XLA:CPU's own weight-gradient convolution is its slowest kernel: on the default AlexNet-BN
at 224 px it took 47% of a training step (docs/benchmarks.md). The same gradient, written as
a few matrix products over shifted slices of the input, runs at XLA's dot speed (at 224 px
the five layers' weight gradients took 186 ms against XLA's 880) and equals it within
float32 round-off (tests/test_conv.py checks both against a float64 numpy loop). The forward pass and the input gradient stay XLA's. Other platforms (GPU, TPU)
keep XLA's weight gradient: `lax.platform_dependent` picks the branch when the step lowers.

`conv_general_dilated` has lax's signature, so `nn.Conv(conv_general_dilated=...)` takes it.
A case it does not cover (dilation, feature groups, another layout, a padding string) is
handed to `lax.conv_general_dilated` unchanged.
"""

from __future__ import annotations

import functools
from typing import Sequence

import jax
import jax.numpy as jnp
from jax import lax

NHWC = ("NHWC", "HWIO", "NHWC")
Padding = tuple[tuple[int, int], tuple[int, int]]


def conv_general_dilated(lhs: jax.Array, rhs: jax.Array, window_strides: Sequence[int],
                         padding, lhs_dilation=None, rhs_dilation=None,
                         dimension_numbers=None, feature_group_count: int = 1,
                         precision=None, **kwargs) -> jax.Array:
  """lax.conv_general_dilated, with the matmul weight gradient where it applies."""
  plain = (_is_nhwc(dimension_numbers) and feature_group_count == 1 and not kwargs
           and all(d in (None, 1) for d in tuple(lhs_dilation or ()) + tuple(rhs_dilation or ()))
           and not isinstance(padding, str) and lhs.ndim == 4)
  if not plain:
    return lax.conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation,
                                    rhs_dilation, dimension_numbers, feature_group_count,
                                    precision=precision, **kwargs)
  pads = tuple((int(lo), int(hi)) for lo, hi in padding)
  return _conv(lhs, rhs, tuple(int(s) for s in window_strides), pads, precision)


def _is_nhwc(dimension_numbers) -> bool:
  if dimension_numbers is None:
    return False
  if isinstance(dimension_numbers, lax.ConvDimensionNumbers):
    return dimension_numbers == lax.conv_dimension_numbers((1, 1, 1, 1), (1, 1, 1, 1), NHWC)
  return tuple(dimension_numbers) == NHWC


def _xla_conv(x, kernel, strides, padding, precision):
  return lax.conv_general_dilated(x, kernel, strides, padding, dimension_numbers=NHWC,
                                  precision=precision)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4))
def _conv(x: jax.Array, kernel: jax.Array, strides: tuple[int, int], padding: Padding,
          precision) -> jax.Array:
  return _xla_conv(x, kernel, strides, padding, precision)


def _conv_fwd(x, kernel, strides, padding, precision):
  return _xla_conv(x, kernel, strides, padding, precision), (x, kernel)


def _conv_bwd(strides, padding, precision, residuals, g):
  x, kernel = residuals
  _, vjp = jax.vjp(lambda x, k: _xla_conv(x, k, strides, padding, precision), x, kernel)

  def by_xla(x, g):
    return vjp(g)

  def by_matmul(x, g):
    dx, _ = vjp(g)  # XLA drops the weight gradient it does not use
    with jax.named_scope("weight_grad"):  # what benchmarks/profile_step.py reports it as
      dw = weight_gradient(x, g, kernel.shape[:2], strides, padding, precision)
    return dx, dw.astype(kernel.dtype)

  return lax.platform_dependent(x, g, cpu=by_matmul, default=by_xla)


_conv.defvjp(_conv_fwd, _conv_bwd)


def weight_gradient(x: jax.Array, g: jax.Array, kernel_hw: tuple[int, int],
                    strides: tuple[int, int], padding: Padding, precision=None) -> jax.Array:
  """dL/dW (KH, KW, C_in, C_out) of an NHWC/HWIO convolution from its input x (B, H, W, C_in)
  and output gradient g (B, OH, OW, C_out), as matrix products over all M = B * OH * OW
  output positions.

  A stride-s layer is first folded into s x s blocks (space-to-depth), which makes it a
  stride-1 layer of a kernel ceil(k / s) blocks wide. Its kernel-column offsets are laid side
  by side in the channels ("columns"); each kernel-row offset i then pairs block row y + i of
  the columns with output row y. A stride-1 layer takes one product per row offset, over a
  shifted slice of the columns; a strided one (AlexNet's conv1) shifts g instead and takes a
  single product. Each form was the faster for its layers at 64 and 224 px
  (docs/benchmarks.md).
  """
  (kh, kw), (sh, sw) = kernel_hw, strides
  b, oh, ow, c_out = g.shape
  c_in = x.shape[3]
  bh, bw = -(-kh // sh), -(-kw // sw)  # kernel size in blocks
  need_h, need_w = sh * (oh - 1 + bh), sw * (ow - 1 + bw)  # padded input the blocks cover
  (top, _), (left, _) = padding
  x = jnp.pad(x, ((0, 0), (top, max(need_h - x.shape[1] - top, 0)),
                  (left, max(need_w - x.shape[2] - left, 0)), (0, 0)))[:, :need_h, :need_w]
  x = x.reshape(b, need_h // sh, sh, need_w // sw, sw, c_in).transpose(0, 1, 3, 2, 4, 5)
  x = x.reshape(b, need_h // sh, need_w // sw, sh * sw * c_in)
  columns = jnp.concatenate([x[:, :, j:j + ow] for j in range(bw)], axis=-1)
  if sh == 1:
    g_t = g.reshape(-1, c_out).T
    rows = [jnp.matmul(g_t, columns[:, i:i + oh].reshape(g_t.shape[1], -1), precision=precision)
            for i in range(bh)]  # each (C_out, bw * sw * C_in)
    dw = jnp.stack(rows).reshape(bh, c_out, bw, sh, sw, c_in).transpose(0, 3, 2, 4, 5, 1)
  else:
    shifted = jnp.concatenate([jnp.pad(g, ((0, 0), (i, bh - 1 - i), (0, 0), (0, 0)))
                               for i in range(bh)], axis=-1)  # (B, need_h / sh, OW, bh * C_out)
    dw = jnp.matmul(columns.reshape(-1, columns.shape[-1]).T,
                    shifted.reshape(-1, shifted.shape[-1]), precision=precision)
    dw = dw.reshape(bw, sh, sw, c_in, bh, c_out).transpose(4, 1, 0, 2, 3, 5)
  return dw.reshape(bh * sh, bw * sw, c_in, c_out)[:kh, :kw]
