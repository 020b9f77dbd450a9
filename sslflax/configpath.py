"""Loading config files: where they find their siblings (`from configs.common import ...`),
and `load_config`."""

from __future__ import annotations

import pathlib
import sys


def put_config_package_on_path(argv: list[str]) -> None:
  """Configs import their siblings as `configs.common`: put the folder holding `configs/` on
  sys.path, so a config file loads from any working directory and from the console scripts."""
  value = config_spec(argv)
  if value:
    sys.path.insert(0, str(pathlib.Path(value.split(":")[0]).resolve().parent.parent))


def config_spec(argv: list[str]) -> str | None:
  """The --config value (FILE[:VARIANT]) in argv, in either spelling; the last one wins."""
  spec = None
  for arg, following in zip(argv, argv[1:] + [""]):
    if arg.startswith("--config="):
      spec = arg.split("=", 1)[1]
    elif arg == "--config":
      spec = following or None
  return spec


def load_config(spec: str, variant: str | None = None):
  """get_config(variant) of a config file, the one way sslflax loads one outside the command
  line: load_config('configs/rotation.py:smoke') or load_config('configs/rotation.py',
  'smoke'). The file's folder is imported as a package, so it imports its siblings as
  `configs.common`."""
  import importlib
  import os
  from sslflax.errors import ConfigError
  path, _, spec_variant = spec.partition(":")
  variant = variant or spec_variant or None
  if not os.path.isfile(path):
    folder = os.path.dirname(path) or "."
    raise ConfigError(f"no config file {path}; experiment names are files in {folder} "
                      f"(e.g. rotation, colorize, random).")
  root, package = os.path.split(os.path.dirname(os.path.abspath(path)))
  if root not in sys.path:
    sys.path.insert(0, root)
  module = importlib.import_module(f"{package}.{pathlib.Path(path).stem}")
  return module.get_config(variant)
