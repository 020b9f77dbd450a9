"""Writes colab/*.ipynb (without outputs) from the cells below: edit here, then run

  python colab/make_notebooks.py

so the notebooks stay reviewable as Python and carry no stale outputs.
"""

import pathlib

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

OUT = pathlib.Path(__file__).resolve().parent

SETUP = '''# Set-up. On Colab: clone and install sslflax (skipped when it is already importable).
import importlib.util, os, pathlib, sys
SSLFLAX_GIT = "https://github.com/sslflax/sslflax.git"  # this repository (change it for a fork)
if importlib.util.find_spec("sslflax") is None:
  !git clone -q --depth 1 {SSLFLAX_GIT} /content/sslflax
  !pip install -q -e /content/sslflax ml-collections chex
  sys.path.insert(0, "/content/sslflax")
# Work from the repository root, where configs/ lives.
ROOT = next(p for p in (pathlib.Path.cwd(), *pathlib.Path.cwd().parents, pathlib.Path("/content/sslflax"))
            if (p / "configs" / "common.py").exists())
os.chdir(ROOT)
# SSLFLAX_NOTEBOOK_SMOKE=1 (CI) runs the same cells with tiny networks and a few steps.
SMOKE = os.environ.get("SSLFLAX_NOTEBOOK_SMOKE") == "1"
from sslflax.hostmem import keep_freed_memory
keep_freed_memory()  # before JAX starts: faster steps on a CPU runtime (see sslflax/hostmem.py)
import jax  # sslflax.data keeps TensorFlow (tf.data) off the GPU, so JAX gets it all
print("JAX devices:", jax.devices(), "| smoke run" if SMOKE else "")'''


NOTEBOOKS: dict[str, list[str]] = {}  # file name -> cells; "md:" starts a Markdown cell


def notebook(name: str, cells: list[str]) -> None:
  NOTEBOOKS[name] = cells


def write_all(out_dir: pathlib.Path) -> None:
  for name, cells in NOTEBOOKS.items():
    nb = new_notebook(cells=[new_markdown_cell(c[3:]) if c.startswith("md:") else new_code_cell(c)
                             for c in cells])
    nb.metadata = {"kernelspec": {"name": "python3", "display_name": "Python 3",
                                  "language": "python"},
                   "language_info": {"name": "python"}, "accelerator": "GPU",
                   "colab": {"provenance": []}}
    for index, cell in enumerate(nb.cells):
      cell["id"] = f"{pathlib.Path(name).stem}-{index}"  # stable ids: regenerating changes nothing
    nbformat.write(nb, out_dir / name)


