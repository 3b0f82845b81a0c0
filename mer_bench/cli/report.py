"""``mer-bench report``."""

from __future__ import annotations

from mer_bench.cli.options import add_publishing, add_store


def add_parser(sub) -> None:
    rp = sub.add_parser("report", help="write the leaderboard markdown and its plots (PNG) for one dataset/protocol",
                        description="Write leaderboards/<name>.md with confusion matrices, per-subject score "
                                    "distributions and a critical-difference diagram as PNG files beside it.")
    rp.add_argument("--dataset", required=True, help="the board's dataset, e.g. megc2019-flow")
    rp.add_argument("--protocol", required=True, help="the board's protocol, e.g. megc2019-cde")
    add_store(rp, read=True)
    add_publishing(rp, "folder (default: leaderboards)")
    rp.set_defaults(handler=main)


def main(args) -> int:
    from mer_bench.leaderboard import board_name
    from mer_bench.plots import write_report
    from mer_bench.store import Store

    if not args.dataset or not args.protocol:
        raise ValueError("mer-bench report needs --dataset and --protocol")
    with Store(args.store, readonly=True) as store:
        paths = write_report(store, args.dataset, args.protocol, args.out, board_name(args.dataset, args.protocol),
                             allow_dirty=args.allow_dirty)
    for p in paths:
        print(f"wrote {p}")
    return 0
