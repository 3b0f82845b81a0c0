"""The results store: an embedded SQLite database of runs, folds and per-sample predictions.

Location, first match wins: ``--store PATH``; ``$MER_BENCH_STORE``;
``$XDG_DATA_HOME/mer-bench/results.sqlite`` (``~/.local/share/mer-bench/results.sqlite``).

Tables:

* ``runs`` — one row per (configuration, seed): ``run_id``, ``config_hash``, method, dataset,
  protocol, seed, parameters and options (JSON), ``leaky``, ``selection`` (how the model was
  chosen: ``last epoch``; ``best epoch on test subject`` is leaky), ``imported``, status
  (``running`` / ``complete``), ``n_folds``, provenance (package version, git commit, torch
  version, device, wall time), lease (``lease_owner``, ``lease_until``), and the facts a board
  shows, recorded when the run is made (``overrides``: JSON of the hyper-parameters set beyond the
  preset; ``trains_epochs``; ``selection_code``: ``last`` / ``best-on-test``; ``representation``);
* ``folds`` — completed folds, written in the same transaction as their predictions;
* ``predictions`` — ``run_id, sample_id, fold_index, subject, dataset, y_true, y_pred, proba``;
* ``curves`` — learning curves: ``run_id, fold_index, epoch, loss, accuracy`` (mean training
  cross-entropy and training accuracy of each epoch), written with their fold.

A fold is written atomically (one transaction), so a run killed at any point (Ctrl-C,
``kill -9``) keeps exactly its completed folds, and re-running resumes from them. ``--force``
computes the new run under :func:`mer_bench.pipeline.runner.pending_id` and swaps it in
(:meth:`Store.promote`) only when it is complete.

The file is marked as a mer-bench store (``PRAGMA application_id`` = :data:`APPLICATION_ID`,
``user_version`` = :data:`SCHEMA_VERSION`); another program's SQLite file, or a newer
mer-bench's, is refused before anything changes, and so is a *packed* store (its labels removed for
publishing, :mod:`mer_bench.packing`), which ``mer-bench unpack`` turns back into runs of a store.
A run being computed is leased (``lease_owner``, ``lease_until``) by its process, so a second
process refuses to compute it at the same time (:class:`StoreBusyError`); the lease lapses when
its process dies. Writes wait for another process's lock up to ``$MER_BENCH_STORE_WAIT`` seconds
(600), and every SQLite or OS error is a :class:`StoreError` naming the file.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import sys
import threading
import time
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from mer_bench.store.errors import StoreBusyError, StoreError, StoreWarning, describe
from mer_bench.store.leases import LEASE_RENEW_S, LEASE_S, LeaseMixin
from mer_bench.store.schema import APPLICATION_ID, PACKED_MAGIC, SCHEMA_VERSION, SchemaMixin, packed_message

__all__ = ["Store", "StoreError", "StoreBusyError", "StoreWarning", "default_store_path", "APPLICATION_ID",
           "SCHEMA_VERSION", "LEASE_S", "LEASE_RENEW_S"]


def default_store_path() -> Path:
    """See the module docstring."""
    env = os.environ.get("MER_BENCH_STORE")
    if env:
        return Path(env).expanduser()
    base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return base / "mer-bench" / "results.sqlite"


def _wait_s() -> float:
    """How long a write waits for another process's lock: ``$MER_BENCH_STORE_WAIT`` seconds (600)."""
    try:
        return max(0.0, float(os.environ.get("MER_BENCH_STORE_WAIT", "600")))
    except ValueError:
        return 600.0


def _starts_with(path: Path, magic: bytes) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(len(magic)) == magic
    except OSError:  # absent or unreadable: the opening below says which
        return False


