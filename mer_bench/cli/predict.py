"""``mer-bench predict``."""

from __future__ import annotations

from mer_bench.cli.options import add_data_root, add_dataset_options, add_device

#: the preprocessing options of raw frame datasets a model's dataset options may carry
_PREPROCESSING = ("flow_method", "face_crop", "frames", "size", "clip_rule")


def add_parser(sub) -> None:
    pr = sub.add_parser("predict", help="apply a saved model to clips of a dataset or to folders of frames",
                        description="Apply a model saved by `mer-bench train` or `mer-bench run --save-models` to "
                                    "the clips of a dataset (by default the model's own dataset; a fold's model "
                                    "predicts its held-out subjects) or to --clip folders of frames, through the "
                                    "same preprocessing, and print each clip's class probabilities. A model whose "
                                    "method, input representation or classes do not fit the data is refused.",
                        epilog="e.g. mer-bench predict --model models/ststnet/model.pt --clip my_clip_frames/ "
                               "  |  mer-bench predict --model models/<run_id>/ --format csv")
    pr.add_argument("--model", required=True, metavar="PATH",
                    help="a model file (.pt), or a folder of them (a run's fold models: each predicts its fold)")
    pr.add_argument("--dataset", default=None,
                    help="dataset whose clips to predict (default: the model's own, with its options)")
    add_data_root(pr)
    add_dataset_options(pr)
    pr.add_argument("--clip", action="append", default=None, metavar="PATH",
                    help="a folder of one clip's frames (onset..offset; names end in the frame number), or a .npy "
                         "array of the model's input representation; repeat for several")
    pr.add_argument("--apex", type=int, default=None, metavar="FRAME",
                    help="with --clip: the apex frame number (default: the middle frame)")
    pr.add_argument("--preprocess", action="append", default=None, metavar="KEY=VALUE",
                    help="with --clip folders: preprocessing as the raw loaders take it (flow_method=dis|tvl1|..., "
                         "face_crop=false, frames=16, size=112, clip_rule=apex|tim); default: the model's dataset "
                         "options where it has them, else the raw loaders' defaults (DIS flow, face crop). A model "
                         "trained on megc2019-flow saw TV-L1 flow images: flow_method=tvl1 is the closer match")
    pr.add_argument("--subjects", choices=["held-out", "all"], default=None,
                    help="held-out (default for a fold's model on its own dataset): only the subjects its fold "
                         "tested; all: every clip (a trained model's default; its training clips included)")
    pr.add_argument("--format", choices=["table", "json", "csv"], default="table",
                    help="table (default), or one record per clip as JSON / CSV on stdout")
    add_device(pr)
    pr.set_defaults(handler=main)


def main(args) -> int:
    from pathlib import Path

    import numpy as np

    from mer_bench import runtime
    from mer_bench.models import ModelError, load_model, model_files

    files = model_files(args.model)
    if args.clip and len(files) > 1:
        raise ModelError(f"{args.model} holds {len(files)} models; give one model file with --clip")
    device = runtime.resolve_device(args.device)
    records, notes = [], []
    datasets: dict = {}  # a run's fold models share one dataset (read once)
    with runtime.use(device=device):
        for path in files:
            method, meta = load_model(path)
            if args.clip:
                batch, facts = _clip_samples(args, meta)
                notes += facts
            else:
                batch, note = _dataset_samples(args, meta, datasets)
                if note and note not in notes:
                    notes.append(note)
            proba = method.predict_proba(batch) if hasattr(method, "predict_proba") else None
            pred = np.asarray(method.predict(batch))  # as the runner: labels from predict, beside predict_proba
            classes = list(meta["classes"])
            for k in range(len(batch)):
                rec = {"model": str(path), "sample_id": str(batch.sample_id[k]), "subject": str(batch.subject[k]),
                       "true": None if batch.y is None else classes[int(batch.y[k])], "pred": classes[int(pred[k])]}
                for j, c in enumerate(classes):
                    rec[f"p_{c}"] = None if proba is None else round(float(proba[k][j]), 6)
                records.append(rec)
    _print(records, args.format, notes, Path(args.model))
    return 0


