"""``mer-bench unpack``."""

from __future__ import annotations

from mer_bench.cli.options import add_data_root, add_store, dataset_builder


def add_parser(sub) -> None:
    p = sub.add_parser("unpack", help="restore a packed store's labels from your data and add its runs to a store",
                       description="Put the ground-truth labels of a packed store (mer-bench pack) back from the "
                                   "dataset itself, after checking that each run was made on the same data (its "
                                   "fingerprint) and that every predicted clip is there under the same subject; then "
                                   "add its runs to --store (created if absent). Runs already in the store are left "
                                   "as they are.",
                       epilog="e.g. mer-bench unpack leaderboards/stores/megc2019-cde/rcn.pack --store "
                              "composite.sqlite --data-root ../shared/data/megc2019-composite")
    p.add_argument("file", help="the packed store")
    add_data_root(p)
    add_store(p)
    p.set_defaults(handler=main)


def main(args) -> int:
    import sys
    from collections import Counter

    from mer_bench.packing import unpack_store
    from mer_bench.store import default_store_path

    store = args.store or default_store_path()
    done = unpack_store(args.file, store, dataset_builder(args.data_root))
    n = Counter(status for _, status in done)
    print(f"unpacked {len(done)} run(s) from {args.file} into {store}: {n['added']} added, {n['present']} already "
          f"there (left as they were)", file=sys.stderr)
    return 0
