"""Source of colab/01_quickstart.ipynb: edit here, then run python colab/make_notebooks.py."""

# %% [markdown]
# # sslflax quickstart: pretext tasks on real images
#
# A *pretext task* turns unlabelled images into a supervised problem whose labels come free:
# rotate an image and ask which way is up, shuffle its tiles and ask for the order, hide its
# centre and ask for it back. A network trained on such a task learns features; *linear probes*
# then measure them: the backbone is frozen and a linear classifier is trained on each layer's
# features of a labelled downstream set, beside the same probe on the network at random init.
#
# This notebook shows every task of the seed paper on the embedded sample (real photos that
# ship with sslflax), an augmented stream of new views from one photo, then pretrains AlexNet-BN
# on rotation for a few minutes on a CPU (the GPU on Colab, with no change) and probes it
# beside random initialisation.

# %% include: _setup.py

# %%
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
from sslflax import data, transforms as T
from sslflax.models import AlexNetBN
from sslflax.tasks import make_task

batch = next(data.make_dataset(data.SAMPLE_PHOTOS, "train", image_size=64, batch_size=8,
                               train=True, seed=0).as_numpy_iterator())
images = jnp.asarray(batch["image"])  # (8, 64, 64, 3) uint8: the six real photos, cropped
backbone = AlexNetBN()  # the batch builders below do not depend on the network
rng = jax.random.key(0)

