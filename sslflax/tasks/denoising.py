"""Denoising autoencoders (Vincent, Larochelle, Bengio, Manzagol, ICML 2008): reconstruct the
clean image from a corrupted one.

Corruption: 'masking' noise (each input component, a channel of a pixel, set to 0 with
probability `fraction`, the paper's) or 'gaussian' noise (additive, std `sigma` in [0, 1]
units; Vincent et al. 2010). The network is the context encoder's (sslflax.tasks.context):
the conv trunk, a channel-wise fully connected bottleneck and up-convolutions back to the
image. Loss: the squared error in standardised pixel units on every component ('all', the
paper's reconstruction of the whole input) or on the corrupted ones only ('corrupted', the
"emphasised" variant of Vincent et al. 2010 with weight 0 on the rest). Gaussian noise
corrupts every component, so there both are the same.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from sslflax.tasks.base import Task, prepare_images, register
from sslflax.tasks.context import ContextNet
from sslflax.transforms.color import quantize
from sslflax.transforms.noise import gaussian_noise, masking_noise

NOISE_KINDS = ("masking", "gaussian")
LOSS_ON = ("all", "corrupted")


def make_denoising_batch(rng: jax.Array, images: jax.Array, labels: jax.Array | None = None,
                         noise: str = "masking", fraction: float = 0.25, sigma: float = 0.3):
  """inputs: the corrupted uint8 images; targets: {'image': the clean ones, 'corrupted':
  (B, H, W, C) True where a component was corrupted}. Random per component."""
  del labels
  if noise == "masking":
    corrupted, where = masking_noise(rng, images, fraction)
  elif noise == "gaussian":
    corrupted = quantize(gaussian_noise(rng, images, sigma))
    where = jnp.ones(images.shape, bool)
  else:
    raise ValueError(f"unknown noise {noise!r}; choose one of {NOISE_KINDS}.")
  return corrupted, {"image": images, "corrupted": where}


def denoising_loss(prediction: jax.Array, targets, loss_on: str = "all"
                   ) -> tuple[jax.Array, dict[str, jax.Array]]:
  """Mean squared error in standardised pixel units over every component ('all') or the
  corrupted ones ('corrupted'); metrics: the error on corrupted and on intact components."""
  sq_err = (prediction.astype(jnp.float32) - prepare_images(targets["image"])) ** 2
  corrupted = targets["corrupted"].astype(jnp.float32)
  on_corrupted = jnp.sum(corrupted * sq_err) / jnp.maximum(jnp.sum(corrupted), 1.0)
  on_intact = jnp.sum((1 - corrupted) * sq_err) / jnp.maximum(jnp.sum(1 - corrupted), 1.0)
  loss = jnp.mean(sq_err) if loss_on == "all" else on_corrupted
  return loss, {"corrupted_mse": on_corrupted, "intact_mse": on_intact}


@register("denoising")
def build(backbone: nn.Module, noise: str = "masking", fraction: float = 0.25,
          sigma: float = 0.3, loss_on: str = "all", decoder_width: int = 64) -> Task:
  """Denoising-autoencoder task. `noise`: 'masking' (a `fraction` of components zeroed) or
  'gaussian' (std `sigma`); `loss_on`: 'all' or 'corrupted'; `decoder_width`: channels of
  the context encoder's up-convolution decoder."""
  if noise not in NOISE_KINDS:
    raise ValueError(f"unknown noise {noise!r}; choose one of {NOISE_KINDS}.")
  if loss_on not in LOSS_ON:
    raise ValueError(f"unknown loss_on {loss_on!r}; choose one of {LOSS_ON}.")
  if not 0 <= fraction <= 1 or sigma < 0:
    raise ValueError(f"denoising needs 0 <= fraction <= 1 and sigma >= 0; got fraction "
                     f"{fraction} and sigma {sigma}.")
  def make_batch(rng, images, labels=None):
    return make_denoising_batch(rng, images, labels, noise, fraction, sigma)
  def loss(prediction, targets):
    return denoising_loss(prediction, targets, loss_on)
  model = ContextNet(backbone.clone(num_fc=0), decoder_width)
  return Task("denoising", make_batch, model, loss, min_image_size=8)
