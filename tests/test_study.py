"""The study: grid, resumption, report (tables, CSV, figures), sensitivity, launch scripts, multi-host."""

import csv
import json
import os
import pathlib
import socket
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from sslflax import report, study
from sslflax.errors import ConfigError, WorkdirError
from sslflax.study import Cell
from tests.helpers import ROOT, Lines, load_config, logged_to, one_device, xla_flags


def quiet_on_one_device() -> dict:
  return dict(mesh=one_device())


def load_study(variant: str = "smoke"):
  return load_config("study", variant)


def row(experiment, size, downstream, seed, top1, tap="conv3", test_images=1000):
  return {"experiment": experiment, "task": experiment, "pretrain_size": size,
          "downstream": downstream, "tap": tap, "seed": seed, "top1": top1,
          "test_images": test_images, "pretrain_steps": 1, "pretext_loss": 1.0, "wall_time_s": 1.0}


def test_sensitivity_matches_a_hand_computed_example():
  accs = {  # (seed, dataset): accuracy at sizes 10, 20, 30
      (0, "d1"): (0.5, 0.6, 0.7), (0, "d2"): (0.8, 0.8, 0.8),
      (1, "d1"): (0.5, 0.5, 0.5), (1, "d2"): (0.2, 0.4, 0.6)}
  rows = [row("a", size, d, seed, acc) for (seed, d), values in accs.items()
          for size, acc in zip((10, 20, 30), values)]
  rows += [row("random", None, d, seed, 0.3) for seed in (0, 1) for d in ("d1", "d2")]
  # Population std across sizes: d1 seed 0 and d2 seed 1 are sqrt(2/3) * 0.1 and sqrt(2/3) * 0.2.
  seed0 = (np.sqrt(2 / 3) * 0.1 + 0.0) / 2
  seed1 = (0.0 + np.sqrt(2 / 3) * 0.2) / 2
  mean, std, n = report.sensitivity(rows, "conv3")["a"]
  assert n == 2
  np.testing.assert_allclose(mean, (seed0 + seed1) / 2, rtol=1e-9)
  np.testing.assert_allclose(std, abs(seed1 - seed0) / np.sqrt(2), rtol=1e-9)  # sample std of 2
  assert "random" not in report.sensitivity(rows, "conv3")  # one size: no sensitivity


def test_probe_table_marks_differences_beyond_two_standard_errors():
  """Hand-computed: on 5000 test images, random's 0.800 has SE sqrt(.8 * .2 / 5000) = 0.00566."""
  rows = [row("random", None, "d", 0, 0.80, test_images=5000),
          row("rotation", 20000, "d", 0, 0.83, test_images=5000),   # +0.03: 3.87 SE, marked
          row("rotation", 1, "d", 0, 0.81, test_images=5000),       # +0.01: 1.28 SE, not marked
          row("jigsaw", 20000, "d", 0, 0.77, test_images=5000)]     # -0.03: -3.72 SE, marked
  table = report.probe_table(rows, "d", ["random", "rotation", "jigsaw"])
  lines = table.splitlines()
  assert lines[2] == "| random | — | 0.800 ± 0.006 |"
  assert lines[3] == "| rotation | 1 | 0.810 ± 0.006 |"
  assert lines[4] == "| rotation | 20,000 | 0.830 ± 0.005* |"
  assert lines[5] == "| jigsaw | 20,000 | 0.770 ± 0.006* |"
  summary = report.beats_random(rows, ["random", "rotation", "jigsaw"], ["d"])
  assert summary == ["- **rotation** (1 pretraining image): above random init nowhere.",
                     "- **rotation** (20,000 pretraining images): above random init at d conv3 (+3.9 SE).",
                     "- **jigsaw** (20,000 pretraining images): above random init nowhere; below it at "
                     "d conv3 (-3.7 SE)."]
  se = np.hypot(np.sqrt(.83 * .17 / 5000), np.sqrt(.8 * .2 / 5000))
  assert report.compared((0.83, 5000), (0.80, 5000))[2] == pytest.approx(0.03 / se)


