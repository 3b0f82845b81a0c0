"""The unit of work of every executor: fit one fold (or a stack of folds) and predict its test clips.

A fold's method is built fresh and seeded with ``seed * 1000 + fold_index``; it never sees the
test labels (unless a leaky selection is asked for by name); its outputs are checked against
the method contract (:func:`mer_bench.method.check_outputs`) before they become prediction rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mer_bench.method import MethodError, ParameterError, check_outputs

__all__ = ["FoldResult", "fit_predict_fold", "fit_predict_folds_stacked", "fit_all", "check_stacking"]


@dataclass
class FoldResult:
    """What training one fold produced.

    Attributes:
        rows: selection -> prediction rows ``(sample_id, subject, dataset, y_true, y_pred, proba)``.
        curve: the learning curve ``[(epoch, mean training loss, training accuracy), ...]`` of a
            method that trains in epochs (``training_curve_``), else ``None``.
        states: selection -> the fitted model's :meth:`~mer_bench.method.Method.get_state`, when
            asked for (``save_models``); empty otherwise.
    """

    rows: dict[str, list[tuple]]
    curve: list[tuple] | None = None
    states: dict[str, dict] = field(default_factory=dict)


def _where(method_cls: type, fold: Any, fold_index: int) -> str:
    """``method 'x' (plugin dist), fold 3 (sub04)``: where a failure happened, for messages."""
    from mer_bench.registry import METHODS

    name = method_cls.info.name
    try:
        origin = METHODS.origin(name)
    except Exception:  # registered under another name, or not at all (a test double)
        origin = f"{method_cls.__module__}.{method_cls.__qualname__}"
    return f"method {name!r} ({origin}), fold {fold_index} ({getattr(fold, 'name', fold_index)})"


def _call(what: str, where: str, fn, *args, **kwargs):
    """Call a method's ``fit`` / ``predict``; an exception becomes a :class:`MethodError` naming the
    method and fold (the original is chained: ``MER_BENCH_DEBUG=1`` shows its traceback)."""
    try:
        return fn(*args, **kwargs)
    except (MethodError, KeyboardInterrupt):
        raise
    except Exception as exc:
        raise MethodError(f"{where}: {what} raised {type(exc).__name__}: {exc}; nothing was stored for this "
                          f"fold") from exc


def fit_predict_fold(method_cls: type, params: dict[str, Any], dataset: Any, representation: str, fold: Any,
                     fold_index: int, seed: int, selections: list[str], save_models: bool = False) -> FoldResult:
    """Train one fold and predict its test clips: the unit of work of every executor.

    The method is seeded with ``seed * 1000 + fold_index``. ``selections``: ``"last"`` and/or
    ``"best-on-test"`` (the latter hands the *labelled* test clips to ``fit``: leaky by request).
    ``save_models``: also return each selection's fitted state (:class:`FoldResult`).

    Raises:
        MethodError: the method raised, or returned predictions that break the contract
            (:func:`mer_bench.method.check_outputs`), or (``save_models``) cannot save its model;
            nothing of the fold is returned.
    """
    where = _where(method_cls, fold, fold_index)
    method = _call("its constructor", where, method_cls, **{**params, "random_state": seed * 1000 + fold_index})
    train = dataset.samples(representation, fold.train)
    if "best-on-test" in selections:
        select_on = dataset.samples(representation, fold.test)
        _call("fit", where, method.fit, train, select_on=select_on)
    else:
        _call("fit", where, method.fit, train)
    return _result(method, dataset, representation, fold, selections, where, save_models)


def _result(method: Any, dataset: Any, representation: str, fold: Any, selections: list[str], where: str,
            save_models: bool) -> FoldResult:
    rows = _prediction_rows(method, dataset, representation, fold, selections, where)
    curve = getattr(method, "training_curve_", None)
    states = {}
    if save_models:
        for selection in selections:
            fitted = method.last_epoch() if selection == "last" and hasattr(method, "last_epoch") else method
            states[selection] = _call("get_state", where, fitted.get_state)
    return FoldResult(rows, [tuple(c) for c in curve] if curve else None, states)


def fit_all(method_cls: type, params: dict[str, Any], dataset: Any, representation: str, seed: int) -> Any:
    """Train one model on every clip of ``dataset`` (``mer-bench train``), seeded with
    ``seed * 1000`` (the seed of a run's first fold); returns the fitted method.

    Raises:
        MethodError: the method raised in its constructor or ``fit``.
    """
    import numpy as np

    where = f"method {method_cls.info.name!r}, every clip of {getattr(dataset, 'name', 'the dataset')}"
    method = _call("its constructor", where, method_cls, **{**params, "random_state": seed * 1000})
    train = dataset.samples(representation, np.arange(len(dataset.table())))
    return _call("fit", where, method.fit, train)


def fit_predict_folds_stacked(method_cls: type, params: dict[str, Any], dataset: Any, representation: str,
                              folds: list[tuple[int, Any]], seed: int,
                              save_models: bool = False) -> dict[int, FoldResult]:
    """Train several folds at once with their networks stacked (``method_cls.fit_stacked``; see
    :func:`mer_bench.stacking.fit_classifiers_stacked`) and predict each fold's test clips.

    Each fold's method is seeded as in :func:`fit_predict_fold`, so the predictions equal
    fold-by-fold training up to floating-point noise. Only the last-epoch model (leak-free).

    Returns:
        fold index -> its :class:`FoldResult` (selection ``"last"``).

    Raises:
        MethodError: as :func:`fit_predict_fold`.
    """
    where = _where(method_cls, folds[0][1], folds[0][0]) + (f" to {folds[-1][0]} (stacked)" if len(folds) > 1 else "")
    methods = [_call("its constructor", where, method_cls, **{**params, "random_state": seed * 1000 + i})
               for i, _ in folds]
    _call("fit_stacked", where, method_cls.fit_stacked, methods,
          [dataset.samples(representation, fold.train) for _, fold in folds])
    return {i: _result(m, dataset, representation, fold, ["last"], _where(method_cls, fold, i), save_models)
            for m, (i, fold) in zip(methods, folds)}


def _prediction_rows(method: Any, dataset: Any, representation: str, fold: Any,
                     selections: list[str], where: str = "method") -> dict[str, list[tuple]]:
    table = dataset.table()
    test = dataset.samples(representation, fold.test, with_labels=False)
    rows_t = table.iloc[fold.test]
    n_classes = len(dataset.classes)
    out = {}
    for selection in selections:
        fitted = method
        if selection == "last" and hasattr(method, "last_epoch"):
            fitted = method.last_epoch()  # the leak-free model of the same training
        y_pred = _call("predict", where, fitted.predict, test)
        proba = _call("predict_proba", where, fitted.predict_proba, test) if hasattr(fitted, "predict_proba") \
            else None
        y_pred, proba = check_outputs(y_pred, proba, len(rows_t), n_classes, where)
        out[selection] = [(sid, subj, ds, int(t), int(p), None if pr is None else [round(float(v), 6) for v in pr])
                          for sid, subj, ds, t, p, pr in zip(
                              rows_t["sample_id"], rows_t["subject"].astype(str), rows_t["dataset"], rows_t["label"],
                              y_pred, proba if proba is not None else [None] * len(y_pred))]
    return out


def check_stacking(method_cls: type, stack_folds: int, executor: str, selections: list[str],
                   channels_last: bool | None = None, compile: bool = False) -> None:
    """Raise :class:`~mer_bench.method.ParameterError` when ``stack_folds`` > 1 cannot apply."""
    if stack_folds < 1:
        raise ParameterError(f"--stack-folds must be >= 1, got {stack_folds}")
    if stack_folds == 1:
        return
    name = method_cls.info.name
    if not hasattr(method_cls, "fit_stacked"):
        raise ParameterError(f"method {name!r} has no network to stack; --stack-folds applies to torch methods "
                             f"(use --executor ray to run its folds in parallel)")
    if executor != "local":
        raise ParameterError("--stack-folds runs with the local executor (a Ray task trains one fold)")
    if selections != ["last"]:
        raise ParameterError("--stack-folds trains the last-epoch model only; use --stack-folds 1 with --select-epoch")
    if channels_last or compile:
        raise ParameterError("--stack-folds cannot be combined with --channels-last or --compile yet")
