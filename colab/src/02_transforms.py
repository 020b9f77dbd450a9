"""Source of colab/02_transforms.ipynb: edit here, then run python colab/make_notebooks.py."""

# %% [markdown]
# # sslflax.transforms as standalone JAX functions
#
# The pretext transforms are pure JAX: no Flax, no configs, explicit PRNG keys, batched NHWC
# arrays. Use them inside your own `jax.jit` training step; nothing of sslflax's trainer is
# needed. Here: a small Flax CNN of our own learns rotation prediction on colour-jittered
# photo crops, with a training step we write ourselves.

# %% include: _setup.py

# %%
import time
import flax.linen as nn
import jax.numpy as jnp
import numpy as np
import optax
from skimage import data as skdata
from sslflax import transforms as T

# Our own data: random 48 px crops of three photos, as a plain uint8 numpy array.
photos = [skdata.astronaut(), skdata.chelsea(), skdata.coffee()]
gen = np.random.default_rng(0)
def random_crops(n, size=48):
  out = []
  for _ in range(n):
    p = photos[gen.integers(len(photos))]
    y, x = gen.integers(0, p.shape[0] - size), gen.integers(0, p.shape[1] - size)
    out.append(p[y:y + size, x:x + size])
  return np.stack(out)
images = random_crops(256)
print(images.shape, images.dtype)

# %%
class SmallCNN(nn.Module):
  @nn.compact
  def __call__(self, x):
    for width in (32, 64, 64):
      x = nn.relu(nn.Conv(width, (3, 3), strides=2)(x))
    return nn.Dense(4)(x.reshape(x.shape[0], -1))  # flatten: keeps where things are, unlike a mean

def augment(rng, images):
  """uint8 images -> (4B rotated, jittered images in [0, 1], 4B rotation labels)."""
  x = T.color_jitter(rng, T.to_float(images), grayscale_prob=0.2)
  return T.all_rotations(x)

model = SmallCNN()
params = model.init(jax.random.key(0), jnp.zeros((1, 48, 48, 3)))
tx = optax.adam(3e-3)
opt_state = tx.init(params)

@jax.jit
def train_step(params, opt_state, rng, images):
  x, labels = augment(rng, images)   # the sslflax transforms run inside our jitted step
  def loss_fn(p):
    logits = model.apply(p, x)
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean(), logits
  (loss, logits), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
  updates, opt_state = tx.update(grads, opt_state, params)
  return optax.apply_updates(params, updates), opt_state, loss, (logits.argmax(-1) == labels).mean()

steps = 10 if SMOKE else 150
for step in range(steps):
  batch = images[gen.integers(0, len(images), 32)]
  params, opt_state, loss, acc = train_step(params, opt_state, jax.random.key(step), batch)
  if step % max(steps // 5, 1) == 0 or step == steps - 1:
    print(f"step {step:3d}  loss {float(loss):.3f}  rotation accuracy {float(acc):.2f}")

# %% [markdown]
# ### Timing the jitted transform
# Compile once, then time it with `block_until_ready` (JAX dispatches asynchronously).

# %%
augment_jit = jax.jit(augment)
x = jnp.asarray(random_crops(64, 48))
jax.block_until_ready(augment_jit(jax.random.key(0), x))  # compile
repeats = 5 if SMOKE else 50
start = time.perf_counter()
for i in range(repeats):
  out = augment_jit(jax.random.key(i), x)
jax.block_until_ready(out)
seconds = (time.perf_counter() - start) / repeats
print(f"jitter + 4 rotations: {len(x) / seconds:,.0f} input images/s on {jax.devices()[0].platform}")

# %% [markdown]
# ### Other transforms
# The same style throughout: Lab conversion that matches `skimage.color`, random-filter
# downsampling, jigsaw tile grids, inpainting masks, colour bins. `help(T.<name>)` documents
# shapes, dtypes, ranges and which key drives the randomness.

# %%
lab = T.rgb_to_lab(T.to_float(x[:4]))                       # L in [0, 100], a/b about [-110, 110]
tiles = T.random_tile_grid(jax.random.key(1), x[:4], 3, 14)   # (4, 9, 14, 14, 3)
down = T.downsample_random_filter(jax.random.key(2), T.to_float(x[:4]))  # (4, 24, 24, 3)
mask = T.central_square_mask(4, 48, 48)                        # (4, 48, 48) bool
print(lab.shape, tiles.shape, down.shape, mask.shape, float(mask.mean()))
