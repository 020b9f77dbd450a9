"""Pictures of what a run learned, beside random init: PNGs in WORKDIR/pictures/.

  python -m sslflax.visualize --config=configs/rotation.py --workdir=workdir/rotation
  python -m sslflax.visualize ... --supervised_workdir=workdir/supervised  # beside a
      supervised run (configs/supervised.py beside --config, at the same variant)

Run it with the run's own command line (its config and overrides) after the run finished:
  conv1_filters.png     the first layer's filters (each scaled to [0, 1]), trained | random
                        (none for a fixed first stage: the scattering baseline)
  attention.png         per probe image, its attention map at every tap (Zagoruyko &
                        Komodakis 2017, RotNet's figure: the mean over channels of |a|^2,
                        scaled to [0, 1] per map), a row for each model
  neighbours.png        per query image of the probe test split, its 5 nearest probe-train
                        images by cosine similarity of the last tap's pooled features, a
                        block of rows for each model
The study writes them for every cell it pretrained (study.pictures).
"""

from __future__ import annotations

import os
import sys
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

QUERIES = 6  # probe images per picture
NEIGHBOURS = 5
GALLERY = 1000  # probe-train images searched for neighbours
ATTENTION_POWER = 2  # Zagoruyko & Komodakis's p


def first_layer_filters(params: dict[str, Any], layer_of) -> np.ndarray | None:
  """(C, kh, kw, 3) of the first layer's RGB kernel (the first 4-D kernel with 3 input
  channels among the parameters of layer 1); None for a fixed first stage (scattering)."""
  for name in params:
    if layer_of(name) != 1:
      continue
    for leaf in jax.tree.leaves(params[name]):
      if leaf.ndim == 4 and leaf.shape[2] == 3:
        return np.moveaxis(np.asarray(leaf, np.float32), 3, 0)
  return None


def scale_each(x: np.ndarray) -> np.ndarray:
  """Each item of the leading axis min-max scaled to [0, 1] (a constant one to 0.5)."""
  flat = x.reshape(len(x), -1)
  low, high = flat.min(1), flat.max(1)
  span = np.where(high > low, high - low, 1.0)
  out = (flat - low[:, None]) / span[:, None]
  out[high == low] = 0.5
  return out.reshape(x.shape)


