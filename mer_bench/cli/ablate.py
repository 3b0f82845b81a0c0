"""``mer-bench ablate``."""

from __future__ import annotations

from pathlib import Path

from mer_bench.cli.options import (
    add_data_root,
    add_dataset_options,
    add_device,
    add_overrides,
    add_publishing,
    add_store,
    kv_options,
)
from mer_bench.cli.run import execute_with_progress


def add_parser(sub) -> None:
    ab = sub.add_parser("ablate", help="run an ablation grid and write its table with intervals and tests",
                        description="Run every arm (a method, protocol and hyper-parameter values) and compare each "
                                    "with the first (the reference): intervals, paired tests with Holm, Bayesian "
                                    "signed-rank. Presets: --ablation kernel|shared|attention|leakage.")
    ab.add_argument("--ablation", default=None, help="a preset: kernel, shared, attention, leakage")
    ab.add_argument("--method", default=None, help="the method of a --grid ablation (or of --ablation leakage)")
    ab.add_argument("--grid", action="append", metavar="KEY=V1,V2,...", help="hyper-parameter values to cross")
    ab.add_argument("--protocol", default="loso")
    ab.add_argument("--dataset", default=None)
    add_data_root(ab)
    ab.add_argument("--seed", type=int, action="append", help="seeds (repeatable; default 0)")
    ab.add_argument("--preset", default=None, help="hyper-parameter preset for every arm (default: the dataset's)")
    add_overrides(ab)
    add_dataset_options(ab)
    add_device(ab)
    add_store(ab)
    ab.add_argument("--name", default=None, help="file name for --write (default: ablation-<preset>-<dataset>)")
    ab.add_argument("--write", action="store_true", help="write leaderboards/<name>.md")
    add_publishing(ab, "folder for --write (default: leaderboards)")
    ab.set_defaults(handler=main)


def main(args) -> int:
    from mer_bench.ablation import ablation_provenance, ablation_table, arms_for, expand_grid, render_ablation
    from mer_bench.leaderboard import write_leaderboard
    from mer_bench.method import parse_overrides
    from mer_bench.pipeline import prepare
    from mer_bench.runtime import resolve_device
    from mer_bench.store import Store

    if bool(args.ablation) == bool(args.grid):
        raise ValueError("give either --ablation NAME or --method M --grid KEY=V1,V2,...")
    if args.ablation:
        arms = arms_for(args.ablation, args.method, args.protocol)
    else:
        if not args.method:
            raise ValueError("--grid needs --method")
        grid = {}
        for g in args.grid:
            if "=" not in g:
                raise ValueError(f"--grid {g!r}: expected KEY=V1,V2,...")
            key, values = g.split("=", 1)
            grid[key.strip()] = [parse_overrides([f"{key}={v}"])[key.strip()] for v in values.split(",") if v != ""]
        arms = expand_grid(args.method, args.protocol, grid)
    seeds = args.seed or [0]
    dataset_options = kv_options(args.dataset_overrides, "--dataset-set")
    if args.data_root is not None:
        dataset_options["data_root"] = args.data_root
    shared = kv_options(args.overrides)
    device = resolve_device(args.device)
    preds, commands, dataset, classes, run_ids = [], [], None, None, []
    with Store(args.store) as store:
        for arm in arms:
            prep = prepare(arm.method, arm.protocol, args.dataset, seeds, {**shared, **arm.overrides}, args.preset,
                           dataset_options)
            dataset = prep.specs[0].dataset
            results = execute_with_progress(prep, store, device, False)
            preds.append([store.predictions(r.spec.run_id) for r in results])
            run_ids.append([r.spec.run_id for r in results])
            classes = prep.dataset.classes
            commands.append(arm.command(dataset, prep.specs[0].preset, seeds, shared,
                                        kv_options(args.dataset_overrides, "--dataset-set"), bool(args.data_root)))
        provenance = ablation_provenance(store, arms, run_ids)
    table = ablation_table(arms, preds, len(classes))
    table["input"] = [p["input"] for p in provenance]
    name = args.name or f"ablation-{args.ablation or 'grid'}-{dataset}"
    title = f"Ablation: {args.ablation or ', '.join(args.grid)} ({dataset})"
    note = (f"Arms: {'; '.join(a.label for a in arms)}. Reference: {arms[0].label}. Seeds: "
            f"{', '.join(map(str, seeds))}.")
    if args.write:
        from mer_bench.ablation import plot_ablation
        from mer_bench.leaderboard import UnpublishableError

        unclean = [p for p in provenance if p["unclean"]]
        if unclean and not args.allow_dirty:
            raise UnpublishableError(f"{len(unclean)} arm(s) were measured with uncommitted or unknown code: "
                                     + "; ".join(f"{p['arm']} (commit {p['commit']})" for p in unclean)
                                     + ". Commit the code and re-run them with --force, or publish with --allow-dirty "
                                       "(the board then marks them)")
        Path(args.out).mkdir(parents=True, exist_ok=True)
        plot_ablation(table, title, Path(args.out) / f"{name}.png")
        md = render_ablation(table, title, commands, note, figure=f"{name}.png", provenance=provenance)
        print(f"wrote {write_leaderboard(md, args.out, name)}")
    else:
        print(render_ablation(table, title, commands, note, provenance=provenance))
    return 0
