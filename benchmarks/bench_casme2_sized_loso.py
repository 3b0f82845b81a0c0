"""A CASME-II-sized LOSO at the MERANet paper's size: how long does it take on this device?

The issue's target: about 250 clips, 26 subjects (26 folds), 100 epochs, batch 8, clips
3 x 16 x 112 x 112, in at most 10 minutes on one H100. The clips come from the embedded synthetic
dataset (26 subjects, 8 to 11 clips each, resized to 16 x 112 x 112 by the ``paper`` preset), so
the script needs no download and the cost is the real one (the network never sees the content).

Run::

    python benchmarks/bench_casme2_sized_loso.py                       # all 26 folds, 100 epochs
    python benchmarks/bench_casme2_sized_loso.py --folds 2 --epochs 2  # a sample, extrapolated
    python benchmarks/bench_casme2_sized_loso.py --channels-last --cudnn-benchmark --stack-folds 2

It trains the first ``--folds`` folds through the runner's own unit of work
(:func:`mer_bench.pipeline.folds.fit_predict_fold`, or :func:`~mer_bench.pipeline.folds.fit_predict_folds_stacked`),
reports the time per fold and extrapolates to 26 folds x 100 epochs (cost grows with epochs x
folds). Precision follows the method's ``auto`` (bf16 autocast on a GPU that supports it).
"""

from __future__ import annotations

import argparse
import json
import time

from mer_bench import runtime
from mer_bench.method import resolve_params
from mer_bench.pipeline.folds import fit_predict_fold, fit_predict_folds_stacked
from mer_bench.registry import DATASETS, METHODS, PROTOCOLS


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--method", default="meranet")
    ap.add_argument("--folds", type=int, default=26, help="train the first N of the 26 folds (default: all)")
    ap.add_argument("--epochs", type=int, default=100)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--channels-last", action="store_true")
    ap.add_argument("--cudnn-benchmark", action="store_true")
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--stack-folds", type=int, default=1)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    ds = DATASETS.get("synthetic")(n_subjects=26, min_clips=8, max_clips=11, cache=False)
    table = ds.table()
    folds = PROTOCOLS.get("loso")().folds(table, 0)[: args.folds]
    cls = METHODS.get(args.method)
    params = resolve_params(cls, "paper", {"epochs": args.epochs})
    rep = cls.info.choose_representation(ds.representations)
    device = runtime.resolve_device(args.device)
    t0 = time.perf_counter()
    with runtime.use(device=device, channels_last=args.channels_last, cudnn_benchmark=args.cudnn_benchmark,
                     compile=args.compile):
        for start in range(0, len(folds), args.stack_folds):
            chunk = list(enumerate(folds))[start:start + args.stack_folds]
            if len(chunk) > 1:
                fit_predict_folds_stacked(cls, params, ds, rep, chunk, 0)
            else:
                i, fold = chunk[0]
                fit_predict_fold(cls, params, ds, rep, fold, i, 0, ["last"])
    wall = time.perf_counter() - t0
    per_fold = wall / len(folds)
    full = per_fold * 26 * 100 / args.epochs
    res = {"method": args.method, "device": device, "clips": len(table), "subjects": int(table["subject"].nunique()),
           "folds_run": len(folds), "epochs": args.epochs, "batch_size": params["batch_size"],
           "input": "3x16x112x112", "stack_folds": args.stack_folds, "channels_last": args.channels_last,
           "cudnn_benchmark": args.cudnn_benchmark, "compile": args.compile, "seconds": wall,
           "seconds_per_fold": per_fold, "extrapolated_full_loso_minutes": full / 60}
    if args.json:
        print(json.dumps(res, indent=2))
    else:
        print(f"{len(table)} clips, {res['subjects']} subjects; {len(folds)} fold(s) x {args.epochs} epochs on "
              f"{device}: {wall:.1f} s ({per_fold:.1f} s per fold)")
        print(f"extrapolated to the full LOSO (26 folds x 100 epochs): {full / 60:.1f} min (target: <= 10 min on "
              f"one H100)")


if __name__ == "__main__":
    main()
