"""``mer-bench import``."""

from __future__ import annotations

from mer_bench.cli.options import add_data_root, add_store, dataset_builder


def add_parser(sub) -> None:
    im = sub.add_parser("import", help="import per-sample predictions (a MEGC log, or a mer-bench predictions file)",
                        description="Check per-sample predictions against their dataset and store them as imported "
                                    "runs, so they appear on leaderboards beside measured runs. Formats: megc-log (a "
                                    "published MEGC 2019 log, e.g. STSTNet's) and predictions (the file `mer-bench "
                                    "export` writes, and the format in which authors submit their predictions).")
    im.add_argument("file", help="the log or predictions file")
    im.add_argument("--format", default="megc-log", choices=["megc-log", "predictions"],
                    help="megc-log (default): '<db> <subject>' opens each fold, then '<clip> <ground truth> "
                         "<prediction>'; predictions: the mer-bench-predictions JSON or CSV (mer-bench export "
                         "--schema), whose runs name their dataset and protocol")
    im.add_argument("--name", default=None,
                    help="leaderboard name, e.g. ststnet-published (required for megc-log, and for a predictions "
                         "file's runs computed by mer-bench; an imported run keeps its own name by default)")
    im.add_argument("--dataset", default="megc2019-flow",
                    help="the dataset the log covers (default: megc2019-flow; a predictions file names its own)")
    im.add_argument("--protocol", default="megc2019-cde",
                    help="the protocol it follows (default: megc2019-cde; a predictions file names its own)")
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

    if args.format == "predictions":
        return _import_predictions_file(args)
    if args.name is None:
        raise ValueError("--name is required for a megc-log (the leaderboard name, e.g. ststnet-published)")
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


def _import_predictions_file(args) -> int:
    from rich.console import Console

    from mer_bench import exchange
    from mer_bench.commands import check_name
    from mer_bench.metrics import run_metrics
    from mer_bench.store import Store

    if args.name is not None:
        check_name(args.name)
    if args.leaky or args.citation:
        raise ValueError("a predictions file says itself whether a run is leaky and where it comes from; drop "
                         "--leaky / --citation")
    doc = exchange.read_file(args.file)
    dataset_for = dataset_builder(args.data_root)

    console = Console()
    with Store(args.store) as store:
        results = exchange.import_runs(store, doc, dataset_for, name=args.name, force=args.force, where=args.file)
        for (run_id, status, n), run in zip(results, doc["runs"]):
            classes = tuple(dataset_for(run["dataset"], dict(run.get("dataset_options") or {})).classes)
            sc = run_metrics(store.predictions(run_id), classes)["Full"]
            verb = "already imported" if status == "cached" else "imported"
            console.print(f"{verb} {args.name or run['method']} ({run['dataset']}, {run['protocol']}, seed "
                          f"{run.get('seed', 0)}): {n} predictions as run {run_id}; UF1 {sc['uf1']:.4f}, UAR "
                          f"{sc['uar']:.4f}" + (" — LEAKY" if run["leaky"] else ""), highlight=False)
    console.print(f"store: {store.path}", highlight=False)
    return 0
