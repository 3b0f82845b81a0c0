"""``mer-bench profile``."""

from __future__ import annotations

import json

from mer_bench.cli.options import add_device, add_json, add_overrides


def add_parser(sub) -> None:
    pf = sub.add_parser("profile", help="parameters, FLOPs and train/inference throughput of a method",
                        description="Build METHOD's network at its input size and report parameters, forward "
                                    "FLOPs per sample (torch.utils.flop_counter) and training/inference "
                                    "throughput on the current device.")
    pf.add_argument("--method", required=True)
    pf.add_argument("--preset", default=None, help="hyper-parameter preset (default: the method's defaults)")
    add_overrides(pf)
    add_device(pf)
    pf.add_argument("--batch-size", type=int, default=None, help="throughput batch (default: the method's)")
    pf.add_argument("--seconds", type=float, default=2.0, help="time budget per throughput measurement")
    add_json(pf)
    pf.set_defaults(handler=main)


def main(args) -> int:
    from mer_bench.method import parse_overrides
    from mer_bench.model_profile import profile_method

    if args.batch_size is not None and args.batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {args.batch_size}")
    res = profile_method(args.method, args.preset, parse_overrides(args.overrides or []), device=args.device,
                         batch_size=args.batch_size, seconds=args.seconds)
    if args.json:
        print(json.dumps(res, indent=2, default=str))
        return 0
    from rich.console import Console

    from mer_bench.model_profile import profile_table

    console = Console()
    for item in profile_table(res):
        console.print(item)
    return 0
