"""The Python API to results: runs, per-sample predictions and board rows as pandas DataFrames,
and the board's metrics and intervals computed on any predictions DataFrame.

Example (the README's "Results in Python" section runs the same)::

    from mer_bench import results

    runs = results.runs("results.sqlite", dataset="synthetic", protocol="loso")
    preds = results.predictions(runs["run_id"].iat[0], "results.sqlite")
    preds[["sample_id", "subject", "true", "pred"]].head()
    results.scores(preds)["Full"]["uf1"]                 # pooled UF1, as the board computes it
    results.interval(preds, metric="uf1")                # subject-cluster bootstrap 95 % interval
    board = results.board("results.sqlite", dataset="synthetic", protocol="loso")

Every function takes the store as a path, a :class:`~mer_bench.store.Store`, or ``None`` (the
default store, ``$MER_BENCH_STORE``); a path is opened read-only and must exist.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any

import numpy as np
import pandas as pd

from mer_bench.store import Store

__all__ = ["open_store", "runs", "predictions", "board", "scores", "interval", "classes_of"]


def open_store(store: str | os.PathLike | Store | None = None) -> Store:
    """A read-only :class:`~mer_bench.store.Store` (``store`` itself when it is one).

    Raises:
        StoreError: no store at the path, or a file that is not a mer-bench store.
    """
    return store if isinstance(store, Store) else Store(store, readonly=True)


@contextlib.contextmanager
def _opened(store):
    own = not isinstance(store, Store)
    st = open_store(store)
    try:
        yield st
    finally:
        if own:
            st.close()


def runs(store: str | os.PathLike | Store | None = None, *, dataset: str | None = None, protocol: str | None = None,
         method: str | None = None, status: str | None = "complete") -> pd.DataFrame:
    """One row per stored run (complete ones by default; ``status=None``: every run), with the
    columns of the store's ``runs`` table (``run_id``, ``method``, ``dataset``, ``protocol``,
    ``seed``, ``params`` as a dict, ``classes`` as a list, ``leaky``, ``selection``, ``imported``,
    provenance...), filtered by ``dataset``, ``protocol`` and ``method``."""
    with _opened(store) as st:
        df = st.runs(status)
    for col, value in (("dataset", dataset), ("protocol", protocol), ("method", method)):
        if value is not None:
            df = df[df[col] == value]
    return df.reset_index(drop=True)


def predictions(run_id: str, store: str | os.PathLike | Store | None = None) -> pd.DataFrame:
    """A run's per-sample predictions: ``sample_id, fold_index, subject, dataset`` (the clip's
    database), ``y_true, y_pred`` (class indices), ``true, pred`` (class names), ``p_<class>``
    (probabilities; NaN where the method gives none), ordered by fold then sample id. The class
    names are in ``df.attrs["classes"]``.

    Raises:
        KeyError: no run ``run_id`` in the store.
    """
    with _opened(store) as st:
        run = st.get_run(run_id)
        if run is None:
            raise KeyError(f"no run {run_id!r} in {st.path}")
        import json

        classes = list(json.loads(run["classes"]))
        df = st.predictions(run_id)
    df["true"] = [classes[int(i)] for i in df["y_true"]]
    df["pred"] = [classes[int(i)] for i in df["y_pred"]]
    proba = np.array([p if p is not None else [np.nan] * len(classes) for p in df["proba"]], dtype=float) \
        if len(df) else np.zeros((0, len(classes)))
    for j, c in enumerate(classes):
        df[f"p_{c}"] = proba[:, j]
    df = df.drop(columns=["proba"])
    df.attrs["classes"] = classes
    df.attrs["run_id"] = run_id
    return df


def board(store: str | os.PathLike | Store | None = None, dataset: str | None = None, protocol: str | None = None,
          n_resamples: int = 10_000) -> pd.DataFrame:
    """The leaderboard rows (:func:`mer_bench.leaderboard.board_records`) as a DataFrame: numbers
    as numbers (``uf1``, ``uf1_low``, ``uf1_high``, ...), booleans as booleans, ``table`` saying
    where each row stands (ranked, inflation, other settings, other clips, reported)."""
    from mer_bench.leaderboard import board_records, leaderboard_rows

    with _opened(store) as st:
        rows = leaderboard_rows(st, protocol, dataset, n_resamples=n_resamples)
    return pd.DataFrame(board_records(rows) if not rows.empty else [])


def classes_of(preds: pd.DataFrame, classes: list[str] | tuple[str, ...] | None = None) -> tuple[str, ...]:
    """``classes``, else those :func:`predictions` recorded in ``preds.attrs``.

    Raises:
        ValueError: neither is given.
    """
    classes = classes or preds.attrs.get("classes")
    if not classes:
        raise ValueError("give classes=[...] (the class names in label order): this DataFrame does not carry them")
    return tuple(classes)


def scores(preds: pd.DataFrame, classes: list[str] | tuple[str, ...] | None = None) -> dict[str, dict]:
    """The board's metrics of ``preds`` (``y_true``, ``y_pred``, ``dataset`` columns):
    :func:`mer_bench.metrics.run_metrics`, pooled (``"Full"``) and per database of a composite;
    each with ``uf1``, ``uar``, ``accuracy``, ``macro_precision``, ``per_class``, ``absent_classes``
    (classes absent from the ground truth are excluded from the means)."""
    from mer_bench.metrics import run_metrics

    return run_metrics(preds, classes_of(preds, classes))


def interval(preds: pd.DataFrame | list[pd.DataFrame], classes: list[str] | tuple[str, ...] | None = None,
             metric: str = "uf1", n_resamples: int = 10_000) -> Any:
    """The board's 95 % interval of ``metric`` (``uf1`` or ``uar``) on one run's predictions, or on
    a list of several seeds' (the interval of their mean): :func:`mer_bench.stats.row_statistics`,
    a subject-cluster bootstrap (clusters ``database/subject``) stratified by database on a
    composite, seed 0, so it equals the board's ``uf1_low`` / ``uf1_high``. Returns a
    :class:`mer_bench.stats.Interval` (``estimate``, ``low``, ``high``, ``n_clusters``...).

    Raises:
        StatsError: fewer than 2 test subjects.
        ValueError: another metric.
    """
    from mer_bench.stats import row_statistics

    if metric not in ("uf1", "uar"):
        raise ValueError(f"metric must be uf1 or uar, got {metric!r}")
    many = list(preds) if isinstance(preds, (list, tuple)) else [preds]
    result = row_statistics(many, len(classes_of(many[0], classes)), n_resamples=n_resamples).intervals[metric]
    if isinstance(result, Exception):
        raise result
    return result
