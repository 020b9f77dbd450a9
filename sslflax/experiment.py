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
from sslflax.build import Run, build_run
from sslflax.errors import CheckpointError
from sslflax.evaluate import stats
from sslflax.evaluate.finetune import finetune_eval, num_fc_layers
from sslflax.evaluate.linear import describe_probe, linear_eval, probe_protocol, probe_splits
from sslflax.models import get_backbone
from sslflax.results import RANDOM_INIT, results_file
from sslflax.train import checkpoint as ckpt_lib
from sslflax.train.loop import check_queue_fits, data_mesh, init_state, train
from sslflax.train.optim import make_optimizer
from sslflax.log import log



def backbone_variables_from_state(state) -> dict[str, Any]:
  # A backbone without BatchNorm (a ViT) has no statistics.
  return {"params": state.params["backbone"], "batch_stats": state.batch_stats.get("backbone", {})}


def restore_backbone(run: Run, workdir: str, mesh) -> dict[str, Any]:
  """The backbone variables of the newest readable checkpoint in the workdir."""
  tx = make_optimizer(run.optimizer, max(run.data.steps, 1), 1)
  manager = ckpt_lib.make_manager(workdir, run.checkpoint_every, run.checkpoint_keep)
  template = init_state(run.task, tx, mesh, run.data.image_size, run.data.seed)
  state = ckpt_lib.restore_latest(manager, template)
  if state is None:
    raise CheckpointError(f"no readable checkpoint in {os.path.join(workdir, 'checkpoints')} to evaluate; "
                            f"run without eval_only first (or point --workdir at a pretraining run).")
  return backbone_variables_from_state(state)


def random_backbone(run: Run, num_fc: int = 0) -> dict[str, Any]:
  """The baseline: the same network (with `num_fc` fc layers) at its random initialisation
  (seeded)."""
  backbone = run.backbone.clone(num_fc=num_fc)
  size = run.evaluation.image_size
  variables = backbone.init(jax.random.key(run.evaluation.seed),
                            jnp.zeros((1, size, size, 3), jnp.uint8))
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


def describe_devices(mesh) -> str:
  """'8 x cpu': the mesh's size and device kind."""
  return f"{mesh.size} x {mesh.devices.flat[0].device_kind}"


def plan(run: Run, workdir: str, mesh) -> str:
  """The run's first line: what it will do, where, on what."""
  data, spec = run.data, run.evaluation
  devices = describe_devices(mesh)
  if run.task is None:
    first = "random init (no pretraining)"
  elif run.eval_only:
    first = f"{run.task_name}: the checkpoint in {workdir}"
  else:
    subset = f", {data.subset_size} images" if data.subset_size else ""
    stream = ", augmented stream" if run.augment is not None else ""
    first = (f"pretrain {run.task_name} on {data.dataset} ({data.split}{subset}{stream}) for "
             f"{data.steps} steps of {data.batch_size} at {data.image_size} px")
  if spec.mode == "finetune":
    frozen = run.family.freeze_label(spec.freeze_layer)
    probe = (f"fine-tune ({frozen}) for {spec.finetune_epochs} epochs on "
             f"{', '.join(spec.datasets)} ({spec.test_split})")
  else:
    probe = (f"probe {', '.join(run.taps)} on {', '.join(spec.datasets)} "
             f"({spec.test_split}; {describe_probe(probe_protocol(spec))})")
  beside = " beside random init" if run.task is not None and run.compare_random else ""
  return f"[{run.experiment}] {first}; then {probe}{beside}; {devices}; workdir {workdir}"


def pretrain(run: Run, workdir: str, *, mesh=None) -> dict[str, Any]:
  """Pretrain the run's task on its data (train.loop.train); resumes from the workdir's
  last checkpoint. `mesh`: the devices to train on (default: `data_mesh()`, every device)."""
  mesh = mesh or data_mesh()
  task = run.measured_task()
  checks.check_task_fits(task, run.data, run.augment_spec, mesh.size)
  data = run.data
  builder = data_lib.get_builder(data.dataset, data.data_dir)
  if task.needs_labels:
    checks.check_num_classes(run, data_lib.num_classes(builder))
  source_images = data.subset_size or data_lib.pipeline.split_size(builder, data.split)
  check_queue_fits(task, source_images, data.batch_size)
  steps_per_epoch = max(1, (source_images or data.batch_size) // data.batch_size)
  tx = make_optimizer(run.optimizer, data.steps, steps_per_epoch)
  ckpt_lib.claim_workdir(workdir, run.experiment, task.name, run.shape_fields)
  return train(task, tx, data, run.augment, workdir, mesh,
               checkpoint_every=run.checkpoint_every, checkpoint_keep=run.checkpoint_keep,
               log_every=run.log_every, lr_field=f"optim.lr (now {run.optimizer.lr})",
               source_images=source_images)


def run(config, workdir: str, *, mesh=None) -> dict[str, Any]:
  """Run the whole experiment described by `config`, writing workdir/results.json.

  `mesh`: the devices to run on (default: every device of every host, `data_mesh()`)."""
  start = time.time()
  checks.check_values(config)
  built = build_run(config)
  compilation_cache.enable(built.compilation_cache)
  mesh = mesh or data_mesh()
  checks.check_run(built, workdir, mesh.size)
  if jax.process_index() == 0:
    log.info(plan(built, workdir, mesh))
  pretext: dict[str, Any] = {}
  spec = built.evaluation
  finetuning = spec.mode == "finetune"
  if built.task is None:  # fine-tuned with its fc layers, as torchvision's
    variables = random_backbone(built, built.backbone.num_fc if finetuning else 0)
  elif built.eval_only:
    variables = restore_backbone(built, workdir, mesh)
  else:
    out = pretrain(built, workdir, mesh=mesh)
    variables = backbone_variables_from_state(out.pop("state"))
    pretext = out
  models = {built.experiment: variables}
  if built.task is not None and built.compare_random:
    # the same architecture, data, evaluation and seed
    models[RANDOM_INIT] = random_backbone(built, num_fc_layers(variables) if finetuning else 0)
  input_name, input_fn = built.probe_input
  if finetuning:
    accuracy, test_images = finetune_eval(built.backbone, models, spec, mesh,
                                          workdir, input_fn=input_fn)
  else:
    accuracy, test_images = linear_eval(built.backbone.clone(num_fc=0), models,
                                        spec, mesh, input_fn=input_fn)
  baseline = accuracy.get(RANDOM_INIT) if built.task is not None else None
  mine = accuracy[built.experiment]
  results = {
      "experiment": built.experiment,
      "variant": built.variant,
      "task": built.task_name,
      "config": built.config_json,
      "pretext": {k: v for k, v in pretext.items() if k != "state"},
      "linear_eval": mine,
      "random_init": baseline,
      "test_images": test_images,
      "probe_input": input_name,
      "mode": spec.mode,
      "probe": probe_protocol(spec) if not finetuning else None,
      "freeze_layer": spec.freeze_layer if finetuning else None,
      "comparison": {dataset: stats.comparison(top1, baseline and baseline[dataset],
                                               test_images[dataset])
                     for dataset, top1 in mine.items()},
      "wall_time_s": time.time() - start,
      "devices": describe_devices(mesh),
      "processes": jax.process_count(),
  }
  if jax.process_index() == 0:
    path = os.path.join(workdir, results_file(spec))
    with open(path, "w") as f:
      json.dump(results, f, indent=2)
    log.info(format_tables(results))
    log.info(f"results: {path}  "
             f"({results['wall_time_s']:.0f} s)")
  return results
