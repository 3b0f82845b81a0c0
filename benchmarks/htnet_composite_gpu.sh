#!/usr/bin/env bash
# HTNet on the MEGC 2019 composite at its published settings (800 epochs, batch 256, Adam 5e-5), the
# leak-free last epoch and the released per-subject best-on-test epoch from one training per fold
# (--select-epoch both), seed 0, on a CUDA GPU. Estimated 10-20 minutes on one H200 in bf16 (about 2e7
# training samples of 1.3 GFLOP); on a 2-core CPU it would take months.
#
#   bash benchmarks/htnet_composite_gpu.sh [STORE] [DATA_ROOT]
#
# The store (default: $OUT/htnet-composite.sqlite, else ./htnet-composite.sqlite) keeps every finished
# fold: run the same command again to resume. Bring the store back and publish with `mer-bench report`.
set -euo pipefail
STORE=${1:-${OUT:-.}/htnet-composite.sqlite}
DATA=${2:-../shared/data/megc2019-composite}
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
python -m mer_bench.cli run --method htnet --protocol megc2019-cde --dataset megc2019-flow --data-root "$DATA" \
    --select-epoch both --device cuda --seed 0 --store "$STORE" --json
