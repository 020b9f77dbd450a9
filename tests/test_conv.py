"""sslflax.models.conv: the matmul weight gradient against a numpy loop and XLA's own."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from sslflax.models.conv import NHWC, conv_general_dilated, weight_gradient


def numpy_weight_gradient(x, g, kernel_hw, strides, padding):
  """dW[i, j, c, o] = sum over b, y, x of padded_x[b, s*y + i, s*x + j, c] * g[b, y, x, o]."""
  (kh, kw), (sh, sw) = kernel_hw, strides
  x = np.pad(x.astype(np.float64), ((0, 0), padding[0], padding[1], (0, 0)))
  oh, ow = g.shape[1:3]
  dw = np.zeros((kh, kw, x.shape[3], g.shape[3]))
  for i in range(kh):
    for j in range(kw):
      patch = x[:, i:i + sh * (oh - 1) + 1:sh, j:j + sw * (ow - 1) + 1:sw]
      dw[i, j] = np.einsum("bhwc,bhwo->co", patch, g.astype(np.float64))
  return dw


# AlexNet's conv1 (11x11/4) and conv2 (5x5/1), a kernel the stride does not divide, and
# uneven padding and strides.
CASES = [((11, 11), (4, 4), ((2, 2), (2, 2)), 35), ((5, 5), (1, 1), ((2, 2), (2, 2)), 9),
         ((3, 3), (2, 2), ((1, 1), (1, 1)), 10), ((3, 2), (1, 2), ((0, 2), (1, 0)), 8)]


@pytest.mark.parametrize("kernel_hw,strides,padding,side", CASES)
def test_weight_gradient_matches_a_numpy_loop_and_xla(kernel_hw, strides, padding, side):
  kx, kw_, kg = jax.random.split(jax.random.key(0), 3)
  x = jax.random.normal(kx, (3, side, side + 1, 4))
  kernel = jax.random.normal(kw_, kernel_hw + (4, 5))
  out = lax.conv_general_dilated(x, kernel, strides, padding, dimension_numbers=NHWC)
  g = jax.random.normal(kg, out.shape)
  ours = np.asarray(jax.jit(weight_gradient, static_argnums=(2, 3, 4))(x, g, kernel_hw, strides, padding))
  oracle = numpy_weight_gradient(np.asarray(x), np.asarray(g), kernel_hw, strides, padding)
  np.testing.assert_allclose(ours, oracle, rtol=1e-5, atol=1e-4)
  xla = jax.vjp(lambda k: lax.conv_general_dilated(x, k, strides, padding, dimension_numbers=NHWC),
                kernel)[1](g)[0]
  np.testing.assert_allclose(ours, np.asarray(xla), rtol=1e-5, atol=1e-4)


def test_conv_has_laxs_outputs_and_gradients_inside_a_flax_conv():
  x = jax.random.normal(jax.random.key(1), (2, 20, 20, 3))
  ours = nn.Conv(6, (11, 11), strides=4, padding=2, use_bias=False,
                 conv_general_dilated=conv_general_dilated)
  plain = nn.Conv(6, (11, 11), strides=4, padding=2, use_bias=False)
  variables = plain.init(jax.random.key(2), x)
  loss = lambda model: lambda v, x: jnp.sum(jnp.sin(model.apply(v, x)))
  np.testing.assert_allclose(ours.apply(variables, x), plain.apply(variables, x), rtol=1e-6)
  grads_ours = jax.jit(jax.grad(loss(ours), argnums=(0, 1)))(variables, x)
  grads_plain = jax.jit(jax.grad(loss(plain), argnums=(0, 1)))(variables, x)
  for a, b in zip(jax.tree.leaves(grads_ours), jax.tree.leaves(grads_plain)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def test_a_case_it_does_not_cover_goes_to_lax_unchanged():
  x = jax.random.normal(jax.random.key(3), (1, 9, 9, 4))
  kernel = jax.random.normal(jax.random.key(4), (3, 3, 2, 4))
  args = dict(window_strides=(1, 1), padding="SAME", rhs_dilation=(2, 2),
              dimension_numbers=NHWC, feature_group_count=2)
  np.testing.assert_array_equal(conv_general_dilated(x, kernel, **args),
                                lax.conv_general_dilated(x, kernel, **args))
