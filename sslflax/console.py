"""What a run prints: sslflax's own lines only, unless --verbose (or SSLFLAX_VERBOSE=1).

TensorFlow (oneDNN and absl notices at import), absl logging and TFDS's build messages are
hidden by default; user errors print as one line and exit with status 2.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import sys
import tempfile
from typing import Callable, Iterator

VERBOSE_ENV = "SSLFLAX_VERBOSE"
USER_ERROR_EXIT = 2

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def is_verbose() -> bool:
  return os.environ.get(VERBOSE_ENV, "") not in ("", "0")


def set_verbose_from_argv(argv: list[str]) -> None:
  """--verbose must act before TensorFlow is imported, so it is read before flags are parsed."""
  if "--verbose" in argv or "--verbose=true" in argv:
    os.environ[VERBOSE_ENV] = "1"


@contextlib.contextmanager
def hidden_native_stderr() -> Iterator[None]:
  """Hide what native code writes to file descriptor 2 (TensorFlow's C++ log lines, which
  ignore TF_CPP_MIN_LOG_LEVEL before absl::InitializeLog). Replayed if the block fails."""
  if is_verbose():
    yield
    return
  sys.stderr.flush()
  saved = os.dup(2)
  with tempfile.TemporaryFile() as sink:
    os.dup2(sink.fileno(), 2)
    try:
      yield
    except BaseException:
      os.dup2(saved, 2)
      sink.seek(0)
      os.write(2, sink.read())
      raise
    finally:
      os.dup2(saved, 2)
      os.close(saved)


@contextlib.contextmanager
def hidden_stdout() -> Iterator[None]:
  """Hide Python-level prints of a third-party call (TFDS's "Downloading and preparing ...")."""
  if is_verbose():
    yield
    return
  with contextlib.redirect_stdout(io.StringIO()):
    yield


def quiet_third_party() -> None:
  """Silence absl logging (TFDS, Orbax, TensorFlow's Python side): what matters to a run is
  raised as an error or printed by sslflax itself."""
  if is_verbose():
    return
  from absl import logging as absl_logging
  absl_logging.set_verbosity(absl_logging.FATAL)
  for name in ("tensorflow", "tensorflow_datasets", "orbax", "absl"):
    logging.getLogger(name).setLevel(logging.CRITICAL)


def import_tensorflow_quietly() -> None:
  """Import TensorFlow and TFDS once, without their start-up notices, and without Keras:
  TensorFlow imports Keras eagerly if it can, only to register Keras' optimizers, and tf.data
  never uses it (0.3-0.4 s of every run's and study cell's start on a 2-core CPU:
  docs/benchmarks.md). Keras is hidden for the import alone; a later `import keras` (or
  tf.keras) loads it as usual. A process that imported Keras first keeps it."""
  hide_keras = "keras" not in sys.modules
  if hide_keras:
    sys.modules["keras"] = None  # TensorFlow's `import keras.src.optimizers` then fails fast
  try:
    with hidden_native_stderr():
      import tensorflow  # noqa: F401
      import tensorflow_datasets  # noqa: F401
  finally:
    if hide_keras and sys.modules.get("keras", False) is None:
      del sys.modules["keras"]
  quiet_third_party()


def format_eta(seconds: float) -> str:
  """H:MM:SS for progress lines."""
  seconds = int(max(seconds, 0))
  return f"{seconds // 3600:d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def print_user_error(error: BaseException) -> None:
  message = " ".join(str(error).split()) or type(error).__name__
  print(f"error: {message}", file=sys.stderr, flush=True)


def run_cli(main: Callable[[list[str]], None], load_config: Callable[[], object]) -> None:
  """absl's app.run, with flag and config errors and sslflax.errors.UserError as one line and
  exit status 2 (bugs keep their traceback). `load_config` forces the --config file to load."""
  from absl import app, flags

  from sslflax.errors import UserError

  def parse(argv: list[str]) -> list[str]:
    from sslflax.configpath import config_spec
    spec = config_spec(argv[1:])
    if spec and not os.path.isfile(spec.split(":")[0]):
      _exit_with(f"--config={spec}: no such file; configs are Python files such as "
                 f"configs/rotation.py (append :VARIANT for a variant).")
    try:
      rest = flags.FLAGS(argv)
      load_config().keys()  # ml_collections defers a file's load error to first use
    except (flags.Error, AttributeError, KeyError) as e:  # AttributeError: an unknown override
      _exit_with(unknown_override(argv) or _last_error(str(e)))
    except (OSError, ValueError, TypeError, ImportError) as e:  # the config file itself
      _exit_with(f"--config: {_last_error(str(e))}")
    return rest

  def guarded(argv: list[str]) -> None:
    quiet_third_party()  # again: parsing absl's --verbosity flag resets its level
    try:
      main(argv)
    except UserError as e:
      print_user_error(e)
      sys.exit(USER_ERROR_EXIT)

  app.run(guarded, flags_parser=parse)


def _exit_with(message: str) -> None:
  print_user_error(RuntimeError(message))
  sys.exit(USER_ERROR_EXIT)


def _last_error(message: str) -> str:
  """ml_collections embeds the config file's traceback in its message: keep its last line."""
  if "Traceback (most recent call last)" not in message:
    return message
  last = message.strip().splitlines()[-1]
  return last.split(": ", 1)[1] if re.match(r"^\w+(Error|Exception): ", last) else last


def unknown_override(argv: list[str]) -> str | None:
  """'unknown config field ...' for the first --config.a.b=v whose field the file lacks."""
  from sslflax.configpath import config_spec, load_config
  spec = config_spec(argv)
  try:
    config = load_config(spec) if spec else None
  except Exception:  # noqa: BLE001 - the file's own error is reported instead
    return None
  for arg in argv:
    if config is None or not arg.startswith("--config."):
      continue
    path = arg[len("--config."):].split("=", 1)[0]
    node, keys = config, path.split(".")
    for i, key in enumerate(keys):
      if not hasattr(node, "keys") or key not in node.keys():
        where = ".".join(keys[:i]) or "the config"
        known = sorted(node.keys()) if hasattr(node, "keys") else []
        return (f"unknown config field {path!r} in {arg!r}: {where} has no field {key!r}"
                + (f"; its fields are {', '.join(known)}." if known else "."))
      node = node[key]
  return None