def _clip_samples(args, meta):
    from pathlib import Path

    import numpy as np

    from mer_bench.cli.options import kv_options
    from mer_bench.data import DatasetError, Samples
    from mer_bench.datasets.frames import folder_representation

    rep = meta["representation"]
    arrays, ids, facts = [], [], []
    chosen = {k: v for k, v in (meta.get("dataset_options") or {}).items() if k in _PREPROCESSING}
    chosen.update(kv_options(args.preprocess, "--preprocess"))
    for clip in args.clip:
        path = Path(clip)
        if path.suffix == ".npy":
            if not path.is_file():
                raise DatasetError(f"no array at {path}")
            arr = np.load(path, allow_pickle=False).astype(np.float32)
        elif rep == "none":
            arr = np.zeros((0,), np.float32)
        else:
            arr, done = folder_representation(path, rep, apex=args.apex, **chosen)
            facts.append(f"{path}: frames {done['onset']}..{done['offset']} ({done['n_frames']}), apex {done['apex']}, "
                         f"face {'found and cropped' if done['face_crop'] and done['face_found'] else 'not cropped'}"
                         + (f", {done['flow_method']} flow" if rep == "flow" else "")
                         + (f", {done['frames']} frames at {done['size']}px" if rep == "clip" else ""))
        arrays.append(arr)
        ids.append(str(path))
    shapes = {a.shape for a in arrays}
    if len(shapes) > 1:
        raise DatasetError(f"the clips give inputs of different shapes {sorted(shapes)}")
    return (Samples(np.stack(arrays), None, np.array(["?"] * len(ids)), np.array(ids), tuple(meta["classes"]), rep),
            facts)


def _dataset_samples(args, meta, cache: dict):
    import json

    import numpy as np

    from mer_bench.cli.options import kv_options
    from mer_bench.models import check_model
    from mer_bench.registry import DATASETS

    name = args.dataset or meta["dataset"]
    options = kv_options(args.dataset_overrides, "--dataset-set") if args.dataset else dict(meta["dataset_options"])
    if args.dataset_overrides and not args.dataset:
        options.update(kv_options(args.dataset_overrides, "--dataset-set"))
    if args.data_root is not None:
        options["data_root"] = args.data_root
    key = json.dumps([name, options], sort_keys=True, default=str)
    if key not in cache:
        cache[key] = DATASETS.get(name)(**options)
    dataset = cache[key]
    rep = meta["representation"]
    if rep != "none" and rep not in dataset.representations:
        check_model(meta, representation=dataset.representations[0], where=f"dataset {name!r}")
    check_model(meta, classes=tuple(dataset.classes), where=f"dataset {name!r}")
    note = None
    if dataset.fingerprint() != meta.get("dataset_fingerprint") and name == meta["dataset"]:
        note = (f"{name} here differs from the data the model was trained on (fingerprint {dataset.fingerprint()} vs "
                f"{meta.get('dataset_fingerprint')})")
    table = dataset.table()
    held_out = meta.get("fold_index") is not None and name == meta["dataset"]
    subjects = args.subjects or ("held-out" if held_out else "all")
    if subjects == "held-out":
        if not meta.get("test_subjects"):
            raise ValueError("this model was trained on every subject (mer-bench train): it has no held-out "
                             "subjects; use --subjects all")
        index = np.flatnonzero(table["subject"].astype(str).isin(meta["test_subjects"]).to_numpy())
    else:
        index = np.arange(len(table))
        if meta.get("fold_index") is not None or meta.get("test_subjects") == []:
            note = (note + "; " if note else "") + ("the clips include the model's training clips: their scores "
                                                    "are not an evaluation")
    return dataset.samples(rep, index), note


def _print(records, fmt, notes, model) -> None:
    import json

    import pandas as pd

    if fmt == "json":
        print(json.dumps(records, indent=1))
        return
    df = pd.DataFrame(records)
    if fmt == "csv":
        print(df.to_csv(index=False), end="")
        return
    from rich.console import Console
    from rich.table import Table

    console = Console()
    probs = [c for c in df.columns if c.startswith("p_")]
    table = Table(title=f"predictions of {model}")
    cols = ["sample_id", *(["true"] if df["true"].notna().any() else []), "pred", *probs]
    for c in cols:
        table.add_column(c, justify="right" if c.startswith("p_") else "left")
    for r in df.itertuples(index=False):
        d = r._asdict()
        table.add_row(*[("" if d[c] is None or d[c] != d[c] else f"{d[c]:.3f}") if c.startswith("p_")
                        else str(d[c]) for c in cols])
    console.print(table)
    if df["true"].notna().all() and len(df):
        from mer_bench.metrics import pooled_scores

        classes = [c[2:] for c in probs]
        idx = {c: i for i, c in enumerate(classes)}
        sc = pooled_scores([idx[t] for t in df["true"]], [idx[p] for p in df["pred"]], len(classes), absent="exclude")
        console.print(f"{len(df)} clips: UF1 {sc['uf1']:.4f}, UAR {sc['uar']:.4f}, accuracy {sc['accuracy']:.4f}",
                      highlight=False)
    for n in notes:
        console.print(f"[yellow]note:[/] {n}", highlight=False)
