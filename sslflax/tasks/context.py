"""Context encoders (Pathak et al. 2016): inpaint the hidden region from its surroundings.

Masks: random blocks by default. Pathak et al. (section 3.3) found that a central mask lets
features latch onto the mask's boundary and used random regions for all feature learning;
the central square stays as mask_kind='central'. Loss: L2 on the hidden pixels plus the
overlap band of visible pixels around the hole, 4 px weighted 10x as in the paper's code
(overlapPred=4, overlapL2Weight=10). The adversarial term is not used: the published
feature-learning results with an AlexNet encoder used the L2 loss alone.
"""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from sslflax.models.layers import UpConv2x
from sslflax.tasks.base import Task, prepare_images, register
from sslflax.transforms.color import quantize
from sslflax.transforms.masks import (boundary_band, central_square_mask, fill_masked,
                                      random_block_mask)
from sslflax.transforms.normalize import IMAGENET_MEAN

MASK_KINDS = ("central", "blocks")


def make_context_batch(rng: jax.Array, images: jax.Array, labels: jax.Array | None = None,
                       mask_kind: str = "blocks", overlap: int = 4,
                       fill_value=IMAGENET_MEAN):
  """inputs: the uint8 image with its hidden region set to the dataset mean;
  targets: {'image': the original, 'mask': hidden pixels (B, H, W), 'band': the
  visible overlap band of width `overlap` around them (all False for 0)}.

  Random only for mask_kind='blocks' (block positions per image, from `rng`).
  """
  del labels
  b, h, w = images.shape[:3]
  if mask_kind == "central":
    mask = central_square_mask(b, h, w)
  elif mask_kind == "blocks":
    mask = random_block_mask(rng, b, h, w)
  else:
    raise ValueError(f"unknown mask_kind {mask_kind!r}; choose one of {MASK_KINDS}.")
  fill = quantize(jnp.asarray(fill_value, jnp.float32)) if images.dtype == jnp.uint8 else fill_value
  inputs = fill_masked(images, mask, fill)
  return inputs, {"image": images, "mask": mask, "band": boundary_band(mask, overlap)}


def context_loss(prediction: jax.Array, targets, overlap_weight: float = 10.0
                 ) -> tuple[jax.Array, dict[str, jax.Array]]:
  """Weighted mean squared error in standardised pixel units: weight 1 on hidden
  pixels, `overlap_weight` on the overlap band, 0 elsewhere."""
  weight = (targets["mask"] + overlap_weight * targets["band"]).astype(jnp.float32)[..., None]
  sq_err = (prediction.astype(jnp.float32) - prepare_images(targets["image"])) ** 2
  channels = prediction.shape[-1]
  loss = jnp.sum(weight * sq_err) / (jnp.sum(weight) * channels + 1e-8)
  hidden = targets["mask"][..., None]
  mse = jnp.sum(hidden * sq_err) / (jnp.sum(hidden) * channels + 1e-8)
  return loss, {"masked_mse": mse}


class ContextNet(nn.Module):
  """Encoder (conv trunk) -> channel-wise fully connected bottleneck -> up-convolutions
  (UpConv2x) -> image."""

  backbone: nn.Module
  decoder_width: int = 64

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    b, h, w, _ = x.shape
    _, taps = self.backbone(x, train)
    feat = taps["last_map"]
    _, fh, fw, c = feat.shape
    # Channel-wise fully connected: each channel's map mixes all its positions,
    # so hidden positions get information from the whole context.
    kernel = self.param("channel_fc", nn.initializers.lecun_normal(batch_axis=(0,)),
                        (c, fh * fw, fh * fw))
    flat = feat.reshape(b, fh * fw, c)
    y = jnp.einsum("bpc,cpq->bqc", flat, kernel).reshape(b, fh, fw, c)
    y = nn.Conv(c, (1, 1), name="channel_mix")(y)  # Pathak's stride-1 conv across channels
    width = max(self.decoder_width, 8)
    steps = max(0, math.ceil(math.log2(max(h / fh, w / fw))))
    for i in range(steps):
      y = UpConv2x(width, name=f"up{i}")(y)
      y = nn.relu(nn.BatchNorm(use_running_average=not train, momentum=0.9, name=f"up_bn{i}")(y))
      width = max(width // 2, 8)
    y = jax.image.resize(y, (b, h, w, y.shape[-1]), "linear")
    return nn.Conv(3, (3, 3), name="to_rgb")(y)


@register("context")
def build(backbone: nn.Module, mask_kind: str = "blocks", overlap: int = 4,
          overlap_weight: float = 10.0, decoder_width: int = 64) -> Task:
  """Context-encoder task: inpaint the masked region with an L2 loss.

  `mask_kind`: 'blocks' (4 random blocks of 1/4 the side, up to 1/4 of the area) or 'central'
  (the quarter-area square); `overlap`: width
  in pixels of Pathak's band around the hole, weighted `overlap_weight` times in the loss (0:
  no band); `decoder_width`: channels of the up-convolution decoder.
  """
  if mask_kind not in MASK_KINDS:
    raise ValueError(f"unknown mask_kind {mask_kind!r}; choose one of {MASK_KINDS}.")
  def make_batch(rng, images, labels=None):
    return make_context_batch(rng, images, labels, mask_kind, overlap)
  def loss(prediction, targets):
    return context_loss(prediction, targets, overlap_weight)
  model = ContextNet(backbone.clone(num_fc=0), decoder_width)
  return Task("context", make_batch, model, loss, min_image_size=8)
