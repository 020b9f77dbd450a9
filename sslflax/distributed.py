"""Multi-host start-up: one process per host, joined before JAX touches a device.

On SLURM (and Open MPI, Kubernetes, Cloud TPU) JAX finds the coordinator, the process count
and this process's index by itself. Anywhere else, set three variables on every host:

  JAX_COORDINATOR_ADDRESS=host0:1234   # the same on every host: process 0's address, a free port
  JAX_NUM_PROCESSES=4                  # hosts in the job
  JAX_PROCESS_ID=0                     # 0..JAX_NUM_PROCESSES-1, different on each host
"""

from __future__ import annotations

import os

ENV_VARS = ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID")


def initialize() -> None:
  """jax.distributed.initialize from the JAX_* variables when set, else JAX's auto-detection."""
  import jax
  given = {name: os.environ.get(name) for name in ENV_VARS}
  if not any(given.values()):
    jax.distributed.initialize()
    checkpoint_barriers_through_coordinator()
    return
  missing = [name for name, value in given.items() if not value]
  if missing:
    raise ValueError(f"multi-host set-up needs all of {', '.join(ENV_VARS)}; {', '.join(missing)} "
                     f"not set (see sslflax/distributed.py).")
  jax.distributed.initialize(coordinator_address=given["JAX_COORDINATOR_ADDRESS"],
                             num_processes=int(given["JAX_NUM_PROCESSES"]),
                             process_id=int(given["JAX_PROCESS_ID"]))
  checkpoint_barriers_through_coordinator()


def checkpoint_barriers_through_coordinator() -> None:
  """Orbax's barriers wait at the coordination service (5 minutes) instead of in a collective.

  Orbax's default barrier is a collective over one device per process, and the first
  collective of a device group must meet the other processes within a fixed 30 s: a process
  that reached its checkpoint manager 30 s after the other (a loaded 2-core CI machine) failed
  both. `parse` sets the flag whether or not the command line has been parsed.
  """
  from absl import flags
  import orbax.checkpoint  # noqa: F401  (defines the flag)
  flags.FLAGS["experimental_orbax_use_distributed_barrier"].parse("true")


def start(multihost: bool) -> None:
  """The command lines' process set-up. Library INFO logs are silenced (sslflax's own lines
  print from process 0 only: sslflax.log), host memory freed by XLA is
  kept for reuse (sslflax/hostmem.py), and with `multihost` the process joins its job before
  JAX touches a device. (sslflax.data keeps TensorFlow off the GPUs when it is imported.)
  """
  from sslflax.console import quiet_third_party
  from sslflax.hostmem import keep_freed_memory
  keep_freed_memory()
  quiet_third_party()  # (it once set WARNING here, which let TFDS's notices through later)
  if multihost:
    initialize()
  from sslflax.log import quiet_unless_first_process
  quiet_unless_first_process()