def test_grid_runs_random_init_once_per_seed_and_one_image_per_pretext_task():
  config = load_study("default")
  config.seeds = (0, 1)
  cells = study.grid(config)
  # Random; supervised on the whole set; 15 tasks x 2; all fine-tuned at 3 layers.
  assert len(cells) == 4 * 2 * (1 + 1 + 15 * 2)
  assert config.freeze_layers == (1, 3, 5)
  assert all(c.freeze is None for c in cells[:64]) and all(c.freeze for c in cells[64:])
  for name in ("patch_location", "exemplar", "denoising", "multitask", "simclr", "byol", "moco", "swav",
               "deepcluster", "bigan"):
    assert Cell(name, 1, 0) in cells and Cell(name, 0, 1) in cells
  assert [c for c in cells[:40] if c.experiment == "random"] == [Cell("random", None, 0),
                                                                  Cell("random", None, 1)]
  assert Cell("supervised", 1, 0) not in cells  # an image file has no labels
  # DeepCluster from one image clusters a pool of its views (Asano et al. 2020).
  single = study.cell_config(config, Cell("deepcluster", 1, 0))
  assert single.pretrain.augment.enabled and single.task.options.stream_pool == 20_000
  whole = study.cell_config(config, Cell("rotation", 0, 1))
  assert whole.pretrain.subset_size is None and whole.seed == 1
  assert whole.pretrain.dataset == load_config("rotation", None).pretrain.dataset
  assert whole.linear_eval.taps == ("all",) and not whole.linear_eval.compare_random
  assert whole.linear_eval.datasets == ("sslflax_sample/fashion", "sslflax_sample/digits")
  one = study.cell_config(config, Cell("colorize", 1, 0))
  assert one.pretrain.dataset == config.single_image and pathlib.Path(one.pretrain.dataset).is_file()
  assert one.pretrain.subset_size is None
  assert one.linear_eval.input == "rgb"  # as the random-init cell every cell is compared with
  assert one.pretrain.augment.enabled and one.pretrain.augment.crop_area == (1e-3, 1.0)
  assert one.pretrain.steps == whole.pretrain.steps  # the same compute: only the data differs
  assert Cell("rotation", 0, 0).name == "rotation-all-seed0"
  paper = load_study("paper")
  counting = study.cell_config(paper, Cell("counting", 30_000, 0))
  assert (counting.pretrain.dataset, counting.pretrain.image_size) == ("imagenet2012", 448)
  assert counting.pretrain.steps == 5860  # 50 epochs of 30K images at batch 256, rounded up
  assert counting.linear_eval.datasets == ("cifar10", "svhn_cropped", "oxford_flowers102")
  assert study.cell_config(paper, Cell("supervised", 120_000, 0)).task.options.num_classes == 1000


@pytest.mark.slow
def test_smoke_study_end_to_end_resumes_and_refuses_stale_cells(tmp_path):
  config = load_study("smoke")
  markdown = study.run_study(config, str(tmp_path), **quiet_on_one_device())
  cells = study.grid(config)
  with open(tmp_path / "results.csv") as f:
    rows = list(csv.DictReader(f))
  assert len(rows) == len(cells) * 2  # two downstream datasets, one tap
  assert {r["experiment"] for r in rows} == set(config.experiments)
  assert all(0.0 <= float(r["top1"]) <= 1.0 for r in rows)
  assert "| random |" in markdown and "Sensitivity" in markdown
  assert (tmp_path / "study.md").read_text() == markdown
  for name in ("accuracy_per_dataset", "mean_accuracy", "sensitivity", "accuracy_vs_size"):
    with Image.open(tmp_path / "figures" / f"{name}.png") as image:
      assert image.size[0] > 300

  # A rerun reuses every finished cell: nothing trains.
  lines = Lines()
  with logged_to(lines):
    study.run_study(config, str(tmp_path), mesh=one_device())
  assert f"{len(cells)} cells, {len(cells)} already finished" in lines[0]
  assert not any("step" in line for line in lines)

  # An interrupted cell (no results.json) is the only one run again.
  os.remove(study.cell_dir(str(tmp_path), cells[-1]) + "/results.json")
  lines.clear()
  with logged_to(lines):
    study.run_study(config, str(tmp_path), mesh=one_device())
  assert f"{len(cells)} cells, {len(cells) - 1} already finished" in lines[0]
  assert any(cells[-1].name in line for line in lines)

  # Editing the study config does not silently reuse cells run with the old one.
  config.overrides.linear_eval = dict(epochs=5)
  with pytest.raises(WorkdirError, match="finished with another config.*linear_eval.epochs"):
    study.run_study(config, str(tmp_path), **quiet_on_one_device())


