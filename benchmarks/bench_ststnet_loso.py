"""STSTNet under MEGC 2019 CDE LOSO: mer-bench's path against a straightforward reference loop.

Run (needs the composite; see ``mer_bench.datasets.megc2019``)::

    R=../shared/data/megc2019-composite
    python benchmarks/bench_ststnet_loso.py --data-root $R                         # 4 folds x 100 epochs
    python benchmarks/bench_ststnet_loso.py --data-root $R --folds 68 --epochs 800 # the full run

The reference is what a researcher writes first: per fold, a fresh model, a ``DataLoader`` over a
``TensorDataset`` of the images (batch 256, shuffled), Adam 5e-5, the last epoch's model. It uses
the same network, seeds and shuffling as mer-bench (``torch.manual_seed(seed)`` before building
the model and again before training; the shuffling generator seeded with the fold's seed), so the
two must give the same predictions up to floating-point noise; the script checks it. Both run in
the same process, one after the other, so their times compare as a ratio on a noisy machine.
Times for fewer folds or epochs are also extrapolated to the full 68 x 800 run (cost grows with
epochs x training clips).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

from mer_bench.metrics import pooled_scores
from mer_bench.registry import DATASETS, METHODS, PROTOCOLS


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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-root", default=None)
    ap.add_argument("--folds", type=int, default=4, help="first N of the 68 folds (default 4)")
    ap.add_argument("--epochs", type=int, default=100, help="epochs (published: 800; default 100)")
    args = ap.parse_args()
    ds = DATASETS.get("megc2019-flow")(data_root=args.data_root)
    table = ds.table()
    folds = PROTOCOLS.get("megc2019-cde")().folds(table)
    use = folds[: args.folds]
    x_all = ds.load("flow", np.arange(len(table)))
    y_all = table["label"].to_numpy()
    method_cls = METHODS.get("ststnet")
    from mer_bench.methods.ststnet import STSTNetModel

    # untimed warm-up of both paths (first-call costs would otherwise land on whichever runs first)
    warm = ds.samples("flow", use[0].train)
    method_cls(epochs=1).fit(warm)
    reference_fold(x_all[use[0].train], y_all[use[0].train], x_all[use[0].test], 0, 1, STSTNetModel)

    y_true, ours, ref = [], [], []
    t_ours = t_ref = 0.0
    for i, fold in enumerate(use):
        seed = i  # the runner's random_state for seed 0
        train = ds.samples("flow", fold.train)
        test = ds.samples("flow", fold.test, with_labels=False)
        t0 = time.perf_counter()
        m = method_cls(epochs=args.epochs, random_state=seed).fit(train)
        ours.append(m.predict(test))
        t1 = time.perf_counter()
        ref.append(reference_fold(x_all[fold.train], y_all[fold.train], x_all[fold.test], seed, args.epochs,
                                  STSTNetModel))
        t2 = time.perf_counter()
        t_ours += t1 - t0
        t_ref += t2 - t1
        y_true.append(y_all[fold.test])
        print(f"fold {i + 1}/{len(use)} {fold.name}: mer-bench {t1 - t0:.1f} s, reference {t2 - t1:.1f} s", flush=True)
    y, a, b = np.concatenate(y_true), np.concatenate(ours), np.concatenate(ref)
    sa, sb = pooled_scores(y, a, 3, absent="exclude"), pooled_scores(y, b, 3, absent="exclude")
    n_train_used = sum(len(f.train) for f in use)
    n_train_all = sum(len(f.train) for f in folds)
    scale = (n_train_all / n_train_used) * (800 / args.epochs)
    print(f"\n{len(use)} folds x {args.epochs} epochs, {torch.get_num_threads()} threads")
    print(f"  mer-bench : {t_ours:8.1f} s   UF1 {sa['uf1']:.4f}  UAR {sa['uar']:.4f}")
    print(f"  reference : {t_ref:8.1f} s   UF1 {sb['uf1']:.4f}  UAR {sb['uar']:.4f}")
    print(f"  speed-up  : {t_ref / t_ours:.2f}x; predictions that differ: {int((a != b).sum())} of {len(a)}")
    print(f"  extrapolated to 68 folds x 800 epochs: mer-bench {t_ours * scale / 60:.1f} min, "
          f"reference {t_ref * scale / 60:.1f} min")


if __name__ == "__main__":
    main()
