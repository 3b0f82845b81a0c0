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
                       epilog="e.g. mer-bench pack --store composite.sqlite -o leaderboards/stores/megc2019-cde.pack")
    p.add_argument("-o", "--output", required=True, help="the packed file to write")
    add_store(p, read=True)
    p.set_defaults(handler=main)


def main(args) -> int:
    import sys

    from mer_bench.packing import pack_store
    from mer_bench.store import default_store_path

    done = pack_store(args.store or default_store_path(), args.output)
    print(f"packed {done['runs']} run(s) ({done['complete']} complete), {done['predictions']} predictions without "
          f"their labels, into {args.output} ({done['bytes'] / 1e6:.1f} MB)", file=sys.stderr)
    return 0
