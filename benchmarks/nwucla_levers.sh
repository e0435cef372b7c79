#!/usr/bin/env bash
# What limits self-supervised features on NW-UCLA at CPU size: one lever of the MAMP CPU
# preset changed at a time, each pre-trained and linear-probed over seeds, on the mean of
# the features (pool=mean) and on the per-joint features (pool=joints); results in
# docs/small-data-levers.md.
#   benchmarks/nwucla_levers.sh [OUT] [SEEDS...]      (default: runs/levers, seeds 0 1 2)
# LEVERS="epochs200 ratio75 ..." runs some of them; PROBES="finetune semi ..." evaluates each
# lever's checkpoints with other protocols (default: linear linear_joints). The levers
# random* are no pre-training: their probes start from a randomly initialised encoder.
# BEST_TEST=1 runs the probes with train.report_best_test=true into PROBE_best_test, for the
# separately labelled best-test-epoch column (comparison with papers that select so).
# Needs data/nw_ucla (README, "Data"). Finished runs (summary.json present) are skipped.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
out="${1:-runs/levers}"
shift || true
if (($#)); then seeds=("$@"); else seeds=(0 1 2); fi
skelmae=".venv/bin/skelmae"

# The levers are changes of the preset as it was when they were measured (mask ratio 0.9,
# width 96, 4 heads, 40 epochs); what they found, ratio 0.75 at width 128 pre-trained 400
# epochs (the lever ratio75_wide_epochs400), is the preset now.
start="method.mae.ratio=0.9 model.transformer.dim=96 model.transformer.heads=4 train.epochs=40 optim.warmup_epochs=4"
declare -A pretrain_overrides=(
  [baseline]=""  # that preset, measured beside the levers
  [epochs200]="train.epochs=200 optim.warmup_epochs=10"
  [ratio75]="method.mae.ratio=0.75"
  [ratio80]="method.mae.ratio=0.8"
  [ratio75_epochs100]="method.mae.ratio=0.75 train.epochs=100 optim.warmup_epochs=10"
  [wide]="model.transformer.dim=128 model.transformer.heads=8"
  [deep]="model.transformer.depth=6"
  [coords]="method.mae.target=coords"
  [ratio75_wide]="method.mae.ratio=0.75 model.transformer.dim=128 model.transformer.heads=8"
  [ratio75_wide_epochs100]="method.mae.ratio=0.75 model.transformer.dim=128 model.transformer.heads=8 train.epochs=100 optim.warmup_epochs=10"
  [ratio75_wide_epochs200]="method.mae.ratio=0.75 model.transformer.dim=128 model.transformer.heads=8 train.epochs=200 optim.warmup_epochs=10"
  [ratio75_wide_epochs400]="method.mae.ratio=0.75 model.transformer.dim=128 model.transformer.heads=8 train.epochs=400 optim.warmup_epochs=20"
  [ratio75_wider]="method.mae.ratio=0.75 model.transformer.dim=192 model.transformer.heads=6"
  # no pre-training: the probes start from a randomly initialised encoder of this shape
  [random]=""
  [random_wide]="model.transformer.dim=128 model.transformer.heads=8"
  [random_wider]="model.transformer.dim=192 model.transformer.heads=6"
)

declare -A probes=(  # command, nwucla preset and overrides, started from the lever's checkpoint
  [linear]="linear linear"  # MAMP's probe: the mean over steps, joints and persons
  [linear_joints]="linear linear pool=joints"
  [linear_joints_aug]="linear linear pool=joints augment=true"  # the clip augmented at every epoch, as MAMP's probe
  [linear_steps]="linear linear pool=steps"  # the per-step means concatenated
  [linear_layers2]="linear linear layers=2"  # the mean of the last two blocks' features, concatenated
  [linear_layers4]="linear linear layers=4"  # the same of all four blocks
  [linear_joints_layers4]="linear linear pool=joints layers=4"
  [semi_linear_joints]="linear linear pool=joints semi.fraction=0.1"  # the probe on the semi protocol's 10 % of the labels
  [semi_linear_joints_layers4]="linear linear pool=joints layers=4 semi.fraction=0.1"
  [finetune]="finetune finetune"
  [finetune_epochs50]="finetune finetune train.epochs=50 optim.warmup_epochs=5"
  [semi]="semi semi train.epochs=20 optim.warmup_epochs=3"  # the earlier preset: 40 steps
  [semi_epochs100]="semi semi"  # the preset now: 100 epochs of 2 steps
  [scratch]="scratch scratch"  # the fine-tuning network from random initialisation (for random* levers)
  [semi_scratch]="scratch semi optim.layer_decay=1.0"  # the same on 10 % of the labels
)

run() {  # run DIR SEED COMMAND PRESET [OVERRIDES...]
  local dir="$1/seed$2" command="$3" preset="$4"
  shift 4
  if [[ -f "$dir/summary.json" ]]; then return; fi
  rm -rf "$dir"
  echo "== $dir"
  "$skelmae" "$command" -c "nwucla/$preset" "train.seed=${dir##*seed}" "train.output_dir=$dir" "$@"
}

suffix="" best_test=()
if [[ -n ${BEST_TEST:-} ]]; then suffix="_best_test" best_test=(train.report_best_test=true); fi
for probe in ${PROBES:=linear linear_joints}; do
  [[ -v "probes[$probe]" ]] || { echo "unknown probe $probe; expected one of ${!probes[*]}" >&2; exit 2; }
done
for lever in ${LEVERS:-${!pretrain_overrides[@]}}; do
  [[ -v "pretrain_overrides[$lever]" ]] || { echo "unknown lever $lever; expected one of ${!pretrain_overrides[*]}" >&2; exit 2; }
  for seed in "${seeds[@]}"; do
    if [[ $lever == random* ]]; then
      # shellcheck disable=SC2206  # the model overrides are words
      encoder=(${pretrain_overrides[$lever]})  # a random encoder of this shape
    else
      # shellcheck disable=SC2086  # the overrides are words
      run "$out/$lever/pretrain" "$seed" pretrain mamp_pretrain $start ${pretrain_overrides[$lever]}
      encoder=("init=$out/$lever/pretrain/seed$seed/last.pt")
    fi
    for probe in $PROBES; do
      read -r command preset overrides <<<"${probes[$probe]}"
      # shellcheck disable=SC2086
      run "$out/$lever/$probe$suffix" "$seed" "$command" "$preset" "${encoder[@]}" $overrides "${best_test[@]}"
    done
  done
done
.venv/bin/python benchmarks/results_table.py "$out"
