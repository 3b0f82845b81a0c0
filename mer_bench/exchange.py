"""Per-sample predictions that travel: the ``mer-bench-predictions`` format, version 1.

A file holds one or more runs. Each run has its metadata (method, dataset, protocol, seed, model
selection, ``leaky``, hyper-parameters, dataset and protocol options, class names, provenance)
and one prediction per test clip: ``sample_id``, ``subject``, ``database``, ``fold_index``,
``y_true`` and ``y_pred`` as **class names**, and optionally ``proba``, the class probabilities
in the order of the run's ``classes``. The JSON Schema is ``mer_bench/schemas/predictions-v1.schema.json``
(:func:`schema`); every file written or read is validated against it.

Two encodings of the same content:

* JSON (``.json``): ``{"format": "mer-bench-predictions", "version": 1, "runs": [...]}``;
* CSV (``.csv``): comment lines ``# mer-bench-predictions version 1`` and ``# run K {JSON of run K
  without its predictions}``, then one row per clip and run with columns ``run, sample_id,
  subject, database, fold_index, y_true, y_pred, p_<class>...`` (``p_`` columns empty where a run
  has no probabilities). ``pandas.read_csv(path, comment="#")`` reads the rows.

``mer-bench export`` writes it (:func:`export_runs`, :func:`write_file`); ``mer-bench import
--format predictions`` reads it back (:func:`read_file`, :func:`import_runs`) and stores each run
as *imported*, after the same checks as a published log (:mod:`mer_bench.importers`): every clip
of the dataset exactly once, with the dataset's ground truth, under its own subject. An exported
imported run keeps its identity (run id, parameters, selection), so a round trip gives the
identical leaderboard row; a run computed by mer-bench becomes an imported run under a new
``--name`` (a registered method's name is never given to predictions made elsewhere).
"""

from __future__ import annotations

import hashlib
import io
import json
import math
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from mer_bench import __version__
from mer_bench.atomic import atomic_write_text
from mer_bench.data import DatasetError
from mer_bench.store import Store

__all__ = ["FORMAT", "VERSION", "schema", "validate", "export_runs", "write_file", "read_file", "import_runs",
           "ExchangeError", "PROVENANCE_COLUMNS"]

FORMAT = "mer-bench-predictions"
VERSION = 1
#: the ``runs`` columns an export carries under ``provenance``
PROVENANCE_COLUMNS = ("package_version", "git_commit", "torch_version", "device", "cpu", "threads", "kernels",
                      "wall_time", "created", "finished", "input", "representation", "overrides", "trains_epochs")


class ExchangeError(DatasetError):
    """A predictions file that cannot be read, breaks the schema or does not match its dataset; the
    message names the file and the place."""


def schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of version 1 of the format."""
    from importlib.resources import files

    return json.loads((files("mer_bench") / "schemas" / "predictions-v1.schema.json").read_text(encoding="utf-8"))


def validate(doc: Any, where: str = "predictions file") -> None:
    """Check ``doc`` against :func:`schema` and the rules a schema cannot say (labels among the
    run's classes, ``proba`` of the classes' length and summing to 1, each clip once per run).

    Raises:
        ExchangeError: the first problem, with its place (``runs/0/predictions/12/y_pred``).
    """
    import jsonschema

    validator = jsonschema.Draft202012Validator(schema())
    error = next(iter(sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path))), None)
    if error is not None:
        place = "/".join(str(p) for p in error.absolute_path) or "top level"
        raise ExchangeError(f"{where}: {place}: {error.message}")
    for k, run in enumerate(doc["runs"]):
        classes = run["classes"]
        seen: set[str] = set()
        for i, p in enumerate(run["predictions"]):
            at = f"{where}: runs/{k}/predictions/{i}"
            for key in ("y_true", "y_pred"):
                if p[key] not in classes:
                    raise ExchangeError(f"{at}/{key}: {p[key]!r} is not one of the run's classes {classes}")
            if p["sample_id"] in seen:
                raise ExchangeError(f"{at}: clip {p['sample_id']} appears twice in the run")
            seen.add(p["sample_id"])
            proba = p.get("proba")
            if proba is not None and (len(proba) != len(classes) or abs(sum(proba) - 1) > 1e-3):
                raise ExchangeError(f"{at}/proba: {len(proba)} probabilities summing to {sum(proba):.4g}; expected "
                                    f"{len(classes)} (one per class) summing to 1")


def _jsonable(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if hasattr(v, "item") and not isinstance(v, (list, dict, str)):
        return _jsonable(v.item())
    return v


def export_runs(store: Store, run_ids: list[str]) -> dict[str, Any]:
    """The file content (a dict, validated) of the complete runs ``run_ids`` of ``store``.

    Raises:
        ExchangeError: an unknown or incomplete run.
    """
    runs = store.runs(None)
    out = []
    for run_id in run_ids:
        match = runs[runs["run_id"] == run_id]
        if match.empty:
            raise ExchangeError(f"no run {run_id!r} in {store.path} (see `mer-bench leaderboard`'s provenance section "
                                f"for run ids)")
        run = match.iloc[0]
        if run["status"] != "complete":
            raise ExchangeError(f"run {run_id} in {store.path} is not complete ({run['status']}); finish it first")
        classes = list(run["classes"])
        preds = store.predictions(run_id)
        folds = store.folds(run_id)
        provenance = {c: _jsonable(run[c]) for c in PROVENANCE_COLUMNS if c in run.index and _present(run[c])}
        for c in ("threads", "trains_epochs"):  # integer columns (float when some run lacks them)
            if c in provenance:
                provenance[c] = int(provenance[c])
        params = run["params"]
        item = {
            "run_id": run_id, "config_hash": run["config_hash"], "method": run["method"], "dataset": run["dataset"],
            "protocol": run["protocol"], "seed": int(run["seed"]), "preset": None if not _present(run["preset"])
            else run["preset"], "params": params, "dataset_options": run["dataset_options"],
            "dataset_fingerprint": run["dataset_fingerprint"], "protocol_options": run["protocol_options"],
            "classes": classes, "leaky": bool(run["leaky"]), "selection": run["selection"],
            "selection_code": run["selection_code"] if _present(run.get("selection_code")) else None,
            "imported": bool(run["imported"]),
            **({"citation": params["citation"]} if run["imported"] and params.get("citation") else {}),
            "provenance": provenance,
            "folds": [{"fold_index": int(f.fold_index), "fold_name": str(f.fold_name), "n_train": int(f.n_train),
                       "wall_time": _jsonable(float(f.wall_time))} for f in folds.itertuples()],
            "predictions": [{"sample_id": str(p.sample_id), "subject": str(p.subject), "database": str(p.dataset),
                             "fold_index": int(p.fold_index), "y_true": classes[int(p.y_true)],
                             "y_pred": classes[int(p.y_pred)],
                             "proba": None if p.proba is None else [float(v) for v in p.proba]}
                            for p in preds.itertuples()],
        }
        out.append(item)
    doc = {"format": FORMAT, "version": VERSION,
           "exported": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
           "exported_by": f"mer-bench {__version__}", "runs": out}
    validate(doc, "export")
    return doc


def _present(v: Any) -> bool:
    return v is not None and not (isinstance(v, float) and v != v)


def to_csv(doc: dict[str, Any]) -> str:
    """The CSV encoding of ``doc`` (see the module docstring)."""
    lines = [f"# {FORMAT} version {VERSION}"]
    classes: list[str] = []
    for run in doc["runs"]:
        classes += [c for c in run["classes"] if c not in classes]
    rows = []
    for k, run in enumerate(doc["runs"]):
        meta = {key: v for key, v in run.items() if key != "predictions"}
        lines.append(f"# run {k} " + json.dumps(meta, sort_keys=True, ensure_ascii=False))
        for p in run["predictions"]:
            proba = dict(zip(run["classes"], p.get("proba") or []))
            rows.append({"run": k, "sample_id": p["sample_id"], "subject": p.get("subject", ""),
                         "database": p.get("database", ""), "fold_index": p["fold_index"], "y_true": p["y_true"],
                         "y_pred": p["y_pred"], **{f"p_{c}": proba.get(c) for c in classes}})
    buf = io.StringIO()
    pd.DataFrame(rows).to_csv(buf, index=False, float_format="%.6g")
    return "\n".join(lines) + "\n" + buf.getvalue()


def write_file(doc: dict[str, Any], path: str | Path, fmt: str | None = None) -> Path:
    """Write ``doc`` as JSON or CSV (``fmt``; default: from the suffix, JSON otherwise), atomically."""
    path = Path(path)
    fmt = fmt or ("csv" if path.suffix.lower() == ".csv" else "json")
    if fmt not in ("json", "csv"):
        raise ValueError(f"export format must be json or csv, got {fmt!r}")
    text = json.dumps(doc, indent=1, ensure_ascii=False) + "\n" if fmt == "json" else to_csv(doc)
    atomic_write_text(path, text)
    return path


def _from_csv(text: str, where: str) -> dict[str, Any]:
    head = [ln for ln in text.splitlines() if ln.startswith("#")]
    if not head or head[0].split()[1:] != [FORMAT, "version", str(VERSION)]:
        raise ExchangeError(f"{where}: the first line must be '# {FORMAT} version {VERSION}'")
    metas: dict[int, dict] = {}
    for ln in head[1:]:
        parts = ln[1:].strip().split(" ", 2)
        if len(parts) != 3 or parts[0] != "run" or not parts[1].isdigit():
            raise ExchangeError(f"{where}: comment line {ln[:60]!r} is not '# run K {{...}}'")
        try:
            metas[int(parts[1])] = json.loads(parts[2])
        except ValueError as exc:
            raise ExchangeError(f"{where}: run {parts[1]}'s metadata is not JSON: {exc}") from None
    try:
        table = pd.read_csv(io.StringIO(text), comment="#", dtype={"sample_id": str, "subject": str, "database": str,
                                                                    "y_true": str, "y_pred": str},
                            keep_default_na=False)
    except (ValueError, pd.errors.ParserError) as exc:
        raise ExchangeError(f"{where}: unreadable CSV rows: {exc}") from None
    need = {"run", "sample_id", "fold_index", "y_true", "y_pred"}
    if not need <= set(table.columns):
        raise ExchangeError(f"{where}: columns {sorted(need - set(table.columns))} are missing")
    runs = []
    for k in sorted(metas):
        meta = dict(metas[k])
        rows = table[table["run"] == k]
        preds = []
        for r in rows.to_dict("records"):
            proba = [r.get(f"p_{c}") for c in meta.get("classes", [])]
            proba = [None if v == "" else float(v) for v in proba]
            p = {"sample_id": r["sample_id"], "fold_index": int(r["fold_index"]), "y_true": r["y_true"],
                 "y_pred": r["y_pred"], "proba": None if not proba or any(v is None for v in proba) else proba}
            for key in ("subject", "database"):
                if r.get(key, "") != "":
                    p[key] = str(r[key])
            preds.append(p)
        meta["predictions"] = preds
        runs.append(meta)
    unknown = set(table["run"]) - set(metas)
    if unknown:
        raise ExchangeError(f"{where}: rows of run(s) {sorted(unknown)} have no '# run K' metadata line")
    return {"format": FORMAT, "version": VERSION, "runs": runs}


def read_file(path: str | Path) -> dict[str, Any]:
    """Read and validate a predictions file (JSON, or CSV when its first line is the CSV marker).

    Raises:
        ExchangeError: a missing or unreadable file, or content that breaks the format.
    """
    path = Path(path)
    if not path.is_file():
        raise ExchangeError(f"predictions file {path} not found")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ExchangeError(f"cannot read predictions file {path}: {exc}") from None
    if text.lstrip().startswith("#"):
        doc = _from_csv(text, str(path))
    else:
        try:
            doc = json.loads(text)
        except ValueError as exc:
            raise ExchangeError(f"{path} is neither a mer-bench predictions JSON file nor its CSV form: "
                                f"{exc}") from None
    validate(doc, str(path))
    return doc


def import_runs(store: Store, doc: dict[str, Any], dataset_for, name: str | None = None, force: bool = False,
                where: str = "predictions file") -> list[tuple[str, str, int]]:
    """Store the runs of a validated ``doc`` as imported runs; returns ``(run_id, status, n)`` per
    run, ``status`` ``imported`` or ``cached`` (the same run is already there).

    Args:
        dataset_for: ``dataset_for(name, options) -> Dataset``: the dataset a run covers, built
            here (with the user's ``--data-root``), whose table is the reference.
        name: the leaderboard name of runs computed by mer-bench (required for them: a registered
            method's name is never given to predictions made elsewhere); an imported run keeps its
            own name unless ``name`` is given.
        force: replace runs already imported under the same name, dataset and protocol.

    Raises:
        ExchangeError: a run whose classes, fingerprint, clips, subjects or ground truth differ
            from the dataset's, that misses clips, or a name that is a registered method.
        ValueError: a bad name, or other predictions already imported under it (without ``force``).
    """
    from mer_bench.commands import check_name
    from mer_bench.pipeline.plan import config_hash
    from mer_bench.registry import METHODS, PROTOCOLS

    results = []
    for k, run in enumerate(doc["runs"]):
        at = f"{where}: run {k} ({run['method']})"
        label = name or run["method"]
        check_name(label, "--name" if name else "the run's method name")
        if label in METHODS:
            raise ExchangeError(f"{at}: {label!r} is a registered method; predictions made elsewhere are stored under "
                                f"their own name: give --name (e.g. --name {label}-submitted)")
        PROTOCOLS.get(run["protocol"])
        dataset = dataset_for(run["dataset"], dict(run.get("dataset_options") or {}))
        classes = list(dataset.classes)
        if list(run["classes"]) != classes:
            raise ExchangeError(f"{at}: classes {run['classes']} differ from {run['dataset']}'s {classes} (same names "
                                f"in the same order)")
        fingerprint = run.get("dataset_fingerprint")
        if fingerprint and fingerprint != dataset.fingerprint():
            raise ExchangeError(f"{at}: made on another version of {run['dataset']} (fingerprint {fingerprint}, here "
                                f"{dataset.fingerprint()}); its clips or labels differ from the data here")
        rows = _match(run, dataset.table(), classes, at)
        keep_identity = bool(run.get("imported")) and name is None and str(run.get("run_id", "")).endswith("-imported")
        if keep_identity:
            params, run_id, cfg = run["params"], run["run_id"], run["config_hash"]
        else:
            digest = hashlib.sha256(json.dumps(run, sort_keys=True).encode()).hexdigest()[:16]
            params = {"format": "predictions", "source_run": run.get("run_id", ""), "source_method": run["method"],
                      "sha256": digest, "citation": run.get("citation", "")}
            cfg = config_hash(label, params, dataset.name, dataset.options(), dataset.fingerprint(), run["protocol"],
                              run.get("protocol_options") or {})
            run_id = f"{cfg}-imported"
        runs = store.runs(None)
        same = runs[(runs["method"] == label) & (runs["imported"] == 1) & (runs["dataset"] == dataset.name)
                    & (runs["protocol"] == run["protocol"])]
        if run_id in set(runs["run_id"]):
            results.append((run_id, "cached", len(rows)))
            continue
        if len(same) and not force:
            raise ValueError(f"other predictions are already imported as {label!r} ({', '.join(same['run_id'])}); "
                             f"use another --name, or --force to replace them")
        fold_names = {f["fold_index"]: f for f in run.get("folds") or []}
        folds = []
        for fold_index, g in rows.groupby("fold_index", sort=True):
            f = fold_names.get(int(fold_index), {})
            folds.append((int(fold_index), f.get("fold_name") or "/".join(sorted(set(g["subject"]))),
                          int(f.get("n_train", len(rows) - len(g))),
                          [(r.sample_id, r.subject, r.dataset, int(r.y_true), int(r.y_pred), r.proba)
                           for r in g.itertuples()]))
        selection = run["selection"] if keep_identity else f"{run['selection']} (as submitted)"
        meta = {"run_id": run_id, "config_hash": cfg, "method": label, "dataset": dataset.name,
                "protocol": run["protocol"], "seed": int(run.get("seed", 0)), "preset": run.get("preset"),
                "params": params, "dataset_options": dataset.options(), "dataset_fingerprint": dataset.fingerprint(),
                "protocol_options": run.get("protocol_options") or {}, "classes": classes,
                "leaky": int(bool(run["leaky"])), "imported": 1, "n_folds": len(folds), "selection": selection}
        store.write_imported(meta, folds, replace=list(same["run_id"]) if force else [])
        results.append((run_id, "imported", len(rows)))
    return results


def _match(run: dict[str, Any], table: pd.DataFrame, classes: list[str], at: str) -> pd.DataFrame:
    """The run's predictions joined to the dataset table: every clip once, its subject and ground
    truth the dataset's; rows ``sample_id, subject, dataset, y_true, y_pred, proba, fold_index``."""
    by_id = {sid: i for i, sid in enumerate(table["sample_id"])}
    index = {c: i for i, c in enumerate(classes)}
    rows, seen = [], set()
    for n, p in enumerate(run["predictions"]):
        i = by_id.get(p["sample_id"])
        where = f"{at}, prediction {n} ({p['sample_id']})"
        if i is None:
            raise ExchangeError(f"{where}: no such clip in {run['dataset']}")
        subject, db = str(table["subject"].iat[i]), str(table["dataset"].iat[i])
        if "subject" in p and str(p["subject"]) != subject:
            raise ExchangeError(f"{where}: subject {p['subject']!r}, but the dataset's is {subject!r}")
        if "database" in p and str(p["database"]) != db:
            raise ExchangeError(f"{where}: database {p['database']!r}, but the dataset's is {db!r}")
        truth = classes[int(table["label"].iat[i])]
        if p["y_true"] != truth:
            raise ExchangeError(f"{where}: ground truth {p['y_true']!r} differs from the dataset's {truth!r}")
        seen.add(i)
        proba = p.get("proba")
        rows.append({"sample_id": p["sample_id"], "subject": subject, "dataset": db, "y_true": index[p["y_true"]],
                     "y_pred": index[p["y_pred"]], "fold_index": int(p["fold_index"]),
                     "proba": None if proba is None else [round(float(v), 6) for v in proba]})
    missing = [table["sample_id"].iat[i] for i in range(len(table)) if i not in seen]
    if missing:
        raise ExchangeError(f"{at}: covers {len(seen)} of {run['dataset']}'s {len(table)} clips; missing: "
                            f"{', '.join(missing[:10])}" + (" ..." if len(missing) > 10 else ""))
    return pd.DataFrame(rows)
