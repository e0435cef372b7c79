#!/usr/bin/env bash
# What limits self-supervised features on NW-UCLA at CPU size: one lever of the MAMP CPU
# preset changed at a time, each pre-trained and linear-probed over seeds, on the mean of
# the features (pool=mean) and on the per-joint features (pool=joints); results in
# docs/small-data-levers.md.
#   benchmarks/nwucla_levers.sh [OUT] [SEEDS...]      (default: runs/levers, seeds 0 1 2)
# LEVERS="epochs200 ratio75 ..." runs some of them. Needs data/nw_ucla (README, "Data").
# Finished runs (summary.json present) are skipped.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
out="${1:-runs/levers}"
shift || true
if (($#)); then seeds=("$@"); else seeds=(0 1 2); fi
skelmae=".venv/bin/skelmae"

declare -A pretrain_overrides=(
  [baseline]=""  # the preset as it is, measured beside the levers
  [epochs200]="train.epochs=200 optim.warmup_epochs=10"
  [ratio75]="method.mae.ratio=0.75"
  [ratio80]="method.mae.ratio=0.8"
  [ratio75_epochs100]="method.mae.ratio=0.75 train.epochs=100 optim.warmup_epochs=10"
  [wide]="model.transformer.dim=128 model.transformer.heads=8"
  [deep]="model.transformer.depth=6"
  [coords]="method.mae.target=coords"
)

run() {  # run DIR SEED COMMAND PRESET [OVERRIDES...]
  local dir="$1/seed$2" command="$3" preset="$4"
  shift 4
  if [[ -f "$dir/summary.json" ]]; then return; fi
  rm -rf "$dir"
  echo "== $dir"
  "$skelmae" "$command" -c "nwucla/$preset" "train.seed=${dir##*seed}" "train.output_dir=$dir" "$@"
}

for seed in "${seeds[@]}"; do  # the baselines: a random encoder's per-joint features
  run "$out/random/linear_joints" "$seed" linear linear pool=joints
done
for lever in ${LEVERS:-${!pretrain_overrides[@]}}; do
  [[ -v "pretrain_overrides[$lever]" ]] || { echo "unknown lever $lever; expected one of ${!pretrain_overrides[*]}" >&2; exit 2; }
  for seed in "${seeds[@]}"; do
    # shellcheck disable=SC2086  # the overrides are words
    run "$out/$lever/pretrain" "$seed" pretrain mamp_pretrain ${pretrain_overrides[$lever]}
    run "$out/$lever/linear" "$seed" linear linear "init=$out/$lever/pretrain/seed$seed/last.pt"
    run "$out/$lever/linear_joints" "$seed" linear linear "init=$out/$lever/pretrain/seed$seed/last.pt" pool=joints
  done
done
.venv/bin/python benchmarks/results_table.py "$out"
