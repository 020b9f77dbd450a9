"""BiGAN: D's loss against numpy, each player's gradient from its own loss only, gradient
signs, and E and G learning to fool D on real photos."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from sslflax.tasks import make_task
from sslflax.tasks.bigan import bigan_loss
from sslflax.train import create_train_state, train_step
from tests.helpers import photo_crops, rerun_at_default_optimisation, tiny_backbone

TINY = {"z_dim": 16, "gan_width": 8}


def tiny_bigan():
  return make_task("bigan", tiny_backbone(), **TINY)


def numpy_bce(logits, label):
  p = 1.0 / (1.0 + np.exp(-logits.astype(np.float64)))
  return -np.mean(label * np.log(p) + (1 - label) * np.log(1 - p))


def test_discriminator_loss_and_its_gradient_match_numpy():
  """L_D = (BCE(D(x, E(x)), 1) + BCE(D(G(z), z), 0)) / 2 and E's and G's inverted-label loss,
  on fixed logits; the gradient of L_D in the real logits is -(1 - sigmoid) / (2B)."""
  rng = np.random.default_rng(0)
  real, fake = rng.normal(size=7).astype(np.float32) * 3, rng.normal(size=7).astype(np.float32) * 3
  outputs = {"d_real": real, "d_fake": fake, "eg_real": real, "eg_fake": fake}
  _, metrics = bigan_loss(jax.tree.map(jnp.asarray, outputs))
  d_loss = 0.5 * (numpy_bce(real, 1) + numpy_bce(fake, 0))
  eg_loss = 0.5 * (numpy_bce(real, 0) + numpy_bce(fake, 1))
  np.testing.assert_allclose(float(metrics["d_loss"]), d_loss, rtol=1e-5)
  np.testing.assert_allclose(float(metrics["eg_loss"]), eg_loss, rtol=1e-5)
  p_real, p_fake = 1 / (1 + np.exp(-real)), 1 / (1 + np.exp(-fake))
  np.testing.assert_allclose(float(metrics["d_advantage"]), p_real.mean() - p_fake.mean(), rtol=1e-5)
  np.testing.assert_allclose(float(metrics["d_accuracy"]),
                             0.5 * ((real > 0).mean() + (fake < 0).mean()))
  grad = jax.grad(lambda r: bigan_loss({**jax.tree.map(jnp.asarray, outputs), "d_real": r})[0])(
      jnp.asarray(real))
  np.testing.assert_allclose(np.asarray(grad), -(1 - p_real) / (2 * len(real)), rtol=1e-4)


def one_batch(task, size=32, count=8):
  images = jnp.asarray(photo_crops(count, size, seed=1))
  inputs, _ = task.make_batch(jax.random.key(1), images, None)
  variables = task.model.init({"params": jax.random.key(0)}, inputs, train=False)
  def outputs(params):
    out, _ = task.model.apply({"params": params, "batch_stats": variables["batch_stats"]},
                              inputs, train=True, mutable=["batch_stats"])
    return out
  return variables["params"], outputs


def player_losses(out):
  _, metrics = bigan_loss(out)
  return metrics["d_loss"], metrics["eg_loss"]


def test_each_player_gets_the_gradient_of_its_own_loss_only():
  """The one loss the step differentiates gives D exactly dL_D/dD and E, its head and G
  exactly dL_EG/d(E, G): the authors' two simultaneous updates."""
  params, outputs = one_batch(tiny_bigan())
  total = jax.grad(lambda p: bigan_loss(outputs(p))[0])(params)
  # The oracle: each player's loss on the same forward, D's logits without any stop.
  d_only = jax.grad(lambda p: player_losses(outputs(p))[0])(params)
  eg_only = jax.grad(lambda p: player_losses(outputs(p))[1])(params)
  assert set(total) == {"backbone", "encoder_head", "generator", "discriminator"}
  for name, own in (("discriminator", d_only), ("backbone", eg_only),
                    ("encoder_head", eg_only), ("generator", eg_only)):
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7),
                 total[name], own[name])
    assert max(float(jnp.abs(x).max()) for x in jax.tree.leaves(total[name])) > 0, name
  # ... and the other player's loss reaches nobody else: D gets nothing from L_EG.
  assert max(float(jnp.abs(x).max()) for x in jax.tree.leaves(d_only["generator"])) == 0
  assert max(float(jnp.abs(x).max()) for x in jax.tree.leaves(eg_only["discriminator"])) == 0


