"""Where config files find their siblings (`from configs.common import ...`)."""

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


def load_config_file(spec: str):
  """get_config(variant) of the file in 'FILE[:VARIANT]', as ml_collections would load it."""
  import importlib.util
  path, _, variant = spec.partition(":")
  module_spec = importlib.util.spec_from_file_location("_sslflax_config", path)
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  return module.get_config(variant) if variant else module.get_config()
