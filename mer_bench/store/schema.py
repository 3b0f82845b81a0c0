"""The store's tables, its mark (application id and layout version) and the checks and upgrades
done on opening: a foreign or newer database is refused before anything in it changes."""

from __future__ import annotations

from mer_bench.store.errors import StoreError

__all__ = ["SCHEMA", "APPLICATION_ID", "PACKED_APPLICATION_ID", "PACKED_MAGIC", "SCHEMA_VERSION", "SchemaMixin"]

SCHEMA = """
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
    wall_time REAL,
    lease_owner TEXT,
    lease_until REAL,
    overrides TEXT,
    trains_epochs INTEGER,
    selection_code TEXT,
    representation TEXT,
    cpu TEXT,
    threads INTEGER,
    kernels TEXT,
    input TEXT
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
CREATE TABLE IF NOT EXISTS curves (
    run_id TEXT NOT NULL REFERENCES runs(run_id),
    fold_index INTEGER NOT NULL,
    epoch INTEGER NOT NULL,
    loss REAL,
    accuracy REAL,
    PRIMARY KEY (run_id, fold_index, epoch)
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

#: ``PRAGMA application_id`` of a mer-bench store: the bytes ``MERB``
APPLICATION_ID = 0x4D455242
#: ``PRAGMA application_id`` of a *packed* store (:mod:`mer_bench.packing`: the ground-truth labels
#: removed, for publishing): the bytes ``MERP``. Never opened as a store
PACKED_APPLICATION_ID = 0x4D455250
#: the first bytes of a packed file as written (an xz stream of the packed SQLite database)
PACKED_MAGIC = b"\xfd7zXZ\x00"
#: ``PRAGMA user_version``: 1 = the first stores (no id, no lease columns), 2 = leases, 3 = this layout
#: (the facts a board needs, stored at run time: ``overrides``, ``trains_epochs``, ``selection_code``,
#: ``representation``; NULL in runs made before), 4 = the CPU (model, instruction set, bf16) and
#: threads per fold worker of each run, 5 = ``kernels``: whether mer-bench's own CPU kernels were allowed
#: (``on``/``off``, :mod:`mer_bench.kernels`), 6 = ``input``: what the method saw (e.g. ``flow 3x28x28 as
#: 1-frame clip``, :meth:`mer_bench.method.Method.describe_input`), for boards' input column, 7 = the
#: ``curves`` table: per fold and epoch the mean training loss and training accuracy (learning curves;
#: empty for runs made before and for methods without epochs)
SCHEMA_VERSION = 7
_OUR_TABLES = {"runs": {"run_id", "config_hash", "method", "dataset", "protocol", "seed", "params", "status",
                        "n_folds"},
               "folds": {"run_id", "fold_index", "fold_name"},
               "predictions": {"run_id", "sample_id", "fold_index", "y_true", "y_pred"}}


def packed_message(path) -> str:
    """The error for a packed file given as a store."""
    return (f"{path} is a packed mer-bench store (its ground-truth labels are removed); nothing was changed. "
            f"Unpack it first: mer-bench unpack {path} --store NEW.sqlite --data-root DIR")


class SchemaMixin:
    """Opening checks of :class:`mer_bench.store.Store` (it provides ``_db``, ``path`` and
    ``_transaction``)."""

    def _check_identity(self, create: bool) -> None:
        """Refuse a foreign or newer database; create or upgrade ours (only when writing)."""
        db = self._db
        app_id = db.execute("PRAGMA application_id").fetchone()[0]
        version = db.execute("PRAGMA user_version").fetchone()[0]
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if app_id == PACKED_APPLICATION_ID:
            raise StoreError(packed_message(self.path))
        if app_id not in (0, APPLICATION_ID):
            raise StoreError(f"{self.path} is not a mer-bench results store (it is another program's SQLite database, "
                             f"application id {app_id:#x}); nothing was changed. Give a new file with --store PATH.")
        if app_id == APPLICATION_ID and version > SCHEMA_VERSION:
            raise StoreError(f"{self.path} was written by a newer mer-bench (store layout {version}, this one reads "
                             f"up to {SCHEMA_VERSION}); nothing was changed. Upgrade mer-bench to use it.")
        if app_id == 0 and tables:  # an unmarked file: only a first-layout mer-bench store is ours
            for table, cols in _OUR_TABLES.items():
                have = {r[1] for r in db.execute(f"PRAGMA table_info({table})")} if table in tables else set()
                if not cols <= have:
                    raise StoreError(f"{self.path} is not a mer-bench results store (it has tables "
                                     f"{', '.join(sorted(tables))} but no mer-bench {table!r} table); nothing was "
                                     f"changed. Give a new file with --store PATH.")
        if not create:
            if not tables:
                raise StoreError(f"{self.path} is an empty database, not a mer-bench results store")
            return
        if app_id == APPLICATION_ID and version == SCHEMA_VERSION:
            return
        with self._transaction():
            for statement in SCHEMA.split(";"):  # IF NOT EXISTS: idempotent
                if statement.strip():
                    db.execute(statement)
            self._migrate()
            db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def _quick_check(self) -> None:
        rows = [r[0] for r in self._db.execute("PRAGMA quick_check")]
        if rows != ["ok"]:
            raise StoreError(f"the results store {self.path} is damaged (SQLite quick_check: {'; '.join(rows[:3])}). "
                             f"Restore it from a backup, or recover what is readable with `sqlite3 {self.path} "
                             f".recover`.")

    def _migrate(self) -> None:
        """Add columns introduced after a store was created (older stores keep working)."""
        have = {row[1] for row in self._db.execute("PRAGMA table_info(runs)")}
        for col, decl in (("selection", "TEXT NOT NULL DEFAULT 'last epoch'"), ("lease_owner", "TEXT"),
                          ("lease_until", "REAL"), ("overrides", "TEXT"), ("trains_epochs", "INTEGER"),
                          ("selection_code", "TEXT"), ("representation", "TEXT"), ("cpu", "TEXT"),
                          ("threads", "INTEGER"), ("kernels", "TEXT"), ("input", "TEXT")):
            if col not in have:
                self._db.execute(f"ALTER TABLE runs ADD COLUMN {col} {decl}")