@pytest.mark.slow
def test_freeze_layer_sweep_fine_tunes_each_checkpoint_in_its_cell(tmp_path):
  config = load_study("smoke")
  config.experiments, config.subset_sizes, config.freeze_layers = ("random", "rotation"), (32,), (1, 3)
  config.downstream = ("sslflax_sample/fashion",)
  cells = study.grid(config)
  assert [c.name for c in cells] == [
      "random-nodata-seed0", "rotation-32-seed0", "random-nodata-seed0-freeze1",
      "rotation-32-seed0-freeze1", "random-nodata-seed0-freeze3", "rotation-32-seed0-freeze3"]
  tuned = study.cell_config(config, cells[3])
  assert (tuned.linear_eval.mode, tuned.linear_eval.freeze_layer, tuned.eval_only) == ("finetune", 1, True)
  assert study.cell_config(config, cells[1]).linear_eval.mode == "probe"
  # A fine-tune cell needs its pretraining cell's checkpoint first.
  with pytest.raises(WorkdirError, match=r"rotation-32-seed0-freeze1 evaluates .* rotation-32-seed0 \(--cell=1\)"):
    study.run_cell(config, str(tmp_path), cells[3], **quiet_on_one_device())
  markdown = study.run_study(config, str(tmp_path), **quiet_on_one_device())
  run_dir = pathlib.Path(study.cell_dir(str(tmp_path), cells[1]))
  assert {p.name for p in run_dir.glob("results*.json")} == {
      "results.json", "results-finetune-freeze1.json", "results-finetune-freeze3.json"}
  assert "## Fine-tuned above a frozen layer on sslflax_sample/fashion" in markdown
  assert "| rotation | 32 |" in markdown and "conv1..conv3 frozen" in markdown
  assert "## The seed's own protocol, fine-tuned above conv3" in markdown
  with open(tmp_path / "results.csv") as f:
    taps = {r["tap"] for r in csv.DictReader(f)}
  assert taps == {"conv3", "freeze1", "freeze3"}
  assert (tmp_path / "figures" / "finetune_layers_sslflax_sample_fashion.png").exists()
  # A fine-tune cell reports the pretraining of the checkpoint it evaluated.
  collected = dict(study.collect(config, str(tmp_path)))
  assert collected[cells[3]]["pretext"] == collected[cells[1]]["pretext"]
  assert collected[cells[3]]["pretext"]["source_images"] == 32


def test_config_args_are_passed_on_in_either_spelling():
  argv = ["--config", "configs/study.py:smoke", "--workdir=/w", "--config.seeds=(0,1)",
          "--config.workers", "2", "--config.show_paper", "--list"]
  assert study.passed_config_args(argv) == ["--config=configs/study.py:smoke",
                                            "--config.seeds=(0,1)", "--config.workers=2",
                                            "--config.show_paper"]


