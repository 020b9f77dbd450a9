"""BYOL (Grill et al., NeurIPS 2020): an online network (backbone, projector, predictor)
predicts a target network's projection of another view of the same image; the target is an
exponential moving average of the online parameters, with no negatives.

Loss: for views v1, v2 of an image, 2 - 2 cos(p(v1), z'(v2)) + 2 - 2 cos(p(v2), z'(v1)),
p the online prediction and z' the target projection (no gradient), averaged over images.
Target update after each step: xi <- tau xi + (1 - tau) theta, with tau rising from
tau_base to 1 on a cosine over the run (tau_base 0.996 in the paper; 0.99 in the short
default runs, as solo-learn's CIFAR settings). Views: BYOL's two asymmetric distributions
(sslflax.transforms.views.BYOL_VIEWS: blur p 1.0 / 0.1, solarisation p 0 / 0.2).

BatchNorm per view, as BYOL's code (`byol_experiment.py` applies the networks once per
view): the online and the target network pass each view in a forward of its own, so one
view's statistics never reach the other view's embeddings.
"""

from __future__ import annotations

import dataclasses
import functools

import flax.linen as nn
import jax
import jax.numpy as jnp

from sslflax.tasks.base import Task, register
from sslflax.tasks.joint import (EmbeddingNet, cosine_momentum, l2_normalize, make_view_batch,
                                 momentum_memory, split_views)
from sslflax.transforms.views import BYOL_VIEWS


def byol_loss(predictions: jax.Array, target_projections: jax.Array) -> jax.Array:
  """Both views' 2 - 2 cos(prediction of one, target projection of the other), summed over
  the two directions and averaged over images. Inputs (2N, D) image-major."""
  p = split_views(l2_normalize(predictions), 2)
  z = split_views(l2_normalize(target_projections), 2)[::-1]  # the other view's
  return jnp.mean(jnp.sum(2.0 - 2.0 * jnp.sum(p * z, axis=-1), axis=0))


@register("byol")
def build(backbone: nn.Module, hidden: int = 1024, out: int = 128,
          predictor_hidden: int = 1024, tau_base: float = 0.99, total_steps: int = 1000,
          crop_area: tuple[float, float] = (0.08, 1.0)) -> Task:
  """BYOL. `hidden`, `out`, `predictor_hidden`: the MLPs' widths; `tau_base`: the target's
  starting momentum; `total_steps`: the steps over which it rises to 1 (the run's);
  `crop_area`: the views' crop area range."""
  if not 0.0 <= tau_base <= 1.0:
    raise ValueError(f"byol tau_base={tau_base} must lie in [0, 1] (the paper: 0.996).")
  specs = tuple(dataclasses.replace(s, crop_area=tuple(crop_area)) for s in BYOL_VIEWS)
  model = EmbeddingNet(backbone, hidden, out, predictor_hidden, views=2, separate=(0, 1))

  def make_batch(rng, images, labels=None):
    del labels
    return make_view_batch(rng, images, specs), None

  def read(target_outputs, memory, targets):
    del memory, targets
    return target_outputs["projection"]

  def loss(outputs, target_projections):
    value = byol_loss(outputs["prediction"], target_projections)
    return value, {"cosine": 1.0 - value / 4.0}  # the mean cosine of the 2N predictions

  memory = momentum_memory(model, functools.partial(cosine_momentum, tau_base,
                                                    total_steps=total_steps), read)
  return Task("byol", make_batch, model, loss, memory=memory)
