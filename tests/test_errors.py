"""Bad input: one clear line and exit status 2 on the command line, a UserError in Python,
raised before any work, and never an earlier checkpoint lost. Bugs keep their traceback.

The command line's errors are checked in-process (sslflax.main's entry with SystemExit and
the captured output); `test_the_real_exit_path_of_a_user_error` and the console tests keep
the real process."""

import dataclasses
import errno
import io
import os
import pathlib
import struct
import subprocess
import sys
import zlib

import numpy as np
import orbax.checkpoint as ocp
import pytest
from PIL import Image

from sslflax import data as data_lib
from sslflax import experiment
from sslflax.data import folder
from sslflax.errors import (CheckpointError, ConfigError, DatasetError, UserError,
                            WorkdirError)
from sslflax.train import checkpoint as ckpt_lib
from tests.helpers import (ROOT, Lines, load_config, photo_crops, run_experiment,
                           run_pretrain, xla_flags)

smoke = lambda name="rotation", **overrides: load_config(name, "smoke", **overrides)


@dataclasses.dataclass
class Exit:
  returncode: int
  stdout: str
  stderr: str


def run_cli_in_process(args: list[str], capsys, monkeypatch) -> Exit:
  """`python -m sslflax.main ARGS` in this process: its exit status and captured output."""
  from absl import flags
  from sslflax import main
  monkeypatch.chdir(ROOT)
  monkeypatch.setattr(sys, "argv", ["sslflax.main", *args])
  flags.FLAGS.unparse_flags()  # no value left from an earlier parse
  capsys.readouterr()
  try:
    main.cli()
    code = 0
  except SystemExit as e:
    code = e.code if isinstance(e.code, int) else 1
  finally:
    flags.FLAGS.unparse_flags()
    for name in [n for n in flags.FLAGS if n.startswith("config.")]:
      delattr(flags.FLAGS, name)  # the override flags a parse defines; the next parse redefines them
  out = capsys.readouterr()
  return Exit(code, out.out, out.err)


def run_cli(*args: str, cwd: pathlib.Path = ROOT) -> subprocess.CompletedProcess:
  env = dict(os.environ, XLA_FLAGS=xla_flags(1))
  return subprocess.run([sys.executable, "-m", "sslflax.main", *args], cwd=cwd, env=env,
                        capture_output=True, text=True, timeout=300)


def assert_one_line_error(result, *fragments: str) -> None:
  assert result.returncode == 2, result.stderr[-2000:]
  lines = [line for line in result.stderr.splitlines() if line.strip()]
  assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr[-2000:]
  assert "Traceback" not in result.stderr + result.stdout
  for fragment in fragments:
    assert fragment in lines[0], lines[0]


# --- The command line: flags and config files ------------------------------------------

CLI_ERRORS = [
    (["--config.pretrain.nosuch=3"], ["unknown config field 'pretrain.nosuch'", "batch_size"]),
    (["--config=configs/nosuch.py"], ["configs/nosuch.py: no such file"]),
    (["--config=configs/rotation.py:huge"], ["unknown config variant 'huge'"]),
    (["--config.pretrain.steps=abc"], ["--config.pretrain.steps=abc", "invalid literal"]),
    (["--workdir="], ["--workdir"]),
    (["--config.pretrain.batch_size=0"], ["pretrain.batch_size=0", "at least 1"]),
    (["--config.pretrain.dataset=/no/such/folder"], ["/no/such/folder does not exist"]),
    (["--config.pretrain.dataset=sslflax_sample/fashon"],
     ["no config 'fashon'", "did you mean sslflax_sample/fashion?"]),
    (["--config.linear_eval.datasets=('cifar10/plain',)"], ["'cifar10' has no configs"]),
    (["--config.linear_eval.taps=()"], ["linear_eval.taps is empty", "'conv1'"]),
]
CLI_IDS = ["unknown-field", "missing-config-file", "unknown-variant", "bad-type", "no-workdir",
           "zero-batch", "missing-folder", "mistyped-tfds-config", "config-of-plain-dataset",
           "empty-taps"]


