"""The scattering transform (Mallat 2012; Oyallon et al. 2017) as a fixed first stage, and
the hybrid backbone that trains convolutions above it.

`scattering2d` computes what kymatio's Scattering2D(J, shape, L, max_order=2) does, in pure
JAX: Morlet wavelets at J scales and L angles, applied in Fourier after a reflect padding,
modulus, second order for j2 > j1, each coefficient averaged by a Gaussian low-pass and
subsampled by 2^J. For J = 2, L = 8 that is 1 + J L + L^2 J (J - 1) / 2 = 81 channels per
input channel at a quarter of the resolution. tests/test_scattering.py compares it with
kymatio's numpy frontend (a stored output).

`ScatterNet` (model.name='scattering'): scattering of each colour channel (3 x 81 maps) ->
per-channel BatchNorm (Oyallon et al.'s hybrid nets normalise the coefficients) -> 3x3 conv
layers (widths model.widths[2:], BN, ReLU; AlexNet's conv3..conv5) -> global pool. Taps:
'scattering' (the fixed transform, after BN's running statistics, which a probe's own
standardisation makes irrelevant), conv3, conv4, conv5. Freeze layer 1 keeps the transform
(it has no parameters but its BN) and fine-tunes the convolutions above it, Asano et al.'s
comparison with a network's first two layers.
"""

from __future__ import annotations

import functools
import re
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from sslflax.models.registry import Backbone, register_backbone, side_for_features
from sslflax.transforms.color import to_float


def padded_size(size: int, J: int) -> int:
  """kymatio's compute_padding: the next multiple of 2^J with at least 2^J of margin."""
  return ((size + 2 ** J) // 2 ** J + 1) * 2 ** J


def gabor_2d(M: int, N: int, sigma: float, theta: float, xi: float, slant: float = 1.0) -> np.ndarray:
  """A Gabor filter on an M x N grid, periodised over 5 x 5 copies: a Gaussian envelope of
  width sigma elongated by 1 / slant across theta, times a wave of frequency xi along theta."""
  rotation = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]], np.float32)
  curvature = rotation @ np.diag([1.0, slant * slant]) @ rotation.T / (2 * sigma * sigma)
  out = np.zeros((M, N), np.complex64)
  for ex in range(-2, 3):
    for ey in range(-2, 3):
      xx, yy = np.mgrid[ex * M:M + ex * M, ey * N:N + ey * N]
      arg = (-(curvature[0, 0] * xx * xx + (curvature[0, 1] + curvature[1, 0]) * xx * yy
               + curvature[1, 1] * yy * yy)
             + 1j * (xx * xi * np.cos(theta) + yy * xi * np.sin(theta)))
      out += np.exp(arg)
  return out / (2 * 3.1415 * sigma * sigma / slant)  # kymatio's constant, 3.1415


def morlet_2d(M: int, N: int, sigma: float, theta: float, xi: float, slant: float) -> np.ndarray:
  """A Gabor filter minus its envelope times the constant that gives it zero mean."""
  wave = gabor_2d(M, N, sigma, theta, xi, slant)
  envelope = gabor_2d(M, N, sigma, theta, 0.0, slant)
  return wave - np.sum(wave) / np.sum(envelope) * envelope


