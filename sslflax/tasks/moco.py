"""MoCo v2 (He et al., CVPR 2020; Chen et al. 2020, "Improved baselines"): a query encoder
(backbone, projection MLP) matches each image's query to the key of another view of it,
computed by a momentum encoder, against a queue of the keys of earlier batches.

Loss: InfoNCE, cross-entropy of [q.k+, q.queue] / t at the positive (t = 0.2). The key
encoder is an EMA of the query encoder (m = 0.999), updated before each step's keys are
computed; the current keys then replace the oldest of the queue (its size a multiple of the
global batch). The queue starts as random unit vectors, as MoCo's.

Heads and views as MoCo v2's code (main_moco.py --mlp --aug-plus): the projector
Linear-ReLU-Linear with no BatchNorm; views MOCO_V2_VIEW (crop 0.2-1, jitter 0.4/0.4/0.4/0.1).

BatchNorm leakage. MoCo's code runs encoder_q on the query images and encoder_k on the key
images in separate forward passes (and shuffles the keys across GPUs, so that a query and
its key never share per-device statistics). Here too the query encoder sees only view 1 and
the key encoder only view 2, each view normalised by its own statistics: no image's key
depends on its query's pixels. Under sslflax's global (sync) BN a shuffle would change
nothing, since the statistics are those of the whole global batch on every device.
"""

from __future__ import annotations

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp

from sslflax.tasks.base import Task, register
from sslflax.tasks.joint import EmbeddingNet, l2_normalize, make_view_batch, momentum_memory
from sslflax.transforms.views import MOCO_V2_VIEW


def infonce_loss(queries: jax.Array, keys: jax.Array, queue: jax.Array,
                 temperature: float = 0.2) -> tuple[jax.Array, jax.Array]:
  """MoCo's loss: each query's positive is its key, its negatives the queue's K keys.
  Returns (mean cross-entropy, top-1 accuracy of the positive)."""
  q, k = l2_normalize(queries), l2_normalize(keys)
  positive = jnp.sum(q * k, axis=-1, keepdims=True)
  logits = jnp.concatenate([positive, q @ queue.T], axis=1) / temperature
  loss = -jnp.mean(jax.nn.log_softmax(logits, axis=1)[:, 0])
  return loss, jnp.mean(jnp.argmax(logits, axis=1) == 0)


def enqueue(queue: jax.Array, pointer: jax.Array, keys: jax.Array) -> tuple[jax.Array, jax.Array]:
  """The keys replace the oldest rows of the ring buffer at `pointer`; the new pointer."""
  queue = jax.lax.dynamic_update_slice(queue, keys.astype(queue.dtype), (pointer, 0))
  return queue, (pointer + keys.shape[0]) % queue.shape[0]


@register("moco")
def build(backbone: nn.Module, temperature: float = 0.2, momentum: float = 0.999,
          queue_size: int = 4096, hidden: int = 1024, out: int = 128,
          crop_area: tuple[float, float] = (0.2, 1.0)) -> Task:
  """MoCo v2. `temperature`, `momentum` (m), `queue_size` (K, a multiple of the global
  batch; 65,536 in the paper), `hidden`, `out`: the MLP head; `crop_area`: the views'
  (MoCo v2: 0.2-1)."""
  if not 0.0 <= momentum <= 1.0 or temperature <= 0 or queue_size < 1:
    raise ValueError(f"moco momentum={momentum} must lie in [0, 1], temperature="
                     f"{temperature} be > 0 and queue_size={queue_size} be >= 1.")
  spec = dataclasses.replace(MOCO_V2_VIEW, crop_area=tuple(crop_area))
  # Query encoder on view 1, key encoder (the same network, momentum params) on view 2.
  model = EmbeddingNet(backbone, hidden, out, projector_batch_norm=False, views=2,
                       separate=(0,))
  key_encoder = model.clone(separate=(1,))

  def make_batch(rng, images, labels=None):
    del labels
    b = images.shape[0]
    if queue_size % b:
      raise ValueError(f"moco queue_size={queue_size} is not a multiple of the global batch "
                       f"({b}); use e.g. {b * max(1, queue_size // b)}.")
    return make_view_batch(rng, images, (spec, spec)), None

  def read(key_outputs, memory, targets):
    del targets
    return {"keys": l2_normalize(key_outputs["projection"]), "queue": memory["queue"]}

  def loss(outputs, targets):
    value, accuracy = infonce_loss(outputs["projection"], targets["keys"], targets["queue"],
                                   temperature)
    return value, {"accuracy": accuracy}

  def init_queue(rng):
    return {"queue": l2_normalize(jax.random.normal(rng, (queue_size, out))),
            "pointer": jnp.zeros((), jnp.int32)}

  def update_queue(memory, outputs, targets):
    queue, pointer = enqueue(memory["queue"], memory["pointer"], targets["keys"])
    return {"queue": queue, "pointer": pointer}

  memory = dataclasses.replace(
      momentum_memory(key_encoder, lambda step: momentum, read, init_queue, update_queue),
      queued_images=queue_size)
  return Task("moco", make_batch, model, loss, memory=memory)