notebook("01_quickstart.ipynb", [
    """md:# sslflax quickstart: pretext tasks on real images

A *pretext task* turns unlabelled images into a supervised problem whose labels come free:
rotate an image and ask which way is up, shuffle its tiles and ask for the order, hide its
centre and ask for it back. A network trained on such a task learns features; *linear probes*
then measure them: the backbone is frozen and a linear classifier is trained on each layer's
features of a labelled downstream set, beside the same probe on the network at random init.

This notebook shows every task of the seed paper on the embedded sample (real photos that
ship with sslflax), an augmented stream of new views from one photo, then pretrains AlexNet-BN
on rotation for a few minutes on a CPU (the GPU on Colab, with no change) and probes it
beside random initialisation.""",
    SETUP,
    """import jax.numpy as jnp
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
              for l in batch["label"]])""",
    """md:## Rotation (Gidaris et al. 2018)
Every image in all four exact rotations; the label is the rotation, predicted as 4 classes.""",
    """inputs, targets = make_task("rotation", backbone).make_batch(rng, images[:2], None)
show(inputs, [f"label {int(t)}: {90 * int(t)}°" for t in targets], rows=2)""",
    """md:## Jigsaw puzzle (Noroozi & Favaro 2016)
A 3x3 grid of tiles, each cut at a random place inside its cell (gaps stop the network from
matching edges), shuffled by one of 1000 maximally different permutations; the label is the
permutation's index. Some tiles turn gray and each colour channel shifts by up to 2 px, against chromatic shortcuts.""",
    """task = make_task("jigsaw", backbone)
tiles, index = task.make_batch(rng, images[:1], None)
permutations = jnp.asarray(T.load_permutations())
perm = permutations[index]
restored = T.apply_permutation(tiles, T.invert_permutation(perm))
print("permutation index", int(index[0]), "= order", perm[0].tolist())
show(tiles[0], [f"position {i}" for i in range(9)], rows=3, size=1.1)
show(restored[0], [f"tile {i}" for i in range(9)], rows=3, size=1.1)""",
    """md:## Counting (Noroozi et al. 2017)
The network maps an image to a vector of 1000 non-negative "counts". The counts of the 2x2
tiles must add up to those of the downsampled whole image (each image gets its own
downsampling filter), while another image's counts must differ by a margin.""",
    """inputs, _ = make_task("counting", backbone).make_batch(rng, images[:1], None)
show([*inputs["tiles"][0], inputs["down"][0]], ["tile 1", "tile 2", "tile 3", "tile 4",
                                               "downsampled image"])""",
    """md:## Context encoder (Pathak et al. 2016)
The central square is filled with the dataset mean; the network inpaints it, with an L2 loss
on the hidden region.""",
    """inputs, targets = make_task("context", backbone).make_batch(rng, images[:2], None)
region = jnp.where(targets["mask"][..., None], targets["image"], 255)
show([inputs[0], region[0], inputs[1], region[1]],
     ["input", "region to predict", "input", "region to predict"])""",
    """md:## Colorization (Zhang et al. 2016)
The network sees the lightness L and predicts, at every 4th pixel, a distribution over the 313
in-gamut ab colour bins; its targets are soft encodings over the 5 nearest bins, weighted to
favour rare colours.""",
    """inputs, targets = make_task("colorization", backbone).make_batch(rng, images[:1], None)
lab = T.rgb_to_lab(T.to_float(images[:1]))
show([inputs[0, ..., 0], lab[0, ..., 1], lab[0, ..., 2]], ["L (input)", "a", "b"], cmap="gray", size=2.2)
mass = np.bincount(np.asarray(targets["bins"]).ravel(), np.asarray(targets["weights"]).ravel(),
                   minlength=313)
bins = T.ab_bins()
plt.figure(figsize=(3.5, 3.5))
plt.scatter(bins[:, 1], bins[:, 0], s=4, c="lightgray")
plt.scatter(bins[:, 1], bins[:, 0], s=400 * mass / mass.max(), c="tab:red")
plt.xlabel("b"); plt.ylabel("a"); plt.title("target mass over the 313 ab bins", fontsize=9)
plt.show()""",
    """md:## Relative patch location (Doersch et al. 2015)
Nine patches of a 3x3 grid, with gaps between them and a small random jitter of each; the
network sees the centre patch with each of its 8 neighbours and says where the neighbour lies.""",
    """from sslflax.tasks.patch_location import PAIRS
patches, labels = make_task("patch_location", backbone).make_batch(rng, images[:1], None)
show(patches[0], [f"cell {i}" + (" (centre)" if i == 4 else "") for i in range(9)], rows=3, size=1.1)
print("pair labels:", {PAIRS[i][1]: int(l) for i, l in enumerate(labels[:8])})""",
    """md:## Exemplar (Dosovitskiy et al. 2014; triplets as Kolesnikov et al. 2019)
Every image is its own class: 8 heavily transformed views of it (crop, zoom, rotation, colour)
must embed closer to each other than to any other image's views.""",
    """views, labels = make_task("exemplar", backbone).make_batch(rng, images[:2], None)
show(views, [f"image {int(l)}" for l in labels], rows=2)""",
    """md:## Denoising autoencoder (Vincent et al. 2008)
A quarter of the input components set to 0 (masking noise); the network reconstructs the
clean image. `multitask` combines any of these tasks on one backbone.""",
    """inputs, targets = make_task("denoising", backbone).make_batch(rng, images[:2], None)
show([inputs[0], targets["image"][0], inputs[1], targets["image"][1]],
     ["corrupted input", "target", "corrupted input", "target"])""",
    """md:## SimCLR (Chen et al. 2020): two views, and the other 2N - 2 as negatives
Each image gets two views from SimCLR's distribution (`T.SIMCLR_VIEW`: random resized crop,
flip, colour jitter in random order, grayscale, blur); NT-Xent pulls a view's embedding to its
twin and away from every other view of the global batch. `byol` and `moco` use the same views.""",
    """views, _ = make_task("simclr", backbone).make_batch(rng, images[:4], None)
show(views, [f"image {i // 2}, view {i % 2 + 1}" for i in range(8)], rows=2)""",
    """md:## An augmented stream: new views of one image at every step
With `config.pretrain.augment`, the host hands whole source images and the jitted step draws
new views of them (Asano et al. 2020): a random resized crop (down to 1e-3 of the photo's area
here), a rotation by up to 35 degrees, a flip, a change of colour and intensity. One photo
becomes an unbounded stream; the study pretrains every task on exactly that.""",
    """photo = next(data.make_dataset(data.SAMPLE_PHOTOS, "train", image_size=256, batch_size=1,
                               train=False).as_numpy_iterator())["image"]
spec = T.AugmentSpec(crop_area=(1e-3, 1.0))
views = T.stream_view(jax.random.key(1), jnp.repeat(jnp.asarray(photo), 16, axis=0), spec, 64)
show([photo[0]], ["the source photo"], size=2.5)
show(views, rows=2)""",
    """md:## Pretrain, then probe every layer beside random init
`experiment.run` pretrains (checkpoints, resumable) on the 20,000-image pool, then trains a
linear probe on each frozen layer's features of the downstream set (Fashion-MNIST: 3000
labelled training images, 5000 test images), for its own backbone and for the same network
at random init, and writes `results.json`. The same call runs every experiment of the command
line (`python -m sslflax.main --config=configs/rotation.py`).""",
    """import tempfile
from sslflax import experiment
from sslflax.configpath import load_config
from sslflax.log import redirect

config = load_config("configs/rotation.py", "smoke" if SMOKE else None)
if not SMOKE:
  config.pretrain.steps = 100  # a few minutes on a CPU; the default is 600
with redirect(None):  # the progress lines; without it they print here
  results = experiment.run(config, tempfile.mkdtemp(prefix="sslflax_quickstart_"))
print(experiment.format_tables(results))""",
    """md:Each row compares a layer's probe with random init's on the same images, with binomial
standard errors over the test images; `*` marks differences beyond 2 standard errors of the
difference. A hundred steps is a short pretraining: the full default, and the study
(`04_study.ipynb`), show the larger gains.""",
])

