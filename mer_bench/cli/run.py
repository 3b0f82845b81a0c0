"""``mer-bench run``."""

from __future__ import annotations

import argparse
import json

from mer_bench.cli.options import (
    add_data_root,
    add_dataset_options,
    add_device,
    add_json,
    add_overrides,
    add_store,
    kv_options,
)


def add_parser(sub) -> None:
    r = sub.add_parser("run", help="train and evaluate a method under a protocol; store per-sample predictions",
                       description="Run METHOD under PROTOCOL on DATASET for each --seed. Completed folds are "
                                   "stored as they finish: re-running an interrupted command resumes it, and a "
                                   "completed run is reused unless --force.")
    r.add_argument("--method", required=True, help="registered method name (see `mer-bench list methods`)")
    r.add_argument("--protocol", default="loso",
                   help="registered protocol (default: loso; see `mer-bench list protocols`)")
    r.add_argument("--dataset", default=None,
                   help="registered dataset (default: the protocol's dataset, e.g. megc2019-flow for megc2019-cde; "
                        "otherwise synthetic, embedded)")
    add_data_root(r)
    r.add_argument("--seed", type=int, action="append", help="run seed; repeat for several (default: 0)")
    add_overrides(r)
    r.add_argument("--preset", default=None,
                   help="method hyper-parameter preset (e.g. paper, fast); default: the dataset's suggestion")
    add_dataset_options(r)
    r.add_argument("--protocol-set", dest="protocol_overrides", action="append", metavar="KEY=VALUE",
                   help="protocol option, e.g. --protocol-set test_size=0.2")
    add_device(r)
    add_store(r)
    r.add_argument("--force", action="store_true",
                   help="recompute even if the run is complete in the store (the old run is kept until the new "
                        "one is complete; an interrupted --force resumes when run again)")
    r.add_argument("--select-epoch", dest="selection", choices=["last", "best-on-test", "both"], default="last",
                   help="last (default): the fixed last epoch. best-on-test: keep, per LOSO subject, the epoch that "
                        "scores best on that subject's test clips -- the common published practice, which LEAKS the "
                        "test labels; such runs are labelled leaky everywhere. both: train once per fold and store "
                        "both runs (measures the inflation at the cost of one run)")
    r.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=None,
                   help="channels-last memory format (same results up to floating-point noise; with "
                        "--set precision=bf16 the fast path: see mer-bench bench). Default: as the network "
                        "asks on a CPU (MERANet, the 3D ResNet, RCN: on, measured faster there), else off")
    r.add_argument("--stack-folds", type=int, default=1, metavar="K",
                   help="train K folds at once with their networks stacked (torch.func): fills a GPU that one "
                        "fold of a small network cannot; the same results up to floating-point noise "
                        "(default 1: fold by fold; torch methods, local executor)")
    r.add_argument("--workers", default=None, metavar="N|auto",
                   help="local worker processes training folds at once, each with an equal share of the CPU "
                        "threads (default: $MER_BENCH_WORKERS, else auto: one per core for a network on the CPU, "
                        "else 1). The run's identity is the same; the thread count per fold can change the last "
                        "bits of the results, and is recorded with the run")
    r.add_argument("--cudnn-benchmark", action="store_true",
                   help="let cuDNN time its convolution algorithms and keep the fastest (GPU; faster, but the "
                        "chosen algorithm, hence the last bits of the results, may change between runs)")
    r.add_argument("--compile", action="store_true",
                   help="train through torch.compile (needs a C++ compiler on CPU, Triton on GPU; the same results "
                        "up to floating-point noise)")
    r.add_argument("--no-kernels", action="store_true",
                   help="train with the plain PyTorch layers only, without mer-bench's CPU fast paths (STSTNet's "
                        "fused stem, faster dropout masks, fused Adam: the same results up to floating-point noise; "
                        "see mer_bench/kernels). Recorded with the run")
    r.add_argument("--executor", choices=["local", "ray"], default="local",
                   help="local (default): folds one after another here; ray: each fold a Ray task (pip install "
                        "'mer-bench[ray]'; see mer_bench/pipeline/executors.py)")
    r.add_argument("--ray-address", default=None,
                   help="Ray cluster to use (HOST:PORT, ray://HOST:10001 or auto); default: start a local Ray "
                        "instance")
    r.add_argument("--ray-cpus", type=float, default=1,
                   help="CPUs each fold task requests, and its torch threads (default 1)")
    r.add_argument("--ray-gpus", type=float, default=None, help="GPUs each fold task requests (default: 1 with "
                                                                  "--device cuda, else 0)")
    r.add_argument("--ray-runtime-env", default=None, metavar="JSON",
                   help="Ray runtime_env for the workers (a JSON object or a JSON file), e.g. "
                        "'{\"pip\": [\"my-mer-plugin\"]}' to install a plugin on every worker")
    r.add_argument("--ray-retries", type=int, default=2,
                   help="times Ray re-runs a fold whose worker died (default 2); a fold that still fails is "
                        "reported, and the others are stored")
    r.add_argument("--folds", dest="max_folds", type=int, default=None, metavar="K",
                   help="smoke run: train only the first K folds (the run is stored as partial, never shown on a "
                        "board, and the same command without --folds resumes it)")
    r.add_argument("--save-models", default=None, metavar="DIR",
                   help="save each fold's trained model as DIR/<run_id>/fold-<k>.pt (weights and metadata; "
                        "apply one with mer-bench predict --model)")
    add_json(r)
    r.set_defaults(handler=main)


