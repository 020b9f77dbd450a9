#!/usr/bin/env bash
# One host, all its GPUs: an sslflax command with settings that suit GPUs.
#
#   launch/local.sh --config=configs/rotation.py:paper --workdir=/runs/rotation-30k
#   MODULE=sslflax.study launch/local.sh --config=configs/study.py:paper --workdir=/runs/study
#   DRY_RUN=1 launch/local.sh ...    # print the environment and command, run nothing
#
# JAX sees every GPU of the host and trains data-parallel over them; tf.data stays on the
# CPU (sslflax hides the GPUs from TensorFlow). Any variable set before calling wins.
set -euo pipefail

MODULE="${MODULE:-sslflax.main}"
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"          # TensorFlow's C++ chatter off
export XLA_PYTHON_CLIENT_MEM_FRACTION="${XLA_PYTHON_CLIENT_MEM_FRACTION:-0.90}"  # JAX's share of GPU memory
export TF_GPU_ALLOCATOR="${TF_GPU_ALLOCATOR:-cuda_malloc_async}"  # if TF ever sees a GPU, it does not pre-allocate

cmd=(python -m "$MODULE" "$@")
if [[ -n "${DRY_RUN:-}" ]]; then
  echo "TF_CPP_MIN_LOG_LEVEL=$TF_CPP_MIN_LOG_LEVEL XLA_PYTHON_CLIENT_MEM_FRACTION=$XLA_PYTHON_CLIENT_MEM_FRACTION"
  printf '%q ' "${cmd[@]}"; echo
  exit 0
fi
exec "${cmd[@]}"