class Store(LeaseMixin, SchemaMixin):
    """An open results store.

    A store is marked as mer-bench's (``PRAGMA application_id`` = :data:`APPLICATION_ID`, the
    layout version in ``user_version``); a SQLite file of another program, or one written by a
    newer mer-bench, is refused before anything in it changes.

    Args:
        path: the SQLite file (created with its parent folders); ``None``: the default path.
        readonly: open for reading only (``leaderboard``, ``report``): the file must exist, is
            never created or changed, and its integrity is checked (``PRAGMA quick_check``).

    Raises:
        StoreError: the path cannot be created or written, is damaged, is another program's
            database or a newer mer-bench's. Checked on opening, before any training starts.
    """

    def __init__(self, path: str | os.PathLike | None = None, readonly: bool = False) -> None:
        self.path = Path(path).expanduser() if path is not None else default_store_path()
        self.readonly = readonly
        self._lease_threads: dict[str, tuple[threading.Event, threading.Thread]] = {}
        if self.path.is_dir():
            raise StoreError(f"results store {self.path} is a directory; "
                             f"give a file path such as {self.path / 'results.sqlite'}")
        if _starts_with(self.path, PACKED_MAGIC):  # a packed file as written (compressed)
            raise StoreError(packed_message(self.path))
        if readonly and not self.path.is_file():
            raise StoreError(f"no results store at {self.path}; run something first (mer-bench run ...) or give "
                             f"the store with --store PATH or $MER_BENCH_STORE")
        try:
            if readonly:
                self._db = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True, timeout=30,
                                           isolation_level=None)
                self._check_identity(create=False)
                self._quick_check()
            else:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._db = sqlite3.connect(str(self.path), timeout=30, isolation_level=None)
                self._check_identity(create=True)
                self._db.execute("BEGIN IMMEDIATE")  # proves we can take the write lock
                self._db.execute("ROLLBACK")
        except StoreError:
            self._close_quietly()
            raise
        except (OSError, sqlite3.Error) as exc:
            self._close_quietly()
            what = "read" if readonly else "write"
            raise StoreError(f"cannot {what} the results store {self.path}: {describe(exc)}. "
                             f"Choose another location with --store PATH or $MER_BENCH_STORE.") from None

    def _close_quietly(self) -> None:
        db = getattr(self, "_db", None)
        if db is not None:
            with contextlib.suppress(sqlite3.Error):
                db.close()

    def close(self) -> None:
        for run_id in list(self._lease_threads):
            self.release(run_id)
        self._close_quietly()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- runs -----------------------------------------------------------------------------------
    def get_run(self, run_id: str) -> dict[str, Any] | None:
        cur = self._db.execute("SELECT * FROM runs WHERE run_id = ?", (run_id,))
        row = cur.fetchone()
        return None if row is None else dict(zip([d[0] for d in cur.description], row))

    def start_run(self, meta: dict[str, Any]) -> None:
        """Insert a run row (status ``running``) unless one exists with this ``run_id``."""
        cols = list(meta)
        values = [json.dumps(v, sort_keys=True) if isinstance(v, (dict, list, tuple)) else v for v in meta.values()]
        with self._transaction():
            self._db.execute(f"INSERT OR IGNORE INTO runs ({', '.join(cols)}, status) VALUES "
                             f"({', '.join('?' * len(cols))}, 'running')", values)

    def reset_run(self, run_id: str) -> None:
        """Forget a run, its folds and its predictions, in one transaction."""
        with self._transaction():
            for table in ("curves", "predictions", "folds", "runs"):
                self._db.execute(f"DELETE FROM {table} WHERE run_id = ?", (run_id,))

    def discard_if_empty(self, run_id: str) -> bool:
        """Remove a ``running`` row that has no completed fold (a start that failed); returns
        whether it was removed."""
        with self._transaction():
            cur = self._db.execute("DELETE FROM runs WHERE run_id = ? AND status = 'running' AND NOT EXISTS "
                                   "(SELECT 1 FROM folds WHERE folds.run_id = runs.run_id) AND "
                                   "(lease_owner IS NULL OR lease_owner = ?)", (run_id, self._owner_id()))
            return cur.rowcount > 0

    def promote(self, pending_id: str, run_id: str) -> None:
        """Replace run ``run_id`` by the completed run ``pending_id`` in one transaction (``--force``:
        the old run stays until its replacement is complete)."""
        with self._transaction():
            for table in ("curves", "predictions", "folds", "runs"):
                self._db.execute(f"DELETE FROM {table} WHERE run_id = ?", (run_id,))
                self._db.execute(f"UPDATE {table} SET run_id = ? WHERE run_id = ?", (run_id, pending_id))

    def completed_folds(self, run_id: str) -> set[int]:
        return {r[0] for r in self._db.execute("SELECT fold_index FROM folds WHERE run_id = ?", (run_id,))}

    def count_predictions(self, run_id: str) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM predictions WHERE run_id = ?", (run_id,)).fetchone()[0])

    def fold_times(self, run_id: str) -> float:
        row = self._db.execute("SELECT COALESCE(SUM(wall_time), 0) FROM folds WHERE run_id = ?", (run_id,)).fetchone()
        return float(row[0])

    def write_fold(self, run_id: str, fold_index: int, fold_name: str, n_train: int, wall_time: float,
                   device: str, rows: Iterable[tuple], curve: Iterable[tuple] | None = None) -> None:
        """Write one fold's predictions, its learning curve and its completion mark in a single
        transaction.

        ``rows``: ``(sample_id, subject, dataset, y_true, y_pred, proba list or None)``;
        ``curve``: ``(epoch, mean training loss, training accuracy)`` per epoch, or ``None``.
        """
        with self._transaction():
            self._insert_fold(run_id, fold_index, fold_name, n_train, wall_time, device, rows)
            if curve:
                self._db.executemany("INSERT OR REPLACE INTO curves (run_id, fold_index, epoch, loss, accuracy) "
                                     "VALUES (?, ?, ?, ?, ?)",
                                     [(run_id, fold_index, int(e), _real(loss), _real(acc)) for e, loss, acc in curve])

    def curves(self, run_id: str) -> pd.DataFrame:
        """A run's learning curves: ``fold_index, epoch, loss, accuracy`` (empty for a run made
        before store layout 7, or of a method without epochs)."""
        if not self._db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'curves'").fetchone():
            return pd.DataFrame(columns=["fold_index", "epoch", "loss", "accuracy"])
        return pd.read_sql_query("SELECT fold_index, epoch, loss, accuracy FROM curves WHERE run_id = ? "
                                 "ORDER BY fold_index, epoch", self._db, params=(run_id,))

    def mark_partial(self, run_id: str) -> None:
        """Mark a run that trained only some of its folds on purpose (``run --folds K``) as
        ``partial``: never on a board; running it again without ``--folds`` resumes it."""
        with self._transaction():
            self._db.execute("UPDATE runs SET status = 'partial' WHERE run_id = ? AND status != 'complete'", (run_id,))

    def write_imported(self, meta: dict[str, Any], folds: list[tuple[int, str, int, list[tuple]]],
                       replace: Iterable[str] = ()) -> None:
        """Write a complete imported run (its row, folds and predictions) in one transaction.

        ``folds``: ``(fold_index, fold_name, n_train, rows)`` with ``rows`` as in :meth:`write_fold`.
        ``replace``: run ids removed in the same transaction (``import --force``).
        """
        cols = list(meta)
        values = [json.dumps(v, sort_keys=True) if isinstance(v, (dict, list, tuple)) else v for v in meta.values()]
        with self._transaction():
            for old in replace:
                for table in ("curves", "predictions", "folds", "runs"):
                    self._db.execute(f"DELETE FROM {table} WHERE run_id = ?", (old,))
            self._db.execute(f"INSERT INTO runs ({', '.join(cols)}, status, finished) VALUES "
                             f"({', '.join('?' * len(cols))}, 'complete', strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))",
                             values)
            for fold_index, fold_name, n_train, rows in folds:
                self._insert_fold(meta["run_id"], fold_index, fold_name, n_train, 0.0, None, rows)

    def finish_run(self, run_id: str, **meta: Any) -> None:
        """Mark a run complete and record provenance (``wall_time``, ``device``...)."""
        sets = ", ".join(f"{k} = ?" for k in meta)
        with self._transaction():
            self._db.execute(f"UPDATE runs SET status = 'complete', finished = strftime('%Y-%m-%dT%H:%M:%SZ', 'now')"
                             f"{', ' + sets if sets else ''} WHERE run_id = ?", [*meta.values(), run_id])

    # -- reading ----------------------------------------------------------------------------------
    def predictions(self, run_id: str) -> pd.DataFrame:
        """Per-sample predictions of a run, ordered by fold then sample id."""
        df = pd.read_sql_query("SELECT sample_id, fold_index, subject, dataset, y_true, y_pred, proba "
                               "FROM predictions WHERE run_id = ? ORDER BY fold_index, sample_id",
                               self._db, params=(run_id,))
        df["proba"] = [None if p is None else json.loads(p) for p in df["proba"]]
        return df

    def folds(self, run_id: str) -> pd.DataFrame:
        """A run's completed folds, in order: ``fold_index, fold_name, n_train, n_test, wall_time
        (s), device, completed``."""
        return pd.read_sql_query("SELECT fold_index, fold_name, n_train, n_test, wall_time, device, completed "
                                 "FROM folds WHERE run_id = ? ORDER BY fold_index", self._db, params=(run_id,))

    def runs(self, status: str | None = "complete") -> pd.DataFrame:
        """All runs (complete ones by default), JSON columns decoded.

        A run whose JSON columns cannot be decoded is left out with a :class:`StoreWarning`
        that names it, so one damaged row never blocks the others.
        """
        q = "SELECT * FROM runs" + (" WHERE status = ?" if status else "") + " ORDER BY created, run_id"
        try:
            df = pd.read_sql_query(q, self._db, params=(status,) if status else ())
        except (sqlite3.Error, pd.errors.DatabaseError) as exc:
            raise StoreError(f"cannot read the results store {self.path}: {describe(exc)}") from None
        cols = ("params", "dataset_options", "protocol_options", "classes")
        decoded: dict[str, list] = {c: [] for c in cols}
        keep = []
        for i, row in enumerate(df.itertuples(index=False)):
            try:
                values = {c: json.loads(getattr(row, c)) for c in cols}
            except (TypeError, ValueError) as exc:
                warnings.warn(StoreWarning(f"skipped run {row.run_id} ({row.method}) in {self.path}: a JSON column "
                                           f"is not valid JSON ({exc}); re-run it with --force"), stacklevel=2)
                continue
            keep.append(i)
            for c in cols:
                decoded[c].append(values[c])
        df = df.iloc[keep].reset_index(drop=True)
        for c in cols:
            df[c] = pd.Series(decoded[c], dtype=object)
        if "overrides" in df:  # NULL in runs made before it was recorded
            df["overrides"] = pd.Series([None if v is None or (isinstance(v, float) and v != v) else json.loads(v)
                                         for v in df["overrides"]], dtype=object)
        return df

    def check_predictions(self, run_id: str, n_classes: int) -> str | None:
        """What is wrong with a stored run's predictions (``None``: nothing): labels outside
        ``0..n_classes-1``, unreadable probabilities or probabilities of the wrong length."""
        bad = self._db.execute("SELECT COUNT(*) FROM predictions WHERE run_id = ? AND (y_true NOT BETWEEN 0 AND ? "
                               "OR y_pred NOT BETWEEN 0 AND ? OR typeof(y_true) != 'integer' OR "
                               "typeof(y_pred) != 'integer')", (run_id, n_classes - 1, n_classes - 1)).fetchone()[0]
        if bad:
            return f"{bad} prediction(s) with a label outside 0..{n_classes - 1}"
        for (proba,) in self._db.execute("SELECT proba FROM predictions WHERE run_id = ? AND proba IS NOT NULL",
                                         (run_id,)):
            try:
                p = json.loads(proba)
            except ValueError:
                return f"unreadable probabilities {proba[:40]!r}"
            if not isinstance(p, list) or len(p) != n_classes:
                return f"probabilities {proba[:40]!r} are not {n_classes} numbers"
        return None

    # -- helpers ----------------------------------------------------------------------------------
    def _insert_fold(self, run_id: str, fold_index: int, fold_name: str, n_train: int, wall_time: float,
                     device: str | None, rows: Iterable[tuple]) -> None:
        """Insert a fold's predictions and its row (the caller holds the transaction)."""
        rows = list(rows)
        self._db.executemany(
            "INSERT INTO predictions (run_id, sample_id, fold_index, subject, dataset, y_true, y_pred, proba) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [(run_id, sid, fold_index, subj, ds, int(t), int(p), None if pr is None else json.dumps(pr))
             for sid, subj, ds, t, p, pr in rows])
        self._db.execute(
            "INSERT INTO folds (run_id, fold_index, fold_name, n_train, n_test, wall_time, device) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)", (run_id, fold_index, fold_name, n_train, len(rows), wall_time, device))

    def _transaction(self, wait: float | None = None):
        """``with self._transaction():`` one ``BEGIN IMMEDIATE`` ... ``COMMIT``. Waits up to
        ``wait`` seconds (default ``$MER_BENCH_STORE_WAIT``, 600) for another process's lock,
        and turns SQLite and OS errors into a :class:`StoreError` that names the store."""
        store = self
        db = self._db
        deadline = time.monotonic() + (_wait_s() if wait is None else wait)

        def retry(statement: str) -> None:
            told = False
            while True:
                try:
                    db.execute(statement)
                    return
                except sqlite3.OperationalError as exc:
                    if not _is_busy(exc) or time.monotonic() >= deadline:
                        raise
                    if not told:
                        print(f"mer-bench: the results store {store.path} is locked by another process; waiting "
                              f"(up to {max(0.0, deadline - time.monotonic()):.0f} s more, $MER_BENCH_STORE_WAIT)",
                              file=sys.stderr, flush=True)
                        told = True
                    time.sleep(0.5)

        class _Tx:
            def __enter__(self_inner):
                if store.readonly:
                    raise StoreError(f"the results store {store.path} was opened read-only")
                try:
                    retry("BEGIN IMMEDIATE")
                except (sqlite3.Error, OSError) as exc:
                    raise StoreError(f"cannot write the results store {store.path}: {describe(exc)}") from exc

            def __exit__(self_inner, exc_type, exc, tb):
                if exc_type is None:
                    try:
                        retry("COMMIT")
                        return False
                    except (sqlite3.Error, OSError) as commit_exc:
                        exc = commit_exc
                # SQLite rolls some failures back itself (a full disk): roll back only what is open,
                # so the error the user sees is the real one
                if db.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        db.execute("ROLLBACK")
                if isinstance(exc, (sqlite3.Error, OSError)):
                    raise StoreError(f"cannot write the results store {store.path}: {describe(exc)}; nothing of "
                                     f"this write was stored (earlier folds are kept)") from exc
                return False

        return _Tx()


def _real(v) -> float | None:
    """A float for SQLite, ``None`` for NaN."""
    v = float(v)
    return None if v != v else v


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    msg = str(exc).lower()
    return "locked" in msg or "busy" in msg