@pytest.mark.slow
@pytest.mark.subprocess
def test_parallel_workers_run_cells_as_processes_with_the_same_overrides(tmp_path):
  config_args = [f"--config={ROOT / 'configs' / 'study.py'}:smoke",
                 "--config.experiments=('random',)", "--config.seeds=(0, 1)", "--config.workers=2"]
  config = load_study("smoke")
  config.experiments, config.seeds, config.workers = ("random",), (0, 1), 2
  lines = Lines()
  with logged_to(lines):
    study.run_study(config, str(tmp_path), config_args=config_args)
  assert sum("started on worker" in line for line in lines) == 2
  assert all(os.path.exists(tmp_path / "logs" / f"cell{i}.log") for i in range(2))
  # The worker processes built the very configs this process asks for (else: stale-config error).
  assert all(results is not None for _, results in study.collect(config, str(tmp_path)))


def fake_results(cell, datasets, taps, base, test_images=1000):
  if cell.freeze is not None:
    taps = (f"freeze{cell.freeze}",)
  return {"task": cell.experiment, "wall_time_s": 1.0,
          "pretext": {"steps": 10, "source_images": cell.size, "final_metrics": {"loss": 1.0}},
          "linear_eval": {d: {t: base + 0.01 * i + 0.001 * (cell.size or 0) / 1000
                              for i, t in enumerate(taps)} for d in datasets},
          "test_images": {d: test_images for d in datasets}}


def test_paper_variant_report_shows_their_numbers_beside_ours_and_the_layer_curve(tmp_path):
  config = load_study("paper")
  taps = ("conv1", "conv2", "conv3", "conv4", "conv5")
  cells = study.grid(config)
  results = [(cell, fake_results(cell, config.downstream, taps, 0.5)) for cell in cells]
  markdown = report.write_report(config, str(tmp_path), results)
  assert "theirs, not ours" in markdown
  # Their Figure 5 row, which says what their supervised baseline was.
  assert ("| supervised (seed: torchvision's AlexNet trained on all of ImageNet; ours: AlexNet-BN "
          "trained with labels on the same subset as the pretext tasks) | 0.744 | 0.815 | 0.752 "
          "| 0.770 |") in markdown
  # Ours in the seed's protocol (fine-tuned above conv3), the table that compares with theirs.
  assert "## The seed's own protocol, fine-tuned above conv3" in markdown
  assert "## Fine-tuned above a frozen layer on cifar10" in markdown
  assert "| rotation | " in markdown and "| 0.007 |" in markdown  # their rotation sensitivity
  assert "## Probes per layer on cifar10" in markdown
  assert (tmp_path / "figures" / "probe_layers_cifar10.png").exists()


def run_script(script, *args, env=None):
  # The scripts call `python`: make it this interpreter, even from a venv that is not activated.
  path = os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")
  return subprocess.run(["bash", str(ROOT / "launch" / script), *args], capture_output=True,
                        text=True, env={**os.environ, "PATH": path, "DRY_RUN": "1", **(env or {})},
                        timeout=120)


