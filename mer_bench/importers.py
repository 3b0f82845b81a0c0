"""Importing published per-sample predictions into the results store.

Format ``megc-log`` (the MEGC 2019 guideline; STSTNet's ``STSTNet_logfile.txt`` follows it): a
line ``<db> <subject>`` opens each LOSO fold, then one line ``<clip> <ground truth> <prediction>``
per test clip of that subject, with labels as class indices (MEGC: 0 negative, 1 positive,
2 surprise). CRLF or LF line endings; blank lines are ignored.

Imported predictions are checked against the dataset they claim to cover before anything is
written: every clip must exist (names normalised as the dataset does), sit under its own
subject's header, appear once, carry the dataset's ground truth, and the log must cover every
clip of the dataset. Then the whole run is written in one transaction, marked ``imported``, so
it sits on the leaderboard beside measured runs and a failed import leaves the store untouched.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from mer_bench.data import DatasetError
from mer_bench.store import Store

__all__ = ["LogLine", "read_megc_log", "match_log", "import_predictions", "ImportResult", "FORMATS"]

FORMATS = ("megc-log",)


@dataclass(frozen=True)
class LogLine:
    """One prediction of a MEGC log: where it came from and what it says."""

    line: int
    db: str
    subject: str
    clip: str
    y_true: int
    y_pred: int


def read_megc_log(path: str | Path) -> list[LogLine]:
    """Parse a MEGC-format log (see the module docstring).

    Raises:
        DatasetError: a missing or unreadable file, a prediction line before the first fold
            header, a line that is neither ``<db> <subject>`` nor ``<clip> <gt> <pred>``, a label
            that is not a non-negative integer, a fold header with no clip (a truncated log), or
            an empty log. The message names the file and the line.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"log file {path} not found")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"cannot read log file {path}: {exc}") from None
    out: list[LogLine] = []
    db = subject = None
    header_line, n_in_fold = 0, 0
    for lineno, raw in enumerate(text.splitlines(), start=1):
        tok = raw.split()
        if not tok:
            continue
        where = f"{path}, line {lineno}"
        if len(tok) == 2 and "_" in tok[0]:  # database names have no underscore; clip ids do
            raise DatasetError(f"{where}: {raw.strip()!r} has 2 fields; a prediction line needs 3 "
                               f"(<clip> <ground truth> <prediction>). Is the log truncated?")
        if len(tok) == 2:
            if db is not None and n_in_fold == 0:
                raise DatasetError(f"{path}, line {header_line}: fold '{db} {subject}' has no prediction lines")
            db, subject = tok
            header_line, n_in_fold = lineno, 0
        elif len(tok) == 3:
            if db is None:
                raise DatasetError(f"{where}: prediction line before the first '<db> <subject>' fold header")
            clip, gt, pred = tok
            if not (gt.isdigit() and pred.isdigit()):
                raise DatasetError(f"{where}: ground truth and prediction must be class indices, got {raw.strip()!r}")
            out.append(LogLine(lineno, db, subject, clip, int(gt), int(pred)))
            n_in_fold += 1
        else:
            raise DatasetError(f"{where}: expected '<db> <subject>' or '<clip> <ground truth> <prediction>', "
                               f"got {len(tok)} fields: {raw.strip()!r}")
    if db is None:
        raise DatasetError(f"log file {path} has no fold header and no predictions")
    if n_in_fold == 0:
        raise DatasetError(f"{path}, line {header_line}: fold '{db} {subject}' has no prediction lines "
                           f"(is the log truncated?)")
    return out


def match_log(lines: list[LogLine], table: pd.DataFrame, classes: tuple[str, ...], path: str | Path,
              normalise: Callable[[str, str, str], tuple[str, str, str]] | None = None) -> pd.DataFrame:
    """Join log lines to a dataset table.

    Args:
        normalise: ``normalise(db, subject, clip) -> (db, subject, clip)`` in the table's naming
            (a dataset's :meth:`~mer_bench.data.Dataset.canonical_key`); ``None``: as written.

    Returns:
        One row per table clip, in log order: ``sample_id, subject, dataset, y_true, y_pred,
        fold_index, fold_name``.

    Raises:
        DatasetError: an unknown clip or database, a clip under another subject's header, a
            duplicate, a label outside ``0..len(classes)-1``, a ground truth that differs from the
            dataset's, or clips of the dataset the log does not cover (named; a truncated log).
    """
    index = {(d, s, c): i for i, (d, s, c) in enumerate(zip(table["dataset"], table["subject"], table["clip"]))}
    by_subject = {(d, c): s for d, s, c in zip(table["dataset"], table["subject"], table["clip"])}
    seen: dict[int, int] = {}
    folds: dict[tuple[str, str], int] = {}
    rows = []
    for ln in lines:
        where = f"{path}, line {ln.line}"
        try:
            db, subject, clip = normalise(ln.db, ln.subject, ln.clip) if normalise else (ln.db, ln.subject, ln.clip)
        except ValueError as exc:
            raise DatasetError(f"{where}: {exc}") from None
        i = index.get((db, subject, clip))
        if i is None:
            other = by_subject.get((db, clip))
            if other is not None:
                raise DatasetError(f"{where}: clip {clip} belongs to subject {other}, but sits under the fold header "
                                   f"'{ln.db} {ln.subject}'")
            raise DatasetError(f"{where}: clip {ln.db}/{ln.subject}/{ln.clip} is not in the dataset")
        if i in seen:
            raise DatasetError(f"{where}: clip {db}/{subject}/{clip} appears twice (also line {seen[i]})")
        seen[i] = ln.line
        for value, what in ((ln.y_true, "ground truth"), (ln.y_pred, "prediction")):
            if not 0 <= value < len(classes):
                raise DatasetError(f"{where}: {what} {value} is not a class index 0..{len(classes) - 1} "
                                   f"({', '.join(classes)})")
        if int(table["label"].iat[i]) != ln.y_true:
            raise DatasetError(f"{where}: ground truth {ln.y_true} ({classes[ln.y_true]}) differs from the dataset's "
                               f"label {int(table['label'].iat[i])} ({classes[int(table['label'].iat[i])]}) for "
                               f"{db}/{subject}/{clip}")
        fold_index = folds.setdefault((ln.db, ln.subject), len(folds))
        rows.append({"sample_id": table["sample_id"].iat[i], "subject": subject, "dataset": db,
                     "y_true": ln.y_true, "y_pred": ln.y_pred, "fold_index": fold_index,
                     "fold_name": f"{db}/{subject}"})
    missing = [table["sample_id"].iat[i] for i in range(len(table)) if i not in seen]
    if missing:
        raise DatasetError(f"{path} covers {len(seen)} of the dataset's {len(table)} clips (truncated?); "
                           f"missing: {', '.join(missing[:10])}" + (" ..." if len(missing) > 10 else ""))
    return pd.DataFrame(rows)