def main(args) -> int:
    from mer_bench.pipeline import prepare
    from mer_bench.runtime import resolve_device
    from mer_bench.store import Store

    if args.ray_cpus <= 0 or (args.ray_gpus is not None and args.ray_gpus < 0) or args.ray_retries < 0:
        raise ValueError("--ray-cpus must be > 0, --ray-gpus >= 0 and --ray-retries >= 0")
    dataset_options = kv_options(args.dataset_overrides, "--dataset-set")
    if args.data_root is not None:
        dataset_options["data_root"] = args.data_root
    store = Store(args.store)  # an unwritable store fails here, before any work
    try:
        device = resolve_device(args.device) if args.executor == "local" else args.device  # ray: on the workers
        prep = prepare(args.method, args.protocol, args.dataset, args.seed, kv_options(args.overrides), args.preset,
                       dataset_options, kv_options(args.protocol_overrides, "--protocol-set"), args.selection)
        ray_options = {"address": args.ray_address, "num_cpus": args.ray_cpus, "num_gpus": args.ray_gpus,
                       "max_retries": args.ray_retries, "runtime_env": args.ray_runtime_env}
        results = execute_with_progress(prep, store, device, args.force, quiet=args.json, executor=args.executor,
                                        ray_options=ray_options, channels_last=args.channels_last,
                                        stack_folds=args.stack_folds, cudnn_benchmark=args.cudnn_benchmark,
                                        compile=args.compile, workers=args.workers, kernels=not args.no_kernels,
                                        max_folds=args.max_folds, save_models=args.save_models)
    finally:
        store.close()
    if args.json:
        print(json.dumps({"store": str(store.path), "results": [r.as_dict() for r in results]}, indent=2))
    else:
        print_results(results, store.path, dataset_options, prep)
        if args.save_models:
            print(f"models: {args.save_models}/<run_id>/fold-<k>.pt (apply one: mer-bench predict --model "
                  f"{args.save_models}/{results[0].spec.run_id}/fold-000.pt)")
    return 0


