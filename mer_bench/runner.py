"""The runner: method x protocol x dataset x seed -> folds -> stored predictions -> metrics.

The pipeline is a straight line::

    dataset.table()  ->  protocol.folds(table, seed)  ->  for each fold:
        method = Method(**params, random_state=seed*1000 + fold)     # fresh, seeded
        method.fit(train samples)                                     # never sees test labels
        predict(test samples without labels)  ->  store.write_fold()  # one transaction
    ->  metrics.pooled_scores(all stored predictions)

Everything before the first fold is checked first (names, hyper-parameters, representation,
protocol feasibility, a writable store), so bad input fails in seconds and loses nothing.
A run's identity is its ``run_id`` = configuration hash + seed; a completed run is not
recomputed unless ``force=True``, and an interrupted one resumes from its completed folds,
giving the same predictions as an uninterrupted run (each fold is seeded independently).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mer_bench import __version__, runtime
from mer_bench.data import DatasetError
from mer_bench.method import (
    REPRESENTATIONS,
    MethodError,
    ParameterError,
    check_options,
    check_outputs,
    resolve_params,
)
from mer_bench.metrics import breakdown
from mer_bench.protocol import ProtocolError
from mer_bench.registry import DATASETS, METHODS, PROTOCOLS
from mer_bench.store import Store

__all__ = ["RunSpec", "RunResult", "prepare", "execute", "run", "config_hash", "git_commit", "run_metrics",
           "SELECTIONS", "fit_predict_fold", "fit_predict_folds_stacked", "check_stacking"]

#: model selection: ``last`` (the fixed last epoch; the default) or ``best-on-test`` (the epoch
#: that scores best on the test subject's clips: LEAKY, for reproducing published practice only)
#: report order of the databases of a composite (MEGC 2019: SMIC, CASME II, SAMM)
SUBSET_ORDER = ("smic", "casme2", "samm")

SELECTIONS = {"last": "last epoch", "best-on-test": "best epoch on the test subject (LEAKY)"}
#: ``prepare(selection="both")``: one training per fold gives both runs (``last`` and
#: ``best-on-test``), to measure the inflation of test-set epoch selection at the cost of one run


@dataclass(frozen=True)
class RunSpec:
    """One fully resolved run: what is hashed into its identity."""

    method: str
    dataset: str
    protocol: str
    seed: int
    params: dict[str, Any]
    preset: str | None
    dataset_options: dict[str, Any]
    dataset_fingerprint: str
    protocol_options: dict[str, Any]
    leaky: bool
    selection: str = "last"

    @property
    def config_hash(self) -> str:
        extra = {} if self.selection == "last" else {"selection": self.selection}
        return config_hash(self.method, self.params, self.dataset, self.dataset_options, self.dataset_fingerprint,
                           self.protocol, {**self.protocol_options, **extra})

    @property
    def run_id(self) -> str:
        return f"{self.config_hash}-s{self.seed}"


@dataclass
class RunResult:
    """What a run produced. ``status``: ``computed``, ``resumed`` or ``cached``."""

    spec: RunSpec
    status: str
    n_folds: int
    wall_time: float
    scores: dict[str, dict] = field(default_factory=dict)
    device: str = ""

    def as_dict(self) -> dict[str, Any]:
        s = self.spec
        return {"run_id": s.run_id, "config_hash": s.config_hash, "method": s.method, "dataset": s.dataset,
                "protocol": s.protocol, "seed": s.seed, "preset": s.preset, "params": s.params,
                "leaky": s.leaky, "selection": SELECTIONS[s.selection], "status": self.status,
                "folds": self.n_folds, "wall_time": self.wall_time,
                "device": self.device, "scores": self.scores}


def config_hash(method: str, params: dict, dataset: str, dataset_options: dict, fingerprint: str,
                protocol: str, protocol_options: dict) -> str:
    """12 hex digits identifying a configuration (everything but the seed and the device)."""
    blob = json.dumps({"method": method, "params": params, "dataset": dataset, "dataset_options": dataset_options,
                       "fingerprint": fingerprint, "protocol": protocol, "protocol_options": protocol_options},
                      sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def git_commit() -> str:
    """The git commit of the mer-bench source tree, or ``"unknown"`` (e.g. a wheel install)."""
    try:
        out = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=Path(__file__).parent,
                             capture_output=True, text=True, timeout=5)
        commit = out.stdout.strip()
        if out.returncode or not commit:
            return "unknown"
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=Path(__file__).parent,
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return commit + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


@dataclass
class Prepared:
    """A checked run plan: the objects it needs and the resolved specs."""

    method_cls: type
    dataset: Any
    protocol: Any
    specs: list[RunSpec]
    representation: str = "none"
    #: constructor arguments of the dataset and protocol (what a remote worker needs to rebuild them)
    dataset_kwargs: dict[str, Any] = field(default_factory=dict)
    protocol_kwargs: dict[str, Any] = field(default_factory=dict)


def prepare(method: str, protocol: str = "loso", dataset: str = "synthetic", seeds: list[int] | None = None,
            overrides: dict[str, Any] | None = None, preset: str | None = None,
            dataset_options: dict[str, Any] | None = None,
            protocol_options: dict[str, Any] | None = None, selection: str = "last") -> Prepared:
    """Resolve names and hyper-parameters and check that the run can start.

    Args:
        selection: a key of :data:`SELECTIONS`. ``"best-on-test"`` hands each fold's *labelled*
            test samples to the method to keep its best epoch: the run is marked leaky.

    Raises:
        UnknownNameError, PluginLoadError: a bad method/protocol/dataset name or plugin.
        ParameterError: an invalid override or preset.
        DatasetError, ProtocolError: the dataset cannot feed the method or the protocol.
    """
    method_cls = METHODS.get(method)
    seeds = check_seeds(seeds)
    protocol_cls = PROTOCOLS.get(protocol)
    protocol_obj = protocol_cls(**check_options(protocol_cls, protocol_options, "--protocol-set"))
    dataset_cls = DATASETS.get(dataset)
    dataset_options = check_options(dataset_cls, dataset_options, "--dataset-set")
    scheme = getattr(protocol_obj, "class_scheme", None)
    if scheme is not None:  # the protocol fixes the class scheme of datasets that have one
        import inspect

        # an __init__ may pass **kwargs to its base: look along the class hierarchy
        if not any("classes" in inspect.signature(c.__init__).parameters
                   for c in dataset_cls.__mro__ if "__init__" in vars(c)):
            raise ProtocolError(f"protocol {protocol!r} needs a dataset with class schemes (raw datasets such as "
                                f"casme2, samm); {dataset!r} has none")
        if dataset_options.setdefault("classes", scheme) != scheme:
            raise ProtocolError(f"protocol {protocol!r} uses the {scheme!r} classes, not "
                                f"{dataset_options['classes']!r}")
    dataset_obj = dataset_cls(**dataset_options)
    if selection not in (*SELECTIONS, "both"):
        raise ParameterError(f"unknown model selection {selection!r}; choose {' or '.join(SELECTIONS)}")
    if selection != "last" and not method_cls.info.supports_epoch_selection:
        raise ParameterError(f"method {method!r} has no epochs to select; --select-epoch {selection} does not apply")
    info = method_cls.info
    rep = info.choose_representation(dataset_obj.representations)
    if rep is None:
        wanted = " or ".join(repr(r) for r in (info.representation, *info.accepts))
        wanted_set = {info.representation, *info.accepts}
        able = []
        for name in DATASETS.names():
            try:
                if wanted_set & set(getattr(DATASETS.get(name), "representations", ())):
                    able.append(name)
            except Exception:  # a broken plugin must not hide the real error
                continue
        raise DatasetError(
            f"method {method!r} needs the {wanted} representation ({REPRESENTATIONS[info.representation]}), which "
            f"dataset {dataset!r} does not provide (it provides {', '.join(dataset_obj.representations)}). Datasets "
            f"that compute it: {', '.join(able) or 'none installed'} (raw frame datasets preprocess it from the frames "
            f"and cache it; e.g. --dataset megc2019-raw for the composite's clips)")
    if preset is None and dataset_obj.suggested_preset in getattr(method_cls, "presets", {}):
        preset = dataset_obj.suggested_preset
    params = resolve_params(method_cls, preset, overrides)
    table = dataset_obj.table()
    for seed in seeds:  # protocol feasibility before any training
        protocol_obj.folds(table, seed)
    selections = ["last", "best-on-test"] if selection == "both" else [selection]
    specs = [RunSpec(method, dataset, protocol, seed, params, preset, dataset_obj.options(), dataset_obj.fingerprint(),
                     protocol_obj.options(), bool(protocol_obj.leaky) or sel != "last", sel)
             for seed in seeds for sel in selections]
    return Prepared(method_cls, dataset_obj, protocol_obj, specs, rep, dict(dataset_options),
                    dict(protocol_options or {}))


#: the largest run seed: fold seeds ``seed * 1000 + fold_index`` must fit the 32-bit seeds that
#: numpy's ``RandomState`` and scikit-learn take (``2**32 - 1``), for up to 1000 folds
MAX_SEED = (2**32 - 1 - 999) // 1000


def check_seeds(seeds: list[int] | None) -> list[int]:
    """The run seeds, duplicates dropped (``[0]`` when none).

    Raises:
        ParameterError: a seed that is not an integer in ``0..MAX_SEED``.
    """
    out = []
    for seed in seeds or [0]:
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
            raise ParameterError(f"--seed must be a whole number, got {seed!r}")
        if not 0 <= seed <= MAX_SEED:
            raise ParameterError(f"--seed {seed}: seeds run from 0 to {MAX_SEED} (each fold is seeded with "
                                 f"seed * 1000 + fold, which must fit a 32-bit seed)")
        out.append(int(seed))
    return list(dict.fromkeys(out))


def run_metrics(preds, classes: tuple[str, ...]) -> dict[str, dict]:
    """Pooled scores (``Full``) plus a per-database breakdown when the dataset is a composite.

    A class absent from the ground truth is excluded from the means and listed in
    ``absent_classes`` (see :mod:`mer_bench.metrics`).
    """
    groups = preds["dataset"].to_numpy()
    scores = breakdown(preds["y_true"].to_numpy(), preds["y_pred"].to_numpy(), groups, len(classes), classes,
                       absent="exclude")
    if len(set(groups)) == 1:
        return {"Full": scores["Full"]}
    order = ["Full", *SUBSET_ORDER]
    return dict(sorted(scores.items(), key=lambda kv: (order.index(kv[0]) if kv[0] in order else len(order), kv[0])))


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
                     fold_index: int, seed: int, selections: list[str]) -> dict[str, list[tuple]]:
    """Train one fold and predict its test clips: the unit of work of every executor.

    The method is seeded with ``seed * 1000 + fold_index``. ``selections``: ``"last"`` and/or
    ``"best-on-test"`` (the latter hands the *labelled* test clips to ``fit``: leaky by request).

    Returns:
        selection -> prediction rows ``(sample_id, subject, dataset, y_true, y_pred, proba)``.

    Raises:
        MethodError: the method raised, or returned predictions that break the contract
            (:func:`mer_bench.method.check_outputs`); nothing of the fold is returned.
    """
    where = _where(method_cls, fold, fold_index)
    method = _call("its constructor", where, method_cls, **{**params, "random_state": seed * 1000 + fold_index})
    train = dataset.samples(representation, fold.train)
    if "best-on-test" in selections:
        select_on = dataset.samples(representation, fold.test)
        _call("fit", where, method.fit, train, select_on=select_on)
    else:
        _call("fit", where, method.fit, train)
    return _prediction_rows(method, dataset, representation, fold, selections, where)


def fit_predict_folds_stacked(method_cls: type, params: dict[str, Any], dataset: Any, representation: str,
                              folds: list[tuple[int, Any]], seed: int) -> dict[int, dict[str, list[tuple]]]:
    """Train several folds at once with their networks stacked (``method_cls.fit_stacked``; see
    :func:`mer_bench.trainer.fit_classifiers_stacked`) and predict each fold's test clips.

    Each fold's method is seeded as in :func:`fit_predict_fold`, so the predictions equal
    fold-by-fold training up to floating-point noise. Only the last-epoch model (leak-free).

    Returns:
        fold index -> ``{"last": prediction rows}``.

    Raises:
        MethodError: as :func:`fit_predict_fold`.
    """
    where = _where(method_cls, folds[0][1], folds[0][0]) + (f" to {folds[-1][0]} (stacked)" if len(folds) > 1 else "")
    methods = [_call("its constructor", where, method_cls, **{**params, "random_state": seed * 1000 + i})
               for i, _ in folds]
    _call("fit_stacked", where, method_cls.fit_stacked, methods,
          [dataset.samples(representation, fold.train) for _, fold in folds])
    return {i: _prediction_rows(m, dataset, representation, fold, ["last"], _where(method_cls, fold, i))
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
                   channels_last: bool = False, compile: bool = False) -> None:
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


def execute(prep: Prepared, store: Store, device: str = "auto", force: bool = False,
            on_fold=None, on_progress=None, executor: str = "local",
            ray_options: dict[str, Any] | None = None, channels_last: bool = False,
            stack_folds: int = 1, cudnn_benchmark: bool = False, compile: bool = False) -> list[RunResult]:
    """Run (or resume, or reuse) every spec of ``prep``; returns one :class:`RunResult` per seed.

    Args:
        on_fold: ``on_fold(spec, fold_index, n_folds, fold_name, status)`` after each fold
            (``status``: ``"start"``, ``"done"``, ``"skipped"``).
        on_progress: passed to the trainer as the runtime progress callback.
        executor: ``"local"`` (in this process) or ``"ray"`` (each fold a Ray task; see
            :mod:`mer_bench.executors`); the store is written here, by the driver, either way.
        ray_options: ``address``, ``num_cpus`` / ``num_gpus`` per fold, ``max_retries``.
        channels_last: train in the channels-last memory format (a run-time setting: not part of
            the run's identity, the same results up to floating-point noise).
        stack_folds: train up to this many folds at once with their networks stacked
            (:func:`fit_predict_folds_stacked`; local executor, torch methods). A run-time setting
            like ``channels_last``: the same results up to floating-point noise. An interruption
            loses the folds of the group in training, as fold-by-fold loses the fold in training.
        cudnn_benchmark, compile: run-time settings of the trainer (:class:`mer_bench.runtime.Runtime`).

    Raises:
        ValueError: an unknown executor or an unavailable device.
        ParameterError: ``stack_folds`` that cannot apply (see :func:`check_stacking`).
    """
    from mer_bench.runtime import resolve_device

    if executor not in ("local", "ray"):
        raise ValueError(f"unknown executor {executor!r}; choose local or ray")
    dev = resolve_device(device) if executor == "local" else device
    check_stacking(prep.method_cls, stack_folds, executor, sorted({s.selection for s in prep.specs}), channels_last,
                   compile)
    table = prep.dataset.table()
    results = []
    groups: dict[int, list[RunSpec]] = {}
    for spec in prep.specs:  # the specs of one seed share their trainings (selection="both")
        groups.setdefault(spec.seed, []).append(spec)
    held: list[str] = []  # rows this call holds the lease on
    try:
        for seed, specs in groups.items():
            results += _execute_seed(prep, store, seed, specs, table, dev, device, force, held, on_fold, on_progress,
                                     executor, ray_options, channels_last, stack_folds, cudnn_benchmark, compile)
    except BaseException:
        for write_id in held:  # a start that failed before its first fold leaves no "running" row
            with contextlib.suppress(Exception):
                store.discard_if_empty(write_id)
        raise
    finally:
        for write_id in held:
            store.release(write_id)
    return results


def pending_id(run_id: str) -> str:
    """Where ``--force`` recomputes run ``run_id`` until the new run is complete."""
    return f"{run_id}~force"


def _execute_seed(prep, store, seed, specs, table, dev, device, force, held, on_fold, on_progress, executor,
                  ray_options, channels_last, stack_folds, cudnn_benchmark, compile) -> list[RunResult]:
    folds = prep.protocol.folds(table, seed)
    results = []
    pending, done, status, write = [], {}, {}, {}
    for spec in specs:
        existing = store.get_run(spec.run_id)
        if existing and existing["status"] == "complete" and not force:
            preds = store.predictions(spec.run_id)
            results.append(RunResult(spec, "cached", len(folds), existing["wall_time"] or 0.0,
                                     run_metrics(preds, prep.dataset.classes), existing["device"] or ""))
            continue
        # --force keeps the old run until the new one is complete (pending_id, then Store.promote)
        write[spec.run_id] = pending_id(spec.run_id) if existing and force else spec.run_id
        store.start_run({
            "run_id": write[spec.run_id], "config_hash": spec.config_hash, "method": spec.method,
            "dataset": spec.dataset, "protocol": spec.protocol, "seed": spec.seed, "preset": spec.preset,
            "params": spec.params, "dataset_options": spec.dataset_options,
            "dataset_fingerprint": spec.dataset_fingerprint, "protocol_options": spec.protocol_options,
            "classes": list(prep.dataset.classes), "leaky": int(spec.leaky), "selection": SELECTIONS[spec.selection],
            "n_folds": len(folds)})
        store.acquire(write[spec.run_id])  # another process computing this run: refused here, before training
        held.append(write[spec.run_id])
        done[spec.run_id] = store.completed_folds(write[spec.run_id])
        status[spec.run_id] = "resumed" if done[spec.run_id] else "computed"
        pending.append(spec)
    if not pending:
        return results
    import torch

    todo_folds = [(i, fold, [s for s in pending if i not in done[s.run_id]]) for i, fold in enumerate(folds)]
    for i, fold, todo in todo_folds:
        if not todo and on_fold:
            on_fold(pending[0], i, len(folds), fold.name, "skipped")
    work = [(i, fold, todo) for i, fold, todo in todo_folds if todo]
    if executor == "ray":
        from mer_bench.executors import run_folds_on_ray

        dev = "ray:" + run_folds_on_ray(prep, store, seed, work, len(folds), device, on_fold, ray_options or {},
                                        write_ids=write)
    else:
        with runtime.use(device=dev, progress=on_progress, channels_last=channels_last,
                         cudnn_benchmark=cudnn_benchmark, compile=compile):
            for start in range(0, len(work), stack_folds):
                chunk = work[start:start + stack_folds]
                for i, fold, _ in chunk:
                    if on_fold:
                        on_fold(pending[0], i, len(folds), fold.name, "start")
                t0 = time.perf_counter()
                if len(chunk) > 1:
                    rows = fit_predict_folds_stacked(prep.method_cls, pending[0].params, prep.dataset,
                                                     prep.representation, [(i, f) for i, f, _ in chunk], seed)
                else:
                    i, fold, todo = chunk[0]
                    rows = {i: fit_predict_fold(prep.method_cls, pending[0].params, prep.dataset,
                                                prep.representation, fold, i, seed,
                                                sorted({s.selection for s in todo}))}
                per_fold = (time.perf_counter() - t0) / len(chunk)  # a stacked group's time, shared
                for i, fold, todo in chunk:
                    for spec in todo:
                        store.write_fold(write[spec.run_id], i, fold.name, len(fold.train), per_fold, dev,
                                         rows[i][spec.selection])
                    if on_fold:
                        on_fold(pending[0], i, len(folds), fold.name, "done")
    n_test = sum(len(f.test) for f in folds)
    for spec in pending:
        wid = write[spec.run_id]
        _check_complete(store, wid, spec, len(folds), n_test, len(prep.dataset.classes))
        wall = store.fold_times(wid)
        store.finish_run(wid, wall_time=wall, device=dev, package_version=__version__, git_commit=git_commit(),
                         torch_version=torch.__version__)
        if wid != spec.run_id:
            store.release(wid)
            held.remove(wid)
            store.promote(wid, spec.run_id)
        preds = store.predictions(spec.run_id)
        results.append(RunResult(spec, status[spec.run_id], len(folds), wall,
                                 run_metrics(preds, prep.dataset.classes), dev))
    return results


def _check_complete(store: Store, write_id: str, spec: RunSpec, n_folds: int, n_test: int, n_classes: int) -> None:
    """Before a run is marked complete: every fold stored, every test clip once, labels in range.

    Raises:
        MethodError: what is missing or wrong (the run stays ``running``; re-running resumes it).
    """
    have = store.completed_folds(write_id)
    n_pred = store.count_predictions(write_id)
    problem = None
    if have != set(range(n_folds)):
        problem = f"folds {sorted(set(range(n_folds)) - have)} are missing"
    elif n_pred != n_test:
        problem = f"{n_pred} predictions stored for {n_test} test clips"
    else:
        problem = store.check_predictions(write_id, n_classes)
    if problem:
        raise MethodError(f"run {spec.run_id} ({spec.method}) cannot be marked complete: {problem}; it stays "
                          f"incomplete in {store.path}")


def run(method: str, protocol: str = "loso", dataset: str = "synthetic", seeds: list[int] | None = None,
        overrides: dict[str, Any] | None = None, preset: str | None = None, store: Store | str | None = None,
        device: str = "auto", force: bool = False, dataset_options: dict[str, Any] | None = None,
        protocol_options: dict[str, Any] | None = None, selection: str = "last") -> list[RunResult]:
    """Python entry point: :func:`prepare` then :func:`execute` (no progress display)."""
    prep = prepare(method, protocol, dataset, seeds, overrides, preset, dataset_options, protocol_options, selection)
    own = not isinstance(store, Store)
    st = Store(store) if own else store
    try:
        return execute(prep, st, device=device, force=force)
    finally:
        if own:
            st.close()
