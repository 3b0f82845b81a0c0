"""STSTNet under MEGC 2019 CDE LOSO: mer-bench's run path against a straightforward reference loop.

Run (needs the composite; see ``mer_bench.datasets.megc2019``)::

    R=../shared/data/megc2019-composite
    python benchmarks/bench_ststnet_loso.py --data-root $R                         # 4 folds x 100 epochs
    python benchmarks/bench_ststnet_loso.py --data-root $R --folds 68 --epochs 800 # the full run

*mer-bench* is what ``mer-bench run --method ststnet --protocol megc2019-cde`` does with its
defaults: folds in local worker processes (``--workers auto``: one per core, each with its share
of the threads) and, on the CPU, mer-bench's fast paths (:mod:`mer_bench.kernels`: the fused
conv -> ReLU -> BatchNorm -> max-pool stem, the same dropout masks drawn faster, fused Adam).
``--workers 1`` / ``--no-kernels`` time those parts separately.

The *reference* is what a researcher writes first, in this process with all of its threads: per
fold a fresh model, a ``DataLoader`` over a ``TensorDataset`` of the images (batch 256, shuffled),
Adam 5e-5, the last epoch's model, the plain PyTorch layers. It uses the same network, seeds and
shuffling as mer-bench (``torch.manual_seed(seed)`` before building the model and again before
training; the shuffling generator seeded with the fold's seed), so the two give the same
predictions up to floating-point noise; the script counts the predictions that differ.

Printed: both wall times, their ratio, the training FLOP/s of each (3 x the forward FLOPs counted by
``torch.utils.flop_counter``, per training sample and epoch) as a fraction of an fp32 matmul peak
measured on this machine in the same run (:func:`mer_bench.bench.measured_peak_tflops`), and both
times extrapolated to the full 68 x 800 run (cost grows with epochs x training clips). Name the CPU
with any figure you quote (printed).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

from mer_bench import runtime
from mer_bench.bench import measured_peak_tflops
from mer_bench.metrics import pooled_scores
from mer_bench.pipeline import prepare
from mer_bench.pipeline.executors import run_folds_locally
from mer_bench.pipeline.runner import choose_workers


def reference_fold(x_train, y_train, x_test, seed, epochs, model_cls):
    torch.manual_seed(seed)
    model = model_cls(3, 3)
    torch.manual_seed(seed)
    loader = DataLoader(TensorDataset(torch.as_tensor(x_train * 255.0), torch.as_tensor(y_train)), batch_size=256,
                        shuffle=True, generator=torch.Generator().manual_seed(seed))
    opt = torch.optim.Adam(model.parameters(), lr=5e-5)
    loss_fn = torch.nn.CrossEntropyLoss()
    model.train()
    for _ in range(epochs):
        for xb, yb in loader:
            opt.zero_grad()
            loss_fn(model(xb), yb).backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        return model(torch.as_tensor(x_test * 255.0)).argmax(1).numpy()


class _Collect:
    """Stands in for the store's fold writer: keeps each fold's predictions and time."""

    def __init__(self) -> None:
        self.pred: dict[int, np.ndarray] = {}
        self.wall: dict[int, float] = {}

    def started(self, spec, fold_index, fold) -> None:
        pass

    def __call__(self, fold_index, fold, specs, result, wall_time, device) -> None:
        rows = result.rows[specs[0].selection]  # a mer_bench.pipeline.folds.FoldResult
        self.pred[fold_index] = np.array([r[4] for r in sorted(rows, key=lambda r: r[0])])
        self.wall[fold_index] = wall_time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-root", default=None)
    ap.add_argument("--folds", type=int, default=4, help="first N of the 68 folds (default 4)")
    ap.add_argument("--epochs", type=int, default=100, help="epochs (published: 800; default 100)")
    ap.add_argument("--workers", default="auto", help="mer-bench's --workers (default auto)")
    ap.add_argument("--no-kernels", action="store_true", help="mer-bench without its CPU fast paths")
    ap.add_argument("--skip-reference", action="store_true", help="time mer-bench only")
    args = ap.parse_args()
    from mer_bench.methods.ststnet import STSTNetModel

    prep = prepare("ststnet", "megc2019-cde", None, [0], {"epochs": args.epochs},
                   dataset_options={"data_root": args.data_root} if args.data_root else None)
    ds, folds, specs = prep.dataset, prep.folds[0], prep.specs
    use = folds[: args.folds]
    table = ds.table()
    x_all = ds.load("flow", np.arange(len(table)))
    y_all = table["label"].to_numpy()
    workers, threads = choose_workers(args.workers, prep.method_cls, "cpu", "local", 1, len(use))
    peak = measured_peak_tflops("cpu")["fp32"]
    flops_per_sample = _forward_flops(STSTNetModel) * 3  # forward + backward

    # untimed warm-up of both paths (first calls pay for allocations; the kernel build is cached)
    with runtime.use(device="cpu", kernels=not args.no_kernels):
        prep.method_cls(epochs=1).fit(ds.samples("flow", use[0].train))
    with runtime.use(kernels=False):
        reference_fold(x_all[use[0].train], y_all[use[0].train], x_all[use[0].test], 0, 1, STSTNetModel)

    collect = _Collect()
    work = [(i, fold, specs) for i, fold in enumerate(use)]
    t0 = time.perf_counter()
    run_folds_locally(prep, 0, work, collect, "cpu", {"workers": workers, "threads": threads,
                                                       "kernels": not args.no_kernels})
    t_ours = time.perf_counter() - t0
    print(f"mer-bench: {len(use)} folds in {t_ours:.1f} s ({workers} worker(s) x {threads} thread(s), kernels "
          f"{'off' if args.no_kernels else 'on'}; per fold in its worker, with the worker's start: "
          f"{', '.join(f'{collect.wall[i]:.1f}' for i in sorted(collect.wall))} s)", flush=True)

    ref, t_ref = {}, 0.0
    if not args.skip_reference:
        with runtime.use(kernels=False):  # the plain layers: what the reference's author gets
            for i, fold in enumerate(use):
                t1 = time.perf_counter()
                ref[i] = reference_fold(x_all[fold.train], y_all[fold.train], x_all[fold.test], i, args.epochs,
                                        STSTNetModel)
                t_ref += time.perf_counter() - t1
                print(f"reference fold {i + 1}/{len(use)} {fold.name}: {time.perf_counter() - t1:.1f} s", flush=True)

    y_true = np.concatenate([y_all[sorted(fold.test, key=lambda k: table["sample_id"].iloc[k])] for fold in use])
    ours = np.concatenate([collect.pred[i] for i in range(len(use))])
    n_train_used = sum(len(f.train) for f in use)
    n_train_all = sum(len(f.train) for f in folds)
    work_flops = flops_per_sample * n_train_used * args.epochs
    scale = (n_train_all / n_train_used) * (800 / args.epochs)
    from mer_bench.runtime import cpu_description

    print(f"\n{len(use)} folds x {args.epochs} epochs on {cpu_description()}; {torch.get_num_threads()} threads; "
          f"fp32 matmul peak measured here: {peak * 1e3:.1f} GFLOP/s")
    so = pooled_scores(y_true, ours, 3, absent="exclude")
    print(f"  mer-bench : {t_ours:8.1f} s   {work_flops / t_ours / 1e9:6.1f} GFLOP/s "
          f"({100 * work_flops / t_ours / (peak * 1e12):.1f} % of peak)   UF1 {so['uf1']:.4f}  UAR {so['uar']:.4f}")
    if ref:
        # the reference's predictions, in the same (sample id) order as mer-bench's rows
        order = [sorted(fold.test, key=lambda k: table["sample_id"].iloc[k]) for fold in use]
        ref_sorted = np.concatenate([_reorder(ref[i], fold.test, order[i]) for i, fold in enumerate(use)])
        sr = pooled_scores(y_true, ref_sorted, 3, absent="exclude")
        print(f"  reference : {t_ref:8.1f} s   {work_flops / t_ref / 1e9:6.1f} GFLOP/s "
              f"({100 * work_flops / t_ref / (peak * 1e12):.1f} % of peak)   UF1 {sr['uf1']:.4f}  UAR {sr['uar']:.4f}")
        print(f"  speed-up  : {t_ref / t_ours:.2f}x; predictions that differ: {int((ours != ref_sorted).sum())} of "
              f"{len(ours)}")
    if scale != 1:
        print(f"  extrapolated to 68 folds x 800 epochs: mer-bench {t_ours * scale / 60:.1f} min (its worker "
              f"start-up scaled too: an upper bound)" + (f", reference {t_ref * scale / 60:.1f} min" if ref else ""))


def _reorder(pred: np.ndarray, test: np.ndarray, order: list) -> np.ndarray:
    """``pred`` (in ``test`` order) rearranged into ``order`` (the same indices, sorted by sample id)."""
    pos = {k: j for j, k in enumerate(test)}
    return pred[[pos[k] for k in order]]


def _forward_flops(model_cls) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    model = model_cls(3, 3).eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.zeros(1, 3, 28, 28))
    return counter.get_total_flops()


if __name__ == "__main__":
    main()