def execute_with_progress(prep, store, device, force, quiet=False, executor="local", ray_options=None,
                          channels_last=None, stack_folds=1, cudnn_benchmark=False, compile=False, workers=None,
                          kernels=True, max_folds=None, save_models=None):
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    from mer_bench.pipeline import execute

    console = Console(stderr=True)
    spec0 = prep.specs[0]
    n_folds = len(prep.folds[spec0.seed])
    total = min(n_folds, max_folds or n_folds) * len({s.seed for s in prep.specs})
    if not quiet:
        leak = ""
        if any(s.selection != "last" for s in prep.specs):
            leak = " [red](LEAKY: the epoch is chosen on each test subject's labels)[/]"
        elif spec0.leaky:
            leak = " [red](LEAKY protocol)[/]"
        console.print(f"[bold]{spec0.method}[/] on [bold]{spec0.dataset}[/] under [bold]{spec0.protocol}[/]"
                      f"{leak}: {len({s.seed for s in prep.specs})} seed(s) x {n_folds} "
                      f"folds on {device}; preset {spec0.preset or 'none (defaults)'}; {params_text(spec0.params)}",
                      highlight=False)
        if stack_folds > 1 and str(device).startswith("cpu"):
            console.print("[yellow]note:[/] --stack-folds is meant for a GPU that one fold cannot fill; on the "
                          "development CPU, stacked training was slower than fold by fold (measure it here: "
                          f"mer-bench bench --method {spec0.method} --stack-folds {stack_folds} --device cpu)",
                          highlight=False)
    import time

    clock = {"t0": None, "trained": 0, "skipped": 0, "epoch": 0.0}

    def eta_text() -> str:
        """``ETA 1:02:03`` from the wall time so far and the share of the folds still to train done
        (the current fold's epochs included), so it appears during the first fold; ``ETA --`` before."""
        to_train = total - clock["skipped"]
        done = clock["trained"] + clock["epoch"]
        if clock["t0"] is None or to_train <= 0 or done <= 0:
            return "ETA --"
        left = (time.monotonic() - clock["t0"]) * max(0.0, to_train - done) / done
        return f"ETA {int(left // 3600)}:{int(left % 3600 // 60):02d}:{int(left % 60):02d}"

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TextColumn("{task.fields[eta]}"),
                  console=console, transient=False, disable=quiet) as progress:
        folds_task = progress.add_task("folds", total=total, eta="ETA --")
        epoch_task = progress.add_task("", total=1, visible=False, eta="")

        def on_fold(spec, i, n, name, status):
            if status == "start":
                if clock["t0"] is None:
                    clock["t0"] = time.monotonic()
                what = f"fold {i + 1}/{n} ({name})" if stack_folds == 1 else f"folds up to {i + 1}/{n} (stacked)"
                progress.update(folds_task, description=f"seed {spec.seed} {what}")
                progress.reset(epoch_task, total=1, description="", visible=False)
            else:
                clock["skipped" if status == "skipped" else "trained"] += 1
                clock["epoch"] = 0.0
                progress.advance(folds_task)
            progress.update(folds_task, eta=eta_text())

        def on_progress(desc, done, of):
            clock["epoch"] = min(1.0, done / of) if of else 0.0
            progress.update(epoch_task, description=f"  {desc}", completed=done, total=of, visible=True)
            progress.update(folds_task, eta=eta_text())

        try:
            return execute(prep, store, device=device, force=force, on_fold=on_fold, on_progress=on_progress,
                           executor=executor, ray_options=ray_options, channels_last=channels_last,
                           stack_folds=stack_folds, cudnn_benchmark=cudnn_benchmark, compile=compile,
                           workers=workers, kernels=kernels, max_folds=max_folds, save_models=save_models)
        finally:
            progress.update(epoch_task, visible=False)


def _folds_of(result) -> range:
    """The protocol's folds of a result's run (``n_folds`` of a partial result is what it trained)."""
    return range(getattr(result, "total_folds", None) or result.n_folds)


def params_text(params: dict) -> str:
    """``"params epochs=800, lr=5e-05"`` for a run header (``"no hyper-parameters"`` when empty)."""
    if not params:
        return "no hyper-parameters"
    return "params " + ", ".join(f"{k}={v}" for k, v in params.items())


def floor_hint(results, dataset_options: dict | None = None) -> str | None:
    """The ``chance level ...; for the empirical floor run ...`` line under a run's scores: the
    chance run of the same dataset, its options and protocol (``None`` for a run of a floor
    itself, i.e. a method that sees no input)."""
    from mer_bench.commands import mer_bench_command
    from mer_bench.registry import METHODS

    r0 = results[0]
    s0 = r0.spec
    n_classes = len(r0.scores["Full"]["per_class"]) if "Full" in r0.scores else 0
    if not n_classes:
        return None
    line = f"chance level: UAR {1 / n_classes:.4f}"
    if METHODS.get(s0.method).info.representation == "none":
        return line + "."
    args = ["run", "--method", "chance", "--protocol", s0.protocol, "--dataset", s0.dataset]
    for key, value in sorted((dataset_options if dataset_options is not None else s0.dataset_options).items()):
        args += ["--data-root", value] if key == "data_root" else ["--dataset-set", f"{key}={value}"]
    for key, value in sorted(s0.protocol_options.items()):
        args += ["--protocol-set", f"{key}={value}"]
    seeds = sorted({r.spec.seed for r in results})
    for seed in seeds if seeds != [0] else []:
        args += ["--seed", seed]
    return line + f"; for the empirical floor run `{mer_bench_command(*args)}`."