def show(pictures, titles=(), rows=1, size=1.6, cmap=None):
  pictures = [np.asarray(p) for p in pictures]
  cols = -(-len(pictures) // rows)
  fig, axes = plt.subplots(rows, cols, figsize=(size * cols, size * rows), squeeze=False)
  for ax in axes.ravel():
    ax.axis("off")
  for ax, picture, title in zip(axes.ravel(), pictures, list(titles) + [""] * len(pictures)):
    ax.imshow(picture.squeeze(), cmap=cmap)
    ax.set_title(title, fontsize=8)
  plt.show()

show(images, [data.get_builder(data.SAMPLE_PHOTOS).info.features["label"].int2str(int(l))
              for l in batch["label"]])

# %% [markdown]
# ## Rotation (Gidaris et al. 2018)
# Every image in all four exact rotations; the label is the rotation, predicted as 4 classes.

# %%
inputs, targets = make_task("rotation", backbone).make_batch(rng, images[:2], None)
show(inputs, [f"label {int(t)}: {90 * int(t)}°" for t in targets], rows=2)

# %% [markdown]
# ## Jigsaw puzzle (Noroozi & Favaro 2016)
# A 3x3 grid of tiles, each cut at a random place inside its cell (gaps stop the network from
# matching edges), shuffled by one of 1000 maximally different permutations; the label is the
# permutation's index. Some tiles turn gray and each colour channel shifts by up to 2 px, against chromatic shortcuts.

# %%
task = make_task("jigsaw", backbone)
tiles, index = task.make_batch(rng, images[:1], None)
permutations = jnp.asarray(T.load_permutations())
perm = permutations[index]
restored = T.apply_permutation(tiles, T.invert_permutation(perm))
print("permutation index", int(index[0]), "= order", perm[0].tolist())
show(tiles[0], [f"position {i}" for i in range(9)], rows=3, size=1.1)
show(restored[0], [f"tile {i}" for i in range(9)], rows=3, size=1.1)

# %% [markdown]
# ## Counting (Noroozi et al. 2017)
# The network maps an image to a vector of 1000 non-negative "counts". The counts of the 2x2
# tiles must add up to those of the downsampled whole image (each image gets its own
# downsampling filter), while another image's counts must differ by a margin.

# %%
inputs, _ = make_task("counting", backbone).make_batch(rng, images[:1], None)
show([*inputs["tiles"][0], inputs["down"][0]], ["tile 1", "tile 2", "tile 3", "tile 4",
                                               "downsampled image"])

# %% [markdown]
# ## Context encoder (Pathak et al. 2016)
# The central square is filled with the dataset mean; the network inpaints it, with an L2 loss
# on the hidden region.

# %%
inputs, targets = make_task("context", backbone).make_batch(rng, images[:2], None)
region = jnp.where(targets["mask"][..., None], targets["image"], 255)
show([inputs[0], region[0], inputs[1], region[1]],
     ["input", "region to predict", "input", "region to predict"])

# %% [markdown]
# ## Colorization (Zhang et al. 2016)
# The network sees the lightness L and predicts, at every 4th pixel, a distribution over the 313
# in-gamut ab colour bins; its targets are soft encodings over the 5 nearest bins, weighted to
# favour rare colours.

# %%
inputs, targets = make_task("colorization", backbone).make_batch(rng, images[:1], None)
lab = T.rgb_to_lab(T.to_float(images[:1]))
show([inputs[0, ..., 0], lab[0, ..., 1], lab[0, ..., 2]], ["L (input)", "a", "b"], cmap="gray", size=2.2)
mass = np.bincount(np.asarray(targets["bins"]).ravel(), np.asarray(targets["weights"]).ravel(),
                   minlength=313)
bins = T.ab_bins()
plt.figure(figsize=(3.5, 3.5))
plt.scatter(bins[:, 1], bins[:, 0], s=4, c="lightgray")
plt.scatter(bins[:, 1], bins[:, 0], s=400 * mass / mass.max(), c="tab:red")
plt.xlabel("b"); plt.ylabel("a"); plt.title("target mass over the 313 ab bins", fontsize=9)
plt.show()

# %% [markdown]
# ## Relative patch location (Doersch et al. 2015)
# Nine patches of a 3x3 grid, with gaps between them and a small random jitter of each; the
# network sees the centre patch with each of its 8 neighbours and says where the neighbour lies.

# %%
from sslflax.tasks.patch_location import PAIRS
patches, labels = make_task("patch_location", backbone).make_batch(rng, images[:1], None)
show(patches[0], [f"cell {i}" + (" (centre)" if i == 4 else "") for i in range(9)], rows=3, size=1.1)
print("pair labels:", {PAIRS[i][1]: int(l) for i, l in enumerate(labels[:8])})

# %% [markdown]
# ## Exemplar (Dosovitskiy et al. 2014; triplets as Kolesnikov et al. 2019)
# Every image is its own class: 8 heavily transformed views of it (crop, zoom, rotation, colour)
# must embed closer to each other than to any other image's views.

# %%
views, labels = make_task("exemplar", backbone).make_batch(rng, images[:2], None)
show(views, [f"image {int(l)}" for l in labels], rows=2)

# %% [markdown]
# ## Denoising autoencoder (Vincent et al. 2008)
# A quarter of the input components set to 0 (masking noise); the network reconstructs the
# clean image. `multitask` combines any of these tasks on one backbone.

# %%
inputs, targets = make_task("denoising", backbone).make_batch(rng, images[:2], None)
show([inputs[0], targets["image"][0], inputs[1], targets["image"][1]],
     ["corrupted input", "target", "corrupted input", "target"])

# %% [markdown]
# ## SimCLR (Chen et al. 2020): two views, and the other 2N - 2 as negatives
# Each image gets two views from SimCLR's distribution (`T.SIMCLR_VIEW`: random resized crop,
# flip, colour jitter in random order, grayscale, blur); NT-Xent pulls a view's embedding to its
# twin and away from every other view of the global batch. `byol` and `moco` use the same views.

# %%
views, _ = make_task("simclr", backbone).make_batch(rng, images[:4], None)
show(views, [f"image {i // 2}, view {i % 2 + 1}" for i in range(8)], rows=2)

# %% [markdown]
# ## An augmented stream: new views of one image at every step
# With `config.pretrain.augment`, the host hands whole source images and the jitted step draws
# new views of them (Asano et al. 2020): a random resized crop (down to 1e-3 of the photo's area
# here), a rotation by up to 35 degrees, a flip, a change of colour and intensity. One photo
# becomes an unbounded stream; the study pretrains every task on exactly that.

# %%
photo = next(data.make_dataset(data.SAMPLE_PHOTOS, "train", image_size=256, batch_size=1,
                               train=False).as_numpy_iterator())["image"]
spec = T.AugmentSpec(crop_area=(1e-3, 1.0))
views = T.stream_view(jax.random.key(1), jnp.repeat(jnp.asarray(photo), 16, axis=0), spec, 64)
show([photo[0]], ["the source photo"], size=2.5)
show(views, rows=2)

# %% [markdown]
# ## Pretrain, then probe every layer beside random init
# `experiment.run` pretrains (checkpoints, resumable) on the 20,000-image pool, then trains a
# linear probe on each frozen layer's features of the downstream set (Fashion-MNIST: 3000
# labelled training images, 5000 test images), for its own backbone and for the same network
# at random init, and writes `results.json`. The same call runs every experiment of the command
# line (`python -m sslflax.main --config=configs/rotation.py`).

# %%
import tempfile
from sslflax import experiment
from sslflax.configpath import load_config
from sslflax.log import redirect

config = load_config("configs/rotation.py", "smoke" if SMOKE else None)
if not SMOKE:
  config.pretrain.steps = 100  # a few minutes on a CPU; the default is 600
workdir = tempfile.mkdtemp(prefix="sslflax_quickstart_")
with redirect(None):  # the progress lines; without it they print here
  results = experiment.run(config, workdir)
print(experiment.format_tables(results))

# %% [markdown]
# Each row compares a layer's probe with random init's on the same images, with binomial
# standard errors over the test images; `*` marks differences beyond 2 standard errors of the
# difference. A hundred steps is a short pretraining: the full default, and the study
# (`04_study.ipynb`), show the larger gains.

# %% [markdown]
# ## Pictures of what it learned
# `python -m sslflax.visualize` (here `visualize.write_for_run`) writes three PNGs into the
# run's `pictures/`, the run beside random init: conv1's filters; attention maps per layer (the
# mean over channels of |activation|², Zagoruyko & Komodakis 2017, as in RotNet's figure), a
# row per model under each probe image; and each query's 5 nearest probe-train images by
# conv5's pooled features (a block of rows per model).

# %%
from sslflax import visualize
with redirect(None):
  pictured = visualize.write_for_run(config, workdir)
print("models, in order:", pictured["models"])
for name, path in pictured["paths"].items():
  show([plt.imread(path)], [name], size=6)
