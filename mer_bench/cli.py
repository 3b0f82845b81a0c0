"""The ``mer-bench`` command line.

Importing this module is cheap: torch, pandas and rich load only inside the commands that need
them, so ``mer-bench --help`` answers at once.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from mer_bench import __version__

__all__ = ["main", "build_parser"]

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="mer-bench",
        description="Honest, reproducible benchmarks for micro-expression recognition.",
        epilog="Start with: mer-bench run --method meranet --protocol loso   (embedded synthetic dataset)")
    p.add_argument("--version", action="version", version=f"mer-bench {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

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
    r.add_argument("--data-root", default=None, help="folder of a real dataset (passed to the dataset loader)")
    r.add_argument("--seed", type=int, action="append", help="run seed; repeat for several (default: 0)")
    r.add_argument("--set", dest="overrides", action="append", metavar="KEY=VALUE",
                   help="override a method hyper-parameter, e.g. --set lr=1e-4 --set epochs=5")
    r.add_argument("--preset", default=None,
                   help="method hyper-parameter preset (e.g. paper, fast); default: the dataset's suggestion")
    r.add_argument("--dataset-set", dest="dataset_overrides", action="append", metavar="KEY=VALUE",
                   help="dataset option, e.g. --dataset-set n_subjects=6")
    r.add_argument("--protocol-set", dest="protocol_overrides", action="append", metavar="KEY=VALUE",
                   help="protocol option, e.g. --protocol-set test_size=0.2")
    r.add_argument("--device", default="auto", help="auto (CUDA when present, else CPU), cpu, cuda, cuda:N")
    r.add_argument("--store", default=None, help="results database (default: $MER_BENCH_STORE or "
                                                 "~/.local/share/mer-bench/results.sqlite)")
    r.add_argument("--force", action="store_true",
                   help="recompute even if the run is complete in the store (the old run is kept until the new "
                        "one is complete; an interrupted --force resumes when run again)")
    r.add_argument("--select-epoch", dest="selection", choices=["last", "best-on-test", "both"], default="last",
                   help="last (default): the fixed last epoch. best-on-test: keep, per LOSO subject, the epoch that "
                        "scores best on that subject's test clips -- the common published practice, which LEAKS the "
                        "test labels; such runs are labelled leaky everywhere. both: train once per fold and store "
                        "both runs (measures the inflation at the cost of one run)")
    r.add_argument("--channels-last", action="store_true",
                   help="channels-last memory format (same results up to floating-point noise; with "
                        "--set precision=bf16 the fast path: see mer-bench bench)")
    r.add_argument("--stack-folds", type=int, default=1, metavar="K",
                   help="train K folds at once with their networks stacked (torch.func): fills a GPU that one "
                        "fold of a small network cannot; the same results up to floating-point noise "
                        "(default 1: fold by fold; torch methods, local executor)")
    r.add_argument("--cudnn-benchmark", action="store_true",
                   help="let cuDNN time its convolution algorithms and keep the fastest (GPU; faster, but the "
                        "chosen algorithm, hence the last bits of the results, may change between runs)")
    r.add_argument("--compile", action="store_true",
                   help="train through torch.compile (needs a C++ compiler on CPU, Triton on GPU; the same results "
                        "up to floating-point noise)")
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
    r.add_argument("--json", action="store_true", help="print a machine-readable result on stdout")

    im = sub.add_parser("import", help="import published per-sample predictions (e.g. a MEGC log) into the store",
                        description="Check a published prediction log against a dataset and store it as an "
                                    "imported run, so it appears on leaderboards beside measured runs.")
    im.add_argument("file", help="the log file")
    im.add_argument("--format", default="megc-log", choices=["megc-log"],
                    help="megc-log: '<db> <subject>' opens each fold, then '<clip> <ground truth> <prediction>'")
    im.add_argument("--name", required=True, help="leaderboard name, e.g. ststnet-published")
    im.add_argument("--dataset", default="megc2019-flow", help="the dataset the log covers (default: megc2019-flow)")
    im.add_argument("--protocol", default="megc2019-cde", help="the protocol it follows (default: megc2019-cde)")
    im.add_argument("--data-root", default=None, help="folder of the dataset")
    im.add_argument("--leaky", action="store_true",
                    help="the published system chose its model on the test folds: label the run leaky")
    im.add_argument("--citation", default="", help="where the predictions come from")
    im.add_argument("--store", default=None)
    im.add_argument("--force", action="store_true", help="replace predictions already imported under --name")

    ls = sub.add_parser("list", help="list registered methods, protocols or datasets",
                        description="List registry entries, optionally filtered by a wildcard pattern.")
    ls.add_argument("kind", choices=["methods", "protocols", "datasets"])
    ls.add_argument("pattern", nargs="?", default=None, help="shell wildcard, e.g. 'meranet*' or '*3d*'")

    dc = sub.add_parser("data", help="check a dataset tree against its coding sheet, or count its classes",
                        description="mer-bench data check --dataset NAME --data-root PATH: report every problem of "
                                    "a dataset folder at once (exit status 0: usable; 1: problems found). "
                                    "mer-bench data stats --dataset NAME (--data-root PATH | --dataset-set sheet=FILE):"
                                    " clips, subjects and class counts under every class scheme.")
    dc.add_argument("action", choices=["check", "stats"])
    dc.add_argument("--dataset", required=True)
    dc.add_argument("--data-root", default=None)
    dc.add_argument("--dataset-set", dest="dataset_overrides", action="append", metavar="KEY=VALUE")

    pf = sub.add_parser("profile", help="parameters, FLOPs and train/inference throughput of a method",
                        description="Build METHOD's network at its input size and report parameters, forward "
                                    "FLOPs per sample (torch.utils.flop_counter) and training/inference "
                                    "throughput on the current device.")
    pf.add_argument("--method", required=True)
    pf.add_argument("--preset", default=None, help="hyper-parameter preset (default: the method's defaults)")
    pf.add_argument("--set", dest="overrides", action="append", metavar="KEY=VALUE",
                    help="override a hyper-parameter, e.g. --set width=16 --set frames=8")
    pf.add_argument("--device", default="auto", help="auto (CUDA when present, else CPU), cpu, cuda, cuda:N")
    pf.add_argument("--batch-size", type=int, default=None, help="throughput batch (default: the method's)")
    pf.add_argument("--seconds", type=float, default=2.0, help="time budget per throughput measurement")
    pf.add_argument("--json", action="store_true", help="print JSON on stdout")

    ab = sub.add_parser("ablate", help="run an ablation grid and write its table with intervals and tests",
                        description="Run every arm (a method, protocol and hyper-parameter values) and compare each "
                                    "with the first (the reference): intervals, paired tests with Holm, Bayesian "
                                    "signed-rank. Presets: --ablation kernel|shared|attention|leakage.")
    ab.add_argument("--ablation", default=None, help="a preset: kernel, shared, attention, leakage")
    ab.add_argument("--method", default=None, help="the method of a --grid ablation (or of --ablation leakage)")
    ab.add_argument("--grid", action="append", metavar="KEY=V1,V2,...", help="hyper-parameter values to cross")
    ab.add_argument("--protocol", default="loso")
    ab.add_argument("--dataset", default=None)
    ab.add_argument("--data-root", default=None)
    ab.add_argument("--seed", type=int, action="append", help="seeds (repeatable; default 0)")
    ab.add_argument("--preset", default=None, help="hyper-parameter preset for every arm (default: the dataset's)")
    ab.add_argument("--set", dest="overrides", action="append", metavar="KEY=VALUE", help="shared overrides")
    ab.add_argument("--dataset-set", dest="dataset_overrides", action="append", metavar="KEY=VALUE")
    ab.add_argument("--device", default="auto")
    ab.add_argument("--store", default=None)
    ab.add_argument("--name", default=None, help="file name for --write (default: ablation-<preset>-<dataset>)")
    ab.add_argument("--write", action="store_true", help="write leaderboards/<name>.md")
    ab.add_argument("--out", default="leaderboards")

    sa = sub.add_parser("saliency", help="Grad-CAM maps and a localisation score against the synthetic motion masks",
                        description="Train each method once on a subject hold-out of the embedded dataset, compute "
                                    "Grad-CAM on the held-out clips, and score the share of saliency inside the "
                                    "known motion masks (with a subject-bootstrap interval); two methods are "
                                    "compared. Writes saliency-<method>.png and a markdown table.")
    sa.add_argument("--method", action="append", required=True, help="a neural method (repeat to compare two)")
    sa.add_argument("--preset", default="fast")
    sa.add_argument("--seed", type=int, default=0)
    sa.add_argument("--set", dest="overrides", action="append", metavar="KEY=VALUE")
    sa.add_argument("--dataset-set", dest="dataset_overrides", action="append", metavar="KEY=VALUE")
    sa.add_argument("--layer", default=None,
                    help="module to explain, e.g. layers.2 (default: the last feature-map stage)")
    sa.add_argument("--out", default="leaderboards")
    sa.add_argument("--json", action="store_true")

    rp = sub.add_parser("report", help="write the leaderboard markdown and its plots (PNG) for one dataset/protocol",
                        description="Write leaderboards/<name>.md with confusion matrices, per-subject score "
                                    "distributions and a critical-difference diagram as PNG files beside it.")
    rp.add_argument("--dataset", required=True)
    rp.add_argument("--protocol", required=True)
    rp.add_argument("--store", default=None)
    rp.add_argument("--out", default="leaderboards", help="folder (default: leaderboards)")

    bn = sub.add_parser("bench", help="training throughput: plain fp32 eager against the optimised path, same run",
                        description="Time training steps of METHOD's network on random inputs: plain (fp32, eager) "
                                    "and optimised (bf16 autocast, channels-last, cudnn.benchmark, optional "
                                    "torch.compile); prints both, the speed-up and the achieved FLOP/s.")
    bn.add_argument("--method", default="meranet")
    bn.add_argument("--preset", default=None, help="default: the method's defaults (MERANet: the paper's size)")
    bn.add_argument("--set", dest="overrides", action="append", metavar="KEY=VALUE")
    bn.add_argument("--batch-size", type=int, default=None)
    bn.add_argument("--steps", type=int, default=5)
    bn.add_argument("--warmup", type=int, default=2)
    bn.add_argument("--device", default="auto")
    bn.add_argument("--compile", action="store_true", help="torch.compile the optimised path")
    bn.add_argument("--stack-folds", type=int, default=None, metavar="K",
                    help="instead: train K folds fold by fold and stacked (torch.func), same run, and compare")
    bn.add_argument("--train-size", type=int, default=64, help="with --stack-folds: training samples per fold")
    bn.add_argument("--epochs", type=int, default=2, help="with --stack-folds: epochs per fold")
    bn.add_argument("--json", action="store_true")

    lb = sub.add_parser("leaderboard", help="render the leaderboard markdown from the results store")
    lb.add_argument("--protocol", default=None)
    lb.add_argument("--dataset", default=None)
    lb.add_argument("--store", default=None)
    lb.add_argument("--write", action="store_true", help="publish into leaderboards/<dataset>-<protocol>.md")
    lb.add_argument("--out", default="leaderboards", help="folder for --write (default: leaderboards)")
    return p


def _err(msg: str, level: str = "error") -> None:
    try:
        from rich.console import Console
        from rich.markup import escape

        colour = "red" if level == "error" else "yellow"
        Console(stderr=True, highlight=False).print(f"[bold {colour}]{level}:[/] {escape(msg)}", markup=True,
                                                    soft_wrap=True)
    except ImportError:  # pragma: no cover - rich missing
        print(f"{level}: {msg}", file=sys.stderr)


def _summary(obj) -> str:
    return getattr(obj, "summary", "") or ((obj.__doc__ or "").strip().splitlines() or [""])[0]


def _cmd_list(args) -> int:
    from rich.console import Console
    from rich.table import Table

    from mer_bench.registry import PluginLoadError, registry_for

    reg = registry_for(args.kind)
    names = reg.names(args.pattern)
    table = Table(title=f"{args.kind} ({len(names)})" + (f" matching {args.pattern!r}" if args.pattern else ""))
    for col in ("name", "origin", "details"):
        table.add_column(col)
    broken = {}
    for name in names:
        static = reg.static_attrs(name) if args.kind == "methods" else None  # no import: torch stays unloaded
        if static is not None and {"summary", "representation"} <= set(static["info"]):
            info = static["info"]
            cpu = "" if info.get("practical_on_cpu", True) else " [GPU advised]"
            inputs = " or ".join((info.get("representation", "?"), *info.get("accepts", ())))
            table.add_row(name, reg.origin(name), f"{info.get('summary', '')} — input: {inputs}{cpu}")
            continue
        try:
            obj = reg.get(name)
        except PluginLoadError as exc:
            broken[name] = str(exc)
            continue
        info = getattr(obj, "info", None)
        if info is not None:
            cpu = "" if info.practical_on_cpu else " [GPU advised]"
            inputs = " or ".join((info.representation, *getattr(info, "accepts", ())))
            details = f"{info.summary} — input: {inputs}{cpu}"
        elif hasattr(obj, "leaky"):
            details = ("LEAKY: subjects shared between train and test. " if obj.leaky else "") + _summary(obj)
        else:
            reps = ", ".join(getattr(obj, "representations", ()))
            details = _summary(obj) + (f" — provides: {reps}" if reps else "")
        table.add_row(name, reg.origin(name), details)
    console = Console()
    console.print(table)
    broken.update({k: v for k, v in reg.broken(load=False).items() if not args.pattern or k in names})
    for name, msg in broken.items():
        Console(stderr=True).print(f"[yellow]broken plugin[/] {name}: {msg}", markup=True, highlight=False)
    return 0


def _options(items, flag: str = "--set") -> dict:
    from mer_bench.method import parse_overrides

    return parse_overrides(items, flag)


def _cmd_run(args) -> int:
    from mer_bench.runtime import resolve_device
    from mer_bench.store import Store

    dataset_options = _options(args.dataset_overrides, "--dataset-set")
    if args.data_root is not None:
        dataset_options["data_root"] = args.data_root
    store = Store(args.store)  # an unwritable store fails here, before any work
    try:
        device = resolve_device(args.device) if args.executor == "local" else args.device  # ray: on the workers
        from mer_bench.pipeline import prepare

        dataset = args.dataset
        if dataset is None:
            from mer_bench.registry import PROTOCOLS

            dataset = getattr(PROTOCOLS.get(args.protocol), "default_dataset", None) or "synthetic"
        try:
            prep = prepare(args.method, args.protocol, dataset, args.seed, _options(args.overrides), args.preset,
                           dataset_options, _options(args.protocol_overrides, "--protocol-set"), args.selection)
        except TypeError as exc:  # a dataset/protocol option the constructor does not take
            raise ValueError(f"invalid dataset or protocol option: {exc}") from None
        if args.ray_cpus <= 0 or (args.ray_gpus is not None and args.ray_gpus < 0) or args.ray_retries < 0:
            raise ValueError("--ray-cpus must be > 0, --ray-gpus >= 0 and --ray-retries >= 0")
        ray_options = {"address": args.ray_address, "num_cpus": args.ray_cpus, "num_gpus": args.ray_gpus,
                       "max_retries": args.ray_retries, "runtime_env": args.ray_runtime_env}
        results = _execute_with_progress(prep, store, device if args.executor == "local" else args.device, args.force,
                                         quiet=args.json, executor=args.executor, ray_options=ray_options,
                                         channels_last=args.channels_last, stack_folds=args.stack_folds,
                                         cudnn_benchmark=args.cudnn_benchmark, compile=args.compile)
    finally:
        store.close()
    if args.json:
        print(json.dumps({"store": str(store.path), "results": [r.as_dict() for r in results]}, indent=2))
    else:
        _print_results(results, store.path)
    return 0


def _execute_with_progress(prep, store, device, force, quiet=False, executor="local", ray_options=None,
                           channels_last=False, stack_folds=1, cudnn_benchmark=False, compile=False):
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from mer_bench.pipeline import execute

    console = Console(stderr=True)
    spec0 = prep.specs[0]
    n_folds = len(prep.protocol.folds(prep.dataset.table(), spec0.seed))
    total = n_folds * len({s.seed for s in prep.specs})
    if not quiet:
        leak = ""
        if any(s.selection != "last" for s in prep.specs):
            leak = " [red](LEAKY: the epoch is chosen on each test subject's labels)[/]"
        elif spec0.leaky:
            leak = " [red](LEAKY protocol)[/]"
        console.print(f"[bold]{spec0.method}[/] on [bold]{spec0.dataset}[/] under [bold]{spec0.protocol}[/]"
                      f"{leak}: {len({s.seed for s in prep.specs})} seed(s) x {n_folds} "
                      f"folds on {device}; preset {spec0.preset or 'none (defaults)'}; params {spec0.params}",
                      highlight=False)
        if stack_folds > 1 and str(device).startswith("cpu"):
            console.print("[yellow]note:[/] --stack-folds is meant for a GPU that one fold cannot fill; on the "
                          "development CPU, stacked training was slower than fold by fold (measure it here: "
                          f"mer-bench bench --method {spec0.method} --stack-folds {stack_folds} --device cpu)",
                          highlight=False)
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=False, disable=quiet) as progress:
        folds_task = progress.add_task("folds", total=total)
        epoch_task = progress.add_task("", total=1, visible=False)

        def on_fold(spec, i, n, name, status):
            if status == "start":
                what = f"fold {i + 1}/{n} ({name})" if stack_folds == 1 else f"folds up to {i + 1}/{n} (stacked)"
                progress.update(folds_task, description=f"seed {spec.seed} {what}")
                progress.reset(epoch_task, total=1, description="", visible=False)
            else:
                progress.advance(folds_task)

        def on_progress(desc, done, of):
            progress.update(epoch_task, description=f"  {desc}", completed=done, total=of, visible=True)

        try:
            return execute(prep, store, device=device, force=force, on_fold=on_fold, on_progress=on_progress,
                           executor=executor, ray_options=ray_options, channels_last=channels_last,
                           stack_folds=stack_folds, cudnn_benchmark=cudnn_benchmark, compile=compile)
        finally:
            progress.update(epoch_task, visible=False)


def _print_results(results, store_path) -> None:
    from rich.console import Console
    from rich.table import Table

    from mer_bench.leaderboard import SUBSET_NAMES
    from mer_bench.registry import METHODS

    console = Console()
    s0 = results[0].spec
    leaky = " — LEAKY protocol: subjects in both train and test" if s0.leaky and s0.selection == "last" else ""
    table = Table(title=f"{s0.method} on {s0.dataset}, {s0.protocol}: pooled over {results[0].n_folds} folds{leaky}")
    for col in ("seed", "selection", "subset", "UF1", "UAR", "accuracy", "n", "status"):
        table.add_column(col, justify="left" if col in ("selection", "subset", "status") else "right")
    for r in results:
        sel = "last epoch" if r.spec.selection == "last" else "best on test (LEAKY)"
        if r.spec.selection == "last" and not METHODS.get(r.spec.method).info.supports_epoch_selection:
            sel = "n/a (no epochs)"
        for subset, sc in r.scores.items():
            table.add_row(str(r.spec.seed), sel, SUBSET_NAMES.get(subset, subset), f"{sc['uf1']:.4f}",
                          f"{sc['uar']:.4f}", f"{sc['accuracy']:.4f}", str(sc["n"]), r.status)
    console.print(table)
    absent = {c for r in results for sc in r.scores.values() for c in sc["absent_classes"]}
    if absent:
        console.print(f"[yellow]note:[/] classes absent from the ground truth were excluded from the means: "
                      f"{sorted(absent)}")
    n_classes = len(results[0].scores["Full"]["per_class"]) if results else 0
    if n_classes:
        console.print(f"chance level: UAR {1 / n_classes:.4f}; for the empirical floor run "
                      f"`mer-bench run --method chance --protocol {results[0].spec.protocol}`.", highlight=False)
    console.print(f"run ids: {', '.join(r.spec.run_id for r in results)}; store: {store_path}; wall time "
                  f"{sum(r.wall_time for r in results):.1f} s", highlight=False)


def _board_name(dataset: str | None, protocol: str | None) -> str:
    """File name of a published board: ``<protocol>`` when the dataset is the protocol's default,
    else ``<dataset>-<protocol>``."""
    from mer_bench.registry import PROTOCOLS

    default_ds = getattr(PROTOCOLS.get(protocol), "default_dataset", None) if protocol else None
    parts = (protocol,) if dataset and dataset == default_ds else (dataset, protocol)
    return "-".join(x for x in parts if x) or "leaderboard"


def _cmd_leaderboard(args) -> int:
    from mer_bench.leaderboard import leaderboard_rows, render_markdown, write_leaderboard
    from mer_bench.report import plot_files
    from mer_bench.store import Store

    with Store(args.store, readonly=True) as store:
        rows = leaderboard_rows(store, args.protocol, args.dataset)
    scope = " / ".join(x for x in (args.dataset, args.protocol) if x)
    name = _board_name(args.dataset, args.protocol)
    # plots written by `mer-bench report` beside the board stay linked
    plots = [(c, f) for c, f in plot_files(name) if (Path(args.out) / f).is_file()] if args.write else []
    md = render_markdown(rows, title="mer-bench leaderboard" + (f": {scope}" if scope else ""), plots=plots)
    if args.write:
        path = write_leaderboard(md, args.out, name)
        print(f"wrote {path}")
    else:
        print(md)
    return 0


def _cmd_ablate(args) -> int:
    from mer_bench.ablation import ablation_table, arms_for, expand_grid, render_ablation
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
    dataset_options = _options(args.dataset_overrides, "--dataset-set")
    if args.data_root is not None:
        dataset_options["data_root"] = args.data_root
    shared = _options(args.overrides)
    device = resolve_device(args.device)
    preds, commands, dataset, classes = [], [], None, None
    with Store(args.store) as store:
        for arm in arms:
            from mer_bench.registry import PROTOCOLS

            dataset = args.dataset or getattr(PROTOCOLS.get(arm.protocol), "default_dataset", None) or "synthetic"
            prep = prepare(arm.method, arm.protocol, dataset, seeds, {**shared, **arm.overrides}, args.preset,
                           dataset_options)
            results = _execute_with_progress(prep, store, device, False)
            preds.append([store.predictions(r.spec.run_id) for r in results])
            classes = prep.dataset.classes
            commands.append(arm.command(dataset, prep.specs[0].preset, seeds, shared,
                                        _options(args.dataset_overrides, "--dataset-set"), bool(args.data_root)))
    table = ablation_table(arms, preds, len(classes))
    name = args.name or f"ablation-{args.ablation or 'grid'}-{dataset}"
    title = f"Ablation: {args.ablation or ', '.join(args.grid)} ({dataset})"
    note = (f"Arms: {'; '.join(a.label for a in arms)}. Reference: {arms[0].label}. Seeds: "
            f"{', '.join(map(str, seeds))}.")
    if args.write:
        from mer_bench.ablation import plot_ablation

        Path(args.out).mkdir(parents=True, exist_ok=True)
        plot_ablation(table, title, Path(args.out) / f"{name}.png")
        md = render_ablation(table, title, commands, note, figure=f"{name}.png")
        print(f"wrote {write_leaderboard(md, args.out, name)}")
    else:
        print(render_ablation(table, title, commands, note))
    return 0


def _cmd_saliency(args) -> int:
    from mer_bench.commands import mer_bench_command
    from mer_bench.leaderboard import write_leaderboard
    from mer_bench.saliency import saliency_study

    if len(args.method) > 2:
        raise ValueError("give one method, or two to compare")
    res = saliency_study(args.method, args.preset, args.seed, args.out,
                         dataset_options=_options(args.dataset_overrides, "--dataset-set"),
                         overrides=_options(args.overrides),
                         layer=args.layer)
    if args.json:
        print(json.dumps(res, indent=2, default=str))
        return 0
    lines = ["# Saliency: Grad-CAM localisation on the embedded dataset", "",
             f"Each method is trained once on the training side of a subject hold-out (seed {res['seed']}) of the "
             f"synthetic dataset ({res['test_clips']} held-out clips from {res['test_subjects']} subjects) and "
             f"explained with Grad-CAM (Selvaraju et al., ICCV 2017) at {res['layer']}, for the predicted "
             "class. Localisation: the share of the saliency mass inside the clip's known motion mask (energy-based "
             f"pointing game), averaged over clips; chance (the masks' area share) is {res['mask_area']:.3f}. "
             "Intervals: 95 % subject-cluster bootstrap.", "",
             "| method | preset | localisation [95% CI] | accuracy on held-out clips |", "|---|---|---|---|"]
    for name, r in res["methods"].items():
        lines.append(f"| {name} | {args.preset} | {r['localisation']:.3f} [{r['ci'][0]:.3f}, {r['ci'][1]:.3f}] | "
                     f"{r['accuracy']:.3f} |")
    if "difference" in res:
        d = res["difference"]
        a, b = args.method
        lines += ["", f"{a} minus {b}: {d['a_minus_b']:+.3f} [{d['ci'][0]:+.3f}, {d['ci'][1]:+.3f}]."]
        if d["bayes"]:
            bayes = d["bayes"]
            lines[-1] += (f" Bayesian signed-rank over subjects (ROPE ±0.01): P({a} better) {bayes['p_a_better']:.2f}, "
                          f"P(equivalent) {bayes['p_equivalent']:.2f}, P({b} better) {bayes['p_b_better']:.2f}.")
    lines += ["", *[f"![{n}]({Path(r['figure']).name})" for n, r in res["methods"].items()], "",
              "Reproduce: `" + mer_bench_command(
                  "saliency", *[a for m in args.method for a in ("--method", m)], "--preset", args.preset,
                  "--seed", args.seed, *[a for o in args.overrides or [] for a in ("--set", o)],
                  *(["--layer", args.layer] if args.layer else [])) + "`", ""]
    name = "saliency-synthetic" if len(args.method) == 2 else f"saliency-synthetic-{args.method[0]}"
    if args.layer:
        name += f"-{args.layer}"
    print(f"wrote {write_leaderboard(chr(10).join(lines), args.out, name)}")
    return 0


def _cmd_bench(args) -> int:
    from mer_bench.bench import compare_paths
    from mer_bench.method import parse_overrides

    if args.steps < 1 or args.warmup < 0 or (args.batch_size is not None and args.batch_size < 1):
        raise ValueError("--steps and --batch-size must be >= 1 and --warmup >= 0")
    if args.stack_folds is not None:
        from mer_bench.bench import compare_stacking

        res = compare_stacking(args.method, folds=args.stack_folds, n_train=args.train_size, epochs=args.epochs,
                               preset=args.preset, overrides=parse_overrides(args.overrides or []),
                               batch_size=args.batch_size, device=args.device)
        if args.json:
            print(json.dumps(res, indent=2))
            return 0
        for path in ("fold-by-fold", "stacked"):
            r = res[path]
            print(f"{path:12s}: {r['samples_per_s']:9.1f} training samples/s ({r['seconds']:.2f} s for {res['folds']} "
                  f"folds x {res['n_train']} samples x {res['epochs']} epochs, batch {res['batch_size']}, input "
                  f"{'x'.join(map(str, res['input_shape']))}, {res['device']})")
        print(f"speed-up (stacked / fold by fold): {res['speedup']:.2f}x")
        return 0
    res = compare_paths(args.method, preset=args.preset, overrides=parse_overrides(args.overrides or []),
                        batch_size=args.batch_size, steps=args.steps, warmup=args.warmup, device=args.device,
                        compile=args.compile)
    if args.json:
        print(json.dumps(res, indent=2))
        return 0
    for path in ("plain", "optimised"):
        r = res[path]
        frac = "" if r["fraction_of_peak"] is None else f", {100 * r['fraction_of_peak']:.1f} % of the bf16 peak"
        print(f"{path:9s}: {r['samples_per_s']:8.2f} samples/s ({r['seconds_per_step']:.3f} s/step, batch "
              f"{r['batch_size']}, input {'x'.join(map(str, r['input_shape']))}, {r['device']}; "
              f"{r['tflops_achieved']:.3f} TFLOP/s{frac})")
    print(f"speed-up (optimised / plain): {res['speedup']:.2f}x")
    if res["cpu_allocator_tuned"]:
        print("both paths ran with the CPU allocator tuning that training uses (mer_bench.runtime.tune_cpu_allocator; "
              "MER_BENCH_MALLOC=default turns it off)")
    return 0


def _cmd_report(args) -> int:
    from mer_bench.report import write_report
    from mer_bench.store import Store

    if not args.dataset or not args.protocol:
        raise ValueError("mer-bench report needs --dataset and --protocol")
    with Store(args.store, readonly=True) as store:
        paths = write_report(store, args.dataset, args.protocol, args.out, _board_name(args.dataset, args.protocol))
    for p in paths:
        print(f"wrote {p}")
    return 0


def _cmd_data(args) -> int:
    from rich.console import Console

    from mer_bench.data import DatasetError
    from mer_bench.registry import DATASETS

    options = _options(args.dataset_overrides, "--dataset-set")
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
    from mer_bench.datasets.frames import CLASS_SCHEMES

    sheet = dataset.sheet_table()
    console.print(f"{name}: sheet {sheet['sheet'].iat[0]} ({sheet['sheet_version'].iat[0]}): {len(sheet)} clips, "
                  f"{sheet['subject'].nunique()} subjects; fixes applied: {len(sheet.attrs.get('fixes', []))}")
    counts = sheet["emotion"].value_counts()
    console.print("emotions: " + ", ".join(f"{e} {n}" for e, n in counts.items()))
    table = Table(title=f"{name}: class schemes")
    for col in ("scheme", "clips", "subjects", "classes"):
        table.add_column(col)
    for scheme, mapping in CLASS_SCHEMES[dataset.scheme_key].items():
        used = sheet[sheet["emotion"].isin(list(mapping))]
        per = used["emotion"].map(mapping).value_counts()
        classes = list(dict.fromkeys(mapping.values()))
        table.add_row(scheme, str(len(used)), str(used["subject"].nunique()),
                      ", ".join(f"{c} {int(per.get(c, 0))}" for c in classes))
    console.print(table)
    return 0


def _cmd_import(args) -> int:
    from rich.console import Console

    from mer_bench.commands import check_name
    from mer_bench.importers import import_predictions
    from mer_bench.leaderboard import SUBSET_NAMES
    from mer_bench.metrics import run_metrics
    from mer_bench.registry import DATASETS
    from mer_bench.store import Store

    options = {} if args.data_root is None else {"data_root": args.data_root}
    check_name(args.name)
    dataset = DATASETS.get(args.dataset)(**options)
    with Store(args.store) as store:
        res = import_predictions(store, args.file, args.name, dataset, args.protocol, args.format, leaky=args.leaky,
                                 citation=args.citation, force=args.force)
        scores = run_metrics(store.predictions(res.run_id), tuple(dataset.classes))
    console = Console()
    verb = "already imported" if res.status == "cached" else "imported"
    console.print(f"{verb} {args.name}: {res.n_samples} predictions in {res.n_folds} folds as run {res.run_id} "
                  f"(store {store.path})" + (" — labelled LEAKY" if args.leaky else ""), highlight=False)
    for subset, sc in scores.items():
        console.print(f"  {SUBSET_NAMES.get(subset, subset):9s} UF1 {sc['uf1']:.4f}  UAR {sc['uar']:.4f}  "
                      f"(macro-precision {sc['macro_precision']:.4f}, accuracy {sc['accuracy']:.4f}, n {sc['n']})",
                      highlight=False)
    return 0


def _cmd_profile(args) -> int:
    from mer_bench.method import parse_overrides
    from mer_bench.profile import profile_method

    if args.batch_size is not None and args.batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {args.batch_size}")
    res = profile_method(args.method, args.preset, parse_overrides(args.overrides or []), device=args.device,
                         batch_size=args.batch_size, seconds=args.seconds)
    if args.json:
        print(json.dumps(res, indent=2, default=str))
        return 0
    from rich.console import Console
    from rich.table import Table

    def num(v, fmt):
        return "n/a" if v is None else format(v, fmt)

    table = Table(title=f"profile: {res['method']}" + (f" (preset {res['preset']})" if res["preset"] else ""))
    table.add_column("quantity")
    table.add_column("mer-bench", justify="right")
    table.add_column("paper", justify="right")
    paper = res.get("paper", {})
    table.add_row("device", res["device"], "")
    table.add_row("input (representation)", f"{'x'.join(map(str, res['input_shape']))} ({res['representation']})", "")
    if "model_input_shape" in res:
        table.add_row("network input", "x".join(map(str, res["model_input_shape"])), "")
    table.add_row("parameters", num(res["parameters"], ","), num(paper.get("parameters"), ","))
    table.add_row("GFLOPs / sample (forward, 2 per MAC)", num(res["gflops_per_sample"], ".3f"),
                  num(paper.get("gflops"), ".2f"))
    if "train_samples_per_s" in res:
        table.add_row(f"train samples/s (batch {res['batch_size']})", f"{res['train_samples_per_s']:.1f}", "")
        table.add_row(f"inference samples/s (batch {res['batch_size']})", f"{res['infer_samples_per_s']:.1f}", "")
    if "features_per_s" in res:
        table.add_row("feature extraction samples/s", f"{res['features_per_s']:.1f}", "")
    Console().print(table)
    if paper:
        Console().print(f"paper figures: {paper['source']}; its FLOP convention is unknown (field notes 5.1)")
    if res.get("note"):
        Console().print(res["note"])
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    import sqlite3
    import warnings

    from mer_bench.data import DatasetError
    from mer_bench.method import MethodError, ParameterError
    from mer_bench.metrics import AbsentClassError
    from mer_bench.pipeline.executors import ExecutorError
    from mer_bench.protocol import ProtocolError
    from mer_bench.registry import RegistryError
    from mer_bench.store import StoreError

    def show_warning(message, category, filename, lineno, file=None, line=None):
        _err(str(message), level="warning")

    handlers = {"run": _cmd_run, "list": _cmd_list, "leaderboard": _cmd_leaderboard, "import": _cmd_import,
                "data": _cmd_data, "profile": _cmd_profile, "report": _cmd_report, "ablate": _cmd_ablate,
                "saliency": _cmd_saliency, "bench": _cmd_bench}
    previous = warnings.showwarning
    warnings.showwarning = show_warning
    debug = bool(os.environ.get("MER_BENCH_DEBUG"))
    hint = "  (set MER_BENCH_DEBUG=1 for a traceback)"
    try:
        return handlers[args.command](args)
    except (RegistryError, ParameterError, DatasetError, ProtocolError, StoreError, AbsentClassError,
            ValueError, ExecutorError, MethodError) as exc:
        if debug:
            raise
        _err(str(exc) + ("" if isinstance(exc, (RegistryError, ParameterError, StoreError)) else hint))
        return EXIT_USAGE
    except OSError as exc:  # an unreadable data root, a read-only --out folder, a full disk...
        if debug:
            raise
        _err(_os_error(exc) + hint)
        return EXIT_USAGE
    except sqlite3.Error as exc:
        if debug:
            raise
        _err(f"the results store failed: {type(exc).__name__}: {exc}" + hint)
        return EXIT_USAGE
    except KeyboardInterrupt:
        _err("interrupted. Completed folds are saved in the store; re-run the same command to resume.")
        return EXIT_INTERRUPTED
    finally:
        warnings.showwarning = previous


def _os_error(exc: OSError) -> str:
    """``cannot write /x/board.md: Permission denied`` from an OSError, naming every path it has."""
    import errno

    paths = " -> ".join(str(p) for p in (exc.filename, exc.filename2) if p is not None)
    reason = exc.strerror or str(exc) or type(exc).__name__
    advice = {errno.EACCES: "check the permissions of that path", errno.EPERM: "check the permissions of that path",
              errno.ENOSPC: "free some space; nothing finished was lost", errno.EROFS: "that file system is read-only",
              errno.ENOTDIR: "a part of that path is a file, not a folder",
              errno.EISDIR: "that path is a folder; give a file",
              errno.EEXIST: "a file is where a folder should be"}.get(exc.errno, "")
    return f"{paths + ': ' if paths else ''}{reason}" + (f" ({advice})" if advice else "")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
