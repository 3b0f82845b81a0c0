"""Metrics: UF1 and UAR pooled over folds (MEGC 2019), accuracy, per-class scores, confusion.

Definition (MEGC 2019 guideline, ``images/MEGC2019 Recognition Challenge.pdf`` of the MEGC2019
repository). For each class c, TP_c, FP_c and FN_c
are summed over **all** folds, then

* ``UF1 = (1/C) sum_c 2 TP_c / (2 TP_c + FP_c + FN_c)`` (macro F1 of the pooled predictions);
* ``UAR = (1/C) sum_c TP_c / N_c`` with N_c the number of **true** class-c samples (mean
  per-class recall). Macro-*precision*, which one widely cited paper published as "UAR", is
  reported separately as ``macro_precision`` and never as UAR.

This equals macro F1 / macro recall computed once on the concatenated predictions of every
fold; the mean of per-fold scores is a different, lower-variance-free number and is not used.

Absent classes. A class with no true sample has an undefined recall (0/0). ``absent`` chooses,
explicitly, what happens:

* ``"error"`` (the default of :func:`pooled_scores` and :func:`breakdown` called directly, so a
  caller chooses): raise :class:`AbsentClassError` naming the class;
* ``"zero"``: score the absent class 0 in both means (the mean still divides by C);
* ``"exclude"``: average over the present classes only. This is the **headline policy**: the
  runner's printed scores, the store's summaries and every board use it (:func:`run_metrics`), and
  boards name each excluded class per database (Full, SMIC, CASME II, SAMM) under *Notes*.

Whatever is chosen, the result lists ``absent_classes``, so nothing is dropped silently.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["confusion_matrix", "pooled_scores", "breakdown", "AbsentClassError"]


class AbsentClassError(ValueError):
    """A class has no true sample, so UAR and UF1 are undefined under ``absent="error"``."""


def confusion_matrix(y_true: Sequence[int], y_pred: Sequence[int], n_classes: int) -> np.ndarray:
    """``(n_classes, n_classes)`` int64 counts; rows = truth, columns = prediction.

    Raises:
        ValueError: different lengths, or a label outside ``0..n_classes-1``.
    """
    t = np.asarray(y_true, dtype=np.int64).ravel()
    p = np.asarray(y_pred, dtype=np.int64).ravel()
    if t.shape != p.shape:
        raise ValueError(f"y_true has {t.size} labels, y_pred {p.size}")
    for name, arr in (("y_true", t), ("y_pred", p)):
        if arr.size and (arr.min() < 0 or arr.max() >= n_classes):
            raise ValueError(f"{name} has labels outside 0..{n_classes - 1}: {sorted(set(arr.tolist()))}")
    cm = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(cm, (t, p), 1)
    return cm


def _safe_div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    out = np.zeros_like(a, dtype=float)
    np.divide(a, b, out=out, where=b > 0)
    return out


def pooled_scores(y_true: Sequence[int], y_pred: Sequence[int], n_classes: int,
                  absent: str = "error", class_names: Sequence[str] | None = None) -> dict:
    """Pooled metrics of all predictions of a run (see the module docstring).

    Args:
        y_true, y_pred: labels ``(N,)`` in ``0..n_classes-1`` (all folds concatenated).
        n_classes: C.
        absent: ``"error"``, ``"zero"`` or ``"exclude"`` for classes without true samples.
        class_names: names for messages and ``per_class`` keys (default ``"0"``, ``"1"``...).

    Returns:
        dict with ``uf1``, ``uar``, ``accuracy``, ``macro_precision`` (floats in [0, 1]),
        ``n``, ``per_class`` (name -> precision, recall, f1, support), ``confusion`` (list of
        lists, rows = truth) and ``absent_classes`` (names).

    Raises:
        AbsentClassError: ``absent="error"`` and a class has no true sample.
        ValueError: no samples, or an unknown ``absent`` policy.
    """
    if absent not in ("error", "zero", "exclude"):
        raise ValueError(f"absent must be error, zero or exclude, got {absent!r}")
    names = list(class_names) if class_names is not None else [str(c) for c in range(n_classes)]
    cm = confusion_matrix(y_true, y_pred, n_classes)
    n = int(cm.sum())
    if n == 0:
        raise ValueError("no predictions to score")
    tp = np.diag(cm).astype(float)
    fp = cm.sum(axis=0) - tp
    fn = cm.sum(axis=1) - tp
    support = cm.sum(axis=1)
    present = support > 0
    absent_names = [names[c] for c in np.flatnonzero(~present)]
    if absent_names and absent == "error":
        raise AbsentClassError(
            f"class(es) {absent_names} have no true sample, so UF1/UAR are undefined; pass absent='zero' "
            f"(score them 0) or absent='exclude' (average over present classes) explicitly")
    f1 = _safe_div(2 * tp, 2 * tp + fp + fn)
    recall = _safe_div(tp, tp + fn)
    precision = _safe_div(tp, tp + fp)
    use = present if absent == "exclude" else np.ones(n_classes, bool)
    return {
        "uf1": float(f1[use].mean()),
        "uar": float(recall[use].mean()),
        "accuracy": float(tp.sum() / n),
        "macro_precision": float(precision[use].mean()),
        "n": n,
        "per_class": {names[c]: {"precision": float(precision[c]), "recall": float(recall[c]),
                                 "f1": float(f1[c]), "support": int(support[c])} for c in range(n_classes)},
        "confusion": cm.tolist(),
        "absent_classes": absent_names,
    }


def breakdown(y_true: Sequence[int], y_pred: Sequence[int], groups: Sequence[str], n_classes: int,
              class_names: Sequence[str] | None = None, absent: str = "error") -> dict[str, dict]:
    """Pooled scores over everything (``"Full"``) and per group (e.g. the source database of a
    composite), each on the pooled predictions restricted to that group.

    Per-group scores use ``absent`` too; a group that lacks a class under ``"error"`` raises.
    """
    t, p, g = np.asarray(y_true), np.asarray(y_pred), np.asarray(groups).astype(str)
    out = {"Full": pooled_scores(t, p, n_classes, absent, class_names)}
    for name in dict.fromkeys(g.tolist()):
        m = g == name
        out[name] = pooled_scores(t[m], p[m], n_classes, absent, class_names)
    return out


#: report order of the databases of a composite (MEGC 2019: SMIC, CASME II, SAMM)
SUBSET_ORDER = ("smic", "casme2", "samm")


def run_metrics(preds, classes: tuple[str, ...]) -> dict[str, dict]:
    """Pooled scores (``Full``) plus a per-database breakdown when the dataset is a composite,
    under the headline absent-class policy ``"exclude"``.

    A class absent from the ground truth (of everything, or of one database) is excluded from
    that mean and listed in its ``absent_classes`` (see :mod:`mer_bench.metrics`).
    """
    groups = preds["dataset"].to_numpy()
    scores = breakdown(preds["y_true"].to_numpy(), preds["y_pred"].to_numpy(), groups, len(classes), classes,
                       absent="exclude")
    if len(set(groups)) == 1:
        return {"Full": scores["Full"]}
    order = ["Full", *SUBSET_ORDER]
    return dict(sorted(scores.items(), key=lambda kv: (order.index(kv[0]) if kv[0] in order else len(order), kv[0])))