notebook("02_transforms.ipynb", [
    """md:# sslflax.transforms as standalone JAX functions

The pretext transforms are pure JAX: no Flax, no configs, explicit PRNG keys, batched NHWC
arrays. Use them inside your own `jax.jit` training step; nothing of sslflax's trainer is
needed. Here: a small Flax CNN of our own learns rotation prediction on colour-jittered
photo crops, with a training step we write ourselves.""",
    SETUP,
    """import time
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
print(images.shape, images.dtype)""",
    """class SmallCNN(nn.Module):
  @nn.compact
  def __call__(self, x):
    for width in (32, 64, 64):
      x = nn.relu(nn.Conv(width, (3, 3), strides=2)(x))
    return nn.Dense(4)(x.reshape(x.shape[0], -1))  # flatten: keeps where things are, unlike a mean

def augment(rng, images):
  \"\"\"uint8 images -> (4B rotated, jittered images in [0, 1], 4B rotation labels).\"\"\"
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
    print(f"step {step:3d}  loss {float(loss):.3f}  rotation accuracy {float(acc):.2f}")""",
    """md:### Timing the jitted transform
Compile once, then time it with `block_until_ready` (JAX dispatches asynchronously).""",
    """augment_jit = jax.jit(augment)
x = jnp.asarray(random_crops(64, 48))
jax.block_until_ready(augment_jit(jax.random.key(0), x))  # compile
repeats = 5 if SMOKE else 50
start = time.perf_counter()
for i in range(repeats):
  out = augment_jit(jax.random.key(i), x)
jax.block_until_ready(out)
seconds = (time.perf_counter() - start) / repeats
print(f"jitter + 4 rotations: {len(x) / seconds:,.0f} input images/s on {jax.devices()[0].platform}")""",
    """md:### Other transforms
The same style throughout: Lab conversion that matches `skimage.color`, random-filter
downsampling, jigsaw tile grids, inpainting masks, colour bins. `help(T.<name>)` documents
shapes, dtypes, ranges and which key drives the randomness.""",
    """lab = T.rgb_to_lab(T.to_float(x[:4]))                       # L in [0, 100], a/b about [-110, 110]
tiles = T.random_tile_grid(jax.random.key(1), x[:4], 3, 14)   # (4, 9, 14, 14, 3)
down = T.downsample_random_filter(jax.random.key(2), T.to_float(x[:4]))  # (4, 24, 24, 3)
mask = T.central_square_mask(4, 48, 48)                        # (4, 48, 48) bool
print(lab.shape, tiles.shape, down.shape, mask.shape, float(mask.mean()))""",
])

