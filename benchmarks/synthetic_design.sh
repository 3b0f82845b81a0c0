#!/usr/bin/env bash
# The comparison that design choices of the embedded dataset's generator are made on, on a
# *development* generator seed (mer_bench.datasets.synthetic.DEVELOPMENT_SEEDS; never seed 0, which
# the published boards use): LBP-TOP+SVM, Off-ApexNet (flow), the 3D ResNet-18 and MERANet under
# LOSO, the chance floor, the board of those rows, then MERANet's Grad-CAM share inside the motion
# masks against chance.
#
#   bash benchmarks/synthetic_design.sh DEV_SEED [STORE] [--dataset-set KEY=VALUE ...]
#
# Every run is stored (resumable; one STORE per generator variant, so the board compares like with
# like); the board goes to standard output. Refuses seed 0.
set -euo pipefail
SEED=${1:?usage: synthetic_design.sh DEV_SEED [STORE] [--dataset-set KEY=VALUE ...]}
STORE=${2:-design.sqlite}
shift $(( $# > 2 ? 2 : $# ))
if [ "$SEED" = "0" ]; then
  echo "generator seed 0 is the publication seed: design on a development seed (1 or 2)" >&2; exit 2
fi
MB=${MER_BENCH:-mer-bench}
DS=(--dataset synthetic --dataset-set "seed=$SEED" "$@")
for m in chance lbptop-svm offapexnet resnet3d18 meranet; do
  echo "== $m $(date -u +%FT%TZ)"
  $MB run --method "$m" --protocol loso "${DS[@]}" --store "$STORE"
done
echo "== board $(date -u +%FT%TZ)"
$MB leaderboard --dataset synthetic --protocol loso --store "$STORE"
echo "== saliency $(date -u +%FT%TZ)"
$MB saliency --method meranet --dataset-set "seed=$SEED" "$@" --out "${STORE%.sqlite}-saliency"
