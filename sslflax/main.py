"""Command line: python -m sslflax.main --config=configs/rotation.py[:variant] --workdir=DIR

Any config field can be overridden, e.g. --config.optim.lr=0.01 --config.pretrain.steps=100.
"""

import sys

from absl import flags
from ml_collections import config_flags

from sslflax import console
from sslflax.configpath import put_config_package_on_path

_CONFIG = config_flags.DEFINE_config_file("config", None, "Experiment config file[:variant].",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Where checkpoints, metrics and results.json go.")
_MULTIHOST = flags.DEFINE_bool(
    "multihost", False, "Join a multi-host job first (SLURM, or JAX_* variables: see "
    "sslflax/distributed.py).")
_VERBOSE = flags.DEFINE_bool("verbose", False, "Also show TensorFlow, absl and TFDS messages.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  del argv
  from sslflax import distributed
  distributed.start(_MULTIHOST.value)
  from sslflax import experiment  # after start(): JAX must not see a device before the job is joined
  experiment.run(_CONFIG.value, _WORKDIR.value)


def cli() -> None:
  """The `sslflax-train` command, the same as `python -m sslflax.main`."""
  console.set_verbose_from_argv(sys.argv[1:])
  put_config_package_on_path(sys.argv[1:])
  console.run_cli(main, lambda: _CONFIG.value)


if __name__ == "__main__":
  cli()
