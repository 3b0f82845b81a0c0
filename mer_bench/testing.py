"""The conformance checks every method must pass (after scikit-learn's ``check_estimator``).

The checks: the method declares its source; ``__init__`` only stores hyper-parameters; ``fit``
returns self and sets learned state ending in ``_``; predictions lie in the training classes;
probabilities are finite rows summing to 1; a clone has the same parameters; the same seed gives
the same predictions; test labels are never needed; a class missing from a training fold does not
crash; input of the wrong shape is a clear ``ValueError``; folds trained stacked
(``fit_stacked``) equal folds trained one by one.

Use in a plugin's own tests (one line)::

    from mer_bench.testing import check_method
    check_method(MyMethod, params={"epochs": 1})

or parametrise over :func:`method_checks` to get one test per check. Checks run on a tiny
embedded synthetic dataset (4 subjects), so they take seconds.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import numpy as np

from mer_bench.data import Samples
from mer_bench.method import Method, MethodInfo, clone

__all__ = ["tiny_dataset", "method_checks", "check_method"]


def tiny_dataset(seed: int = 0):
    """A 4-subject synthetic dataset (about 28 clips), not cached on disk."""
    from mer_bench.datasets.synthetic import SyntheticMER

    return SyntheticMER(seed=seed, n_subjects=4, min_clips=6, max_clips=8, cache=False)


def _split(method_cls: type[Method]) -> tuple[Samples, Samples]:
    ds = tiny_dataset()
    table = ds.table()
    test_subject = table["subject"].iloc[0]
    test_idx = np.flatnonzero(table["subject"].to_numpy() == test_subject)
    train_idx = np.flatnonzero(table["subject"].to_numpy() != test_subject)
    rep = method_cls.info.choose_representation(ds.representations)
    assert rep is not None, f"the synthetic dataset provides none of {method_cls.info.name}'s representations"
    return ds.samples(rep, train_idx), ds.samples(rep, test_idx, with_labels=False)


def check_info(method_cls, params):
    assert isinstance(getattr(method_cls, "info", None), MethodInfo), "info must be a MethodInfo"
    assert method_cls.info.citation, "info.citation must name the source"


def check_init_stores_params_only(method_cls, params):
    m = method_cls(**params)
    got = m.get_params()
    for k, v in params.items():
        assert got[k] == v, f"__init__ must store {k} unchanged"
    sig = inspect.signature(method_cls.__init__)
    for name, p in sig.parameters.items():
        if name != "self":
            assert p.default is not inspect.Parameter.empty, f"hyper-parameter {name} needs a default"
    assert not [a for a in vars(m) if a.endswith("_")], "__init__ must not set learned (trailing _) attributes"


def check_fit_returns_self(method_cls, params):
    train, _ = _split(method_cls)
    m = method_cls(**params)
    assert m.fit(train) is m, "fit must return self"
    learned = [a for a in vars(m) if a not in m.param_names()]
    bad = [a for a in learned if not a.endswith("_") and not a.startswith("_")]
    assert not bad, f"learned state must end in '_': {bad}"
    assert hasattr(m, "classes_"), "fit must set classes_"


def check_predict_in_classes(method_cls, params):
    train, test = _split(method_cls)
    m = method_cls(**params).fit(train)
    pred = np.asarray(m.predict(test))
    assert pred.shape == (len(test),), f"predict must return (N,), got {pred.shape}"
    assert np.issubdtype(pred.dtype, np.integer), "predict must return integer labels"
    assert set(pred.tolist()) <= set(range(train.n_classes)), "predictions outside the classes"


def check_proba_rows_sum_to_one(method_cls, params):
    if not hasattr(method_cls, "predict_proba"):
        return
    train, test = _split(method_cls)
    proba = np.asarray(method_cls(**params).fit(train).predict_proba(test))
    assert proba.shape == (len(test), train.n_classes), f"predict_proba shape {proba.shape}"
    assert np.all(np.isfinite(proba)), "probabilities must be finite"
    assert np.all(proba >= 0) and np.allclose(proba.sum(1), 1, atol=1e-5), "rows must be distributions"


def check_clone_roundtrip(method_cls, params):
    m = method_cls(**params)
    c = clone(m)
    assert c is not m and c.get_params() == m.get_params(), "clone must copy hyper-parameters"


def check_deterministic_with_seed(method_cls, params):
    train, test = _split(method_cls)
    p1 = method_cls(**params).fit(train).predict(test)
    p2 = method_cls(**params).fit(train).predict(test)
    assert np.array_equal(p1, p2), "same data and random_state must give the same predictions"


def check_no_test_labels_needed(method_cls, params):
    train, test = _split(method_cls)
    assert test.y is None
    method_cls(**params).fit(train).predict(test)  # must not touch test.y


def check_class_missing_from_training(method_cls, params):
    """A LOSO training fold may lack a class (e.g. SAMM subject 025 holds only 'other'): no crash,
    predictions still in ``0..n_classes-1``, probabilities still over every class."""
    train, test = _split(method_cls)
    keep = train.y != train.y.max()
    reduced = replace(train, X=train.X[keep], y=train.y[keep], subject=train.subject[keep],
                      sample_id=train.sample_id[keep])
    m = method_cls(**params).fit(reduced)
    pred = np.asarray(m.predict(test))
    assert set(pred.tolist()) <= set(range(train.n_classes)), "predictions outside the classes"
    if hasattr(m, "predict_proba"):
        assert np.asarray(m.predict_proba(test)).shape == (len(test), train.n_classes), \
            "predict_proba must cover every class, also one absent from training"


def check_bad_input_shape_is_a_clear_error(method_cls, params):
    """Input of the wrong rank raises ``ValueError`` naming the expected shape."""
    if method_cls.info.representation == "none":
        return
    train, _ = _split(method_cls)
    bad = replace(train, X=train.X.reshape(len(train), -1))
    try:
        method_cls(**params).fit(bad)
    except ValueError as exc:
        assert "expect" in str(exc) or "shape" in str(exc), f"the error should name the expected shape: {exc}"
    else:
        raise AssertionError(f"fit accepted input of shape {bad.X.shape}; it must raise ValueError")


def check_stacked_fit_equals_fold_by_fold(method_cls, params):
    """Methods that train folds stacked (``fit_stacked``, e.g. every :class:`TorchClipMethod`):
    two folds of different sizes and seeds fitted at once give the models of fitting each alone,
    up to floating-point noise: their test probabilities differ by under 5 % of how far training
    moved them from the initial network's."""
    if not hasattr(method_cls, "fit_stacked") or not hasattr(method_cls, "_setup_fit"):
        return
    train, test = _split(method_cls)
    keep = train.subject != train.subject[0]
    smaller = replace(train, X=train.X[keep], y=train.y[keep], subject=train.subject[keep],
                      sample_id=train.sample_id[keep])
    folds = [(0, train), (1, smaller)]
    alone = [method_cls(**{**params, "random_state": s}).fit(t).predict_proba(test) for s, t in folds]
    stacked = method_cls.fit_stacked([method_cls(**{**params, "random_state": s}) for s, _ in folds],
                                     [t for _, t in folds])
    for m, (s, t), p in zip(stacked, folds, alone):
        assert hasattr(m, "model_") and np.array_equal(m.classes_, np.arange(t.n_classes)), "fit_stacked must fit"
        init = method_cls(**{**params, "random_state": s})
        init.model_ = init._setup_fit(t)[1].eval()
        moved = np.abs(p - init.predict_proba(test)).max()
        diff = np.abs(np.asarray(m.predict_proba(test)) - p).max()
        assert diff <= 0.05 * moved, (f"stacked training differs from fold-by-fold by {diff:.3g} (training moved the "
                                      f"probabilities by {moved:.3g})")


