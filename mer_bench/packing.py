"""Packed stores: a results store that can be published without the licensed ground truth.

The per-sample predictions of a store carry each clip's ground-truth label (``y_true``). On the
real datasets those labels are part of the licensed data (CASME II, SAMM, SMIC and the MEGC 2019
composite may not be redistributed), so a store of real-data runs cannot be handed on as it is. A
*packed store* is the same SQLite file with every ``y_true`` removed (set to -1):

* :func:`pack_store` copies a store (every run, complete or partial, with its completed folds,
  predictions and learning curves; leases cleared), removes the labels, marks the file as packed
  (``PRAGMA application_id`` = :data:`PACKED_APPLICATION_ID`, the bytes ``MERP``) and compresses it
  (xz, :mod:`lzma` preset 9: an 800-epoch STSTNet run's learning curves take 12 MB as SQLite, 1.5 MB
  packed). The copy is canonical: a fresh database of this mer-bench's layout, every table's rows in
  primary-key order, so the same runs give the same bytes from whichever store they are packed (a
  store built by unpacking, or the one they were measured in). :class:`mer_bench.store.Store`
  refuses to open a packed file, so it is never read as if its labels were real.
* :func:`unpack_store` puts the labels back from the dataset itself, built with the user's own copy
  of the data (``--data-root``), after checking that every run was made on exactly that data
  (the run's dataset fingerprint) and that every predicted clip exists there under the same
  subject. The runs keep their identity: a measured run stays measured (run id, parameters,
  provenance), so the boards made from the unpacked store are the boards made from the original,
  byte for byte, and an interrupted run resumes where it stopped.

This is how a published board's store travels (``leaderboards/stores/``), and how a long board
is built across sessions or machines: pack, carry the file, unpack, run the same command again.
The predictions themselves (``y_pred``, ``proba``) are mer-bench's own output and stay in the
file. To share predictions with someone who runs another tool, use :mod:`mer_bench.exchange`.
"""

from __future__ import annotations

import contextlib
import lzma
import os
import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mer_bench.atomic import atomic_path
from mer_bench.data import DatasetError
from mer_bench.store import APPLICATION_ID, SCHEMA_VERSION, Store, StoreError
from mer_bench.store.schema import PACKED_APPLICATION_ID, PACKED_MAGIC

__all__ = ["pack_store", "unpack_store", "PackError", "PACKED_APPLICATION_ID", "NO_LABEL"]

#: the ``y_true`` of every prediction in a packed store
NO_LABEL = -1
#: the tables a packed file holds, each copied in the order of its primary key
_TABLES = {"runs": "run_id", "folds": "run_id, fold_index", "predictions": "run_id, sample_id",
           "curves": "run_id, fold_index, epoch"}


class PackError(DatasetError):
    """A packed store that cannot be unpacked against the data here; the message names the file
    and the run."""


