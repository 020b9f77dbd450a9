"""The seed paper's study in one command: experiments x pretraining sizes x seeds -> tables, figures.

  python -m sslflax.study --config=configs/study.py[:default|smoke|paper] --workdir=DIR
  python -m sslflax.study ... --list          # the grid, one cell per line, with its index
  python -m sslflax.study ... --cell=K        # run only cell K (one job of a job array)
  python -m sslflax.study ... --report_only   # gather finished cells into the report

Every cell is an ordinary experiment run (sslflax.experiment.run) in DIR/cells/<cell>/, so an
interrupted study resumes: finished cells are reused, an unfinished one resumes from its
checkpoint. Random init has no pretraining data, so it is one cell per seed, not per size;
it is the baseline every other cell is compared with (same data, probe and seed).

Fine-tuning: study.freeze_layers = (1, 3, 5) adds a cell per freeze layer to every cell
above: the same checkpoint (the cell's own workdir; random init needs none) fine-tuned with
conv1..conv<L> frozen (linear_eval.mode='finetune'), written to results-finetune-freeze<L>.json
beside the probes' results.json. These cells come after every probe cell in the grid, and
one fails with a clear error when the checkpoint it needs has not finished.

Label fractions: study.label_fractions = (0.01, 0.1) adds a cell per fraction to every probe
cell: the same checkpoint probed with that class-balanced share of each downstream train
split's labels (linear_eval.label_fraction), written to results-labels<fraction>.json. The
probe cells themselves are the fraction 1.0.

Sizes: a class-balanced subset of that many images of the experiment's pretraining set; 0 is
the whole set; 1 is one image: study.single_image (an image file) when set, streamed through
the augmentation study.single_image_augment (Asano et al. 2020).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
import subprocess
import sys
import time
from typing import Any

import ml_collections

from sslflax.configpath import load_config
from sslflax.errors import ConfigError, WorkdirError
from sslflax.results import RANDOM_INIT, results_file
from sslflax.log import log

WHOLE_SET = 0  # a size of 0: the experiment's whole pretraining split


@dataclasses.dataclass(frozen=True)
class Cell:
  """One run of the grid; `size` is None for random init (it sees no pretraining data);
  `freeze` is None for the linear probes, else the layer a fine-tune freezes through;
  `fraction` is None for every label, else the share of them the probes train on."""
  experiment: str
  size: int | None
  seed: int
  freeze: int | None = None
  fraction: float | None = None

  @property
  def run_name(self) -> str:
    """The workdir's name: a cell's probes and fine-tunes share one checkpoint."""
    data = {None: "nodata", WHOLE_SET: "all"}.get(self.size, self.size)
    return f"{self.experiment}-{data}-seed{self.seed}"

  @property
  def name(self) -> str:
    return (self.run_name + ("" if self.freeze is None else f"-freeze{self.freeze}")
            + ("" if self.fraction is None else f"-labels{self.fraction:g}"))

  @property
  def pretraining(self) -> Cell:
    """The probe cell whose checkpoint this cell evaluates (itself for a probe cell)."""
    return dataclasses.replace(self, freeze=None, fraction=None)

  @property
  def evaluates_a_checkpoint(self) -> bool:
    """A fine-tune or label-fraction cell: it evaluates its probe cell's checkpoint."""
    return self != self.pretraining


def grid(study: ml_collections.ConfigDict) -> list[Cell]:
  """All cells, in a fixed order (so `--cell=K` names the same run on every host): every
  probe cell, then, per freeze layer, its fine-tune cells, then, per label fraction below 1,
  its probe cells at that fraction."""
  cells = []
  for seed in study.seeds:
    for experiment in study.experiments:
      sizes = [None] if experiment == RANDOM_INIT else list(study.subset_sizes)
      if study.single_image and experiment in study.labelled_experiments:
        sizes = [size for size in sizes if size != 1]  # an image file has no labels
      cells.extend(Cell(experiment, size, seed) for size in sizes)
  return (cells + [dataclasses.replace(cell, freeze=layer) for layer in study.freeze_layers
                   for cell in cells]
          + [dataclasses.replace(cell, fraction=float(fraction))
             for fraction in study.label_fractions if fraction != 1.0 for cell in cells])


def pretrain_steps(study: ml_collections.ConfigDict, size: int, batch_size: int) -> int:
  return max(1, math.ceil(study.pretrain_epochs * size / batch_size))


