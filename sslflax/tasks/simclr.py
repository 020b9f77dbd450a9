"""SimCLR (Chen, Kornblith, Norouzi, Hinton, ICML 2020): two augmented views of every image,
a projection MLP, and the NT-Xent loss, each view's positive being the other view of its
image and its negatives the other 2N - 2 views of the global batch.

Views: sslflax.transforms.views.SIMCLR_VIEW (random resized crop, flip, colour jitter in
random order, grayscale, blur). The paper's optimiser is LARS with a linear warm-up and a
cosine decay (optim.name='lars' in configs/simclr.py), its temperature 0.1 (0.5 in its
CIFAR runs).
"""

from __future__ import annotations

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp

from sslflax.tasks.base import Task, register
from sslflax.tasks.joint import EmbeddingNet, l2_normalize, make_view_batch
from sslflax.transforms.views import SIMCLR_VIEW, ViewSpec


def nt_xent_loss(z: jax.Array, temperature: float = 0.1) -> tuple[jax.Array, jax.Array]:
  """NT-Xent over 2N embeddings, image-major (rows 2i and 2i + 1 are one image's views):
  the mean over all 2N anchors of -log softmax(sim / t) at the positive, sim the cosine
  similarity, the anchor itself left out. Returns (loss, top-1 accuracy of the positive)."""
  z = l2_normalize(z)
  n2 = z.shape[0]
  if n2 % 2:
    raise ValueError(f"nt_xent_loss needs an even number of views (2N), got {n2}.")
  logits = (z @ z.T) / temperature
  logits = jnp.where(jnp.eye(n2, dtype=bool), -jnp.inf, logits)
  positive = jnp.arange(n2) ^ 1  # 2i <-> 2i + 1
  log_probs = jax.nn.log_softmax(logits, axis=1)
  loss = -jnp.mean(jnp.take_along_axis(log_probs, positive[:, None], axis=1))
  accuracy = jnp.mean(jnp.argmax(logits, axis=1) == positive)
  return loss, accuracy


@register("simclr")
def build(backbone: nn.Module, temperature: float = 0.1, hidden: int = 1024, out: int = 128,
          crop_area: tuple[float, float] = (0.08, 1.0), color_strength: float = 1.0,
          blur_prob: float = 0.5, output_batch_norm: bool = False) -> Task:
  """SimCLR. `temperature`: NT-Xent's; `hidden`, `out`: the projection MLP's widths;
  `crop_area`, `color_strength` (s), `blur_prob`: the views (SIMCLR_VIEW otherwise);
  `output_batch_norm`: SimCLR's BN on the projection (see below)."""
  if temperature <= 0:
    raise ValueError(f"simclr temperature={temperature} must be > 0 (the paper: 0.1).")
  spec = strength(SIMCLR_VIEW, color_strength, crop_area=tuple(crop_area), blur_prob=blur_prob)

  def make_batch(rng, images, labels=None):
    del labels
    return make_view_batch(rng, images, (spec, spec)), None

  def loss(outputs, targets):
    del targets
    value, accuracy = nt_xent_loss(outputs["projection"], temperature)
    # SimCLR's objective is loss_a + loss_b, each view's mean cross-entropy: twice the mean
    # over all 2N anchors. (Under LARS the scale matters: biases and BN take plain steps.)
    return 2.0 * value, {"accuracy": accuracy}

  # output_batch_norm: the projector's output layer batch-normalised with no centre, as
  # SimCLR's code, and so in the paper variants. Off in the default: with it the tiny
  # learning test (16 photos, 16-d output) stopped learning (loss ratio 0.99 after 40 Adam
  # steps, 0.69 without), and the default run was no better on the validation split
  # (docs/design.md).
  model = EmbeddingNet(backbone, hidden, out, projector_output_batch_norm=output_batch_norm)
  return Task("simclr", make_batch, model, loss)


def strength(spec: ViewSpec, s: float, **changes) -> ViewSpec:
  """SimCLR's colour strength s: brightness, contrast, saturation 0.8 s, hue 0.2 s of a turn."""
  return dataclasses.replace(spec, brightness=0.8 * s, contrast=0.8 * s, saturation=0.8 * s,
                             hue=72.0 * s, **changes)
