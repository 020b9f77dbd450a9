#!/usr/bin/env bash
# Many hosts without SLURM: run this on every host, with the same coordinator and process
# count and each host's own index (see sslflax/distributed.py):
#
#   JAX_COORDINATOR_ADDRESS=host0:1234 JAX_NUM_PROCESSES=2 JAX_PROCESS_ID=0 \
#     launch/multihost.sh --config=configs/rotation.py:paper-120k --workdir=/shared/runs/rot120k
#   (the same on host1 with JAX_PROCESS_ID=1)
#   DRY_RUN=1 ... launch/multihost.sh ...   # print the command, run nothing
#
# The workdir must be on storage every host sees: checkpoints are written jointly.
set -euo pipefail
for name in JAX_COORDINATOR_ADDRESS JAX_NUM_PROCESSES JAX_PROCESS_ID; do
  if [[ -z "${!name:-}" ]]; then
    echo "launch/multihost.sh: $name is not set; set JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES and JAX_PROCESS_ID on every host." >&2
    exit 2
  fi
done
if [[ -n "${DRY_RUN:-}" ]]; then
  echo "process $JAX_PROCESS_ID of $JAX_NUM_PROCESSES, coordinator $JAX_COORDINATOR_ADDRESS"
fi
exec "$(dirname "${BASH_SOURCE[0]}")/local.sh" --multihost "$@"