def cell_config(study: ml_collections.ConfigDict, cell: Cell) -> ml_collections.ConfigDict:
  """The experiment config of one cell: its own file and variant, plus the study's fields."""
  config = load_config(os.path.join(study.config_dir, f"{cell.experiment}.py"),
                       study.experiment_variant)
  config.update(study.overrides)
  config.seed = cell.seed
  config.linear_eval.datasets = tuple(study.downstream)
  config.linear_eval.taps = tuple(study.taps)
  config.linear_eval.compare_random = False  # the study's random cell is the baseline
  # ... of every cell, so every cell is probed on the same input as that cell: RGB (a single
  # colorization run probes on lightness beside a random init probed on lightness too).
  config.linear_eval.input = "rgb"
  config.linear_eval.mode = "probe"
  if cell.freeze is not None:
    config.linear_eval.mode = "finetune"
    config.linear_eval.freeze_layer = cell.freeze
    config.eval_only = cell.experiment != RANDOM_INIT  # the probe cell's checkpoint
  if cell.fraction is not None:
    if config.linear_eval.train_subset is not None:
      raise ConfigError(f"study.label_fractions probes shares of each whole train split, but "
                        f"the cells' linear_eval.train_subset={config.linear_eval.train_subset} "
                        f"picks a subset already (the 1.0 column would not be every label); "
                        f"set --config.overrides.linear_eval.train_subset=None.")
    config.linear_eval.label_fraction = cell.fraction
    config.eval_only = cell.experiment != RANDOM_INIT
  if cell.size is None:
    return config
  config.pretrain.subset_size = cell.size or None
  if cell.size == 1 and study.single_image:
    config.pretrain.dataset = study.single_image
    config.pretrain.subset_size = None
    config.pretrain.augment.update(study.single_image_augment)
  if study.pretrain_epochs:
    if cell.size == WHOLE_SET:
      raise ConfigError("study.pretrain_epochs needs sizes > 0 (steps = epochs x size / batch); "
                       "set pretrain_epochs = 0 to keep each experiment's own steps.")
    config.pretrain.steps = pretrain_steps(study, cell.size, config.pretrain.batch_size)
  return config


def cell_dir(workdir: str, cell: Cell) -> str:
  return os.path.join(workdir, "cells", cell.run_name)


def finished_results(workdir: str, cell: Cell,
                     config: ml_collections.ConfigDict) -> dict[str, Any] | None:
  """The cell's results file when it ran with this very config; None when it has not finished.

  A finished cell whose config differs (the study config was edited) is an error, not a
  silent reuse of stale numbers.
  """
  path = os.path.join(cell_dir(workdir, cell), results_file(config.linear_eval))
  if not os.path.exists(path):
    return None
  with open(path) as f:
    results = json.load(f)
  wanted = json.loads(config.to_json_best_effort())
  if results.get("config") != wanted:
    changed = sorted(_differing_keys(results.get("config", {}), wanted))
    raise WorkdirError(f"cell {cell.name} in {workdir} finished with another config (differs in "
                     f"{', '.join(changed[:5])}); use a new --workdir, or delete "
                     f"{cell_dir(workdir, cell)} to rerun it.")
  return results


def _differing_keys(a: dict, b: dict, prefix: str = "") -> list[str]:
  keys = []
  for key in set(a) | set(b):
    x, y = a.get(key), b.get(key)
    if isinstance(x, dict) and isinstance(y, dict):
      keys += _differing_keys(x, y, f"{prefix}{key}.")
    elif x != y:
      keys.append(f"{prefix}{key}")
  return keys


def run_cell(study: ml_collections.ConfigDict, workdir: str, cell: Cell,
             mesh=None) -> dict[str, Any]:
  """Run (or resume, or reuse) one cell in this process (on `mesh`: see experiment.run)."""
  from sslflax import experiment  # JAX starts here, after --multihost set-up
  config = cell_config(study, cell)
  results = finished_results(workdir, cell, config)
  source = cell.pretraining
  if results is None and config.eval_only and finished_results(
      workdir, source, cell_config(study, source)) is None:
    raise WorkdirError(f"cell {cell.name} evaluates the checkpoint of cell {source.name} "
                       f"(--cell={grid(study).index(source)}), which has not finished; run it "
                       f"first (the whole study runs the cells in order).")
  if results is None:
    results = experiment.run(config, cell_dir(workdir, cell), mesh=mesh)
  if study.get("pictures") and not cell.evaluates_a_checkpoint and cell.size is not None:
    write_pictures(study, workdir, cell, config)
  return results


