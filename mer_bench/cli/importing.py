"""``mer-bench import``."""

from __future__ import annotations

from mer_bench.cli.options import add_data_root, add_store


def add_parser(sub) -> None:
    im = sub.add_parser("import", help="import published per-sample predictions (e.g. a MEGC log) into the store",
                        description="Check a published prediction log against a dataset and store it as an "
                                    "imported run, so it appears on leaderboards beside measured runs.")
    im.add_argument("file", help="the log file")
    im.add_argument("--format", default="megc-log", choices=["megc-log"],
                    help="megc-log: '<db> <subject>' opens each fold, then '<clip> <ground truth> <prediction>'")
    im.add_argument("--name", required=True, help="leaderboard name, e.g. ststnet-published")
    im.add_argument("--dataset", default="megc2019-flow", help="the dataset the log covers (default: megc2019-flow)")
    im.add_argument("--protocol", default="megc2019-cde", help="the protocol it follows (default: megc2019-cde)")
    add_data_root(im)
    im.add_argument("--leaky", action="store_true",
                    help="the published system chose its model on the test folds: label the run leaky")
    im.add_argument("--citation", default="", help="where the predictions come from")
    add_store(im)
    im.add_argument("--force", action="store_true", help="replace predictions already imported under --name")
    im.set_defaults(handler=main)


def main(args) -> int:
    from rich.console import Console

    from mer_bench.commands import check_name
    from mer_bench.importers import import_predictions
    from mer_bench.leaderboard import SUBSET_NAMES
    from mer_bench.metrics import run_metrics
    from mer_bench.registry import DATASETS
    from mer_bench.store import Store

    options = {} if args.data_root is None else {"data_root": args.data_root}
    check_name(args.name)
    dataset = DATASETS.get(args.dataset)(**options)
    with Store(args.store) as store:
        res = import_predictions(store, args.file, args.name, dataset, args.protocol, args.format, leaky=args.leaky,
                                 citation=args.citation, force=args.force)
        scores = run_metrics(store.predictions(res.run_id), tuple(dataset.classes))
    console = Console()
    verb = "already imported" if res.status == "cached" else "imported"
    console.print(f"{verb} {args.name}: {res.n_samples} predictions in {res.n_folds} folds as run {res.run_id} "
                  f"(store {store.path})" + (" — labelled LEAKY" if args.leaky else ""), highlight=False)
    for subset, sc in scores.items():
        console.print(f"  {SUBSET_NAMES.get(subset, subset):9s} UF1 {sc['uf1']:.4f}  UAR {sc['uar']:.4f}  "
                      f"(macro-precision {sc['macro_precision']:.4f}, accuracy {sc['accuracy']:.4f}, n {sc['n']})",
                      highlight=False)
    return 0
