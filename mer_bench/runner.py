"""Deprecated import path, kept for one release: the run path lives in :mod:`mer_bench.pipeline`
(``plan``, ``runner``, ``executors``, ``folds``). Import from there."""

from mer_bench.metrics import SUBSET_ORDER, run_metrics
from mer_bench.pipeline.folds import check_stacking, fit_predict_fold, fit_predict_folds_stacked
from mer_bench.pipeline.plan import (
    MAX_SEED,
    SELECTIONS,
    Prepared,
    RunSpec,
    check_seeds,
    config_hash,
    default_dataset,
    prepare,
)
from mer_bench.pipeline.runner import RunResult, execute, git_commit, pending_id, run

__all__ = ["RunSpec", "RunResult", "prepare", "execute", "run", "config_hash", "git_commit", "run_metrics",
           "SELECTIONS", "fit_predict_fold", "fit_predict_folds_stacked", "check_stacking", "pending_id", "check_seeds",
           "MAX_SEED", "Prepared", "SUBSET_ORDER", "default_dataset"]
