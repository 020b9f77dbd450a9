"""One experiment: pretrain (unless random init) -> Orbax checkpoint -> linear probes, beside
random init on the same data and probe -> results.json."""

from __future__ import annotations

import json
import os
import time
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections

from sslflax import checks, compilation_cache
from sslflax import data as data_lib
from sslflax.build import (augment_from_config, backbone_from_config, config_taps, evaluation,
                           pretrain_data, shape_fields, task_from_config)
from sslflax.errors import CheckpointError
from sslflax.evaluate import stats
from sslflax.evaluate.finetune import finetune_eval, num_fc_layers
from sslflax.evaluate.linear import describe_probe, linear_eval, probe_protocol, probe_splits
from sslflax.models import get_backbone
from sslflax.results import RANDOM_INIT, results_file
from sslflax.train import checkpoint as ckpt_lib
from sslflax.train.loop import check_queue_fits, data_mesh, init_state, train
from sslflax.train.optim import make_optimizer



def backbone_variables_from_state(state) -> dict[str, Any]:
  # A backbone without BatchNorm (a ViT) has no statistics.
  return {"params": state.params["backbone"], "batch_stats": state.batch_stats.get("backbone", {})}


def restore_backbone(config, workdir: str, mesh) -> dict[str, Any]:
  """The backbone variables of the newest readable checkpoint in the workdir."""
  task = task_from_config(config)
  checks.check_config(config, task, mesh.size)
  tx = make_optimizer(config.optim, max(config.pretrain.steps, 1), 1)
  manager = ckpt_lib.make_manager(workdir, config.checkpoint.every_steps, config.checkpoint.keep)
  state = ckpt_lib.restore_latest(manager, init_state(task, tx, mesh, config.pretrain.image_size, config.seed))
  if state is None:
    raise CheckpointError(f"no readable checkpoint in {os.path.join(workdir, 'checkpoints')} to evaluate; "
                            f"run without eval_only first (or point --workdir at a pretraining run).")
  return backbone_variables_from_state(state)


def random_backbone(config, num_fc: int = 0) -> dict[str, Any]:
  """The baseline: the same network (with `num_fc` fc layers) at its random initialisation
  (seeded)."""
  backbone = backbone_from_config(config).clone(num_fc=num_fc)
  size = config.linear_eval.image_size
  variables = backbone.init(jax.random.key(config.seed), jnp.zeros((1, size, size, 3), jnp.uint8))
  return {"params": variables["params"], "batch_stats": variables.get("batch_stats", {})}


def format_tables(results: dict[str, Any]) -> str:
  """The console's result: per dataset, every probed tap (or the fine-tune) beside random
  init, with SEs."""
  le = ml_collections.ConfigDict(results["config"]["linear_eval"])
  frozen = get_backbone(results["config"]["model"]["name"]).freeze_label(le.freeze_layer)
  what = "linear probe" if results.get("mode", "probe") == "probe" else f"fine-tune ({frozen})"
  return "\n\n".join(
      stats.format_comparison(results["experiment"], dataset, probe_splits(le, dataset)[1],
                              results["test_images"][dataset], rows, what=what)
      for dataset, rows in results["comparison"].items())


def probe_input(config) -> tuple[str, Any]:
  """(name, transform) of what the probes feed the backbones: the task's own probe input
  (linear_eval.input='task'; colorization: lightness) or the RGB images ('rgb')."""
  if config.linear_eval.input == "rgb" or config.task.name == RANDOM_INIT:
    return "rgb", None
  fn = task_from_config(config).probe_input
  return (fn.__name__, fn) if fn is not None else ("rgb", None)


def describe_devices(mesh) -> str:
  """'8 x cpu': the mesh's size and device kind."""
  return f"{mesh.size} x {mesh.devices.flat[0].device_kind}"


def plan(config, workdir: str, mesh) -> str:
  """The run's first line: what it will do, where, on what."""
  pc, le = config.pretrain, config.linear_eval
  devices = describe_devices(mesh)
  if config.task.name == RANDOM_INIT:
    first = "random init (no pretraining)"
  elif config.eval_only:
    first = f"{config.task.name}: the checkpoint in {workdir}"
  else:
    subset = f", {pc.subset_size} images" if pc.subset_size else ""
    stream = ", augmented stream" if pc.augment.enabled else ""
    first = (f"pretrain {config.task.name} on {pc.dataset} ({pc.split}{subset}{stream}) for "
             f"{pc.steps} steps of {pc.batch_size} at {pc.image_size} px")
  if le.mode == "finetune":
    frozen = get_backbone(config.model.name).freeze_label(le.freeze_layer)
    probe = (f"fine-tune ({frozen}) for {le.finetune_epochs} epochs on "
             f"{', '.join(le.datasets)} ({le.test_split})")
  else:
    probe = (f"probe {', '.join(config_taps(config))} on {', '.join(le.datasets)} "
             f"({le.test_split}; {describe_probe(probe_protocol(le))})")
  beside = " beside random init" if config.task.name != RANDOM_INIT and le.compare_random else ""
  return f"[{config.experiment}] {first}; then {probe}{beside}; {devices}; workdir {workdir}"