@pytest.mark.parametrize("args, fragments", CLI_ERRORS, ids=CLI_IDS)
def test_command_line_user_errors_are_one_line_with_exit_status_2(args, fragments, tmp_path,
                                                                  capsys, monkeypatch):
  base = ["--config=configs/rotation.py:smoke", f"--workdir={tmp_path / 'w'}"]
  result = run_cli_in_process([*base, *args], capsys, monkeypatch)
  assert_one_line_error(result, *fragments)
  assert not (tmp_path / "w" / "checkpoints").exists()


@pytest.mark.subprocess
def test_the_real_exit_path_of_a_user_error(tmp_path):
  """One case of the above in a real process: status 2 and one line on its stderr, through
  the interpreter's exit (TensorFlow's and JAX's start-up notices included)."""
  args, fragments = CLI_ERRORS[CLI_IDS.index("zero-batch")]
  result = run_cli("--config=configs/rotation.py:smoke", f"--workdir={tmp_path / 'w'}", *args)
  assert_one_line_error(result, *fragments)
  assert not (tmp_path / "w" / "checkpoints").exists()


@pytest.mark.subprocess
def test_a_bug_keeps_its_traceback(tmp_path):
  script = ("import sys\nfrom sslflax import console\n"
            "def main(argv):\n  raise RuntimeError('a bug')\n"
            "console.run_cli(main, lambda: {})\n")
  result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
  assert result.returncode == 1 and "Traceback" in result.stderr
  assert "RuntimeError: a bug" in result.stderr


@pytest.mark.subprocess
def test_tensorflow_loads_without_keras_and_keras_still_loads_after():
  """sslflax's data module imports TensorFlow without Keras (TensorFlow would import it
  eagerly: 0.3-0.4 s of every start), and tf.data works; a later `import keras` loads Keras."""
  script = ("import sys\nimport sslflax.data\nimport tensorflow as tf\n"
            "assert 'tensorflow' in sys.modules and 'keras' not in sys.modules, "
            "sorted(m for m in sys.modules if m.startswith('keras'))[:3]\n"
            "def double(x):\n  return 2 * x\n"
            "assert list(tf.data.Dataset.range(3).map(double).as_numpy_iterator()) == [0, 2, 4]\n"
            "import keras\nassert keras.layers.Dense(2) is not None\nprint('ok')\n")
  result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                          text=True, timeout=180)
  assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-3000:]


def test_no_module_hides_the_logger_behind_a_local_name():
  """A module that imports `log` from sslflax.log never rebinds the name: a local `log`
  (a file handle, say) makes every later `log.info` there an AttributeError, found only when
  that path runs (the study's worker loop once did)."""
  import ast
  offenders = []
  for path in sorted((ROOT / "sslflax").rglob("*.py")):
    tree = ast.parse(path.read_text())
    if not any(isinstance(node, ast.ImportFrom) and node.module == "sslflax.log"
               and any(alias.name == "log" and alias.asname is None for alias in node.names)
               for node in ast.walk(tree)):
      continue
    for node in ast.walk(tree):
      rebinds = ((isinstance(node, ast.Name) and node.id == "log"
                  and isinstance(node.ctx, ast.Store))
                 or (isinstance(node, ast.arg) and node.arg == "log"))
      if rebinds:
        offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
  assert not offenders, f"rename the local `log` at {offenders}"


@pytest.mark.slow
@pytest.mark.subprocess
def test_the_console_shows_only_sslflax_lines_unless_verbose(tmp_path):
  args = ["--config=configs/random.py:smoke", f"--workdir={tmp_path / 'w'}",
          "--config.linear_eval.taps=('conv1',)"]
  quiet = run_cli(*args)
  assert quiet.returncode == 0, quiet.stderr[-2000:]
  assert quiet.stderr.strip() == ""
  lines = quiet.stdout.splitlines()
  assert lines[0].startswith("[random] random init (no pretraining); then probe conv1")
  assert all(line.startswith(("[", "linear probe", "tap ", "conv1", "results:"))
             for line in lines), quiet.stdout
  verbose = run_cli(*args, "--verbose", f"--workdir={tmp_path / 'v'}")
  assert verbose.returncode == 0
  assert "oneDNN" in verbose.stderr or "absl" in verbose.stderr or "I0000" in verbose.stderr


# --- Config values: ConfigError before any work ---------------------------------------

