#!/usr/bin/env bash
# Every measured row of the MEGC 2019 composite boards, into one resumable store, then the boards:
# leaderboards/megc2019-cde.md (its plots beside it) and the kernel and shared ablation boards.
#
#   bash benchmarks/composite_board.sh [STORE] [DATA_ROOT] [PART ...]
#
# PART (default: all of them, in this order):
#   unpack     add the runs of the packed stores in $PACKS (default leaderboards/stores/megc2019-cde/: the
#              board's runs without their licensed labels, one file per group) to STORE, labels restored
#              from DATA_ROOT; the runs there are reused, so only what is missing is computed
#   floors     chance and majority, 5 seeds (seconds)
#   board      meranet and resnet3d18 (fast preset), 5 seeds (a seed takes under 10 minutes); ststnet and its
#              best-on-test twin, 3 seeds; STSTNet's published log imported
#   rcn        rcn and its best-on-test twin, 3 seeds
#   ablations  the kernel (3/5/7) and shared (cnn/mlp) ablations of MERANet, 3 seeds (kernel_size=5 and
#              shared=cnn are the board's meranet runs, reused)
#   report           leaderboards/megc2019-cde.md and its plots from the store (needs floors, board, rcn)
#   ablation-boards  leaderboards/ablation-{kernel,shared}-megc2019-cde.md (needs ablations)
#   pack       write the runs of STORE, without their labels, to $PACKS, one file per group (floors, meranet
#              with its ablation arms, resnet3d18, ststnet with its twin and the published log, rcn with its twin): commit
#              them with the boards, so the boards can be checked from their predictions and a later session
#              resumes from them (a group's file stays byte-identical once its runs are complete, whichever
#              store it is packed from)
# report and ablation-boards refuse rows measured with uncommitted code.
#
# Wall time per seed with 2 workers on a 2-core AVX-512 machine (Intel Xeon and AMD EPYC, 2026-12-03; an
# AVX2 machine takes about 1.5-2x): meranet about 8-10 min, resnet3d18 about 6, ststnet about 12, rcn about
# 29 (its 3 seeds with the twin: 85.6 min on the EPYC); an ablation arm as meranet. Completed folds stay in the store: run the same command again to resume. Publish from a
# clean commit, with every part complete (a board shows complete runs only).
set -euo pipefail
STORE=${1:-${MER_BENCH_STORE:-composite.sqlite}}
DATA=${2:-../shared/data/megc2019-composite}
shift $(( $# > 2 ? 2 : $# ))
PARTS=${*:-unpack floors board rcn ablations report ablation-boards pack}
PACKS=${PACKS:-leaderboards/stores/megc2019-cde}
MB=${MER_BENCH:-mer-bench}
COMMON=(--protocol megc2019-cde --dataset megc2019-flow --data-root "$DATA" --store "$STORE")
SEEDS=(--seed 0 --seed 1 --seed 2)

for part in $PARTS; do
  echo "== $part $(date -u +%FT%TZ)"
  case $part in
    unpack)
      found=0
      for f in "$PACKS"/*.pack; do
        [ -f "$f" ] || continue
        found=1
        $MB unpack "$f" --store "$STORE" --data-root "$DATA"
      done
      [ $found = 1 ] || echo "no packed store in $PACKS: starting from STORE as it is" ;;
    floors)
      for m in chance majority; do
        $MB run --method "$m" "${COMMON[@]}" --seed 0 --seed 1 --seed 2 --seed 3 --seed 4
      done ;;
    board)
      $MB run --method meranet "${COMMON[@]}" "${SEEDS[@]}" --seed 3 --seed 4
      $MB run --method resnet3d18 "${COMMON[@]}" "${SEEDS[@]}" --seed 3 --seed 4
      $MB run --method ststnet "${COMMON[@]}" --select-epoch both "${SEEDS[@]}"
      $MB import "$DATA/ststnet_logfile.txt" --format megc-log --name ststnet-published --dataset megc2019-flow \
        --protocol megc2019-cde --data-root "$DATA" --store "$STORE" --force ;;
    rcn)
      $MB run --method rcn "${COMMON[@]}" --select-epoch both "${SEEDS[@]}" ;;
    ablations)
      for a in kernel shared; do
        $MB ablate --ablation "$a" "${COMMON[@]}" "${SEEDS[@]}"
      done ;;
    report)
      $MB report --dataset megc2019-flow --protocol megc2019-cde --store "$STORE" ;;
    ablation-boards)
      for a in kernel shared; do
        $MB ablate --ablation "$a" "${COMMON[@]}" "${SEEDS[@]}" --write --name "ablation-$a-megc2019-cde"
      done ;;
    pack)
      mkdir -p "$PACKS"
      P=(--dataset megc2019-flow --protocol megc2019-cde --store "$STORE")
      $MB pack "${P[@]}" --method chance --method majority -o "$PACKS/floors.pack"
      $MB pack "${P[@]}" --method meranet -o "$PACKS/meranet.pack"
      $MB pack "${P[@]}" --method resnet3d18 -o "$PACKS/resnet3d18.pack"
      $MB pack "${P[@]}" --method ststnet --method ststnet-published --select-epoch last -o "$PACKS/ststnet.pack"
      $MB pack "${P[@]}" --method ststnet --select-epoch best-on-test -o "$PACKS/ststnet-best-on-test.pack"
      $MB pack "${P[@]}" --method rcn --select-epoch last -o "$PACKS/rcn.pack"
      $MB pack "${P[@]}" --method rcn --select-epoch best-on-test -o "$PACKS/rcn-best-on-test.pack" ;;
    *)
      echo "unknown part '$part' (unpack, floors, board, rcn, ablations, report, ablation-boards, pack)" >&2
      exit 2 ;;
  esac
done
