"""BiGAN (Donahue, Krähenbühl, Darrell, ICLR 2017): learn an encoder E by adversarial
inversion of a generator G.

A joint discriminator D sees pairs: (x, E(x)) for real images, (G(z), z) for latent samples
z ~ U(-1, 1)^d. D learns to tell them apart; E and G learn to make them indistinguishable,
which in the optimum makes E the inverse of G. E is the backbone: the probes read its layers.

As the authors' code (github.com/jeffdonahue/bigan, train_gan.py with train_imagenet.sh's
BiGAN objective):
  - D's loss: (BCE(D(x, E(x)), 1) + BCE(D(G(z), z), 0)) / 2; E's and G's: the same with the
    labels inverted (their `opp_` losses), and G trained with E on E's loss
    (--encode_gen_weight 1). Both players take one Adam step on the same batch (k = 1,
    update_both): simultaneous updates, lr 2e-4, beta1 0.5, L2 weight decay 2.5e-5.
  - E: the conv trunk, then one linear layer to d logits, z = 2 sigmoid(logits) - 1 (their
    uniform distribution's logits_to_recon); d = 200.
  - G: z -> fc -> a 4x4 map (BN, ReLU) -> stride-2 up-convolutions, each with a linear
    projection of z added per channel before BN (their apply_cond), BN, ReLU -> sigmoid,
    scaled to [-1, 1], the range D sees real images in.
  - D: stride-2 5x5 convolutions with leaky ReLU (0.2, DCGAN's), z projected and added per channel
    from the second on, BN from the second on, then one linear logit. Real and generated
    pairs go through D as separate batches (separate BN statistics), as without --cat_inputs.
  - Weights of G and D start from N(0, 0.02).
Departures, for a CPU: G's 5x5 stride-2 deconvolutions are UpConv2x (a 3x3 sub-pixel
convolution, which can represent a 4x4 stride-2 transposed one; on XLA:CPU it is the fast
form); widths are set by `gan_width` (64 in the paper variant, 16 by default: 32 ran 3x
slower); the rate is constant (theirs decays after half the epochs); E's linear layer reads
the backbone's pooled conv5 ('pool5'), theirs the conv5 map; weight decay reaches every
parameter (they exempt BN gains, --no_decay_gain).

One optimiser, one gradient (the Task contract is unchanged): the two players' losses are
separated by gradient stops. D is applied twice to each pair, once with its inputs
stopped (its own loss: the gradient reaches only D's parameters) and once with its
parameters stopped (E's and G's loss: the gradient reaches only E and G through D's
inputs). The sum's gradient is then exactly (dL_D/dD, dL_EG/dE, dL_EG/dG): the authors'
two updates, in one step; tests/test_bigan.py checks it against each loss alone.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from sslflax.models.layers import UpConv2x
from sslflax.tasks.base import Task, prepare_images, register
from sslflax.transforms.color import to_float

GAN_INIT = nn.initializers.normal(0.02)  # DCGAN's and the authors' weight init
LEAKY_SLOPE = 0.2
MIN_IMAGE_SIZE = 16  # D's four stride-2 convs and G's 4 up-convolutions from side / 16


def make_bigan_batch(rng: jax.Array, images: jax.Array, labels: jax.Array | None = None,
                     z_dim: int = 200):
  """inputs: {'image': the images as given (uint8 stays uint8), 'z': (B, z_dim) uniform in
  [-1, 1], one latent sample per image}; targets: None (the adversarial loss needs none)."""
  del labels
  z = jax.random.uniform(rng, (images.shape[0], z_dim), jnp.float32, -1.0, 1.0)
  return {"image": images, "z": z}, None


def to_gan_range(images: jax.Array, size: int) -> jax.Array:
  """uint8 or [0, 1] images -> [-1, 1] at size x size: what D sees of a real image and what G
  draws (the authors' native range for ImageNet)."""
  x = to_float(images) * 2.0 - 1.0
  b, h, w, c = x.shape
  if (h, w) != (size, size):
    x = jax.image.resize(x, (b, size, size, c), "linear", antialias=True)
  return x


def latent_bias(z: jax.Array, channels: int, name: str) -> jax.Array:
  """A linear projection of z, shaped to add to every position of a (B, H, W, C) map: the
  authors' apply_cond, which conditions each layer of G and D on z."""
  return nn.Dense(channels, kernel_init=GAN_INIT, name=name)(z)[:, None, None, :]


class Generator(nn.Module):
  """z (B, d) -> images (B, size, size, 3) in [-1, 1]."""

  size: int
  width: int = 32  # the last hidden layer's channels; the first has 8x

  @nn.compact
  def __call__(self, z: jax.Array, train: bool = False) -> jax.Array:
    start = self.size // 16
    bn = lambda name: nn.BatchNorm(use_running_average=not train, momentum=0.9, name=name)
    x = nn.Dense(start * start * 8 * self.width, kernel_init=GAN_INIT, name="fc")(z)
    x = nn.relu(bn("fc_bn")(x)).reshape(z.shape[0], start, start, 8 * self.width)
    for i, mult in enumerate((4, 2, 1)):
      x = UpConv2x(mult * self.width, name=f"up{i}")(x)
      x = x + latent_bias(z, mult * self.width, f"up{i}_z")
      x = nn.relu(bn(f"up{i}_bn")(x))
    x = UpConv2x(3, use_bias=True, name="to_rgb")(x)
    return nn.sigmoid(x) * 2.0 - 1.0


class JointDiscriminator(nn.Module):
  """(x in [-1, 1] (B, size, size, 3), z (B, d)) -> one logit per pair: real (x, E(x)) or
  generated (G(z), z)."""

  width: int = 32  # the first conv's channels; then 2x, 4x, 8x

  @nn.compact
  def __call__(self, x: jax.Array, z: jax.Array, train: bool = False) -> jax.Array:
    for i, mult in enumerate((1, 2, 4, 8)):
      x = nn.Conv(mult * self.width, (5, 5), strides=2, padding="SAME", kernel_init=GAN_INIT,
                  name=f"conv{i}")(x)
      if i > 0:
        x = x + latent_bias(z, mult * self.width, f"conv{i}_z")
        x = nn.BatchNorm(use_running_average=not train, momentum=0.9, name=f"conv{i}_bn")(x)
      x = nn.leaky_relu(x, LEAKY_SLOPE)
    return nn.Dense(1, kernel_init=GAN_INIT, name="logit")(x.reshape(x.shape[0], -1))[:, 0]


def _frozen_apply(discriminator: nn.Module, x: jax.Array, z: jax.Array, train: bool):
  return discriminator(x, z, train)


def _stop_gradient_tree(variables):
  return jax.tree.map(jax.lax.stop_gradient, variables)


class BiGANNet(nn.Module):
  """E (the backbone + a linear layer to z), G and D in one module. Outputs the four logits
  the loss needs: D's own (`d_real`, `d_fake`: inputs stopped) and the ones E and G learn
  from (`eg_real`, `eg_fake`: D's parameters stopped)."""

  backbone: nn.Module
  z_dim: int = 200
  gan_size: int | None = None  # None: the images' side
  gan_width: int = 32

  @nn.compact
  def __call__(self, inputs, train: bool = False):
    images, z = inputs["image"], inputs["z"]
    size = check_gan_size(self.gan_size or images.shape[1], images.shape[1])
    _, taps = self.backbone(prepare_images(images), train)
    encoded = nn.sigmoid(nn.Dense(self.z_dim, kernel_init=GAN_INIT, name="encoder_head")(
        taps["pool5"].astype(jnp.float32))) * 2.0 - 1.0
    generated = Generator(size, self.gan_width, name="generator")(z, train)
    real = to_gan_range(images, size)
    discriminator = JointDiscriminator(self.gan_width, name="discriminator")
    stop = jax.lax.stop_gradient
    d_real = discriminator(real, stop(encoded), train)
    d_fake = discriminator(stop(generated), z, train)
    frozen = nn.map_variables(_frozen_apply, "params", trans_in_fn=_stop_gradient_tree,
                              init=self.is_initializing())
    eg_real = frozen(discriminator, real, encoded, train)
    eg_fake = frozen(discriminator, generated, z, train)
    return {"d_real": d_real, "d_fake": d_fake, "eg_real": eg_real, "eg_fake": eg_fake,
            "generated": generated}


def bce_with_logits(logits: jax.Array, label: float) -> jax.Array:
  """Mean binary cross-entropy of sigmoid(logits) against a constant label in {0, 1}."""
  return jnp.mean(jax.nn.softplus(-logits) if label == 1 else jax.nn.softplus(logits))


def bigan_loss(outputs, targets=None) -> tuple[jax.Array, dict[str, jax.Array]]:
  """D's loss on its own logits plus E's and G's (inverted labels) on theirs: each player's
  gradient comes from its own term only (see the module docstring).

  Metrics: each player's loss, D's accuracy on the pairs, and D's advantage: the mean
  probability it gives real pairs minus the mean it gives generated ones (0 when it cannot
  tell them apart, 1 when it always can)."""
  del targets
  f32 = lambda name: outputs[name].astype(jnp.float32)
  d_real, d_fake, eg_real, eg_fake = f32("d_real"), f32("d_fake"), f32("eg_real"), f32("eg_fake")
  d_loss = 0.5 * (bce_with_logits(d_real, 1) + bce_with_logits(d_fake, 0))
  eg_loss = 0.5 * (bce_with_logits(eg_real, 0) + bce_with_logits(eg_fake, 1))
  accuracy = 0.5 * (jnp.mean(d_real > 0) + jnp.mean(d_fake < 0))
  advantage = jnp.mean(jax.nn.sigmoid(d_real)) - jnp.mean(jax.nn.sigmoid(d_fake))
  return d_loss + eg_loss, {"d_loss": d_loss, "eg_loss": eg_loss, "d_accuracy": accuracy,
                            "d_advantage": advantage}


def check_gan_size(gan_size: int, image_size: int) -> int:
  """The side G draws and D sees, or a one-line error naming the fix."""
  if gan_size % 16 or gan_size > image_size:
    raise ValueError(f"bigan: G and D work at {gan_size} px, which must be a multiple of 16 "
                     f"and at most the {image_size} px images; set pretrain.image_size or "
                     f"task.options.gan_size to a multiple of 16.")
  return gan_size


@register("bigan")
def build(backbone: nn.Module, z_dim: int = 200, gan_size: int | None = None,
          gan_width: int = 32) -> Task:
  """BiGAN task. `z_dim`: the latent size (the paper's 200); `gan_size`: the side G draws and
  D sees (None: the images' side; smaller: the generalised BiGAN, where E sees more pixels
  than G draws); `gan_width`: G's and D's channel unit (64 in the paper)."""
  def make_batch(rng, images, labels=None):
    return make_bigan_batch(rng, images, labels, z_dim)
  model = BiGANNet(backbone.clone(num_fc=0), z_dim, gan_size, gan_width)
  return Task("bigan", make_batch, model, bigan_loss, min_image_size=MIN_IMAGE_SIZE)