@pytest.mark.parametrize("name, overrides, fragment", [
    ("rotation", {"pretrain.steps": -5}, "pretrain.steps=-5"),
    ("rotation", {"optim.lr": float("nan")}, "optim.lr=nan"),
    ("rotation", {"optim.lr": -1.0}, "optim.lr=-1.0"),
    ("rotation", {"linear_eval.epochs": 0}, "linear_eval.epochs=0"),
    ("rotation", {"checkpoint.every_steps": 0}, "checkpoint.every_steps=0"),
    ("rotation", {"pretrain.subset_size": 0}, "pretrain.subset_size=0"),
    ("rotation", {"linear_eval.datasets": ()}, "linear_eval.datasets is empty"),
    ("rotation", {"task.name": "spin"}, "unknown task 'spin'"),
    ("rotation", {"model.name": "vgg"}, "unknown backbone 'vgg'"),
    ("rotation", {"optim.name": "rmsprop"}, "unknown optim.name 'rmsprop'"),
    ("rotation", {"optim.schedule": "cyclic"}, "unknown optim.schedule 'cyclic'"),
    ("rotation", {"linear_eval.taps": ("conv9",)}, "unknown linear_eval.taps ['conv9']"),
    ("random", {"linear_eval.taps": ("fc6",)}, "unknown linear_eval.taps ['fc6']"),
    ("rotation", {"pretrain.augment.enabled": True, "pretrain.augment.crop_area": (0.5, 2.0)},
     "crop area fractions"),
    ("jigsaw", {"pretrain.image_size": 12}, "too small for task 'jigsaw'"),
    ("rotation", {"pretrain.batch_size": 12}, "not divisible by the 8 devices"),
    ("supervised", {"task.options.num_classes": 3}, "task.options.num_classes=3"),
    ("rotation", {"linear_eval.mode": "tune"}, "linear_eval.mode='tune'"),
    ("rotation", {"linear_eval.probe_optimizer": "lbfgs"}, "linear_eval.probe_optimizer='lbfgs'"),
    ("rotation", {"linear_eval.probe_lr": -0.1}, "linear_eval.probe_lr=-0.1"),
    ("rotation", {"linear_eval.freeze_layer": 6}, "linear_eval.freeze_layer=6 must be 0..5"),
    ("rotation", {"linear_eval.finetune_epochs": 0}, "linear_eval.finetune_epochs=0"),
    ("rotation", {"optim.plateau_factor": 1.5}, "optim.plateau_factor=1.5"),
    ("rotation", {"linear_eval.train_subset": None, "linear_eval.label_fraction": 1.5},
     "linear_eval.label_fraction=1.5 must be in (0, 1]"),
    ("rotation", {"linear_eval.train_subset": None, "linear_eval.label_fraction": 0.0},
     "linear_eval.label_fraction=0.0 must be in (0, 1]"),
    ("rotation", {"linear_eval.train_subset": 200, "linear_eval.label_fraction": 0.1},
     "both choose the probe's training images"),
    ("rotation", {"linear_eval.mode": "finetune", "linear_eval.batch_size": 12},
     "linear_eval.batch_size=12 is not divisible by the 8 devices"),
], ids=lambda v: v if isinstance(v, str) and " " not in v else None)
def test_bad_config_values_fail_before_any_work(name, overrides, fragment, tmp_path):
  with pytest.raises(ConfigError, match=None) as caught:
    experiment.run(smoke(name, **overrides), str(tmp_path))
  assert fragment in str(caught.value)
  assert not (tmp_path / "checkpoints").exists() and not (tmp_path / "results.json").exists()


# --- Data: DatasetError before any work, or a documented fallback -----------------------

def write_images(root: pathlib.Path, count: int = 4, size: int = 40, gray: bool = False,
                 classes: tuple[str, ...] = ()) -> None:
  for i, crop in enumerate(photo_crops(count * max(1, len(classes)), size, seed=5)):
    where = root / classes[i % len(classes)] if classes else root
    where.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(crop)
    (image.convert("L").convert("RGB") if gray else image).save(where / f"{i}.png")