notebook("03_custom_task.ipynb", [
    """md:# Adding your own pretext task

A task is three pure pieces: a batch builder `(rng, images, labels) -> (inputs, targets)`
that runs on the device inside the jitted step, a Flax model (the backbone under the name
`backbone` plus a head), and a loss returning `(loss, metrics)`. Register it by name and
every entry point can train and evaluate it: the command line, the study, this notebook.

Here: **flip prediction**, which of four flips (none, horizontal, vertical, both) was applied.""",
    SETUP,
    """import jax.numpy as jnp
from sslflax.tasks import ClassifierNet, Task, classification_loss, register

def make_flip_batch(rng, images, labels=None):
  \"\"\"uint8 images (B, H, W, 3) -> (flipped images, flip label in 0..3): bit 0 horizontal, bit 1 vertical.\"\"\"
  del labels
  flips = jax.random.randint(rng, (images.shape[0],), 0, 4)
  horizontal = jnp.where((flips % 2 == 1)[:, None, None, None], images[:, :, ::-1], images)
  both = jnp.where((flips >= 2)[:, None, None, None], horizontal[:, ::-1], horizontal)
  return both, flips

@register("flip", replace=True)  # replace=True: this cell may be run again
def build_flip(backbone) -> Task:
  return Task("flip", make_flip_batch, ClassifierNet(backbone, num_classes=4), classification_loss)""",
    """import matplotlib.pyplot as plt
from sslflax import data
images = next(data.make_dataset(data.SAMPLE_PHOTOS, "train", image_size=64, batch_size=8,
                                train=True, seed=0).as_numpy_iterator())["image"]
flipped, flips = make_flip_batch(jax.random.key(0), jnp.asarray(images), None)
fig, axes = plt.subplots(1, 8, figsize=(12, 1.8))
for ax, picture, label in zip(axes, flipped, flips):
  ax.imshow(picture); ax.axis("off"); ax.set_title(["none", "horizontal", "vertical", "both"][int(label)], fontsize=8)
plt.show()""",
    """md:Train it through the same engine: take any experiment config, name the task, run.
(To use it from the command line, put the two functions in a module that your config imports.)

Read the pretext accuracy before the probe: horizontal flips are hard to tell apart in natural
images, and in 60 steps on a CPU this task stays close to chance (0.25). A probe on features
from a pretext task that was not learned measures little beyond the random initialisation.""",
    """import tempfile
from sslflax import experiment
from sslflax.configpath import load_config
from sslflax.log import redirect

config = load_config("configs/rotation.py", "smoke" if SMOKE else None)
config.experiment = config.task.name = "flip"
if not SMOKE:
  config.pretrain.steps = 60  # a few minutes on a CPU
with redirect(None):
  results = experiment.run(config, tempfile.mkdtemp(prefix="sslflax_flip_"))
print("pretext accuracy:", round(results["pretext"]["final_metrics"]["accuracy"], 3))
print(experiment.format_tables(results))""",
])

notebook("04_study.ipynb", [
    """md:# The study: pretext tasks against baselines, per dataset and layer, across pretraining sizes

The seed paper compares five pretext tasks with random initialisation and supervised
pretraining, on several downstream datasets, at three pretraining-set sizes, and measures
each task's *sensitivity* to the pretraining-set size. `sslflax.study` runs that grid and
writes `results.csv`, the tables (`study.md`) and the figures. Its default pretrains every
task on one image (Asano et al. 2020) and on its whole default set, and probes every layer
beside random init.

On the command line: `python -m sslflax.study --config=configs/study.py --workdir=DIR`
(under 45 minutes on a 2-core CPU; `:paper` for ImageNet on GPUs). Here we run the small
`smoke` study, then show the full default study shipped in `results/default-study/`.""",
    SETUP,
    """import tempfile
from IPython.display import Image, Markdown, display
from sslflax import study
from sslflax.configpath import load_config
from sslflax.log import redirect

config = load_config("configs/study.py", "smoke")
if SMOKE:  # CI: two cells (tests/test_study.py runs the whole smoke study)
  config.experiments, config.subset_sizes = ("random", "rotation"), (32,)
workdir = tempfile.mkdtemp(prefix="sslflax_study_")
with redirect(None):
  markdown = study.run_study(config, workdir)
display(Markdown(markdown))
display(Image(f"{workdir}/figures/accuracy_per_dataset.png"))""",
    """md:Running it again reuses every finished cell (an interrupted study continues where it
stopped):""",
    """lines = []
with redirect(lines.append):
  study.run_study(config, workdir)
print(lines[0])""",
    """md:## The default study, as measured
The shipped results of `python -m sslflax.study --config=configs/study.py` on a 2-core CPU.
`report.write_report` redraws them from the per-cell results in any study workdir.""",
    """shipped = ROOT / "results" / "default-study"
display(Markdown((shipped / "study.md").read_text()))
for name in ("probe_layers_sslflax_sample_fashion", "probe_layers_sslflax_sample_digits",
             "accuracy_per_dataset"):
  display(Image(str(shipped / "figures" / f"{name}.png")))""",
])
if __name__ == "__main__":
  write_all(OUT)
  print("wrote", sorted(NOTEBOOKS))
