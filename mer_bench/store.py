"""The results store: an embedded SQLite database of runs, folds and per-sample predictions.

Location, first match wins: ``--store PATH``; ``$MER_BENCH_STORE``;
``$XDG_DATA_HOME/mer-bench/results.sqlite`` (``~/.local/share/mer-bench/results.sqlite``).

Tables:

* ``runs`` — one row per (configuration, seed): ``run_id``, ``config_hash``, method, dataset,
  protocol, seed, parameters and options (JSON), ``leaky``, ``selection`` (how the model was
  chosen: ``last epoch``; ``best epoch on test subject`` is leaky), ``imported``, status
  (``running`` / ``complete``), ``n_folds``, provenance (package version, git commit, torch
  version, device, wall time);
* ``folds`` — completed folds, written in the same transaction as their predictions;
* ``predictions`` — ``run_id, sample_id, fold_index, subject, dataset, y_true, y_pred, proba``.

A fold is written atomically (one transaction), so a run killed at any point (Ctrl-C,
``kill -9``) keeps exactly its completed folds, and re-running resumes from them.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

__all__ = ["Store", "StoreError", "default_store_path"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    config_hash TEXT NOT NULL,
    method TEXT NOT NULL,
    dataset TEXT NOT NULL,
    protocol TEXT NOT NULL,
    seed INTEGER NOT NULL,
    preset TEXT,
    params TEXT NOT NULL,
    dataset_options TEXT NOT NULL,
    dataset_fingerprint TEXT NOT NULL,
    protocol_options TEXT NOT NULL,
    classes TEXT NOT NULL,
    leaky INTEGER NOT NULL DEFAULT 0,
    selection TEXT NOT NULL DEFAULT 'last epoch',
    imported INTEGER NOT NULL DEFAULT 0,
    status TEXT NOT NULL,
    n_folds INTEGER NOT NULL,
    created TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now')),
    finished TEXT,
    package_version TEXT,
    git_commit TEXT,
    torch_version TEXT,
    device TEXT,
    wall_time REAL
);
CREATE TABLE IF NOT EXISTS folds (
    run_id TEXT NOT NULL REFERENCES runs(run_id),
    fold_index INTEGER NOT NULL,
    fold_name TEXT NOT NULL,
    n_train INTEGER NOT NULL,
    n_test INTEGER NOT NULL,
    wall_time REAL NOT NULL,
    device TEXT,
    completed TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now')),
    PRIMARY KEY (run_id, fold_index)
);
CREATE TABLE IF NOT EXISTS predictions (
    run_id TEXT NOT NULL REFERENCES runs(run_id),
    sample_id TEXT NOT NULL,
    fold_index INTEGER NOT NULL,
    subject TEXT NOT NULL,
    dataset TEXT NOT NULL,
    y_true INTEGER NOT NULL,
    y_pred INTEGER NOT NULL,
    proba TEXT,
    PRIMARY KEY (run_id, sample_id)
);
"""


class StoreError(RuntimeError):
    """The store cannot be opened, read or written (the message says which path and why)."""


def default_store_path() -> Path:
    """See the module docstring."""
    env = os.environ.get("MER_BENCH_STORE")
    if env:
        return Path(env).expanduser()
    base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return base / "mer-bench" / "results.sqlite"


class Store:
    """An open results store.

    Args:
        path: the SQLite file (created with its parent folders); ``None``: the default path.

    Raises:
        StoreError: the path cannot be created or written, or is not a mer-bench database.
            Checked on opening, before any training starts.
    """

    def __init__(self, path: str | os.PathLike | None = None) -> None:
        self.path = Path(path).expanduser() if path is not None else default_store_path()
        if self.path.is_dir():
            raise StoreError(f"results store {self.path} is a directory; "
                             f"give a file path such as {self.path / 'results.sqlite'}")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(str(self.path), timeout=30, isolation_level=None)
            self._db.executescript(_SCHEMA)
            self._migrate()
            self._db.execute("BEGIN IMMEDIATE")  # proves we can take the write lock
            self._db.execute("ROLLBACK")
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot write the results store {self.path}: {exc}. "
                             f"Choose another location with --store PATH or $MER_BENCH_STORE.") from None

    def _migrate(self) -> None:
        """Add columns introduced after a store was created (older stores keep working)."""
        have = {row[1] for row in self._db.execute("PRAGMA table_info(runs)")}
        if "selection" not in have:
            self._db.execute("ALTER TABLE runs ADD COLUMN selection TEXT NOT NULL DEFAULT 'last epoch'")

    def close(self) -> None:
        self._db.close()

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
        self._db.execute(f"INSERT OR IGNORE INTO runs ({', '.join(cols)}, status) VALUES "
                         f"({', '.join('?' * len(cols))}, 'running')", values)

    def reset_run(self, run_id: str) -> None:
        """Forget a run's folds and predictions (``--force``), in one transaction."""
        with self._transaction():
            self._db.execute("DELETE FROM predictions WHERE run_id = ?", (run_id,))
            self._db.execute("DELETE FROM folds WHERE run_id = ?", (run_id,))
            self._db.execute("DELETE FROM runs WHERE run_id = ?", (run_id,))

    def completed_folds(self, run_id: str) -> set[int]:
        return {r[0] for r in self._db.execute("SELECT fold_index FROM folds WHERE run_id = ?", (run_id,))}

    def fold_times(self, run_id: str) -> float:
        row = self._db.execute("SELECT COALESCE(SUM(wall_time), 0) FROM folds WHERE run_id = ?", (run_id,)).fetchone()
        return float(row[0])

    def write_fold(self, run_id: str, fold_index: int, fold_name: str, n_train: int, wall_time: float,
                   device: str, rows: Iterable[tuple]) -> None:
        """Write one fold's predictions and its completion mark in a single transaction.

        ``rows``: ``(sample_id, subject, dataset, y_true, y_pred, proba list or None)``.
        """
        with self._transaction():
            self._insert_fold(run_id, fold_index, fold_name, n_train, wall_time, device, rows)

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
                for table in ("predictions", "folds", "runs"):
                    self._db.execute(f"DELETE FROM {table} WHERE run_id = ?", (old,))
            self._db.execute(f"INSERT INTO runs ({', '.join(cols)}, status, finished) VALUES "
                             f"({', '.join('?' * len(cols))}, 'complete', strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))",
                             values)
            for fold_index, fold_name, n_train, rows in folds:
                self._insert_fold(meta["run_id"], fold_index, fold_name, n_train, 0.0, None, rows)

    def finish_run(self, run_id: str, **meta: Any) -> None:
        """Mark a run complete and record provenance (``wall_time``, ``device``...)."""
        sets = ", ".join(f"{k} = ?" for k in meta)
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

    def runs(self, status: str | None = "complete") -> pd.DataFrame:
        """All runs (complete ones by default), JSON columns decoded."""
        q = "SELECT * FROM runs" + (" WHERE status = ?" if status else "") + " ORDER BY created, run_id"
        df = pd.read_sql_query(q, self._db, params=(status,) if status else ())
        for col in ("params", "dataset_options", "protocol_options", "classes"):
            df[col] = [json.loads(v) for v in df[col]]
        return df

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

    def _transaction(self):
        db = self._db

        class _Tx:
            def __enter__(self_inner):
                db.execute("BEGIN IMMEDIATE")

            def __exit__(self_inner, exc_type, exc, tb):
                db.execute("ROLLBACK" if exc_type else "COMMIT")
                return False

        return _Tx()