def test_data_errors_fail_before_any_work(tmp_path):
  local = str(tmp_path / "tfds")  # folders build here; cifar10 is not prepared here
  (tmp_path / "empty").mkdir()
  (tmp_path / "broken").mkdir()
  for i in range(3):
    (tmp_path / "broken" / f"{i}.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
  write_images(tmp_path / "flat")
  flat = str(tmp_path / "flat")
  cases = [
      ({"pretrain.dataset": str(tmp_path / "missing")}, local, "does not exist"),
      ({"pretrain.dataset": str(tmp_path / "empty")}, local, "has no image files"),
      ({"pretrain.dataset": str(tmp_path / "broken")}, local, "has no usable images"),
      ({"pretrain.dataset": "cifar11"}, local, "unknown dataset 'cifar11'"),
      ({"pretrain.dataset": "cifar10"}, local, "not prepared"),
      ({"pretrain.split": "valid"}, None, "has no split 'valid'"),
      ({"linear_eval.test_split": "valid"}, None, "has no split 'valid'"),
      ({"pretrain.dataset": flat, "linear_eval.datasets": (flat,)}, local, "has no class labels"),
      ({"pretrain.subset_size": 20_001}, None, "pretrain.subset_size=20001"),
      ({"linear_eval.train_subset": 3001}, None, "linear_eval.train_subset=3001"),
      ({"linear_eval.train_subset": None, "linear_eval.label_fraction": 0.001}, None,
       "linear_eval.label_fraction=0.001 keeps 3 of the 3000 train images of "
       "'sslflax_sample/fashion', fewer than its 10 classes; ask for at least 0.004"),
  ]
  for overrides, data_dir, fragment in cases:
    config = smoke(**overrides)
    config.pretrain.data_dir = data_dir
    with pytest.raises(DatasetError) as caught:
      experiment.run(config, str(tmp_path / "w"))
    assert fragment in str(caught.value), (overrides, str(caught.value))
    assert not (tmp_path / "w" / "checkpoints").exists()
  supervised = smoke("supervised", **{"pretrain.dataset": flat, "pretrain.data_dir": local})
  with pytest.raises(DatasetError, match="has no class labels"):
    experiment.run(supervised, str(tmp_path / "w"))


def test_colorization_refuses_grayscale_data(tmp_path):
  """Colorization learns nothing from gray images: a grayscale TFDS set, or RGB files of gray."""
  write_images(tmp_path / "gray", count=8, gray=True, classes=("a", "b"))
  gray = str(tmp_path / "gray")
  cases = [{"pretrain.dataset": "sslflax_sample/fashion_pool"},
           {"pretrain.dataset": gray, "pretrain.data_dir": str(tmp_path / "tfds"),
            "linear_eval.datasets": (gray,), "linear_eval.test_split": "train",
            "linear_eval.train_subset": None}]
  for overrides in cases:
    config = smoke("colorize", **{"pretrain.augment.enabled": False}, **overrides)
    with pytest.raises(DatasetError, match="learns colour"):
      run_experiment(config, tmp_path / "c")
    assert not list((tmp_path / "c").glob("checkpoints/*"))


def png16(pixels: np.ndarray) -> bytes:
  """A 16-bit PNG (gray or RGB) written by hand: PIL cannot write 16-bit RGB."""
  height, width = pixels.shape[:2]
  def chunk(kind: bytes, body: bytes) -> bytes:
    return (struct.pack(">I", len(body)) + kind + body
            + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF))
  rows = b"".join(b"\0" + pixels[y].astype(">u2").tobytes() for y in range(height))
  header = struct.pack(">IIBBBBB", width, height, 16, 2 if pixels.ndim == 3 else 0, 0, 0, 0)
  return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows))
          + chunk(b"IEND", b""))


