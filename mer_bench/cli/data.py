"""``mer-bench data``."""

from __future__ import annotations

from mer_bench.cli.options import add_data_root, add_dataset_options, kv_options


def add_parser(sub) -> None:
    dc = sub.add_parser("data", help="check a dataset tree against its coding sheet, or count its classes",
                        description="mer-bench data check --dataset NAME --data-root PATH: report every problem of "
                                    "a dataset folder at once (exit status 0: usable; 1: problems found). "
                                    "mer-bench data stats --dataset NAME (--data-root PATH | --dataset-set sheet=FILE):"
                                    " clips, subjects and class counts under every class scheme.")
    dc.add_argument("action", choices=["check", "stats"])
    dc.add_argument("--dataset", required=True)
    add_data_root(dc)
    add_dataset_options(dc)
    dc.set_defaults(handler=main)


def main(args) -> int:
    from rich.console import Console

    from mer_bench.data import DatasetError
    from mer_bench.registry import DATASETS

    options = kv_options(args.dataset_overrides, "--dataset-set")
    if args.data_root is not None:
        options["data_root"] = args.data_root
    try:
        dataset = DATASETS.get(args.dataset)(**options)
    except TypeError as exc:
        raise ValueError(f"invalid dataset option: {exc}") from None
    if args.action == "stats":
        return _data_stats(dataset, args.dataset)
    try:
        if hasattr(dataset, "check"):
            problems = dataset.check()
        else:  # loaders that check while reading (e.g. megc2019-flow) raise on the first file-level problem
            table = dataset.table()
            for rep in dataset.representations:
                dataset.load(rep, list(range(len(table))))
            problems = []
    except DatasetError as exc:
        problems = [str(exc)]
    console = Console(highlight=False)
    if problems:
        console.print(f"[red]{len(problems)} problem(s)[/] in {args.dataset}:")
        for p in problems:
            console.print(f"  - {p}", markup=False)
        return 1
    n = len(dataset.table())
    console.print(f"[green]ok[/]: {args.dataset} has {n} clips and no problems")
    return 0


def _data_stats(dataset, name) -> int:
    from rich.console import Console
    from rich.table import Table

    console = Console(highlight=False)
    if not hasattr(dataset, "sheet_table"):
        t = dataset.table()
        console.print(f"{name}: {len(t)} clips, {t['subject'].nunique()} subjects; classes "
                      + ", ".join(f"{c} {int((t['label'] == i).sum())}" for i, c in enumerate(dataset.classes)))
        return 0
    from mer_bench.datasets.schemes import scheme_counts

    sheet = dataset.sheet_table()
    console.print(f"{name}: sheet {sheet['sheet'].iat[0]} ({sheet['sheet_version'].iat[0]}): {len(sheet)} clips, "
                  f"{sheet['subject'].nunique()} subjects; fixes applied: {len(sheet.attrs.get('fixes', []))}")
    counts = sheet["emotion"].value_counts()
    console.print("emotions: " + ", ".join(f"{e} {n}" for e, n in counts.items()))
    table = Table(title=f"{name}: class schemes")
    for col in ("scheme", "clips", "subjects", "classes"):
        table.add_column(col)
    for scheme, clips, subjects, classes in scheme_counts(sheet, dataset.scheme_key):
        table.add_row(scheme, str(clips), str(subjects), ", ".join(f"{c} {n}" for c, n in classes))
    console.print(table)
    return 0