def test_a_step_along_each_players_gradient_lowers_its_own_loss():
  """Signs: a small step of D against its gradient lowers L_D (D separates real pairs from
  generated ones better); one of E and G lowers L_EG (they fool D more)."""
  params, outputs = one_batch(tiny_bigan())
  grads = jax.grad(lambda p: bigan_loss(outputs(p))[0])(params)
  def stepped(players, lr=1e-2):
    return {k: jax.tree.map(lambda p, g: p - lr * g, v, grads[k]) if k in players else v
            for k, v in params.items()}
  d0, eg0 = player_losses(outputs(params))
  d1, eg_d = player_losses(outputs(stepped({"discriminator"})))
  d_eg, eg1 = player_losses(outputs(stepped({"backbone", "encoder_head", "generator"})))
  assert d1 < d0 and eg_d > eg0  # D's step: better for D, worse for E and G
  assert eg1 < eg0 and d_eg > d0  # E's and G's step: the other way round


@pytest.mark.slow
def test_e_and_g_lower_the_advantage_d_built_on_real_photos(request):
  """A short run on real photos: D first learns to tell (x, E(x)) from (G(z), z) (its
  advantage, mean P(real) on real pairs minus on generated ones, rises above 0.4); then, with
  D's update zeroed, the same steps train E and G alone, and D's advantage falls below half of
  where it started: the adversarial signal reaches E and G through D and fools it. Run at
  XLA's default optimisation level, in a subprocess (26 s there, 68 s at the tests' level 0)."""
  if rerun_at_default_optimisation(request):
    return
  task = tiny_bigan()
  pool = jnp.asarray(photo_crops(256, 32, seed=3))
  both = optax.adam(2e-4, b1=0.5)
  state = create_train_state(jax.random.key(0), task, both, pool[:32])
  step = jax.jit(functools.partial(train_step, task, both))
  batches = [pool[i:i + 32] for i in range(0, 256, 32)]
  for i in range(40):
    state, metrics = step(state, batches[i % len(batches)])
  start = float(metrics["d_advantage"])
  assert start > 0.4, start
  eg_only = optax.multi_transform(
      {"train": optax.adam(2e-3, b1=0.5), "frozen": optax.set_to_zero()},
      lambda params: {k: "frozen" if k == "discriminator" else "train" for k in params})
  state = state.replace(opt_state=eg_only.init(state.params))
  frozen_d = state.params["discriminator"]
  step = jax.jit(functools.partial(train_step, task, eg_only))
  advantages = []
  for i in range(16):
    state, metrics = step(state, batches[i % len(batches)])
    advantages.append(float(metrics["d_advantage"]))
  jax.tree.map(np.testing.assert_array_equal, state.params["discriminator"], frozen_d)
  assert np.mean(advantages[-4:]) < start / 2, (start, advantages)


def test_the_gan_side_must_be_a_multiple_of_16():
  task = make_task("bigan", tiny_backbone(), gan_size=24, **TINY)
  images = jnp.asarray(photo_crops(2, 32))
  inputs, _ = task.make_batch(jax.random.key(0), images, None)
  with pytest.raises(ValueError, match="multiple of 16"):
    task.model.init({"params": jax.random.key(0)}, inputs)


def test_a_generalised_bigan_draws_smaller_images_than_e_sees():
  """gan_size < the images' side: G draws gan_size pixels, D sees real images resized to it."""
  task = make_task("bigan", tiny_backbone(), gan_size=16, **TINY)
  images = jnp.asarray(photo_crops(4, 32))
  inputs, _ = task.make_batch(jax.random.key(0), images, None)
  variables = task.model.init({"params": jax.random.key(0)}, inputs)
  out = task.model.apply(variables, inputs)
  assert out["generated"].shape == (4, 16, 16, 3)
  assert float(out["generated"].min()) >= -1 and float(out["generated"].max()) <= 1
  assert inputs["z"].shape == (4, 16) and float(jnp.abs(inputs["z"]).max()) <= 1