@pytest.mark.subprocess
def test_launch_scripts_print_their_commands_in_dry_run():
  local = run_script("local.sh", "--config=configs/rotation.py:paper", "--workdir=/runs/r")
  assert local.returncode == 0, local.stderr
  assert "-m sslflax.main --config=configs/rotation.py:paper --workdir=/runs/r" in local.stdout

  slurm = run_script("slurm.sbatch", "--config=configs/rotation.py:paper-120k", "--workdir=/w")
  assert slurm.returncode == 0, slurm.stderr
  assert slurm.stdout.startswith("srun ")
  assert "local.sh --multihost --config=configs/rotation.py:paper-120k --workdir=/w" in slurm.stdout

  generic = run_script("multihost.sh", "--config=configs/rotation.py", "--workdir=/w")
  assert generic.returncode == 2 and "JAX_COORDINATOR_ADDRESS is not set" in generic.stderr
  env = {"JAX_COORDINATOR_ADDRESS": "host0:1234", "JAX_NUM_PROCESSES": "2", "JAX_PROCESS_ID": "1"}
  generic = run_script("multihost.sh", "--config=configs/rotation.py", "--workdir=/w", env=env)
  assert generic.returncode == 0, generic.stderr
  assert "process 1 of 2" in generic.stdout and "sslflax.main --multihost" in generic.stdout

  array = run_script("study_array.sh", "--config=configs/study.py:smoke", "--workdir=/s")
  assert array.returncode == 0, array.stderr
  cell_job, report_job = array.stdout.strip().splitlines()
  cells = len(study.grid(load_study("smoke")))
  assert f"--array=0-{cells - 1}" in cell_job and "--cell=\\$SLURM_ARRAY_TASK_ID" in cell_job
  assert "--dependency=afterany:" in report_job and "--report_only" in report_job
  # Fine-tune cells read the probe cells' checkpoints: a second array, after the first.
  array = run_script("study_array.sh", "--config=configs/study.py:smoke", "--workdir=/s",
                     "--config.freeze_layers=(3,)")
  assert array.returncode == 0, array.stderr
  probe_job, finetune_job, report_job = array.stdout.strip().splitlines()
  assert f"--array=0-{cells - 1}" in probe_job and "--dependency" not in probe_job
  assert f"--array={cells}-{2 * cells - 1}" in finetune_job
  assert f"--dependency=afterany:\<cells-0-{cells - 1}\>" in finetune_job
  assert f"--dependency=afterany:\<cells-{cells}-{2 * cells - 1}\>" in report_job


def free_port() -> int:
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


# sslflax.main, with its first checkpoint manager made late by the first argument's seconds
# (patched once the job is joined: importing sslflax.train earlier would start JAX's backend)
LATE_MAIN = """import sys, time
from sslflax import distributed, main
delays, start = [float(sys.argv.pop(1))], distributed.start
def start_with_a_late_checkpoint_manager(multihost):
  printer = start(multihost)
  from sslflax.train import checkpoint
  made = checkpoint.make_manager
  def late(*args, **kwargs):
    time.sleep(delays.pop() if delays else 0)
    return made(*args, **kwargs)
  checkpoint.make_manager = late
  return printer
distributed.start = start_with_a_late_checkpoint_manager
main.cli()
"""

LATE_S = 35  # past the 30 s in which the first collective of a device group must meet