@dataclass
class ImportResult:
    run_id: str
    status: str  # "imported" or "cached"
    n_samples: int
    n_folds: int


def import_predictions(store: Store, path: str | Path, name: str, dataset, protocol: str,
                       fmt: str = "megc-log", leaky: bool = False, citation: str = "",
                       force: bool = False) -> ImportResult:
    """Check a published log against ``dataset`` and write it to ``store`` as one imported run.

    Args:
        name: the leaderboard name; must not be a registered method (imported results are not
            ours to reproduce, so they never share a method's name).
        dataset: a :class:`mer_bench.data.Dataset` instance (its table is the reference).
        protocol: the protocol the predictions follow (a registered name, e.g. ``megc2019-cde``).
        leaky: the published system chose its model on the test folds; labelled everywhere.
        force: replace an earlier import under the same name with different content.

    Raises:
        DatasetError: a bad log (see :func:`read_megc_log`, :func:`match_log`).
        ValueError: an unknown format, a name outside :data:`mer_bench.commands.SAFE_NAME`, a name
            taken by a registered method, or a different log
            already imported under ``name`` (without ``force``).
    """
    from mer_bench.commands import check_name
    from mer_bench.pipeline.plan import config_hash
    from mer_bench.registry import METHODS, PROTOCOLS

    if fmt not in FORMATS:
        raise ValueError(f"unknown import format {fmt!r}; known: {', '.join(FORMATS)}")
    check_name(name)
    if name in METHODS:
        raise ValueError(f"{name!r} is a registered method; give imported predictions their own name "
                         f"(e.g. {name}-published) so they are never confused with runs made here")
    PROTOCOLS.get(protocol)  # a known protocol
    path = Path(path)
    table = dataset.table()
    preds = match_log(read_megc_log(path), table, tuple(dataset.classes), path, dataset.canonical_key)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    params = {"format": fmt, "file": path.name, "sha256": digest[:16], "citation": citation}
    cfg = config_hash(name, params, dataset.name, dataset.options(), dataset.fingerprint(), protocol, {})
    run_id = f"{cfg}-imported"
    runs = store.runs(None)
    same_name = runs[(runs["method"] == name) & (runs["imported"] == 1) & (runs["dataset"] == dataset.name)
                     & (runs["protocol"] == protocol)]
    if run_id in set(same_name["run_id"]):
        return ImportResult(run_id, "cached", len(preds), int(preds["fold_index"].nunique()))
    if len(same_name) and not force:
        raise ValueError(f"other predictions are already imported as {name!r} ({', '.join(same_name['run_id'])}); "
                         f"use another --name, or --force to replace them")
    folds = []
    for fold_index, g in preds.groupby("fold_index", sort=True):
        folds.append((int(fold_index), g["fold_name"].iat[0], len(preds) - len(g),
                      [(r.sample_id, r.subject, r.dataset, int(r.y_true), int(r.y_pred), None)
                       for r in g.itertuples()]))
    meta = {"run_id": run_id, "config_hash": cfg, "method": name, "dataset": dataset.name, "protocol": protocol,
            "seed": 0, "preset": None, "params": params, "dataset_options": dataset.options(),
            "dataset_fingerprint": dataset.fingerprint(), "protocol_options": {}, "classes": list(dataset.classes),
            "leaky": int(bool(leaky)), "imported": 1, "n_folds": len(folds),
            "selection": "as published" + (" (test-set selection)" if leaky else "")}
    store.write_imported(meta, folds, replace=list(same_name["run_id"]) if force else [])
    return ImportResult(run_id, "imported", len(preds), len(folds))

