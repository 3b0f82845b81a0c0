"""``mer-bench export``."""

from __future__ import annotations

from mer_bench.cli.options import add_store


def add_parser(sub) -> None:
    ex = sub.add_parser("export", help="write runs' per-sample predictions to a file others can use (JSON or CSV)",
                        description="Write complete runs of the store, with their metadata and one prediction per "
                                    "clip, in the mer-bench-predictions format (version 1; schema: mer-bench export "
                                    "--schema). `mer-bench import --format predictions FILE` reads it back.",
                        epilog="e.g. mer-bench export --dataset megc2019-flow --protocol megc2019-cde -o composite.json"
                               "   |   mer-bench export 6f6bf1cc5a4b-s0 --format csv -o ststnet.csv")
    ex.add_argument("run_ids", nargs="*", metavar="RUN_ID",
                    help="runs to export (ids as `mer-bench run` prints them and boards' provenance lists them)")
    ex.add_argument("--dataset", default=None, help="export every complete run of this dataset")
    ex.add_argument("--protocol", default=None, help="... and of this protocol")
    ex.add_argument("--method", default=None, help="... and of this method (or imported name)")
    ex.add_argument("--format", choices=["json", "csv"], default=None,
                    help="json or csv (default: from the suffix of -o, else json)")
    ex.add_argument("-o", "--output", default=None, help="the file to write (default: standard output)")
    ex.add_argument("--schema", action="store_true", help="print the format's JSON Schema and exit")
    add_store(ex, read=True)
    ex.set_defaults(handler=main)


def main(args) -> int:
    import json
    import sys

    from mer_bench import exchange

    if args.schema:
        print(json.dumps(exchange.schema(), indent=2))
        return 0
    from mer_bench.store import Store

    if not args.run_ids and not (args.dataset or args.protocol or args.method):
        raise ValueError("name the runs: RUN_ID ..., or --dataset / --protocol / --method to export every match")
    if args.run_ids and (args.dataset or args.protocol or args.method):
        raise ValueError("give RUN_IDs or --dataset/--protocol/--method filters, not both")
    with Store(args.store, readonly=True) as store:
        ids = list(args.run_ids)
        if not ids:
            runs = store.runs()
            for col, value in (("dataset", args.dataset), ("protocol", args.protocol), ("method", args.method)):
                if value is not None:
                    runs = runs[runs[col] == value]
            ids = list(runs["run_id"])
            if not ids:
                from mer_bench.registry import DATASETS, PROTOCOLS

                for registry, name in ((DATASETS, args.dataset), (PROTOCOLS, args.protocol)):
                    if name and name not in registry.names():
                        registry.get(name)  # "did you mean"
                raise ValueError(f"no complete run in {store.path} matches "
                                 + ", ".join(f"--{k} {v}" for k, v in (("dataset", args.dataset),
                                                                        ("protocol", args.protocol),
                                                                        ("method", args.method)) if v))
        doc = exchange.export_runs(store, ids)
    fmt = args.format or ("csv" if args.output and args.output.lower().endswith(".csv") else "json")
    if args.output is None:
        sys.stdout.write(json.dumps(doc, indent=1, ensure_ascii=False) + "\n" if fmt == "json"
                         else exchange.to_csv(doc))
        return 0
    path = exchange.write_file(doc, args.output, fmt)
    n = sum(len(r["predictions"]) for r in doc["runs"])
    print(f"wrote {len(doc['runs'])} run(s), {n} predictions, to {path} ({fmt})", file=sys.stderr)
    return 0