def _connect(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(str(path), timeout=30, isolation_level=None)


def pack_store(store_path: str | os.PathLike, out: str | os.PathLike,
               run_ids: list[str] | None = None) -> dict[str, Any]:
    """Write the packed copy of the store at ``store_path`` to ``out`` (atomically).

    Args:
        run_ids: only these runs (complete or not); default every run of the store. Packing a
            board's runs in groups (one file per method, say) keeps each file unchanged once its
            runs are complete, so a repository stores it once.

    Returns:
        ``{"runs": n, "complete": n, "predictions": n, "bytes": size}``.

    Raises:
        StoreError: ``store_path`` is not a readable mer-bench store, or is damaged.
        ValueError: a run id that is not in the store, or nothing to pack.
        OSError: ``out`` cannot be written (the old file, if any, is left as it was).
    """
    out = Path(out)
    with Store(store_path, readonly=True) as store:
        have = set(store.runs(None)["run_id"])
        if run_ids is not None:
            missing = [r for r in run_ids if r not in have]
            if missing:
                raise ValueError(f"no run {', '.join(missing)} in {store.path}")
        if not (have if run_ids is None else run_ids):
            raise ValueError(f"nothing to pack: no run in {store.path}")
        canon = out.parent / f".{out.name}.canon.tmp"
        try:
            canon.unlink(missing_ok=True)
            counts = _canonical_copy(store.path, canon, run_ids)
            with atomic_path(out) as tmp:
                with open(canon, "rb") as src, lzma.open(tmp, "wb", preset=9) as xz:
                    shutil.copyfileobj(src, xz, 1 << 20)
        finally:
            with contextlib.suppress(OSError):
                canon.unlink()
    return {**counts, "bytes": out.stat().st_size}


def _canonical_copy(store_path: Path, canon: Path, run_ids: list[str] | None) -> dict[str, int]:
    """The runs of the store at ``store_path`` (``run_ids``, default all), labels removed and leases
    cleared, written to a fresh database ``canon`` of this layout in primary-key order, marked
    packed and compacted. Returns the counts of :func:`pack_store`."""
    with Store(canon):  # a fresh store: this mer-bench's tables, columns in their canonical order
        pass
    db = sqlite3.connect(str(canon), timeout=30, isolation_level=None, uri=True)
    try:
        db.execute("ATTACH DATABASE ? AS src", (f"{store_path.resolve().as_uri()}?mode=ro",))
        db.execute("BEGIN")  # one transaction: a consistent snapshot of the store, even while it is written
        if run_ids is not None:
            db.execute("CREATE TEMP TABLE keep (run_id TEXT PRIMARY KEY)")
            db.executemany("INSERT OR IGNORE INTO keep VALUES (?)", [(r,) for r in run_ids])
        where = "" if run_ids is None else " WHERE run_id IN (SELECT run_id FROM temp.keep)"
        for table, order in _TABLES.items():
            have = {r[1] for r in db.execute(f"PRAGMA src.table_info({table})")}
            cols = ", ".join(r[1] for r in db.execute(f"PRAGMA main.table_info({table})") if r[1] in have)
            db.execute(f"INSERT INTO main.{table} ({cols}) SELECT {cols} FROM src.{table}{where} ORDER BY {order}")
        db.execute("UPDATE predictions SET y_true = ?", (NO_LABEL,))
        db.execute("UPDATE runs SET lease_owner = NULL, lease_until = NULL")
        db.execute("COMMIT")
        db.execute("DETACH DATABASE src")
        db.execute(f"PRAGMA application_id = {PACKED_APPLICATION_ID}")
        db.execute("VACUUM")
        return {"runs": db.execute("SELECT COUNT(*) FROM runs").fetchone()[0],
                "complete": db.execute("SELECT COUNT(*) FROM runs WHERE status = 'complete'").fetchone()[0],
                "predictions": db.execute("SELECT COUNT(*) FROM predictions").fetchone()[0]}
    finally:
        db.close()


def _check_packed(db: sqlite3.Connection, where: Path) -> None:
    app_id = db.execute("PRAGMA application_id").fetchone()[0]
    version = db.execute("PRAGMA user_version").fetchone()[0]
    if app_id != PACKED_APPLICATION_ID:
        raise PackError(f"{where} is not a packed mer-bench store (application id {app_id:#x}); a store is used as it "
                        f"is, with --store {where}")
    if version > SCHEMA_VERSION:
        raise PackError(f"{where} was packed by a newer mer-bench (store layout {version}, this one reads up to "
                        f"{SCHEMA_VERSION}); upgrade mer-bench to unpack it")


def _copy_packed(packed: Path, work: Path) -> sqlite3.Connection:
    """``packed``, checked to be a packed store, copied (decompressed) to ``work``; the open copy."""
    try:
        with open(packed, "rb") as f:
            compressed = f.read(len(PACKED_MAGIC)) == PACKED_MAGIC
        if compressed:
            with lzma.open(packed, "rb") as xz, open(work, "wb") as out:
                shutil.copyfileobj(xz, out, 1 << 20)
        else:  # packed before the compression: the SQLite database itself
            shutil.copyfile(packed, work)
    except (lzma.LZMAError, EOFError) as exc:
        raise PackError(f"{packed} is not a packed mer-bench store (damaged compression: {exc})") from None
    tmp = _connect(work)
    try:
        _check_packed(tmp, packed)
    except sqlite3.DatabaseError as exc:
        tmp.close()
        raise PackError(f"{packed} is not a packed mer-bench store ({exc})") from None
    except PackError:
        tmp.close()
        raise
    return tmp


def unpack_store(packed: str | os.PathLike, store_path: str | os.PathLike,
                 dataset_for: Callable[[str, dict[str, Any]], Any]) -> list[tuple[str, str]]:
    """Put the labels of the packed store ``packed`` back from the data and add its runs to the
    store at ``store_path`` (created if absent). Returns ``(run_id, status)`` per run in the pack,
    ``status`` ``added`` or ``present`` (a run of that id is already in the store: left as it is).

    Args:
        dataset_for: ``dataset_for(name, options) -> Dataset``: the dataset a run was made on,
            built here with the user's own data (``--data-root``).

    Raises:
        PackError: ``packed`` is not a packed store, or a run was made on other data (its
            fingerprint differs), or predicts a clip that the data here lacks or has under
            another subject. Nothing is added to the store then.
        StoreError: the store cannot be written.
    """
    packed, store_path = Path(packed), Path(store_path)
    if not packed.is_file():
        raise PackError(f"no packed store at {packed}")
    with Store(store_path) as target:  # created / upgraded; refuses foreign files before anything else
        have = set(target.runs(None)["run_id"])
    work = store_path.parent / f".{store_path.name}.unpack.tmp"
    try:
        tmp = _copy_packed(packed, work)
        try:
            runs = tmp.execute("SELECT run_id, method, dataset, dataset_options, dataset_fingerprint, representation "
                               "FROM runs ORDER BY run_id").fetchall()
            tmp.execute("BEGIN")
            for run_id, method, dataset, options, fingerprint, representation in runs:
                _restore_labels(tmp, packed, run_id, method, dataset, options, fingerprint, representation,
                                dataset_for)
            left = tmp.execute("SELECT COUNT(*) FROM predictions WHERE y_true = ?", (NO_LABEL,)).fetchone()[0]
            if left:  # predictions of a run the runs table does not name
                raise PackError(f"{packed}: {left} prediction(s) belong to no run of the file")
            tmp.execute("COMMIT")
            tmp.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        finally:
            tmp.close()
        with Store(work):  # upgrades an older layout to this one's, so the columns match
            pass
        return _merge(work, store_path, have, [r[0] for r in runs])
    finally:
        with contextlib.suppress(OSError):
            work.unlink()


def _restore_labels(db, packed, run_id, method, dataset, options, fingerprint, representation, dataset_for) -> None:
    import json

    at = f"{packed}: run {run_id} ({method} on {dataset})"
    try:
        ds = dataset_for(dataset, dict(json.loads(options) or {}))
        here = (ds.fingerprint_for(representation) if representation and hasattr(ds, "fingerprint_for")
                else ds.fingerprint())
        table = ds.table()
    except (DatasetError, KeyError, ValueError, TypeError, OSError) as exc:
        raise PackError(f"{at}: cannot build its dataset here: {exc}") from None
    if fingerprint and fingerprint != here:
        raise PackError(f"{at}: made on other data (dataset fingerprint {fingerprint}, the data here {here}); "
                        f"give the data root of the same release with --data-root")
    labels = dict(zip(table["sample_id"], (int(v) for v in table["label"])))
    subjects = dict(zip(table["sample_id"], table["subject"]))
    rows = db.execute("SELECT sample_id, subject FROM predictions WHERE run_id = ?", (run_id,)).fetchall()
    for sample_id, subject in rows:
        if sample_id not in labels:
            raise PackError(f"{at}: predicts clip {sample_id!r}, which the data here does not have")
        if str(subjects[sample_id]) != str(subject):
            raise PackError(f"{at}: clip {sample_id!r} is under subject {subject!r} there and {subjects[sample_id]!r} "
                            f"here")
    db.executemany("UPDATE predictions SET y_true = ? WHERE run_id = ? AND sample_id = ?",
                   [(labels[s], run_id, s) for s, _ in rows])


def _merge(work: Path, store_path: Path, have: set[str], run_ids: list[str]) -> list[tuple[str, str]]:
    new = [r for r in run_ids if r not in have]
    db = _connect(store_path)
    try:
        db.execute("ATTACH DATABASE ? AS pack", (str(work),))
        db.execute("BEGIN IMMEDIATE")
        try:
            for table in ("runs", "folds", "predictions", "curves"):
                cols = ", ".join(r[1] for r in db.execute(f"PRAGMA main.table_info({table})"))
                for run_id in new:
                    db.execute(f"INSERT INTO main.{table} ({cols}) SELECT {cols} FROM pack.{table} WHERE run_id = ?",
                               (run_id,))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("DETACH DATABASE pack")
    except sqlite3.Error as exc:
        raise StoreError(f"cannot add the unpacked runs to {store_path}: {exc}") from None
    finally:
        db.close()
    return [(r, "present" if r in have else "added") for r in run_ids]