def test_unusual_image_files_are_converted_correctly_or_skipped():
  crop = photo_crops(1, 32, seed=7)[0]
  def encoded(image: Image.Image, fmt: str) -> bytes:
    out = io.BytesIO()
    image.save(out, format=fmt)
    return out.getvalue()
  ramp = np.linspace(0, 65535, 32 * 32).reshape(32, 32).astype(np.uint16)
  rgba = np.dstack([crop, np.full(crop.shape[:2], 255, np.uint8)])
  rgba[:16, :, 3] = 0  # the transparent half comes out white
  full_jpeg = encoded(Image.fromarray(crop), "JPEG")

  array, status = folder._load_rgb(png16(ramp))  # noqa: SLF001
  assert status == "converted"
  np.testing.assert_array_equal(array[..., 0], np.round(ramp / 257).astype(np.uint8))
  array, status = folder._load_rgb(png16(np.dstack([ramp, ramp // 2, ramp // 4])))  # noqa: SLF001
  np.testing.assert_array_less(np.abs(array.astype(int) - np.dstack([ramp, ramp // 2, ramp // 4])
                                      // 257), 2)
  array, status = folder._load_rgb(encoded(Image.fromarray(rgba), "PNG"))  # noqa: SLF001
  assert status == "converted" and (array[:16] == 255).all()
  np.testing.assert_array_equal(array[16:], crop[16:])
  array, status = folder._load_rgb(encoded(Image.fromarray(crop).convert("CMYK"), "JPEG"))  # noqa: SLF001
  assert status == "converted" and np.abs(array.astype(int) - crop).mean() < 12
  assert folder._load_rgb(full_jpeg[: len(full_jpeg) // 2]) == (None, "unreadable")  # noqa: SLF001
  assert folder._load_rgb(encoded(Image.fromarray(crop[:5, :5]), "PNG")) == (None, "too small")  # noqa: SLF001


# --- Workdirs and checkpoints: errors that keep what was there ------------------------

def checkpoint_steps(workdir: pathlib.Path) -> list[int]:
  return sorted(int(p.name) for p in (workdir / "checkpoints").iterdir() if p.name.isdigit())


def test_workdir_errors_keep_the_checkpoints_there(rotation_smoke, tmp_path):
  done = rotation_smoke.copy_to(tmp_path / "rotation")
  before = checkpoint_steps(done)
  with pytest.raises(WorkdirError, match="holds checkpoints of experiment 'rotation'"):
    experiment.run(smoke("counting"), str(done))
  with pytest.raises(WorkdirError, match=r"other model.widths"):
    experiment.run(smoke(**{"model.widths": (8, 16, 16, 16, 16)}), str(done))
  assert checkpoint_steps(done) == before
  (tmp_path / "a_file").write_text("")
  with pytest.raises(WorkdirError, match="is a file"):
    experiment.run(smoke(), str(tmp_path / "a_file"))
  with pytest.raises(WorkdirError, match="cannot write"):
    experiment.run(smoke(), str(tmp_path / "a_file" / "below"))


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere")
def test_a_read_only_workdir_is_refused(tmp_path):
  locked = tmp_path / "locked"
  locked.mkdir()
  locked.chmod(0o555)
  try:
    with pytest.raises(WorkdirError, match="cannot write"):
      experiment.run(smoke(), str(locked))
  finally:
    locked.chmod(0o755)


def test_eval_only_with_only_a_corrupt_checkpoint_sets_it_aside_and_says_so(rotation_smoke,
                                                                           tmp_path):
  config = smoke()
  tmp_path = rotation_smoke.copy_to(tmp_path / "run")
  steps = checkpoint_steps(tmp_path)
  for f in (tmp_path / "checkpoints").rglob("*"):
    if f.is_file():
      f.write_bytes(b"garbage")
  config.eval_only = True
  with pytest.raises(CheckpointError, match="no readable checkpoint"):
    experiment.run(config, str(tmp_path))
  for step in steps:  # kept for inspection, never deleted
    assert (tmp_path / "unreadable_checkpoints" / str(step)).is_dir()


def test_a_full_disk_during_a_checkpoint_keeps_the_previous_one(tmp_path, monkeypatch):
  config = smoke()  # saves at steps 3 and 6
  real_save = ocp.CheckpointManager.save
  def save_until_full(self, step, *args, **kwargs):
    if step == 6:
      raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    return real_save(self, step, *args, **kwargs)
  monkeypatch.setattr(ocp.CheckpointManager, "save", save_until_full)
  with pytest.raises(WorkdirError, match=r"step 6.*No space left.*step 3 is kept"):
    run_pretrain(config, tmp_path)
  assert checkpoint_steps(tmp_path)[-1] == 3  # no partial step 6
  monkeypatch.setattr(ocp.CheckpointManager, "save", real_save)
  lines = Lines()
  out = run_pretrain(config, tmp_path, log_to=lines)
  assert lines[0].startswith("resumed from step 3") and int(out["state"].step) == 6


def test_every_user_error_is_one_kind():
  for kind in (ConfigError, DatasetError, WorkdirError, CheckpointError):
    assert issubclass(kind, UserError)
  assert data_lib.DatasetError is DatasetError
  assert issubclass(ckpt_lib.WorkdirError, UserError)
