"""Derived config values follow the fields they derive from, through the real --config parser."""

import math

import pytest

from tests.helpers import CONFIGS


def parse(experiment: str, *overrides: str):
  """The config `python -m sslflax.main --config=configs/NAME.py[:VARIANT] OVERRIDES` runs."""
  from absl import flags
  from ml_collections import config_flags
  name, _, variant = experiment.partition(":")
  argv = ["sslflax.main", f"--config={CONFIGS / name}.py" + (f":{variant}" if variant else ""),
          *overrides]
  values = flags.FlagValues()
  config_flags.DEFINE_config_file("config", flag_values=values, lock_config=True, sys_argv=argv)
  values(argv)
  return values.config


def test_warm_up_and_the_swav_schedule_follow_the_steps():
  assert parse("simclr").optim.warmup_steps == 60
  assert parse("simclr", "--config.pretrain.steps=6000").optim.warmup_steps == 600  # 10%
  swav = parse("swav", "--config.pretrain.steps=1200")
  assert (swav.optim.warmup_steps, swav.task.options.queue_start_step,
          swav.task.options.freeze_prototypes_steps) == (120, 200, 100)
  paper = parse("swav:paper", "--config.pretrain.steps=5000")
  assert (paper.task.options.queue_start_step, paper.task.options.freeze_prototypes_steps) == (
      1500, 100)  # epochs 15 and 1 of 50
  assert parse("byol:paper", "--config.pretrain.steps=77").task.options.total_steps == 77


@pytest.mark.parametrize("experiment, batch, lr", [
    ("simclr", 512, 0.075 * math.sqrt(512)),  # the square-root rule
    ("simclr:paper", 4096, 0.3 * 4096 / 256),  # the linear rule at batch 256
    ("swav", 256, 0.6), ("moco", 512, 0.06), ("byol:paper", 4096, 3.2)])
def test_batch_scaled_learning_rates_follow_the_batch(experiment, batch, lr):
  config = parse(experiment, f"--config.pretrain.batch_size={batch}")
  assert config.optim.lr == pytest.approx(lr, rel=1e-12)


def test_a_derived_value_set_itself_wins_and_leaves_its_source_alone():
  config = parse("simclr", "--config.optim.warmup_steps=5", "--config.optim.lr=0.5",
                 "--config.pretrain.steps=900")
  assert (config.optim.warmup_steps, config.optim.lr, config.pretrain.steps) == (5, 0.5, 900)
  byol = parse("byol", "--config.task.options.total_steps=50")
  assert (byol.task.options.total_steps, byol.pretrain.steps) == (50, 600)
  assert parse("byol", "--config.pretrain.batch_size=512").optim.lr == 1e-3  # Adam: not scaled


def test_the_compilation_cache_folder_follows_config_then_environment_then_default(
    monkeypatch, tmp_path):
  from sslflax import compilation_cache as cc
  monkeypatch.delenv(cc.ENV_VAR, raising=False)
  monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
  assert cc.cache_dir(None) == str(tmp_path / "xdg" / "sslflax" / "jax")
  monkeypatch.setenv(cc.ENV_VAR, str(tmp_path / "env"))
  assert cc.cache_dir(None) == str(tmp_path / "env")
  assert cc.cache_dir(str(tmp_path / "cfg")) == str(tmp_path / "cfg")  # the config wins
  assert cc.cache_dir("off") is None and cc.cache_dir("None") is None
  monkeypatch.setenv(cc.ENV_VAR, "off")
  assert cc.cache_dir(None) is None
  assert parse("rotation", "--config.compilation_cache=off").compilation_cache == "off"


def test_variants_are_parsed_in_one_place():
  from configs.common import VARIANTS, by_variant, variant_family
  assert [variant_family(v) for v in VARIANTS] == [
      "default", "smoke", "paper", "paper", "paper", "paper"]
  with pytest.raises(ValueError, match="unknown config variant 'papre'"):
    variant_family("papre")
  config = parse("rotation:paper-60k")
  with pytest.raises(ValueError, match=r"unknown families \['tiny'\]"):
    by_variant(config, tiny={"seed": 1})
  by_variant(config, default={"seed": 1}, paper={"seed": 2, "pretrain.split": "val"})
  assert (config.seed, config.pretrain.split) == (2, "val")  # only its own family's settings
  configs = sorted(p for p in CONFIGS.glob("*.py") if p.name not in ("common.py", "study.py"))
  readers = [p.name for p in configs if "config.variant" in p.read_text()]
  assert configs and not readers, readers  # experiments state differences via by_variant


def test_paper_queue_and_clusters_follow_the_subset():
  moco = parse("moco:paper", "--config.pretrain.subset_size=60000")
  assert moco.task.options.queue_size == 60000 // 4 // 256 * 256
  deepcluster = parse("deepcluster:paper", "--config.pretrain.subset_size=60000")
  assert (deepcluster.task.options.num_clusters,
          deepcluster.task.options.recluster_steps) == (468, 234)


def test_only_build_reads_the_config():
  """No function under train/, evaluate/ or data/ takes the ConfigDict, and checks builds
  nothing: they take what sslflax.build built."""
  import importlib
  import inspect
  import pkgutil
  import sslflax
  from sslflax import checks
  takers = []
  for package in ("train", "evaluate", "data"):
    pkg = importlib.import_module(f"sslflax.{package}")
    for info in pkgutil.iter_modules(pkg.__path__):
      module = importlib.import_module(f"sslflax.{package}.{info.name}")
      for name, fn in inspect.getmembers(module, inspect.isfunction):
        if fn.__module__ == module.__name__ and "config" in inspect.signature(fn).parameters:
          takers.append(f"{module.__name__}.{name}")
  assert not takers, takers
  source = inspect.getsource(checks)
  assert "from_config" not in source and "build_run" not in source
  assert sslflax.build.build_run  # the one reader
