"""``mer-bench power``."""

from __future__ import annotations

from mer_bench.cli.options import add_json, add_store


def add_parser(sub) -> None:
    pw = sub.add_parser("power", help="how many subjects a paired comparison needs: a simulation from two runs",
                        description="Estimate the power of the boards' paired test (per-subject swap randomisation "
                                    "on pooled UF1) to detect a true difference EFFECT between two arms, for each "
                                    "number of subjects, by simulation from a pilot: two runs of one configuration "
                                    "on the same clips (e.g. seeds 0 and 1), whose disagreement stands for training "
                                    "noise (mer_bench.stats.paired_power states the assumptions).",
                        epilog="e.g. mer-bench power 728c4eac6c50-s0 728c4eac6c50-s1 --subjects 12,48,96,192")
    pw.add_argument("run_ids", nargs=2, metavar="RUN_ID", help="the pilot: two complete runs on the same clips")
    pw.add_argument("--effect", type=float, default=0.03, help="true UF1 difference to detect (default 0.03)")
    pw.add_argument("--subjects", default="12,24,48,96,144,192",
                    help="comma-separated subject counts to simulate (default 12,24,48,96,144,192)")
    pw.add_argument("--alpha", type=float, default=0.05)
    pw.add_argument("--sims", type=int, default=400, help="simulated studies per subject count (default 400)")
    pw.add_argument("--target", type=float, default=0.8, help="the power to reach (default 0.8)")
    add_store(pw, read=True)
    add_json(pw)
    pw.set_defaults(handler=main)


def main(args) -> int:
    import json

    from mer_bench import stats
    from mer_bench.store import Store

    try:
        counts = [int(v) for v in args.subjects.split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"--subjects {args.subjects!r}: expected comma-separated integers") from None
    with Store(args.store, readonly=True) as store:
        metas = [store.get_run(r) for r in args.run_ids]
        for run_id, meta in zip(args.run_ids, metas):
            if meta is None or meta.get("status") != "complete":
                raise ValueError(f"run {run_id} is not a complete run of this store"
                                 + ("" if meta is None else f" (status {meta.get('status')})"))
        preds = [store.predictions(r) for r in args.run_ids]
    stacked = stats.stack_runs(preds)
    if stacked is None:
        raise stats.StatsError("the two pilot runs are not on the same clips")
    y, yp, clusters, _, _ = stacked
    classes = metas[0].get("classes")
    classes = json.loads(classes) if isinstance(classes, str) else classes
    n_classes = len(classes) if classes else int(max(y.max(), yp.max()) + 1)
    pw = stats.paired_power(y, yp[0], yp[1], clusters, n_classes, effect=args.effect, n_subjects=counts,
                            alpha=args.alpha, n_sim=args.sims)
    need = pw.subjects_for(args.target)
    if args.json:
        print(json.dumps({"pilot": list(args.run_ids), "effect": pw.effect, "alpha": pw.alpha, "n_sim": pw.n_sim,
                          "pilot_subjects": pw.pilot_subjects, "pilot_clips": pw.pilot_clips,
                          "pilot_disagreement": float((yp[0] != yp[1]).mean()), "q": pw.q,
                          "power": {str(k): v for k, v in pw.power.items()},
                          "interval": {str(k): v for k, v in pw.interval.items()},
                          "subjects_for_target": need, "target": args.target}, indent=2))
        return 0
    print(f"pilot: {args.run_ids[0]} and {args.run_ids[1]}: {pw.pilot_subjects} subjects, {pw.pilot_clips} clips, "
          f"disagreeing on {(yp[0] != yp[1]).mean():.1%} of them; effect: UF1 +{pw.effect} (each error of arm A "
          f"corrected with probability {pw.q:.3f}); {pw.n_sim} simulated studies per size, alpha {pw.alpha}, "
          "one seed per arm")
    print("| subjects | clips (about) | power [95 % simulation interval] |")
    print("|---|---|---|")
    per_subject = pw.pilot_clips / pw.pilot_subjects
    for n in sorted(pw.power):
        lo, hi = pw.interval[n]
        print(f"| {n} | {round(n * per_subject)} | {pw.power[n]:.2f} [{lo:.2f}, {hi:.2f}] |")
    print(f"power >= {args.target}: " + (f"from {need} subjects of those simulated" if need else
                                         "not reached at the sizes simulated"))
    return 0