def grid(tiles: np.ndarray, columns: int, pad: int = 1) -> np.ndarray:
  """(N, h, w, 3) tiles in [0, 1] -> one (rows * (h + pad), columns * (w + pad), 3) image,
  white between tiles, rows filled left to right."""
  n, h, w, _ = tiles.shape
  rows = -(-n // columns)
  out = np.ones((rows * (h + pad) + pad, columns * (w + pad) + pad, 3), np.float32)
  for i, tile in enumerate(tiles):
    r, c = divmod(i, columns)
    out[pad + r * (h + pad):pad + r * (h + pad) + h, pad + c * (w + pad):pad + c * (w + pad) + w] = tile
  return out


def upscale(tile: np.ndarray, size: int) -> np.ndarray:
  """Nearest-neighbour resize of (h, w, ...) to (size, size, ...)."""
  rows = np.arange(size) * tile.shape[0] // size
  cols = np.arange(size) * tile.shape[1] // size
  return tile[rows][:, cols]


def attention_maps(taps: dict[str, jax.Array], names: tuple[str, ...]) -> dict[str, np.ndarray]:
  """tap -> (B, h, w) in [0, 1]: mean over channels of |activation|^p, scaled per map."""
  maps = {}
  for name in names:
    a = jnp.mean(jnp.abs(taps[name].astype(jnp.float32)) ** ATTENTION_POWER, axis=-1)
    maps[name] = scale_each(np.asarray(a))
  return maps


def heat(values: np.ndarray) -> np.ndarray:
  """(h, w) in [0, 1] -> (h, w, 3) in [0, 1], matplotlib's 'inferno' colour map."""
  import matplotlib
  return np.asarray(matplotlib.colormaps["inferno"](values)[..., :3], np.float32)


def pooled(taps: dict[str, jax.Array], name: str) -> np.ndarray:
  """(B, C) unit vectors: the tap's spatial mean, L2-normalised (for cosine similarity)."""
  x = np.asarray(jnp.mean(taps[name].astype(jnp.float32), axis=(1, 2)))
  return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def nearest(queries: np.ndarray, gallery: np.ndarray, k: int) -> np.ndarray:
  """(Q, k) indices of each query's k most cosine-similar gallery rows, best first."""
  return np.argsort(-(queries @ gallery.T), axis=1, kind="stable")[:, :k]


def probe_images(spec, dataset: str, split: str, count: int) -> np.ndarray:
  """The first `count` images of a probe split, central crops at the probe's size (uint8)."""
  from sslflax import data as data_lib
  size = dict(spec.image_size_per_dataset).get(dataset, spec.image_size)
  ds = data_lib.make_dataset(dataset, split, image_size=size, batch_size=min(count, 500),
                             train=False, data_dir=spec.data_dir, need_labels=False,
                             squash=spec.squash)
  from sslflax.console import hidden_native_stderr
  parts, have = [], 0
  with hidden_native_stderr():  # TF warns when a cached split is read only in part
    batches = ds.as_numpy_iterator()
    for batch in batches:
      parts.append(batch["image"])
      have += len(batch["image"])
      if have >= count:
        break
    del batches
  return np.concatenate(parts)[:count]


def forward_taps(backbone, variables, images: np.ndarray, input_fn=None, chunk: int = 250):
  """Every tap of the frozen backbone (eval mode) on uint8 images, in chunks."""
  fn = jax.jit(lambda v, x: backbone.apply(v, input_fn(x) if input_fn else x, train=False)[1])
  parts = [fn(variables, jnp.asarray(images[i:i + chunk])) for i in range(0, len(images), chunk)]
  return {name: jnp.concatenate([p[name] for p in parts]) for name in parts[0]}


def write_png(path: str, image: np.ndarray) -> str:
  from PIL import Image
  Image.fromarray(np.round(np.clip(image, 0, 1) * 255).astype(np.uint8)).save(path)
  return path


def pictures(models: dict[str, dict[str, Any]], backbone, contract, spec, out_dir: str,
             input_fn=None) -> dict[str, Any]:
  """Write the three PNGs for `models` (name -> backbone variables, first the run, then
  random init, then any other) on the first probe dataset; returns their paths and the
  arrays they show (for tests and notebooks)."""
  from sslflax.evaluate.linear import probe_splits
  os.makedirs(out_dir, exist_ok=True)
  dataset = spec.datasets[0]
  train_split, test_split = probe_splits(spec, dataset)
  queries = probe_images(spec, dataset, test_split, QUERIES)
  gallery = probe_images(spec, dataset, train_split, GALLERY)
  taps = tuple(contract.taps)
  shown: dict[str, Any] = {"filters": {}, "attention": {}, "neighbours": {}}
  for name, variables in models.items():
    filters = first_layer_filters(variables["params"], contract.layer_of)
    if filters is not None:
      shown["filters"][name] = scale_each(filters)
    query_taps = forward_taps(backbone, variables, queries, input_fn)
    shown["attention"][name] = attention_maps(query_taps, taps)
    gallery_taps = forward_taps(backbone, variables, gallery, input_fn)
    shown["neighbours"][name] = nearest(pooled(query_taps, taps[-1]),
                                        pooled(gallery_taps, taps[-1]), NEIGHBOURS)
  size = queries.shape[1]
  paths = {}
  if shown["filters"]:  # each model's grid of first-layer filters, side by side
    filter_grids = []
    for name in models:
      f = shown["filters"][name]
      tile = max(3 * f.shape[1], 24)  # a few pixels per weight
      filter_grids.append(grid(np.stack([upscale(x, tile) for x in f]), 8))
    height = max(g.shape[0] for g in filter_grids)
    padded = [np.pad(g, ((0, height - g.shape[0]), (0, 4), (0, 0)), constant_values=1)
              for g in filter_grids]
    paths["conv1_filters"] = write_png(os.path.join(out_dir, "conv1_filters.png"),
                                       np.concatenate(padded, axis=1))
  # Attention: per image and model, the image then each tap's map.
  rows = []
  for i in range(len(queries)):
    for name in models:
      rows.append(queries[i] / 255.0)
      rows.extend(heat(upscale(shown["attention"][name][tap][i], size)) for tap in taps)
  paths["attention"] = write_png(os.path.join(out_dir, "attention.png"),
                                 grid(np.stack(rows), 1 + len(taps)))
  # Neighbours: per model, each query then its neighbours.
  rows = []
  for name in models:
    for i in range(len(queries)):
      rows.append(queries[i] / 255.0)
      rows.extend(gallery[j] / 255.0 for j in shown["neighbours"][name][i])
  paths["neighbours"] = write_png(os.path.join(out_dir, "neighbours.png"),
                                  grid(np.stack(rows), 1 + NEIGHBOURS))
  legend = ", ".join(models)
  with open(os.path.join(out_dir, "README.txt"), "w") as f:
    f.write(f"models, in order (side by side in conv1_filters.png; rows per image in "
            f"attention.png; blocks of rows in neighbours.png): {legend}\n"
            f"probe images: {dataset} {test_split} (first {QUERIES}); neighbours searched in "
            f"the first {GALLERY} of {train_split}, by the cosine of {taps[-1]}'s pooled "
            f"features; attention columns: image, {', '.join(taps)}\n")
  return {"paths": paths, "shown": shown, "models": list(models)}


def write_for_run(config, workdir: str, supervised: tuple[Any, str] | None = None) -> dict[str, Any]:
  """The run in `workdir` (its checkpoint; random init needs none) beside random init, and
  `supervised` = (its config, its workdir) when given, pictured in workdir/pictures."""
  from sslflax.build import build_run
  from sslflax.experiment import random_backbone, restore_backbone
  from sslflax.models import backbone_of
  from sslflax.results import RANDOM_INIT
  from sslflax.train.loop import data_mesh
  built = build_run(config)
  mesh = data_mesh()
  models = {}
  if built.task is not None:
    models[built.experiment] = restore_backbone(built, workdir, mesh)
  models[RANDOM_INIT] = random_backbone(built)
  if supervised is not None:
    models["supervised"] = restore_backbone(build_run(supervised[0]), supervised[1], mesh)
  backbone = built.backbone.clone(num_fc=0)
  return pictures(models, backbone, backbone_of(backbone), built.evaluation,
                  os.path.join(workdir, "pictures"), input_fn=built.probe_input[1])


def main(argv) -> None:
  del argv
  from sslflax.configpath import config_spec, load_config
  from sslflax.log import log
  supervised = None
  if _SUPERVISED.value:  # configs/supervised.py beside the run's config, at its variant
    folder = os.path.dirname(config_spec(sys.argv[1:]).split(":")[0])
    supervised = (load_config(os.path.join(folder, "supervised.py"), _CONFIG.value.variant),
                  _SUPERVISED.value)
  out = write_for_run(_CONFIG.value, _WORKDIR.value, supervised)
  for path in out["paths"].values():
    log.info(f"[visualize] wrote {path}")


if __name__ == "__main__":
  from absl import flags
  from ml_collections import config_flags
  from sslflax import console
  from sslflax.configpath import put_config_package_on_path
  _CONFIG = config_flags.DEFINE_config_file("config", None, "The run's config file[:variant].",
                                            lock_config=False)
  _WORKDIR = flags.DEFINE_string("workdir", None, "The finished run's workdir.")
  _SUPERVISED = flags.DEFINE_string("supervised_workdir", None,
                                    "A supervised run's workdir, pictured beside.")
  _VERBOSE = flags.DEFINE_bool("verbose", False, "Also show TensorFlow, absl and TFDS messages.")
  flags.mark_flags_as_required(["config", "workdir"])
  console.set_verbose_from_argv(sys.argv[1:])
  put_config_package_on_path(sys.argv[1:])
  console.run_cli(main, lambda: _CONFIG.value)
