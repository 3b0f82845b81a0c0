"""``mer-bench pack``."""

from __future__ import annotations

from mer_bench.cli.options import add_store


def add_parser(sub) -> None:
    p = sub.add_parser("pack", help="copy a store without its ground-truth labels, to publish or carry it",
                       description="Write a packed copy of the store: every run (complete or partial) with its folds, "
                                   "predictions and learning curves, but no ground-truth label (on real datasets "
                                   "the labels are licensed data). `mer-bench unpack` restores them from the "
                                   "user's own copy of the data; the runs keep their identity, so boards and "
                                   "resumed runs are as from the original store.",
                       epilog="e.g. mer-bench pack --store composite.sqlite -o composite.pack   |   mer-bench pack "
                              "--store composite.sqlite --method rcn -o leaderboards/stores/megc2019-cde/rcn.pack")
    p.add_argument("run_ids", nargs="*", metavar="RUN_ID", help="runs to pack (default: every run of the store)")
    p.add_argument("--dataset", default=None, help="pack every run (complete or partial) of this dataset")
    p.add_argument("--protocol", default=None, help="... and of this protocol")
    p.add_argument("--method", action="append", default=None,
                   help="... and of this method (or imported name); repeat for several")
    p.add_argument("--select-epoch", choices=["last", "best-on-test"], default=None,
                   help="... and of this model selection (a run and its best-on-test twin in two files)")
    p.add_argument("-o", "--output", required=True, help="the packed file to write")
    add_store(p, read=True)
    p.set_defaults(handler=main)


def main(args) -> int:
    import sys

    from mer_bench.packing import pack_store
    from mer_bench.store import Store, default_store_path

    path = args.store or default_store_path()
    filters = (args.dataset, args.protocol, args.method, args.select_epoch)
    ids = list(args.run_ids) or None
    if ids and any(f is not None for f in filters):
        raise ValueError("give RUN_IDs or --dataset/--protocol/--method filters, not both")
    if any(f is not None for f in filters):
        with Store(path, readonly=True) as store:
            runs = store.runs(None)
        for col, value in (("dataset", args.dataset), ("protocol", args.protocol)):
            if value is not None:
                runs = runs[runs[col] == value]
        if args.method:
            runs = runs[runs["method"].isin(args.method)]
        if args.select_epoch:
            runs = runs[runs["selection_code"].fillna("last") == args.select_epoch]
        if runs.empty:
            raise ValueError(f"no run in {path} matches " + ", ".join(
                f"--{k} {v}" for k, v in (("dataset", args.dataset), ("protocol", args.protocol),
                                          ("method", " --method ".join(args.method or []) or None)) if v))
        ids = list(runs["run_id"])
    done = pack_store(path, args.output, ids)
    print(f"packed {done['runs']} run(s) ({done['complete']} complete), {done['predictions']} predictions without "
          f"their labels, into {args.output} ({_size(done['bytes'])}, xz-compressed)", file=sys.stderr)
    return 0


def _size(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 1e6 else f"{n / 1e3:.0f} kB"