def pretrain(config, workdir: str, *, print_fn=print, mesh=None) -> dict[str, Any]:
  """Pretrain config.task on config.pretrain.dataset (train.loop.train, on what the config
  builds); resumes from the workdir's last checkpoint. `mesh`: the devices to train on
  (default: `data_mesh()`, every device)."""
  mesh = mesh or data_mesh()
  task = task_from_config(config, measure_prior=True)
  checks.check_config(config, task, mesh.size)
  data = pretrain_data(config)
  builder = data_lib.get_builder(data.dataset, data.data_dir)
  if task.needs_labels:
    checks.check_num_classes(config, data_lib.num_classes(builder))
  source_images = data.subset_size or data_lib.pipeline.split_size(builder, data.split)
  check_queue_fits(task, source_images, data.batch_size)
  steps_per_epoch = max(1, (source_images or data.batch_size) // data.batch_size)
  tx = make_optimizer(config.optim, data.steps, steps_per_epoch)
  ckpt_lib.claim_workdir(workdir, config.experiment, task.name, shape_fields(config))
  return train(task, tx, data, augment_from_config(config), workdir, mesh,
               checkpoint_every=config.checkpoint.every_steps,
               checkpoint_keep=config.checkpoint.keep, log_every=config.log_every_steps,
               lr_field=f"optim.lr (now {config.optim.lr})", source_images=source_images,
               print_fn=print_fn)


def run(config, workdir: str, *, print_fn=print, mesh=None) -> dict[str, Any]:
  """Run the whole experiment described by `config`, writing workdir/results.json.

  `mesh`: the devices to run on (default: every device of every host, `data_mesh()`)."""
  start = time.time()
  compilation_cache.enable(config.get("compilation_cache"))
  mesh = mesh or data_mesh()
  checks.check_run(config, workdir, mesh.size)
  if jax.process_index() == 0:
    print_fn(plan(config, workdir, mesh), flush=True)
  pretext: dict[str, Any] = {}
  le = config.linear_eval
  finetuning = le.mode == "finetune"
  if config.task.name == RANDOM_INIT:  # fine-tuned with its fc layers, as torchvision's
    variables = random_backbone(config, backbone_from_config(config).num_fc if finetuning else 0)
  elif config.eval_only:
    variables = restore_backbone(config, workdir, mesh)
  else:
    out = pretrain(config, workdir, print_fn=print_fn, mesh=mesh)
    variables = backbone_variables_from_state(out.pop("state"))
    pretext = out
  models = {config.experiment: variables}
  if config.task.name != RANDOM_INIT and le.compare_random:
    # the same architecture, data, evaluation and seed
    models[RANDOM_INIT] = random_backbone(config, num_fc_layers(variables) if finetuning else 0)
  input_name, input_fn = probe_input(config)
  spec = evaluation(config)
  if finetuning:
    accuracy, test_images = finetune_eval(backbone_from_config(config), models, spec, mesh,
                                          workdir, print_fn=print_fn, input_fn=input_fn)
  else:
    accuracy, test_images = linear_eval(backbone_from_config(config).clone(num_fc=0), models,
                                        spec, mesh, print_fn=print_fn, input_fn=input_fn)
  baseline = accuracy.get(RANDOM_INIT) if config.task.name != RANDOM_INIT else None
  mine = accuracy[config.experiment]
  results = {
      "experiment": config.experiment,
      "variant": config.variant,
      "task": config.task.name,
      "config": json.loads(config.to_json_best_effort()),
      "pretext": {k: v for k, v in pretext.items() if k != "state"},
      "linear_eval": mine,
      "random_init": baseline,
      "test_images": test_images,
      "probe_input": input_name,
      "mode": le.mode,
      "probe": probe_protocol(le) if not finetuning else None,
      "freeze_layer": le.freeze_layer if finetuning else None,
      "comparison": {dataset: stats.comparison(top1, baseline and baseline[dataset],
                                               test_images[dataset])
                     for dataset, top1 in mine.items()},
      "wall_time_s": time.time() - start,
      "devices": describe_devices(mesh),
      "processes": jax.process_count(),
  }
  if jax.process_index() == 0:
    path = os.path.join(workdir, results_file(config.linear_eval))
    with open(path, "w") as f:
      json.dump(results, f, indent=2)
    print_fn(format_tables(results))
    print_fn(f"results: {path}  "
             f"({results['wall_time_s']:.0f} s)")
  return results
