"""SwAV (Caron et al., NeurIPS 2020): swapped prediction of cluster assignments. Each image's
crops are embedded (backbone, projection MLP, L2 normalisation) and scored against K
learned prototypes; the codes of the two global crops come from Sinkhorn-Knopp over the
global batch (an equipartition of the batch over the prototypes, epsilon 0.05, 3
iterations), and every other crop predicts them through a softmax at temperature 0.1.

Multi-crop: 2 global views and N smaller local ones (sslflax.transforms.multi_crop_specs);
each resolution is a separate forward pass, as in SwAV's code, so BatchNorm statistics are
per resolution. The queue (queue_size > 0) keeps the global crops' embeddings of earlier
steps in TrainState.memory; once full and past queue_start_step, its scores against the
current prototypes join the batch's in Sinkhorn, which needs far more columns than
prototypes to equipartition (SwAV's answer to batches under 256).

Two differences from SwAV's PyTorch code, said here: the prototypes are L2-normalised in the
forward (weight normalisation), not rewritten to unit norm after each step (the same forward,
a gradient projected on the sphere); the first freeze_prototypes_steps steps pass them no
gradient, as SwAV's first epoch.
"""

from __future__ import annotations

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp

from sslflax.tasks.base import Memory, Task, register
from sslflax.tasks.joint import MLP, image_major, l2_normalize, split_views
from sslflax.transforms.views import SIMCLR_VIEW, multi_crop_specs, multi_view


def sinkhorn(scores: jax.Array, epsilon: float = 0.05, iterations: int = 3) -> jax.Array:
  """SwAV's distributed_sinkhorn: (B, K) scores -> (B, K) soft codes Q. Q = exp(scores / eps),
  then rows (prototypes) and columns (samples) are rescaled in turn so that each prototype
  gets 1/K of the batch and each sample a unit of mass. Returned rows sum to 1 exactly; each
  prototype's column sums to B/K in the limit of iterations. Over a global batch under jit
  the sums are global (XLA adds the all-reduces SwAV writes by hand)."""
  scores = scores.astype(jnp.float32)
  b, k = scores.shape
  # exp(s / eps) overflows float32 for s / eps > 88; a constant shift cancels in the scaling.
  q = jnp.exp((scores - jax.lax.stop_gradient(jnp.max(scores))) / epsilon).T  # (K, B)
  q = q / jnp.sum(q)
  for _ in range(iterations):
    q = q / jnp.sum(q, axis=1, keepdims=True) / k  # each prototype: 1/K of the mass
    q = q / jnp.sum(q, axis=0, keepdims=True) / b  # each sample: 1/B of the mass
  return (q * b).T


def swapped_prediction_loss(scores: jax.Array, codes: jax.Array, num_crops: int,
                            temperature: float = 0.1) -> tuple[jax.Array, jax.Array]:
  """scores (C, B, K) of every crop (the two global first), codes (2, B, K) of the global
  crops: the mean over the global crops g of the mean over the other crops v of the
  cross-entropy between codes[g] and softmax(scores[v] / t). Returns (loss, how often a
  crop's top prototype is its code's top prototype)."""
  log_p = jax.nn.log_softmax(scores / temperature, axis=-1)
  total, agree = 0.0, 0.0
  for g in range(codes.shape[0]):
    others = [v for v in range(num_crops) if v != g]
    total += sum(-jnp.mean(jnp.sum(codes[g] * log_p[v], axis=-1)) for v in others) / len(others)
    top = jnp.argmax(codes[g], axis=-1)
    agree += sum(jnp.mean(jnp.argmax(scores[v], axis=-1) == top) for v in others) / len(others)
  return total / codes.shape[0], agree / codes.shape[0]


class SwAVNet(nn.Module):
  """Crops grouped by resolution (a tuple of (B * V_r, h_r, w_r, 3), image-major) -> per group
  the L2-normalised embeddings, and the unit-norm prototypes (K, out)."""

  backbone: nn.Module
  hidden: int = 1024
  out: int = 128
  num_prototypes: int = 300

  @nn.compact
  def __call__(self, crops, train: bool = False) -> dict:
    projector = MLP(self.hidden, self.out, name="projector")
    embeddings = tuple(l2_normalize(projector(self.backbone(x, train)[0], train))
                       for x in crops)
    prototypes = self.param("prototypes", nn.initializers.normal(1.0),
                            (self.num_prototypes, self.out))
    return {"embeddings": embeddings, "prototypes": l2_normalize(prototypes)}


