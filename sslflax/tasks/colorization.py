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

from sslflax.tasks.base import Task, register
from sslflax.transforms.color import rgb_to_lab, to_float
from sslflax.transforms.colorbins import ab_bins, default_prior, rebalance_weights, soft_encode
from sslflax.transforms.geometry import resize
from sslflax.transforms.normalize import standardize

OUTPUT_STRIDE = 4  # predictions at 1/4 of the input resolution, as in the paper


def lightness_input(lab: jax.Array) -> jax.Array:
  """L in [0, 100] -> a 3-channel standardised gray image, so that the same
  backbone later reads RGB images in the linear evaluation."""
  gray = jnp.repeat(lab[..., :1] / 100.0, 3, axis=-1)
  return standardize(gray)


def make_colorization_batch(rng: jax.Array, images: jax.Array, bins: jax.Array,
                            bin_weights: jax.Array, labels: jax.Array | None = None,
                            k: int = 5, sigma: float = 5.0):
  """inputs: (B, H, W, 3) standardised L; targets: {'soft': (B, H/4, W/4, Q), 'weight': (B, H/4, W/4)}.

  Deterministic (`rng` unused).
  """
  del rng, labels
  lab = rgb_to_lab(to_float(images))
  b, h, w, _ = lab.shape
  small = (max(1, h // OUTPUT_STRIDE), max(1, w // OUTPUT_STRIDE))
  ab = resize(lab[..., 1:], small, "linear")
  soft = soft_encode(ab, bins, k, sigma)
  weight = bin_weights[jnp.argmax(soft, axis=-1)]
  return lightness_input(lab), {"soft": soft, "weight": weight}


def colorization_loss(logits: jax.Array, targets) -> tuple[jax.Array, dict[str, jax.Array]]:
  """Rebalanced multinomial cross-entropy, averaged over pixels."""
  logp = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
  per_pixel = -jnp.sum(targets["soft"] * logp, axis=-1)
  loss = jnp.mean(targets["weight"] * per_pixel)
  accuracy = jnp.mean(jnp.argmax(logits, -1) == jnp.argmax(targets["soft"], -1))
  return loss, {"accuracy": accuracy, "unweighted_ce": per_pixel.mean()}


class ColorizationNet(nn.Module):
  """Conv trunk -> up-convolutions to 1/4 resolution -> 1x1 conv to Q bin logits."""

  backbone: nn.Module
  num_bins: int = 313
  decoder_width: int = 128

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    b, h, w, _ = x.shape
    out_hw = (max(1, h // OUTPUT_STRIDE), max(1, w // OUTPUT_STRIDE))
    _, taps = self.backbone(x, train)
    y = taps["conv5"]
    steps = max(0, math.ceil(math.log2(max(out_hw[0] / y.shape[1], out_hw[1] / y.shape[2]))))
    for i in range(steps):
      y = nn.ConvTranspose(self.decoder_width, (4, 4), strides=(2, 2), use_bias=False,
                           name=f"up{i}")(y)
      y = nn.relu(nn.BatchNorm(use_running_average=not train, momentum=0.9, name=f"up_bn{i}")(y))
    if y.shape[1:3] != out_hw:
      y = jax.image.resize(y, (b,) + out_hw + (y.shape[-1],), "linear")
    return nn.Conv(self.num_bins, (1, 1), name="head")(y)


@register("colorization")
def build(backbone: nn.Module, prior=None, rebalance_lambda: float = 0.5, k: int = 5,
          sigma: float = 5.0, decoder_width: int = 128) -> Task:
  """`prior`: the empirical bin distribution (313,); the shipped default when None."""
  bins = jnp.asarray(ab_bins())
  prior = default_prior() if prior is None else prior
  bin_weights = jnp.asarray(rebalance_weights(prior, rebalance_lambda))
  def make_batch(rng, images, labels=None):
    return make_colorization_batch(rng, images, bins, bin_weights, labels, k, sigma)
  model = ColorizationNet(backbone.clone(num_fc=0), bins.shape[0], decoder_width)
  return Task("colorization", make_batch, model, colorization_loss, min_image_size=OUTPUT_STRIDE)