def write_pictures(study: ml_collections.ConfigDict, workdir: str, cell: Cell, config) -> None:
  """sslflax.visualize's PNGs for a pretrained cell (once), beside random init and, when
  its cell has finished, supervised at the same size and seed. A failure is logged, not
  raised: the cell's results are already written."""
  from sslflax import visualize
  out = os.path.join(cell_dir(workdir, cell), "pictures")
  if os.path.exists(os.path.join(out, "README.txt")):
    return
  supervised = dataclasses.replace(cell, experiment="supervised")
  pair = None
  if cell.experiment != "supervised" and supervised in grid(study):
    sup_config = cell_config(study, supervised)
    if finished_results(workdir, supervised, sup_config) is not None:
      pair = (sup_config, cell_dir(workdir, supervised))
  try:
    visualize.write_for_run(config, cell_dir(workdir, cell), pair)
  except Exception as error:  # noqa: BLE001 (pictures are extra; the cell stays finished)
    log.warning(f"[study] no pictures for cell {cell.name}: {type(error).__name__}: {error}")


def _worker_env(worker: int, gpus_per_worker: int) -> dict[str, str]:
  env = dict(os.environ)
  if gpus_per_worker > 0:
    first = worker * gpus_per_worker
    env["CUDA_VISIBLE_DEVICES"] = ",".join(str(first + i) for i in range(gpus_per_worker))
  return env


def cell_command(config_args: list[str], workdir: str, index: int) -> list[str]:
  """The command that runs cell `index`; config_args: --config=FILE[:variant] and any overrides."""
  return [sys.executable, "-m", "sslflax.study", *config_args, f"--workdir={workdir}",
          f"--cell={index}"]


def run_parallel(study: ml_collections.ConfigDict, workdir: str, config_args: list[str],
                 pending: list[int]) -> None:
  """Pending cells in `study.workers` processes, each cell's output in its own log file."""
  running: dict[int, tuple[subprocess.Popen, Any, int]] = {}  # worker -> (process, log, cell)
  free = list(range(study.workers))
  queue = list(pending)
  failed = []
  while queue or running:
    while queue and free:
      index, worker = queue.pop(0), free.pop(0)
      log_path = os.path.join(workdir, "logs", f"cell{index}.log")
      os.makedirs(os.path.dirname(log_path), exist_ok=True)
      cell_log = open(log_path, "a")
      proc = subprocess.Popen(cell_command(config_args, workdir, index), stdout=cell_log,
                              stderr=subprocess.STDOUT,
                              env=_worker_env(worker, study.gpus_per_worker))
      running[worker] = (proc, cell_log, index)
      log.info(f"[study] cell {index} started on worker {worker} (log {log_path})")
    time.sleep(1)
    for worker, (proc, cell_log, index) in list(running.items()):
      if proc.poll() is not None:
        cell_log.close()
        del running[worker]
        free.append(worker)
        status = "done" if proc.returncode == 0 else f"FAILED (exit {proc.returncode})"
        log.info(f"[study] cell {index} {status}")
        if proc.returncode:
          failed.append(index)
  if failed:
    raise RuntimeError(f"study cells {failed} failed; see {os.path.join(workdir, 'logs')}. "
                       f"Rerunning the study retries them.")


def run_study(study: ml_collections.ConfigDict, workdir: str, *,
              config_args: list[str] | None = None, mesh=None) -> str:
  """Every cell not yet finished, then the report; returns the report's Markdown. Cells run
  in this process run on `mesh` (see experiment.run); worker processes on their own devices."""
  from sslflax import report
  cells = grid(study)
  pending = [i for i, cell in enumerate(cells)
             if finished_results(workdir, cell, cell_config(study, cell)) is None]
  log.info(f"[study] {len(cells)} cells, {len(cells) - len(pending)} already finished in "
           f"{workdir}")
  if study.workers > 1 and pending:
    if config_args is None:
      raise ValueError("study.workers > 1 starts `python -m sslflax.study --cell=K` processes; "
                       "run it from the command line, or set study.workers = 1.")
    for wave in ([i for i in pending if not cells[i].evaluates_a_checkpoint],  # checkpoints first
                 [i for i in pending if cells[i].evaluates_a_checkpoint]):
      if wave:
        run_parallel(study, workdir, config_args, wave)
  else:
    start = time.time()
    for done, index in enumerate(pending):
      cell = cells[index]
      log.info(f"[study] cell {index} ({done + 1}/{len(pending)}): {cell.name}")
      run_cell(study, workdir, cell, mesh)
      elapsed = time.time() - start
      eta = elapsed / (done + 1) * (len(pending) - done - 1)
      log.info(f"[study] {done + 1}/{len(pending)} cells done, {elapsed:.0f} s, ETA {eta:.0f} s")
  import jax
  if jax.process_index() != 0:  # one process writes the report of a multi-host study
    return ""
  return report.write_report(study, workdir, collect(study, workdir))