def periodize(filter_hat: np.ndarray, res: int) -> np.ndarray:
  """A Fourier filter for a signal subsampled by 2^res: its band beyond the new Nyquist
  zeroed, then the 2^res x 2^res copies folded onto the smaller grid (summed)."""
  M, N = filter_hat.shape
  k = 2 ** res
  mask = np.ones((M, N), np.float32)
  mask[int(M * 2 ** (-res - 1)):int(M * 2 ** (-res - 1)) + int(M * (1 - 2 ** -res)), :] = 0
  mask[:, int(N * 2 ** (-res - 1)):int(N * 2 ** (-res - 1)) + int(N * (1 - 2 ** -res))] = 0
  masked = filter_hat * mask
  return masked.reshape(k, M // k, k, N // k).sum(axis=(0, 2))


@functools.lru_cache(maxsize=8)
def filter_bank(M: int, N: int, J: int, L: int):
  """({(j, theta): [filter at resolution 0, 1, ..]}, [phi at resolution 0..J-1]), in Fourier,
  real, for a padded M x N input (kymatio's filter_bank)."""
  psi = {}
  for j in range(J):
    for theta in range(L):
      wavelet = morlet_2d(M, N, 0.8 * 2 ** j, (int(L - L / 2 - 1) - theta) * np.pi / L,
                          3.0 / 4.0 * np.pi / 2 ** j, 4.0 / L)
      hat = np.real(np.fft.fft2(wavelet))
      psi[(j, theta)] = [periodize(hat, res) for res in range(min(j + 1, max(J - 1, 1)))]
  phi_hat = np.real(np.fft.fft2(gabor_2d(M, N, 0.8 * 2 ** (J - 1), 0.0, 0.0)))
  phi = [periodize(phi_hat, res) for res in range(J)]
  return psi, phi


def subsample_fourier(x: jax.Array, k: int) -> jax.Array:
  """The Fourier transform of x subsampled by k in space: its k x k copies averaged."""
  *lead, M, N = x.shape
  return x.reshape(*lead, k, M // k, k, N // k).mean(axis=(-4, -2))


def scattering2d(x: jax.Array, J: int = 2, L: int = 8) -> jax.Array:
  """(..., M, N) real -> (..., 1 + J L + L^2 J (J - 1) / 2, M / 2^J, N / 2^J): order 0, the
  J L first-order coefficients (j-major, then theta), then the second-order ones (j1, theta1,
  j2 > j1, theta2), in kymatio's order. M and N must be multiples of 2^J."""
  M, N = x.shape[-2:]
  if M % 2 ** J or N % 2 ** J:
    raise ValueError(f"scattering: {M} x {N} input must be a multiple of 2^J = {2 ** J}.")
  Mp, Np = padded_size(M, J), padded_size(N, J)
  psi, phi = filter_bank(Mp, Np, J, L)
  top, left = (Mp - M) // 2, (Np - N) // 2
  pad = [(0, 0)] * (x.ndim - 2) + [(top, Mp - M - top), (left, Np - N - left)]
  u0 = jnp.fft.fft2(jnp.pad(x.astype(jnp.float32), pad, mode="reflect"))

  def low_pass(u_hat, j):  # average by phi at resolution j, subsample to 2^J, unpad
    s = jnp.real(jnp.fft.ifft2(subsample_fourier(u_hat * phi[j], 2 ** (J - j))))
    return s[..., 1:-1, 1:-1]

  out = [low_pass(u0, 0)]
  second = []
  for j1 in range(J):
    for t1 in range(L):
      u1 = u0 * psi[(j1, t1)][0]
      if j1 > 0:
        u1 = subsample_fourier(u1, 2 ** j1)
      u1 = jnp.fft.fft2(jnp.abs(jnp.fft.ifft2(u1)))
      out.append(low_pass(u1, j1))
      for j2 in range(j1 + 1, J):
        for t2 in range(L):
          u2 = subsample_fourier(u1 * psi[(j2, t2)][j1], 2 ** (j2 - j1))
          u2 = jnp.fft.fft2(jnp.abs(jnp.fft.ifft2(u2)))
          second.append(low_pass(u2, j2))
  return jnp.stack(out + second, axis=-3)


def num_channels(J: int, L: int) -> int:
  return 1 + J * L + L * L * J * (J - 1) // 2


class ScatterNet(nn.Module):
  """The hybrid backbone of the module docstring. Returns (features, taps) as AlexNetBN."""

  widths: Sequence[int] = (96, 256, 384, 384, 256)  # conv3..conv5 take widths[2:]
  J: int = 2
  L: int = 8
  frozen_layers: int = 0
  num_fc: int = 0
  pool_size: int = 1
  dropout: float = 0.0
  conv1_stride: int | None = None
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> tuple[jax.Array, dict[str, jax.Array]]:
    if self.num_fc:
      raise ValueError(f"scattering has no fc layers (num_fc={self.num_fc}).")
    x = to_float(x) if x.dtype == jnp.uint8 else x.astype(jnp.float32)
    b, h, w, c = x.shape
    s = scattering2d(jnp.moveaxis(x, -1, 1), self.J, self.L)  # (B, C, K, h', w')
    s = jnp.moveaxis(s.reshape(b, c * s.shape[2], *s.shape[-2:]), 1, -1)
    frozen = lambda layer: layer <= self.frozen_layers
    x = nn.BatchNorm(use_running_average=not train or frozen(1), momentum=0.9,
                     name="scattering_bn")(s)
    if self.frozen_layers >= 1:
      x = jax.lax.stop_gradient(x)
    taps = {"scattering": x}
    for i, width in enumerate(self.widths[2:]):
      layer = i + 2  # conv3 is layer 2: the scattering replaces conv1 and conv2
      x = nn.Conv(width, (3, 3), padding=1, use_bias=False, dtype=self.dtype,
                  name=f"conv{i + 3}")(x.astype(self.dtype))
      x = nn.relu(nn.BatchNorm(use_running_average=not train or frozen(layer), momentum=0.9,
                               dtype=self.dtype, name=f"bn{i + 3}")(x))
      if layer == self.frozen_layers:
        x = jax.lax.stop_gradient(x)
      taps[f"conv{i + 3}"] = x
    taps["last_map"] = x
    features = jnp.mean(x.astype(jnp.float32), axis=(1, 2))
    taps["pool5"] = features
    return features, taps


TAPS = ("scattering", "conv3", "conv4", "conv5")


def layer_of(name: str) -> int | None:
  """scattering_bn is layer 1; conv<k>, bn<k> are layer k - 1 (conv3 is layer 2)."""
  if name == "scattering_bn":
    return 1
  match = re.fullmatch(r"(?:conv|bn)(\d)", name)
  return int(match.group(1)) - 1 if match else None


register_backbone(Backbone(
    name="scattering", module_type=ScatterNet,
    build=lambda widths=(96, 256, 384, 384, 256): ScatterNet(widths=tuple(widths)),
    fields=("widths",), shape_fields=("widths",),
    taps=TAPS, layers=TAPS, layer_of=layer_of,
    probe_pool=lambda tap, channels: side_for_features(channels)))