def chance_floor(prep, seed: int) -> dict | None:
    """The ``chance`` method's pooled scores (``Full``) on ``prep``'s folds of ``seed``, each fold
    seeded as the runner seeds it: exactly what ``mer-bench run --method chance`` with the same
    dataset, protocol and seed stores, computed here without training or storing (milliseconds).
    ``None`` when the plan has no folds for ``seed``."""
    import pandas as pd

    from mer_bench.metrics import run_metrics
    from mer_bench.registry import METHODS

    folds = prep.folds.get(seed)
    if not folds:
        return None
    chance = METHODS.get("chance")
    table = prep.dataset.table()
    parts = []
    for k, fold in enumerate(folds):
        model = chance(random_state=seed * 1000 + k).fit(prep.dataset.samples("none", fold.train))
        pred = model.predict(prep.dataset.samples("none", fold.test, with_labels=False))
        rows = table.iloc[fold.test]
        parts.append(pd.DataFrame({"dataset": rows["dataset"].to_numpy(), "y_true": rows["label"].to_numpy(),
                                   "y_pred": pred}))
    return run_metrics(pd.concat(parts, ignore_index=True), tuple(prep.dataset.classes))["Full"]


def print_results(results, store_path, dataset_options: dict | None = None, prep=None) -> None:
    """The scores of a run as a table that fits 80 columns (the selection, when every row shares
    it, goes in the title), then the chance level, the run ids and the store.

    ``dataset_options``: the options given on the command line (for the floor's command; default:
    those recorded in the run's identity). ``prep``: the run's plan; with it, each seed's chance
    floor on the same folds (:func:`chance_floor`) is a row of the table, beside the run's scores."""
    from rich.console import Console
    from rich.table import Table

    from mer_bench.leaderboard import SUBSET_NAMES

    console = Console()
    s0 = results[0].spec
    leaky = " — LEAKY protocol: subjects in both train and test" if s0.leaky and s0.selection == "last" else ""
    selections = {r.selection for r in results}
    one = len(selections) == 1
    partial = any(r.status == "partial" for r in results)
    what = (f"PARTIAL smoke run, {results[0].n_folds} of {len(_folds_of(results[0]))} folds" if partial
            else f"pooled over {results[0].n_folds} folds")
    title = (f"{s0.method} on {s0.dataset}, {s0.protocol}: {what}{leaky}"
             + (f"\nselection: {next(iter(selections))}" if one else ""))
    table = Table(title=title)
    cols = ("seed", *(() if one else ("selection",)), "subset", "UF1", "UAR", "accuracy", "n", "status")
    for col in cols:
        table.add_column(col, justify="left" if col in ("selection", "subset", "status") else "right", no_wrap=True)
    for r in results:
        for subset, sc in r.scores.items():
            table.add_row(str(r.spec.seed), *(() if one else (r.selection,)), SUBSET_NAMES.get(subset, subset),
                          f"{sc['uf1']:.4f}", f"{sc['uar']:.4f}", f"{sc['accuracy']:.4f}", str(sc["n"]), r.status)
    sees_input = prep is not None and prep.representation != "none"
    for seed in dict.fromkeys(r.spec.seed for r in results) if sees_input and not partial else ():
        floor = chance_floor(prep, seed)
        if floor is not None:
            table.add_row(str(seed), *(() if one else ("-",)), "Full", f"{floor['uf1']:.4f}", f"{floor['uar']:.4f}",
                          f"{floor['accuracy']:.4f}", str(floor["n"]), "chance floor", style="dim")
    console.print(table)
    absent = {c for r in results for sc in r.scores.values() for c in sc["absent_classes"]}
    if absent:
        console.print(f"[yellow]note:[/] classes absent from the ground truth were excluded from the means: "
                      f"{sorted(absent)}")
    hint = floor_hint(results, dataset_options)
    if hint and sees_input and not partial:
        hint = hint.replace("; for the empirical floor run", "; the chance floor rows are what") \
            .rstrip(".") + " stores."
    if hint:
        console.print(hint, highlight=False, markup=False)
    if partial:
        console.print("[yellow]note:[/] a partial run is never shown on a board; run the same command without "
                      "--folds to complete it (the trained folds are kept).", highlight=False)
    console.print(f"run ids: {', '.join(r.spec.run_id for r in results)}; store: {store_path}; fold time "
                  f"{sum(r.wall_time for r in results):.1f} s (summed over folds; workers overlap them)",
                  highlight=False)
