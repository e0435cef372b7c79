#!/usr/bin/env bash
# NW-UCLA cross-view results of the README table, sized for a 2-core CPU.
#   benchmarks/nwucla_results.sh [OUT] [SEEDS...]      (default: runs/nwucla, seeds 0 1 2)
# Needs the prepared set in data/nw_ucla (README, "Data"). Finished runs (summary.json
# present) are skipped, so the script can be re-run after an interruption.
# PARTS="transformer", "graph", "contrastive", "hitrs" or "supervised" runs one part (e.g. parts side by side,
# each with OMP_NUM_THREADS=1).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
out="${1:-runs/nwucla}"
shift || true
if (($#)); then seeds=("$@"); else seeds=(0 1 2); fi
skelmae=".venv/bin/skelmae"

run() {  # run NAME SEED COMMAND PRESET [OVERRIDES...]
  local name="$1" seed="$2" command="$3" preset="$4"
  shift 4
  local dir="$out/$name/seed$seed"
  if [[ -f "$dir/summary.json" ]]; then return; fi
  rm -rf "$dir"
  echo "== $name seed $seed"
  "$skelmae" "$command" -c "nwucla/$preset" "train.seed=$seed" "train.output_dir=$dir" "$@"
}

parts="${PARTS:-transformer graph contrastive hitrs supervised}"
[[ " $parts " == *" transformer "* ]] && for seed in "${seeds[@]}"; do
  for recipe in skeletonmae mamp; do
    run "$recipe/pretrain" "$seed" pretrain "${recipe}_pretrain"
    init="init=$out/$recipe/pretrain/seed$seed/last.pt"
    run "$recipe/linear" "$seed" linear linear "$init"
    run "$recipe/linear_joints" "$seed" linear linear "$init" pool=joints
    run "$recipe/finetune" "$seed" finetune finetune "$init"
    run "$recipe/semi10" "$seed" semi semi "$init"
  done
  run scratch "$seed" scratch scratch
  run random/linear "$seed" linear linear
  run random/linear_joints "$seed" linear linear pool=joints
  run raw/linear "$seed" linear linear init=raw
  # the MAMP preset's shape (width 128, 8 heads): its random and from-scratch baselines
  mamp_shape=(model.transformer.dim=128 model.transformer.heads=8)
  run mamp_shape/scratch "$seed" scratch scratch "${mamp_shape[@]}"
  run mamp_shape/semi10_scratch "$seed" scratch semi optim.layer_decay=1.0 "${mamp_shape[@]}"
  run mamp_shape/random_linear "$seed" linear linear "${mamp_shape[@]}"
  run mamp_shape/random_linear_joints "$seed" linear linear pool=joints "${mamp_shape[@]}"
done
[[ " $parts " == *" graph "* ]] && for seed in "${seeds[@]}"; do
  run graph/pretrain "$seed" pretrain graph_pretrain
  run graph/strl_finetune "$seed" finetune strl_finetune "init=$out/graph/pretrain/seed$seed/last.pt"
  run graph/strl_scratch "$seed" scratch strl_finetune
done
[[ " $parts " == *" contrastive "* ]] && for seed in "${seeds[@]}"; do
  for recipe in skeletonclr skeattnclr; do
    run "$recipe/pretrain" "$seed" pretrain "${recipe}_pretrain"
    init="init=$out/$recipe/pretrain/seed$seed/last.pt"
    run "$recipe/linear" "$seed" linear linear "$init"
    run "$recipe/finetune" "$seed" finetune finetune "$init"
  done
  run stgcn/scratch "$seed" scratch stgcn_scratch
  run stgcn/random_linear "$seed" linear linear model.arch=stgcn model.stgcn.channels=16 model.stgcn.dim=128
done
[[ " $parts " == *" hitrs "* ]] && for seed in "${seeds[@]}"; do
  run hitrs/pretrain "$seed" pretrain hitrs_pretrain
  init="init=$out/hitrs/pretrain/seed$seed/last.pt"
  run hitrs/linear "$seed" linear linear "$init"
  run hitrs/finetune "$seed" finetune finetune "$init" model.hitrs.drop_path=0.1
done
[[ " $parts " == *" supervised "* ]] && for seed in "${seeds[@]}"; do
  for backbone in ctrgcn infogcn freqmixformer; do
    run "$backbone/scratch" "$seed" scratch "${backbone}_scratch"
  done
done
.venv/bin/python benchmarks/results_table.py "$out"
