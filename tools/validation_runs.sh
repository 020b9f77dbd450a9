#!/usr/bin/env bash
# The comparisons behind the default configs, on the Fashion-MNIST *validation* split (the test
# split stays untouched by choices). Each run is the default experiment with one thing changed;
# results land in $OUT/<name>/results.json and docs/development.md reports them.
#
#   bash tools/validation_runs.sh [OUT]          # OUT defaults to workdir/validation
#   DRY_RUN=1 bash tools/validation_runs.sh      # print the commands only
set -euo pipefail
OUT=${1:-workdir/validation}
PY=${PYTHON:-python}

run() {  # name config [overrides...]
  local name=$1 config=$2
  shift 2
  local cmd=("$PY" -m sslflax.main "--config=configs/$config.py" "--workdir=$OUT/$name"
             --config.linear_eval.test_split=validation "$@")
  if [[ -n "${DRY_RUN:-}" ]]; then echo "${cmd[*]}"; else "${cmd[@]}"; fi
}

run rotation rotation                                                   # the default
run rotation-probe32 rotation --config.linear_eval.image_size=32        # probe at 32 px
run rotation-augmented rotation --config.pretrain.augment.enabled=True \
    --config.pretrain.augment.source_size=32                            # stream on the pool
run rotation-300steps rotation --config.pretrain.steps=300                # the study's steps
run rotation-one-photo rotation --config.pretrain.steps=300 \
    --config.pretrain.dataset=sslflax/data/sample/photos/0_astronaut.jpg \
    --config.pretrain.augment.enabled=True --config.pretrain.augment.source_size=384 \
    --config.pretrain.augment.crop_area="(0.001,1.0)"                    # the study's 1-image cell
run context context                                                     # random blocks
run context-central context --config.task.options.mask_kind=central
run jigsaw jigsaw                                                       # 1000 permutations
run jigsaw-100 jigsaw --config.task.options.num_permutations=100
run counting counting                                                   # lr 1e-4, 500 steps
run counting-lr1e-3 counting --config.optim.lr=1e-3
run counting-augmented counting --config.pretrain.augment.enabled=True \
    --config.pretrain.augment.source_size=32
