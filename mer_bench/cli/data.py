"""``mer-bench data``."""

from __future__ import annotations

from mer_bench.cli.options import add_data_root, add_dataset_options, kv_options


def add_parser(sub) -> None:
    dc = sub.add_parser("data", help="check a dataset tree against its coding sheet, or count its classes",
                        description="Inspect a dataset before running on it: `mer-bench data check` reports every "
                                    "problem of its folder, `mer-bench data stats` counts clips, subjects and "
                                    "classes. See `mer-bench data check --help`.")
    actions = dc.add_subparsers(dest="action", metavar="ACTION", required=True)
    check = actions.add_parser(
        "check", help="report every problem of a dataset folder at once",
        description="Check a dataset folder against its coding sheet and report every problem at once: missing "
                    "clip folders, missing or unreadable frames, frame numbers that disagree with onset/offset, apex "
                    "outside [onset, offset], duplicate clips. Exit status 0: usable; 1: problems found.",
        epilog="e.g. mer-bench data check --dataset casme2 --data-root /data/CASME2")
    stats = actions.add_parser(
        "stats", help="clips, subjects and class counts under every class scheme",
        description="Count a dataset's clips, subjects and classes under every class scheme of its coding sheet "
                    "(the frames are not needed: --dataset-set sheet=FILE reads the sheet alone).",
        epilog="e.g. mer-bench data stats --dataset samm --dataset-set sheet=SAMM_micro_only.xlsx")
    for p in (check, stats):
        p.add_argument("--dataset", required=True, help="registered dataset (see `mer-bench list datasets`)")
        add_data_root(p)
        add_dataset_options(p)
        p.set_defaults(handler=main)


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
