"""``mer-bench saliency``."""

from __future__ import annotations

import json

from mer_bench.cli.options import add_dataset_options, add_json, add_overrides, kv_options


def add_parser(sub) -> None:
    sa = sub.add_parser("saliency", help="Grad-CAM maps and a localisation score against the synthetic motion masks",
                        description="Train each method once on a subject hold-out of the embedded dataset, compute "
                                    "Grad-CAM on the held-out clips, and score the share of saliency inside the "
                                    "known motion masks (with a subject-bootstrap interval); two methods are "
                                    "compared. Writes saliency-<method>.png and a markdown table.")
    sa.add_argument("--method", action="append", required=True, help="a neural method (repeat to compare two)")
    sa.add_argument("--preset", default=None, help="default: the embedded dataset's suggestion (testbed, else fast)")
    sa.add_argument("--seed", type=int, default=0)
    add_overrides(sa)
    add_dataset_options(sa)
    sa.add_argument("--layer", default=None,
                    help="module to explain, e.g. layers.2 (default: the last feature-map stage)")
    sa.add_argument("--out", default="leaderboards")
    add_json(sa)
    sa.set_defaults(handler=main)


def main(args) -> int:
    from mer_bench.leaderboard import write_leaderboard
    from mer_bench.saliency import render_saliency, saliency_study

    if len(args.method) > 2:
        raise ValueError("give one method, or two to compare")
    from mer_bench.datasets.synthetic import ABLATION_CONFIG

    # the larger configuration by default (more held-out subjects: a tighter interval)
    options = kv_options(args.dataset_overrides, "--dataset-set") or dict(ABLATION_CONFIG)
    res = saliency_study(args.method, args.preset, args.seed, args.out, dataset_options=options,
                         overrides=kv_options(args.overrides),
                         layer=args.layer)
    if args.json:
        print(json.dumps(res, indent=2, default=str))
        return 0
    md = render_saliency(res, args.method, args.preset, args.seed, args.overrides or [], args.layer)
    name = "saliency-synthetic" if len(args.method) == 2 else f"saliency-synthetic-{args.method[0]}"
    if args.layer:
        name += f"-{args.layer}"
    print(f"wrote {write_leaderboard(md, args.out, name)}")
    return 0
