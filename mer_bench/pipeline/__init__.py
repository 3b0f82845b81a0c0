"""The run path, one way: ``plan`` -> ``runner`` -> ``executors`` -> ``folds`` -> the method contract.

* :mod:`~mer_bench.pipeline.plan`: names, options and seeds resolved and checked; a run's identity;
* :mod:`~mer_bench.pipeline.runner`: resume, reuse, ``--force``, leases, provenance; picks an executor;
* :mod:`~mer_bench.pipeline.executors`: the local loop and Ray, both writing through one ``FoldWriter``;
* :mod:`~mer_bench.pipeline.folds`: fit and predict one fold (or a stack of folds), outputs checked.

Each module imports only those after it (checked by the import-linter contract in
``pyproject.toml``), and none imports torch at import time.
"""

from mer_bench.pipeline.plan import (
    NO_EPOCHS,
    SELECTIONS,
    Prepared,
    RunSpec,
    Selection,
    config_hash,
    default_dataset,
    prepare,
    selection_label,
)
from mer_bench.pipeline.runner import RunResult, execute, git_commit, pending_id, run

__all__ = ["prepare", "execute", "run", "RunSpec", "RunResult", "Prepared", "Selection", "SELECTIONS", "config_hash",
           "default_dataset", "git_commit", "pending_id", "NO_EPOCHS", "selection_label"]
