"""Colorization as classification (Zhang, Isola, Efros 2016).

The network sees the L channel and predicts, per pixel at 1/4 resolution, a
distribution over the Q = 313 in-gamut ab bins. Targets are soft-encoded (5
nearest bins, sigma 5); each pixel's loss is weighted by the rebalancing
weight of its most likely bin, so rare saturated colours count.
"""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from sslflax.models.layers import UpConv2x
from sslflax.tasks.base import Task, register
from sslflax.transforms.color import rgb_to_lab, rgb_to_lightness
from sslflax.transforms.colorbins import (NUM_BINS, default_prior, rebalance_weights,
                                          soft_encode_sparse)
from sslflax.transforms.normalize import standardize

OUTPUT_STRIDE = 4  # predictions at 1/4 of the input resolution, as in the paper


def lightness_to_input(lightness: jax.Array) -> jax.Array:
  """L in [0, 100] (B, H, W, 1) -> a standardised 3-channel gray image, so that the
  same backbone later reads RGB images in the linear evaluation."""
  return standardize(jnp.repeat(lightness / 100.0, 3, axis=-1))


def lightness(images: jax.Array) -> jax.Array:
  """uint8 RGB (B, H, W, 3) -> the backbone's input during colorization training (L as a
  standardised gray image): colorization is probed on what it saw, as Zhang et al. evaluate."""
  return lightness_to_input(rgb_to_lightness(images))


def make_colorization_batch(rng: jax.Array, images: jax.Array, bin_weights: jax.Array,
                            labels: jax.Array | None = None, k: int = 5, sigma: float = 5.0):
  """inputs: L (B, H, W, 1) in [0, 100]; targets at 1/4 resolution (h, w):
  {'bins': (B, h, w, k) int32 and 'weights': (B, h, w, k), the soft encoding of
  the true ab; 'pixel_weight': (B, h, w), the rebalancing weight of its top bin}.

  ab is read at every 4th pixel (the paper subsamples it the same way), so only
  1/16 of the pixels need a full Lab conversion. Deterministic (`rng` unused).
  """
  del rng, labels
  offset = OUTPUT_STRIDE // 2
  ab = rgb_to_lab(images[:, offset::OUTPUT_STRIDE, offset::OUTPUT_STRIDE])[..., 1:]
  bins, weights = soft_encode_sparse(ab, k, sigma)
  pixel_weight = bin_weights[bins[..., 0]]  # k_smallest puts the nearest bin first
  targets = {"bins": bins, "weights": weights, "pixel_weight": pixel_weight}
  return rgb_to_lightness(images), targets


def colorization_loss(logits: jax.Array, targets) -> tuple[jax.Array, dict[str, jax.Array]]:
  """Rebalanced multinomial cross-entropy against the soft targets, averaged over pixels."""
  logp = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
  per_pixel = -jnp.sum(targets["weights"] * jnp.take_along_axis(logp, targets["bins"], -1), -1)
  loss = jnp.mean(targets["pixel_weight"] * per_pixel)
  accuracy = jnp.mean(jnp.argmax(logits, -1) == targets["bins"][..., 0])
  return loss, {"accuracy": accuracy, "unweighted_ce": per_pixel.mean()}


class ColorizationNet(nn.Module):
  """Conv trunk on L -> up-convolutions (UpConv2x) to 1/4 resolution -> 1x1 conv to Q bin logits."""

  backbone: nn.Module
  num_bins: int = NUM_BINS
  decoder_width: int = 128

  @nn.compact
  def __call__(self, lightness: jax.Array, train: bool = False) -> jax.Array:
    b, h, w, _ = lightness.shape
    out_hw = (len(range(OUTPUT_STRIDE // 2, h, OUTPUT_STRIDE)),
              len(range(OUTPUT_STRIDE // 2, w, OUTPUT_STRIDE)))
    _, taps = self.backbone(lightness_to_input(lightness), train)
    y = taps["last_map"]
    steps = max(0, math.ceil(math.log2(max(out_hw[0] / y.shape[1], out_hw[1] / y.shape[2]))))
    for i in range(steps):
      y = UpConv2x(self.decoder_width, name=f"up{i}")(y)
      y = nn.relu(nn.BatchNorm(use_running_average=not train, momentum=0.9, name=f"up_bn{i}")(y))
    if y.shape[1:3] != out_hw:
      y = jax.image.resize(y, (b,) + out_hw + (y.shape[-1],), "linear")
    return nn.Conv(self.num_bins, (1, 1), name="head")(y)


@register("colorization")
def build(backbone: nn.Module, prior=None, rebalance_lambda: float = 0.5, k: int = 5,
          sigma: float = 5.0, decoder_width: int = 128) -> Task:
  """`prior`: the empirical bin distribution (313,); the shipped default when None."""
  prior = default_prior() if prior is None else prior
  bin_weights = jnp.asarray(rebalance_weights(prior, rebalance_lambda))
  def make_batch(rng, images, labels=None):
    return make_colorization_batch(rng, images, bin_weights, labels, k, sigma)
  model = ColorizationNet(backbone.clone(num_fc=0), NUM_BINS, decoder_width)
  return Task("colorization", make_batch, model, colorization_loss, needs_color=True,
              probe_input=lightness, min_image_size=OUTPUT_STRIDE)
