#!/usr/bin/env bash
# The study grid as a SLURM job array: one cell per job (each on one host's GPUs), then one
# job that gathers results.csv, the tables and the figures once every cell has ended.
#
#   launch/study_array.sh --config=configs/study.py:paper --workdir=/shared/study
#   SBATCH_ARGS="--gpus=8 --time=12:00:00 --partition=gpu" launch/study_array.sh ...
#   DRY_RUN=1 launch/study_array.sh ...   # print the sbatch commands, submit nothing
#
# Resubmitting is safe: finished cells are reused, unfinished ones resume from checkpoints.
set -euo pipefail
launch_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"  # paths in the arguments stay relative to the caller

cells=$(python -m sslflax.study "$@" --list | wc -l)
if [[ "$cells" -lt 1 ]]; then
  echo "launch/study_array.sh: the study has no cells (python -m sslflax.study $* --list)." >&2
  exit 2
fi
args=$(printf '%q ' "$@")
read -r -a extra <<< "${SBATCH_ARGS:-}"
cell_job=(sbatch --parsable --job-name=sslflax-study --array="0-$((cells - 1))" "${extra[@]}"
          --wrap="MODULE=sslflax.study $(printf %q "$launch_dir/local.sh") $args --cell=\$SLURM_ARRAY_TASK_ID")
if [[ -n "${DRY_RUN:-}" ]]; then
  printf '%q ' "${cell_job[@]}"; echo
  job_id="<cell-job-id>"
else
  job_id=$("${cell_job[@]}")
fi
report_job=(sbatch --parsable --job-name=sslflax-report --dependency="afterany:$job_id"
            --wrap="python -m sslflax.study $args --report_only")
if [[ -n "${DRY_RUN:-}" ]]; then
  printf '%q ' "${report_job[@]}"; echo
else
  "${report_job[@]}"
  echo "submitted $cells cells as job array $job_id and the report after it"
fi
