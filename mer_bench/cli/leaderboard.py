"""``mer-bench leaderboard``."""

from __future__ import annotations

from pathlib import Path

from mer_bench.cli.options import add_publishing, add_store


def add_parser(sub) -> None:
    lb = sub.add_parser("leaderboard", help="render the leaderboard markdown from the results store")
    lb.add_argument("--protocol", default=None, help="only this protocol's runs (default: every protocol)")
    lb.add_argument("--dataset", default=None, help="only this dataset's runs (default: every dataset)")
    add_store(lb, read=True)
    lb.add_argument("--write", action="store_true", help="publish into leaderboards/<dataset>-<protocol>.md")
    lb.add_argument("--format", choices=["markdown", "json", "csv"], default="markdown",
                    help="markdown (default; what --write publishes), or the rows as JSON / CSV on stdout: numbers as "
                         "numbers, intervals as two fields (mer_bench.leaderboard.board_records)")
    add_publishing(lb, "folder for --write (default: leaderboards)")
    lb.set_defaults(handler=main)


def main(args) -> int:
    from mer_bench.leaderboard import (
        board_name,
        check_publishable,
        leaderboard_rows,
        render_markdown,
        write_leaderboard,
    )
    from mer_bench.plots import plot_files
    from mer_bench.store import Store

    with Store(args.store, readonly=True) as store:
        rows = leaderboard_rows(store, args.protocol, args.dataset)
    if rows.empty:  # nothing matched: a misspelt name gets "did you mean", as `run` gives it
        from mer_bench.registry import DATASETS, PROTOCOLS

        for registry, name in ((DATASETS, args.dataset), (PROTOCOLS, args.protocol)):
            if name and name not in registry.names():
                registry.get(name)  # raises UnknownNameError with suggestions, imports nothing
    if args.format != "markdown":
        if args.write:
            raise ValueError("--write publishes the markdown board; give --format json|csv without --write")
        import json

        from mer_bench.leaderboard import board_records

        records = board_records(rows) if not rows.empty else []
        if args.format == "json":
            print(json.dumps(records, indent=1, ensure_ascii=False))
        else:
            import pandas as pd

            flat = pd.json_normalize(records, sep=" ") if records else pd.DataFrame()
            print(flat.to_csv(index=False), end="")
        return 0
    if args.write:
        check_publishable(rows, args.allow_dirty)
    scope = " / ".join(x for x in (args.dataset, args.protocol) if x)
    name = board_name(args.dataset, args.protocol)
    # plots written by `mer-bench report` beside the board stay linked
    plots = [(c, f) for c, f in plot_files(name) if (Path(args.out) / f).is_file()] if args.write else []
    md = render_markdown(rows, title="mer-bench leaderboard" + (f": {scope}" if scope else ""), plots=plots)
    if args.write:
        path = write_leaderboard(md, args.out, name)
        print(f"wrote {path}")
    else:
        print(md)
    return 0
