#!/usr/bin/env bash
# The study grid as SLURM job arrays: one cell per job (each on one host's GPUs); the
# fine-tune cells (study.freeze_layers), which read the probe cells' checkpoints, in a second
# array that starts when the first has ended; then one job that gathers results.csv, the
# tables and the figures.
#
#   launch/study_array.sh --config=configs/study.py:paper --workdir=/shared/study
#   SBATCH_ARGS="--gpus=8 --time=12:00:00 --partition=gpu" launch/study_array.sh ...
#   DRY_RUN=1 launch/study_array.sh ...   # print the sbatch commands, submit nothing
#
# Resubmitting is safe: finished cells are reused, unfinished ones resume from checkpoints.
set -euo pipefail
launch_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"  # paths in the arguments stay relative to the caller

listing=$(python -m sslflax.study "$@" --list)
cells=$(printf '%s\n' "$listing" | grep -c . || true)
probes=$(printf '%s\n' "$listing" | awk -F'\t' 'NF && $2 !~ /-freeze[0-9]+$/' | wc -l)
if [[ "$cells" -lt 1 ]]; then
  echo "launch/study_array.sh: the study has no cells (python -m sslflax.study $* --list)." >&2
  exit 2
fi
args=$(printf '%q ' "$@")
read -r -a extra <<< "${SBATCH_ARGS:-}"
exec 3>&1  # the real stdout: a dry run prints each command there, not into $(submit ...)
submit() {  # submit ARRAY_RANGE DEPENDENCY: prints the job id (a placeholder in a dry run)
  local job=(sbatch --parsable --job-name=sslflax-study --array="$1" ${2:+--dependency="$2"}
             "${extra[@]}"
             --wrap="MODULE=sslflax.study $(printf %q "$launch_dir/local.sh") $args --cell=\$SLURM_ARRAY_TASK_ID")
  if [[ -n "${DRY_RUN:-}" ]]; then
    printf '%q ' "${job[@]}" >&3; echo >&3
    echo "<cells-$1>"
  else
    "${job[@]}"
  fi
}
job_id=$(submit "0-$((probes - 1))" "")
if [[ "$cells" -gt "$probes" ]]; then
  job_id=$(submit "$probes-$((cells - 1))" "afterany:$job_id")
fi
report_job=(sbatch --parsable --job-name=sslflax-report --dependency="afterany:$job_id"
            --wrap="python -m sslflax.study $args --report_only")
if [[ -n "${DRY_RUN:-}" ]]; then
  printf '%q ' "${report_job[@]}"; echo
else
  "${report_job[@]}"
  echo "submitted $cells cells as job array $job_id and the report after it"
fi
