"""``mer-bench ablate``."""

from __future__ import annotations

import dataclasses
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
    ab.add_argument("--protocol", default=None,
                    help="default: loso; a method's preset ablation (kernel, shared, attention) on the embedded "
                         "dataset without --dataset-set runs on its larger ablation configuration "
                         "(mer_bench.datasets.synthetic.ABLATION_CONFIG, subject-kfold with k=3)")
    ab.add_argument("--protocol-set", dest="protocol_overrides", action="append", metavar="KEY=VALUE",
                    help="protocol option, e.g. --protocol-set k=3")
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


def ablation_setting(ablation: str | None, protocol: str | None, dataset: str | None, dataset_options: dict,
                     protocol_options: dict, data_root: str | None) -> tuple[str, dict, dict]:
    """``(protocol, protocol options, dataset options)`` of an ablation: a method's preset ablation
    (not ``leakage``) on the embedded dataset, with no protocol and no dataset option given, runs on
    :data:`mer_bench.datasets.synthetic.ABLATION_CONFIG` under its ``ABLATION_PROTOCOL`` (a line
    says so); anything else as given (protocol default ``loso``)."""
    if (ablation and ablation != "leakage" and protocol is None and not dataset_options
            and dataset in (None, "synthetic") and data_root is None):
        from mer_bench.datasets.synthetic import ABLATION_CONFIG, ABLATION_PROTOCOL

        options = {**ABLATION_PROTOCOL[1], **protocol_options}
        print(f"the embedded dataset's ablation configuration: "
              f"{', '.join(f'{k}={v}' for k, v in ABLATION_CONFIG.items())}, protocol {ABLATION_PROTOCOL[0]} "
              f"({', '.join(f'{k}={v}' for k, v in options.items())}); sized for power (README)")
        return ABLATION_PROTOCOL[0], options, dict(ABLATION_CONFIG)
    return protocol or "loso", dict(protocol_options), dict(dataset_options)


def power_note(reference: list, n_classes: int, effect: float = 0.03) -> str:
    """One sentence: the power of the paired test at this board's size to detect ``effect`` in UF1,
    simulated (:func:`mer_bench.stats.paired_power`) from the reference arm's first two seeds; a
    sentence saying it was not estimated without two seeds on the same clips."""
    from mer_bench import stats

    stacked = stats.stack_runs(reference) if len(reference) >= 2 else None
    if stacked is None:
        return "Power: not estimated (it needs the reference arm at two seeds on the same clips)."
    y, yp, clusters, _, _ = stacked
    n = len(set(clusters))
    pw = stats.paired_power(y, yp[0], yp[1], clusters, n_classes, effect=effect, n_subjects=(n,), n_sim=200)
    lo, hi = pw.interval[n]
    return (f"Power: the paired test detects a true UF1 difference of {effect} between two arms with probability "
            f"{pw.power[n]:.2f} [{lo:.2f}, {hi:.2f}] at this size ({n} subjects, {len(y)} clips; simulated from the "
            f"reference arm's first two seeds, one seed per arm: "
            f"`mer_bench.stats.paired_power`).")


def main(args) -> int:
    from mer_bench.ablation import (
        ablation_provenance,
        ablation_table,
        arms_for,
        expand_grid,
        identical_to_reference,
        render_ablation,
    )
    from mer_bench.leaderboard import write_leaderboard
    from mer_bench.method import parse_overrides
    from mer_bench.pipeline import prepare
    from mer_bench.runtime import resolve_device
    from mer_bench.store import Store

    if bool(args.ablation) == bool(args.grid):
        raise ValueError("give either --ablation NAME or --method M --grid KEY=V1,V2,...")
    dataset_options = kv_options(args.dataset_overrides, "--dataset-set")
    protocol_options = kv_options(args.protocol_overrides, "--protocol-set")
    protocol, protocol_options, dataset_options = ablation_setting(
        args.ablation, args.protocol, args.dataset, dataset_options, protocol_options, args.data_root)
    if args.ablation:
        arms = arms_for(args.ablation, args.method, protocol, protocol_options)
    else:
        if not args.method:
            raise ValueError("--grid needs --method")
        grid = {}
        for g in args.grid:
            if "=" not in g:
                raise ValueError(f"--grid {g!r}: expected KEY=V1,V2,...")
            key, values = g.split("=", 1)
            grid[key.strip()] = [parse_overrides([f"{key}={v}"])[key.strip()] for v in values.split(",") if v != ""]
        arms = [dataclasses.replace(a, protocol_options=dict(protocol_options))
                for a in expand_grid(args.method, protocol, grid)]
    seeds = args.seed or [0]
    shown_options = dict(dataset_options)
    if args.data_root is not None:
        dataset_options["data_root"] = args.data_root
    shared = kv_options(args.overrides)
    device = resolve_device(args.device)
    preds, commands, dataset, classes, run_ids = [], [], None, None, []
    with Store(args.store) as store:
        for arm in arms:
            prep = prepare(arm.method, arm.protocol, args.dataset, seeds, {**shared, **arm.overrides}, args.preset,
                           dataset_options, arm.protocol_options)
            dataset = prep.specs[0].dataset
            results = execute_with_progress(prep, store, device, False)
            preds.append([store.predictions(r.spec.run_id) for r in results])
            run_ids.append([r.spec.run_id for r in results])
            classes = prep.dataset.classes
            commands.append(arm.command(dataset, prep.specs[0].preset, seeds, shared, shown_options,
                                        bool(args.data_root)))
        provenance = ablation_provenance(store, arms, run_ids)
    table = ablation_table(arms, preds, len(classes))
    table["input"] = [p["input"] for p in provenance]
    name = args.name or f"ablation-{args.ablation or 'grid'}-{dataset}"
    title = f"Ablation: {args.ablation or ', '.join(args.grid)} ({dataset})"
    note = (f"Arms: {'; '.join(a.label for a in arms)}. Reference: {arms[0].label}. Seeds: "
            f"{', '.join(map(str, seeds))}. " + power_note(preds[0], len(classes)))
    same = identical_to_reference(arms, preds)
    if same:
        note += (f" **{'; '.join(same)}: the same predictions and probabilities as the reference on every clip and "
                 "seed**: these settings compute the same function from the same initial weights here, so the "
                 "difference is exactly zero, not an estimate.")
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
