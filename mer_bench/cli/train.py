"""``mer-bench train``."""

from __future__ import annotations

from mer_bench.cli.options import add_data_root, add_dataset_options, add_device, add_overrides


def add_parser(sub) -> None:
    tr = sub.add_parser("train", help="train one model on every clip of a dataset and save it",
                        description="Train METHOD on every clip (every subject) of DATASET and save the model "
                                    "(weights, hyper-parameters, class names, input representation and provenance) "
                                    "as DIR/model.pt; apply it with `mer-bench predict --model DIR/model.pt`. "
                                    "Nothing is evaluated: a model trained on every subject has no test subject "
                                    "left (evaluate with `mer-bench run`).",
                        epilog="e.g. mer-bench train --method ststnet --dataset megc2019-flow --data-root DATA -o "
                               "models/ststnet")
    tr.add_argument("--method", required=True, help="registered method name (see `mer-bench list methods`)")
    tr.add_argument("--dataset", default="synthetic", help="registered dataset (default: synthetic, embedded)")
    add_data_root(tr)
    add_dataset_options(tr)
    add_overrides(tr)
    tr.add_argument("--preset", default=None,
                    help="method hyper-parameter preset (default: the dataset's suggestion, as `run`)")
    tr.add_argument("--seed", type=int, default=0, help="seed (the model is seeded seed*1000, as a run's first fold)")
    add_device(tr)
    tr.add_argument("-o", "--output", required=True, metavar="DIR", help="folder for model.pt and manifest.json")
    tr.set_defaults(handler=main)


def main(args) -> int:
    from pathlib import Path

    import torch
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from mer_bench import runtime
    from mer_bench.cli.options import kv_options
    from mer_bench.method import check_saves_models
    from mer_bench.models import save_model
    from mer_bench.pipeline import git_commit, prepare
    from mer_bench.pipeline.folds import fit_all
    from mer_bench.pipeline.runner import input_label

    options = kv_options(args.dataset_overrides, "--dataset-set")
    if args.data_root is not None:
        options["data_root"] = args.data_root
    prep = prepare(args.method, "loso", args.dataset, [args.seed], kv_options(args.overrides), args.preset, options)
    check_saves_models(prep.method_cls)
    spec = prep.specs[0]
    out = Path(args.output) / "model.pt"
    device = runtime.resolve_device(args.device)
    console = Console(stderr=True)
    table = prep.dataset.table()
    console.print(f"training {spec.method} on every clip of {spec.dataset} ({len(table)} clips, "
                  f"{table['subject'].nunique()} subjects) on {device}", highlight=False)
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console) as progress:
        task = progress.add_task("fit", total=None)

        def on_progress(desc, done, of):
            progress.update(task, description=desc, completed=done, total=of)

        with runtime.use(device=device, progress=on_progress):
            method = fit_all(prep.method_cls, spec.params, prep.dataset, prep.representation, args.seed)
    meta = {"method": spec.method, "params": spec.params, "preset": spec.preset, "classes": list(prep.dataset.classes),
            "representation": prep.representation, "input": input_label(prep, spec), "dataset": spec.dataset,
            "dataset_options": spec.dataset_options, "dataset_fingerprint": spec.dataset_fingerprint,
            "protocol": None, "seed": args.seed, "fold_index": None, "fold_name": None, "n_train": len(table),
            "test_subjects": [], "selection": "last epoch", "leaky": False, "run_id": None,
            "package_version": __import__("mer_bench").__version__, "git_commit": git_commit(),
            "torch_version": str(torch.__version__)}
    save_model(out, method.get_state(), meta)
    curve = getattr(method, "training_curve_", None)
    last = f"; last epoch: training loss {curve[-1][1]:.4f}, training accuracy {curve[-1][2]:.4f}" if curve else ""
    print(f"saved {out} ({spec.method}, classes {', '.join(prep.dataset.classes)}; input "
          f"{meta['input']}{last})")
    print(f"apply it: mer-bench predict --model {out} --dataset {spec.dataset}"
          + (" --data-root DATA" if "data_root" in options else "") + "   (or --clip FRAMES_FOLDER)")
    return 0