@pytest.mark.slow
@pytest.mark.multiprocess
@pytest.mark.subprocess
def test_two_processes_join_one_job_and_train_together(tmp_path):
  """jax.distributed on 2 local CPU processes (2 devices each): one 4-device data-parallel run.

  Process 1 reaches its checkpoint manager 35 s after process 0 (as a loaded CI machine once
  made it): Orbax's barrier must wait at the coordination service, not in a gloo collective,
  which fails both processes after 30 s."""
  env = {**os.environ, "XLA_FLAGS": xla_flags(2),
         "JAX_COORDINATOR_ADDRESS": f"localhost:{free_port()}", "JAX_NUM_PROCESSES": "2"}
  args = ["--multihost", "--config=configs/rotation.py:smoke", f"--workdir={tmp_path}"]
  commands = [[sys.executable, "-m", "sslflax.main", *args],
              [sys.executable, "-c", LATE_MAIN, str(LATE_S), *args]]
  procs = [subprocess.Popen(command, cwd=ROOT, env={**env, "JAX_PROCESS_ID": str(i)},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
           for i, command in enumerate(commands)]
  outputs = [p.communicate(timeout=300)[0] for p in procs]
  assert [p.returncode for p in procs] == [0, 0], outputs
  results = json.loads((tmp_path / "results.json").read_text())
  assert results["processes"] == 2 and results["devices"].startswith("4 x ")
  assert results["pretext"]["steps"] == 6 and np.isfinite(results["pretext"]["final_metrics"]["loss"])
  assert "[rotation] step 6/6" in outputs[0] and "[rotation] step" not in outputs[1]


def test_label_fraction_cells_probe_each_probe_cells_checkpoint_again():
  config = load_study("smoke")
  config.experiments, config.subset_sizes = ("random", "rotation"), (32,)
  config.freeze_layers, config.label_fractions = (3,), (0.01, 0.1, 1.0)
  config.overrides.linear_eval = dict(train_subset=None)
  cells = study.grid(config)
  assert [c.name for c in cells] == [
      "random-nodata-seed0", "rotation-32-seed0", "random-nodata-seed0-freeze3",
      "rotation-32-seed0-freeze3", "random-nodata-seed0-labels0.01", "rotation-32-seed0-labels0.01",
      "random-nodata-seed0-labels0.1", "rotation-32-seed0-labels0.1"]  # 1.0: the probe cells
  tenth = study.cell_config(config, cells[7])
  assert (tenth.linear_eval.label_fraction, tenth.linear_eval.mode, tenth.eval_only) == (
      0.1, "probe", True)
  assert study.cell_dir("w", cells[7]) == study.cell_dir("w", cells[1])  # one checkpoint
  assert not study.cell_config(config, cells[6]).eval_only  # random init has none to read
  assert study.cell_config(config, cells[1]).linear_eval.label_fraction is None
  assert [c.evaluates_a_checkpoint for c in cells] == [False, False] + [True] * 6


def test_label_fraction_table_compares_with_random_init_at_the_same_fraction():
  """On 5000 test images: at 0.01, rotation 0.70 against random's 0.60 is 10 SE (marked); at
  every label, 0.81 against 0.80 is 1.3 SE (not marked)."""
  rows = [dict(row("random", None, "d", 0, 0.80, test_images=5000), label_fraction=None),
          dict(row("random", None, "d", 0, 0.60, test_images=5000), label_fraction=0.01),
          dict(row("rotation", 20000, "d", 0, 0.81, test_images=5000), label_fraction=None),
          dict(row("rotation", 20000, "d", 0, 0.70, test_images=5000), label_fraction=0.01)]
  lines = report.fraction_table(rows, "d", "conv3", ["random", "rotation"]).splitlines()
  assert lines[0] == "| experiment | pretraining images | 0.01 of the labels | 1 of the labels |"
  assert lines[2] == "| random | — | 0.600 ± 0.007 | 0.800 ± 0.006 |"
  assert lines[3] == "| rotation | 20,000 | 0.700 ± 0.006* | 0.810 ± 0.006 |"
  assert report.at_fraction(rows, 1.0) == [rows[0], rows[2]]


@pytest.mark.slow
def test_a_label_fraction_sweep_runs_end_to_end_into_its_table_and_figure(tmp_path):
  config = load_study("smoke")
  config.experiments, config.subset_sizes = ("random", "rotation"), (32,)
  config.downstream, config.label_fractions = ("sslflax_sample/fashion",), (0.1,)
  with pytest.raises(ConfigError, match="linear_eval.train_subset=200 picks a subset"):
    study.run_study(config, str(tmp_path), **quiet_on_one_device())  # the smoke variant's
  config.overrides.linear_eval = dict(train_subset=None)
  markdown = study.run_study(config, str(tmp_path), **quiet_on_one_device())
  run_dir = pathlib.Path(study.cell_dir(str(tmp_path), study.grid(config)[1]))
  assert {p.name for p in run_dir.glob("results*.json")} == {"results.json",
                                                              "results-labels0.1.json"}
  assert "## Probes at conv3 with a share of the labels on sslflax_sample/fashion" in markdown
  assert "| 0.1 of the labels | 1 of the labels |" in markdown
  assert (tmp_path / "figures" / "label_fraction_sslflax_sample_fashion.png").exists()
  with open(tmp_path / "results.csv") as f:
    fractions = sorted(r["label_fraction"] for r in csv.DictReader(f))
  assert fractions == ["", "", "0.1", "0.1"]
  # The tables of every label leave the fraction rows out: one rotation row per dataset.
  probes = markdown.split("## Probes per layer on sslflax_sample/fashion")[1].split("##")[0]
  assert probes.count("| rotation |") == 1