def collect(study: ml_collections.ConfigDict, workdir: str) -> list[tuple[Cell, dict | None]]:
  """Every cell with its results, or None where it has not finished. A fine-tune cell reports
  the pretraining (images, steps, loss) of the probe cell whose checkpoint it evaluated, as
  does a label-fraction cell."""
  done = {cell: finished_results(workdir, cell, cell_config(study, cell)) for cell in grid(study)}
  for cell, results in done.items():
    source = done.get(cell.pretraining)
    if cell.evaluates_a_checkpoint and results is not None and source is not None:
      done[cell] = dict(results, pretext=source["pretext"])
  return list(done.items())


def passed_config_args(argv: list[str]) -> list[str]:
  """The --config file and --config.x=y overrides of a command line, for cell processes.

  Both `--config=v` and `--config v` spellings are kept, so workers build the same grid.
  """
  kept = []
  for arg, following in zip(argv, argv[1:] + [None]):
    if arg.startswith("--config"):
      alone = "=" in arg or following is None or following.startswith("-")  # e.g. a bool flag
      kept.append(arg if alone else f"{arg}={following}")
  return kept


@dataclasses.dataclass(frozen=True)
class StudyFlags:
  """The command line's flags (absl FlagHolders), defined by `define_flags`."""
  config: Any
  workdir: Any
  cell: Any
  list: Any
  report_only: Any
  multihost: Any


def define_flags() -> StudyFlags:
  """The study command's flags, defined when its command runs (not on import: `sslflax.main`
  defines --config too, and both modules are imported together in one process)."""
  from absl import flags
  from ml_collections import config_flags
  holders = StudyFlags(
      config=config_flags.DEFINE_config_file("config", None, "Study config file[:variant]."),
      workdir=flags.DEFINE_string("workdir", None, "The study's directory: cells/, report, figures."),
      cell=flags.DEFINE_integer("cell", -1, "Run only this cell of the grid (see --list)."),
      list=flags.DEFINE_bool("list", False, "Print the grid's cells and the command of each."),
      report_only=flags.DEFINE_bool("report_only", False,
                                    "Only gather the finished cells into the report."),
      multihost=flags.DEFINE_bool("multihost", False,
                                  "Join a multi-host job first (see sslflax/distributed.py)."))
  flags.DEFINE_bool("verbose", False, "Also show TensorFlow, absl and TFDS messages.")
  flags.mark_flags_as_required(["config", "workdir"])
  return holders


def main(argv, flags: StudyFlags) -> None:
  del argv
  study, workdir = flags.config.value, flags.workdir.value
  config_args = passed_config_args(sys.argv[1:])
  cells = grid(study)
  if flags.list.value:  # before TensorFlow and JAX start: launchers call this to size job arrays
    for index, cell in enumerate(cells):
      print(f"{index}\t{cell.name}\t{' '.join(cell_command(config_args, workdir, index))}")
    return
  if not 0 <= flags.cell.value < len(cells) and flags.cell.value != -1:
    raise ConfigError(f"--cell={flags.cell.value} is out of range: the study has {len(cells)} cells "
                     f"(0..{len(cells) - 1}); see --list.")
  from sslflax import distributed, report
  distributed.start(flags.multihost.value)
  if flags.cell.value >= 0:
    run_cell(study, workdir, cells[flags.cell.value])
  elif flags.report_only.value:
    report.write_report(study, workdir, collect(study, workdir))
  else:
    run_study(study, workdir, config_args=config_args)


def cli() -> None:
  """The `sslflax-study` command, the same as `python -m sslflax.study`."""
  from sslflax import console
  from sslflax.configpath import put_config_package_on_path
  holders = define_flags()
  console.set_verbose_from_argv(sys.argv[1:])
  put_config_package_on_path(sys.argv[1:])
  console.run_cli(functools.partial(main, flags=holders), lambda: holders.config.value)


if __name__ == "__main__":
  cli()