@register("swav")
def build(backbone: nn.Module, num_prototypes: int = 3000, temperature: float = 0.1,
          epsilon: float = 0.05, sinkhorn_iterations: int = 3, num_local: int = 6,
          local_size: int = 96, global_area: tuple[float, float] = (0.14, 1.0),
          local_area: tuple[float, float] = (0.05, 0.14), hidden: int = 1024, out: int = 128,
          queue_size: int = 0, queue_start_step: int = 0,
          freeze_prototypes_steps: int = 0, blur_kernel: int = 0) -> Task:
  """SwAV. `num_prototypes` K, `temperature`, `epsilon` and `sinkhorn_iterations` (the
  paper's 3000, 0.1, 0.05, 3); multi-crop: 2 global views at the input size and `num_local`
  views of `local_size` px (the paper: 6 x 96 beside 2 x 224), their crop areas;
  `queue_size` (0: none; a multiple of the global batch) of global-crop embeddings per
  global crop, used once full from `queue_start_step`; `freeze_prototypes_steps`;
  `blur_kernel` (0: 10% of each crop's side; SwAV's code: 23 px on every crop)."""
  if temperature <= 0 or epsilon <= 0 or sinkhorn_iterations < 1 or num_prototypes < 2:
    raise ValueError(f"swav temperature={temperature} and epsilon={epsilon} must be > 0, "
                     f"sinkhorn_iterations={sinkhorn_iterations} >= 1, num_prototypes="
                     f"{num_prototypes} >= 2.")
  if num_local < 0 or local_size < 1 or queue_size < 0:
    raise ValueError(f"swav num_local={num_local} and queue_size={queue_size} must be >= 0, "
                     f"local_size={local_size} >= 1.")
  num_crops = 2 + num_local
  base = dataclasses.replace(SIMCLR_VIEW, blur_kernel=blur_kernel)

  def make_batch(rng, images, labels=None, step=0):
    del labels
    b = images.shape[0]
    if queue_size % b:
      raise ValueError(f"swav queue_size={queue_size} is not a multiple of the global batch "
                       f"({b}); use e.g. {b * max(1, queue_size // b)}.")
    specs, sizes = multi_crop_specs(images.shape[1], local_size, num_local,
                                    tuple(global_area), tuple(local_area), base)
    views = multi_view(rng, images, specs, sizes)
    crops = (image_major(views[:2]),) + ((image_major(views[2:]),) if num_local else ())
    return crops, {"frozen": step < freeze_prototypes_steps}

  def crop_scores(outputs, prototypes):
    """(C, B, K) scores, the global crops first."""
    groups = [split_views(outputs["embeddings"][0], 2)]
    if num_local:
      groups.append(split_views(outputs["embeddings"][1], num_local))
    return jnp.concatenate(groups, axis=0) @ prototypes.T

  def loss(outputs, targets):
    prototypes = outputs["prototypes"]
    prototypes = jnp.where(targets["frozen"], jax.lax.stop_gradient(prototypes), prototypes)
    scores = crop_scores(outputs, prototypes)
    codes = jax.lax.stop_gradient(assign(scores[:2], jax.lax.stop_gradient(prototypes), targets))
    value, agreement = swapped_prediction_loss(scores, codes, num_crops, temperature)
    return value, {"accuracy": agreement}

  def assign(global_scores, prototypes, targets):
    """The global crops' codes, with the queue's scores in Sinkhorn once it is in use."""
    codes = jax.vmap(lambda s: sinkhorn(s, epsilon, sinkhorn_iterations))(global_scores)
    if not queue_size:
      return codes
    b = global_scores.shape[1]
    with_queue = jax.vmap(lambda s, q: sinkhorn(jnp.concatenate([q @ prototypes.T, s]), epsilon,
                                                sinkhorn_iterations)[-b:])(
        global_scores, targets["queue"])
    return jnp.where(targets["use_queue"], with_queue, codes)

  task_memory = None
  if queue_size:
    def init(variables, rng):
      del variables, rng
      return {"queue": jnp.zeros((2, queue_size, out), jnp.float32),
              "filled": jnp.zeros((), jnp.int32)}

    def read(memory, variables, inputs, targets, step, rng):
      full = memory["filled"] >= queue_size
      return dict(targets, queue=memory["queue"], use_queue=full & (step >= queue_start_step))

    def update(memory, variables, outputs, targets, step):
      new = split_views(outputs["embeddings"][0], 2)  # (2, B, out), newest first
      queue = jnp.concatenate([new, memory["queue"]], axis=1)[:, :queue_size]
      return {"queue": queue,
              "filled": jnp.minimum(memory["filled"] + new.shape[1], queue_size)}

    task_memory = Memory(init, read, update)

  model = SwAVNet(backbone, hidden, out, num_prototypes)
  return Task("swav", make_batch, model, loss, uses_step=True, memory=task_memory)
