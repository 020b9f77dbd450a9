"""Where config files find their siblings (`from configs.common import ...`)."""

from __future__ import annotations

import pathlib
import sys


def put_config_package_on_path(argv: list[str]) -> None:
  """Configs import their siblings as `configs.common`: put the folder holding `configs/` on
  sys.path, so a config file loads from any working directory and from the console scripts."""
  for arg, following in zip(argv, argv[1:] + [""]):
    value = arg.split("=", 1)[1] if arg.startswith("--config=") else (
        following if arg == "--config" else None)
    if value:
      sys.path.insert(0, str(pathlib.Path(value.split(":")[0]).resolve().parent.parent))