_CHECKS: list[Callable[[type, dict], None]] = [
    check_info, check_init_stores_params_only, check_fit_returns_self, check_predict_in_classes,
    check_proba_rows_sum_to_one, check_clone_roundtrip, check_deterministic_with_seed, check_no_test_labels_needed,
    check_class_missing_from_training, check_bad_input_shape_is_a_clear_error, check_stacked_fit_equals_fold_by_fold,
]


def method_checks(method_cls: type[Method], params: dict[str, Any] | None = None,
                  expected_failures: dict[str, str] | None = None) -> Iterator[tuple[str, Callable[[], None]]]:
    """Yield ``(check_name, thunk)`` pairs; ``expected_failures`` maps names to reasons (skipped)."""
    params = params or {}
    for check in _CHECKS:
        name = check.__name__
        if expected_failures and name in expected_failures:
            continue
        yield name, (lambda c=check: c(method_cls, params))


def check_method(method_cls: type[Method], params: dict[str, Any] | None = None,
                 expected_failures: dict[str, str] | None = None) -> None:
    """Run every check; raises ``AssertionError`` naming the first that fails."""
    for name, thunk in method_checks(method_cls, params, expected_failures):
        try:
            thunk()
        except AssertionError as exc:
            raise AssertionError(f"{method_cls.__name__} fails {name}: {exc}") from exc
