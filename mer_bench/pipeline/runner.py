"""The runner: a checked plan -> folds trained by an executor -> stored predictions -> scores.

The pipeline is a straight line::

    plan.prepare()  ->  runner.execute()  ->  executors (local or Ray)  ->  folds.fit_predict_fold()
        dataset.table()  ->  protocol.folds(table, seed)  ->  for each fold still to do:
            method = Method(**params, random_state=seed*1000 + fold)     # fresh, seeded
            method.fit(train samples)                                     # never sees test labels
            predict(test samples without labels)  ->  FoldWriter -> store.write_fold()  # one transaction
        ->  metrics.run_metrics(all stored predictions)

Everything before the first fold is checked first (names, hyper-parameters, representation,
protocol feasibility, a writable store, the run's lease), so bad input fails in seconds and
loses nothing. A run's identity is its ``run_id`` = configuration hash + seed; a completed run is
not recomputed unless ``force=True`` (then the new run is computed beside the old one and
replaces it only when complete), and an interrupted one resumes from its completed folds,
giving the same predictions as an uninterrupted run (each fold is seeded independently).
"""

from __future__ import annotations

import contextlib
import subprocess
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mer_bench import __version__
from mer_bench.method import MethodError, resolve_params
from mer_bench.metrics import run_metrics
from mer_bench.pipeline.executors import EXECUTORS, FoldWriter
from mer_bench.pipeline.folds import check_stacking
from mer_bench.pipeline.plan import SELECTIONS, Prepared, RunSpec, prepare, selection_label
from mer_bench.runtime import bf16_warning, cpu_description
from mer_bench.store import Store

__all__ = ["RunResult", "execute", "run", "git_commit", "installed_source", "pending_id",
           "board_facts", "check_workers", "choose_workers"]


@dataclass
class RunResult:
    """What a run produced. ``status``: ``computed``, ``resumed`` or ``cached``."""

    spec: RunSpec
    status: str
    n_folds: int
    wall_time: float
    scores: dict[str, dict] = field(default_factory=dict)
    device: str = ""
    #: whether the method trains in epochs (else its selection reads :data:`~mer_bench.pipeline.plan.NO_EPOCHS`)
    trains_epochs: bool = True
    #: the protocol's number of folds (``n_folds`` is fewer for a ``partial`` run)
    total_folds: int | None = None

    @property
    def selection(self) -> str:
        """The words for the run's model selection (:func:`~mer_bench.pipeline.plan.selection_label`)."""
        return selection_label(self.spec.selection, self.trains_epochs)

    def as_dict(self) -> dict[str, Any]:
        s = self.spec
        return {"run_id": s.run_id, "config_hash": s.config_hash, "method": s.method, "dataset": s.dataset,
                "protocol": s.protocol, "seed": s.seed, "preset": s.preset, "params": s.params,
                "leaky": s.leaky, "selection": self.selection, "status": self.status,
                "folds": self.n_folds, "total_folds": self.total_folds or self.n_folds, "wall_time": self.wall_time,
                "device": self.device, "scores": self.scores}


def git_commit() -> str:
    """The source of the running mer-bench code, recorded with every run:

    * in a git checkout: its commit (12 hex digits), ``-dirty`` with uncommitted changes;
    * installed by pip from a VCS URL: the commit pip recorded (PEP 610 ``direct_url.json``);
    * installed from a package index: ``release <version>`` (``pip install mer-bench==<version>``
      gets the same code);
    * otherwise (a copied folder, an archive): ``unknown``.
    """
    try:
        out = subprocess.run(["git", "rev-parse", "--show-toplevel", "--short=12", "HEAD"], cwd=Path(__file__).parent,
                             capture_output=True, text=True, timeout=5)
        lines = out.stdout.split()
        # only a checkout of mer-bench itself: an installed copy inside another repository is not its commit
        if not out.returncode and len(lines) == 2 and Path(__file__).resolve().is_relative_to(Path(lines[0])) \
                and (Path(lines[0]) / "mer_bench").is_dir():
            dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                                   cwd=Path(__file__).parent, capture_output=True, text=True, timeout=5).stdout.strip()
            return lines[1] + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        pass
    return installed_source()


def installed_source() -> str:
    """``git_commit`` outside a checkout: from the installed distribution's PEP 610 record."""
    import json
    from importlib import metadata

    try:
        dist = metadata.distribution("mer-bench")
    except metadata.PackageNotFoundError:
        return "unknown"
    if Path(str(dist.locate_file("mer_bench"))).resolve() != Path(__file__).resolve().parents[1]:
        return "unknown"  # the distribution found is another copy than the code running
    try:
        direct = json.loads(dist.read_text("direct_url.json") or "null")
    except ValueError:
        direct = None
    installed = any(part in ("site-packages", "dist-packages") for part in Path(__file__).resolve().parts)
    if direct is None:  # from an index (no direct URL recorded), unless it is a source folder run in place
        return f"release {dist.version}" if installed else "unknown"
    commit = (direct.get("vcs_info") or {}).get("commit_id")
    return str(commit)[:12] if commit else "unknown"


def execute(prep: Prepared, store: Store, device: str = "auto", force: bool = False,
            on_fold=None, on_progress=None, executor: str = "local",
            ray_options: dict[str, Any] | None = None, channels_last: bool | None = None,
            stack_folds: int = 1, cudnn_benchmark: bool = False, compile: bool = False,
            workers: int | str | None = None, kernels: bool = True, max_folds: int | None = None,
            save_models: str | Path | None = None) -> list[RunResult]:
    """Run (or resume, or reuse) every spec of ``prep``; returns one :class:`RunResult` per seed.

    Args:
        on_fold: ``on_fold(spec, fold_index, n_folds, fold_name, status)`` after each fold
            (``status``: ``"start"``, ``"done"``, ``"skipped"``).
        on_progress: passed to the trainer as the runtime progress callback.
        executor: ``"local"`` (in this process) or ``"ray"`` (each fold a Ray task); see
            :mod:`mer_bench.pipeline.executors`. The store is written here, by the driver, either way.
        ray_options: ``address``, ``num_cpus`` / ``num_gpus`` per fold, ``max_retries``.
        channels_last: train in the channels-last memory format (a run-time setting: not part of
            the run's identity, the same results up to floating-point noise); ``None``: as the
            network asks on a CPU (:class:`mer_bench.runtime.Runtime`).
        stack_folds: train up to this many folds at once with their networks stacked
            (:func:`fit_predict_folds_stacked`; local executor, torch methods). A run-time setting
            like ``channels_last``: the same results up to floating-point noise. An interruption
            loses the folds of the group in training, as fold-by-fold loses the fold in training.
        cudnn_benchmark, compile: run-time settings of the trainer (:class:`mer_bench.runtime.Runtime`).
        workers: local worker processes that train folds at once (:func:`choose_workers`;
            ``None``: ``$MER_BENCH_WORKERS``, else ``"auto"``). A run-time setting: the run's
            identity is the same, the thread count per fold (recorded) can change the last bits.
        kernels: allow mer-bench's CPU fast paths (:mod:`mer_bench.kernels`; recorded with the
            run as ``on``/``off``): a run-time setting, the same results up to floating-point noise.
        max_folds: train only the first ``max_folds`` folds (a smoke run, ``run --folds K``): the
            run is stored with status ``partial``, is never on a board, and running it again
            without ``max_folds`` resumes it. Its result's ``status`` is ``partial``.
        save_models: a folder: each fold's fitted model is saved as
            ``<folder>/<run_id>/fold-<k>.pt`` (:mod:`mer_bench.models`) before the fold is stored,
            so every stored fold has its model (folds stored before keep none).

    Raises:
        ValueError: an unknown executor or an unavailable device.
        ParameterError: ``stack_folds`` or ``workers`` that cannot apply (see :func:`check_stacking`).
    """
    from mer_bench.runtime import resolve_device

    if executor not in EXECUTORS:
        raise ValueError(f"unknown executor {executor!r}; choose {' or '.join(EXECUTORS)}")
    dev = resolve_device(device) if executor == "local" else device
    check_stacking(prep.method_cls, stack_folds, executor, sorted({s.selection for s in prep.specs}), channels_last,
                   compile)
    workers = check_workers(workers, executor, stack_folds)
    if save_models is not None:
        from mer_bench.method import check_saves_models

        check_saves_models(prep.method_cls)
    if max_folds is not None:
        from mer_bench.method import ParameterError

        if isinstance(max_folds, bool) or not isinstance(max_folds, int) or max_folds < 1:
            raise ParameterError(f"--folds must be a whole number >= 1, got {max_folds!r}")
        if force:
            raise ParameterError("--folds makes a partial smoke run; it cannot replace a run (--force)")
    slow = bf16_warning(dev if executor == "local" else device, str(prep.specs[0].params.get("precision", "")))
    if slow:
        warnings.warn(slow, RuntimeWarning, stacklevel=2)
    table = prep.dataset.table()
    results = []
    groups: dict[int, list[RunSpec]] = {}
    for spec in prep.specs:  # the specs of one seed share their trainings (selection="both")
        groups.setdefault(spec.seed, []).append(spec)
    held: list[str] = []  # rows this call holds the lease on
    try:
        for seed, specs in groups.items():
            results += _execute_seed(prep, store, seed, specs, table, dev, device, force, held, on_fold, on_progress,
                                     executor, ray_options, channels_last, stack_folds, cudnn_benchmark, compile,
                                     workers, kernels, max_folds, save_models)
    except BaseException:
        for write_id in held:  # a start that failed before its first fold leaves no "running" row
            with contextlib.suppress(Exception):
                store.discard_if_empty(write_id)
        raise
    finally:
        for write_id in held:
            store.release(write_id)
    return results


def check_workers(workers: int | str | None, executor: str, stack_folds: int) -> int | str:
    """``workers`` checked: ``"auto"`` or an int >= 1 (``None``: ``$MER_BENCH_WORKERS``, else ``"auto"``).

    Raises:
        ParameterError: not ``auto`` or a positive int, or more than one worker with the Ray
            executor (it has its own workers: ``--ray-cpus``) or with ``--stack-folds``.
    """
    import os

    from mer_bench.method import ParameterError

    if workers is None:
        workers = os.environ.get("MER_BENCH_WORKERS", "auto")
    if workers != "auto":
        try:
            workers = int(workers)
            if workers < 1:
                raise ValueError
        except (TypeError, ValueError):
            raise ParameterError(f"--workers must be auto or a whole number >= 1, got {workers!r}") from None
        if workers > 1 and executor != "local":
            raise ParameterError("--workers runs folds in local processes; the Ray executor has its own "
                                 "(--ray-cpus per fold task)")
        if workers > 1 and stack_folds > 1:
            raise ParameterError("--workers and --stack-folds are two ways to train folds at once: choose one")
    return workers


def choose_workers(workers: int | str, method_cls: type, device: str, executor: str, stack_folds: int,
                   n_folds: int) -> tuple[int, int]:
    """``(worker processes, torch threads per fold)`` for ``n_folds`` folds still to train.

    ``"auto"``: a network (a method with ``fit_stacked``) trained on the CPU by the local executor,
    fold by fold, gets one worker per core (at most one per fold), each with an equal share of the
    cores' threads: one small fold cannot keep several cores busy, while separate folds can (two
    1-thread workers trained 1.23-1.40x faster than one 2-thread process on the 2-core
    development CPU). Everything else: one worker, the process's own thread count.
    """
    import os

    import torch

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if workers == "auto":
        network = hasattr(method_cls, "fit_stacked")
        on_cpu = executor == "local" and str(device).startswith("cpu") and stack_folds == 1
        workers = min(cores, n_folds) if network and on_cpu and cores >= 2 and n_folds >= 2 else 1
    workers = max(1, min(int(workers), max(1, n_folds)))
    if executor == "ray":
        return 1, 1
    return (workers, max(1, cores // workers)) if workers > 1 else (1, torch.get_num_threads())


def board_facts(prep: Prepared, spec: RunSpec) -> dict[str, Any]:
    """What a board shows of a run and would otherwise have to re-derive from the method's current
    code, recorded with the run: the hyper-parameters set beyond its preset (``overrides``, JSON
    values compared after a JSON round trip), whether the method trains in epochs, the selection
    code and the input representation."""
    import json

    base = resolve_params(prep.method_cls, spec.preset)
    overrides = {k: v for k, v in spec.params.items()
                 if k not in base or json.dumps(base[k], default=str) != json.dumps(v, default=str)}
    return {"overrides": overrides, "trains_epochs": int(bool(prep.method_cls.info.supports_epoch_selection)),
            "selection_code": spec.selection, "representation": prep.representation}


def pending_id(run_id: str) -> str:
    """Where ``--force`` recomputes run ``run_id`` until the new run is complete."""
    return f"{run_id}~force"


def _execute_seed(prep, store, seed, specs, table, dev, device, force, held, on_fold, on_progress, executor,
                  ray_options, channels_last, stack_folds, cudnn_benchmark, compile, workers,
                  kernels=True, max_folds=None, save_models=None) -> list[RunResult]:
    folds = prep.folds.get(seed) or prep.protocol.folds(table, seed)
    trains = bool(prep.method_cls.info.supports_epoch_selection)
    results = []
    pending, done, status, write = [], {}, {}, {}
    for spec in specs:
        existing = store.get_run(spec.run_id)
        if existing and existing["status"] == "complete" and not force:
            preds = store.predictions(spec.run_id)
            results.append(RunResult(spec, "cached", len(folds), existing["wall_time"] or 0.0,
                                     run_metrics(preds, prep.dataset.classes), existing["device"] or "",
                                     trains))
            continue
        # --force keeps the old run until the new one is complete (pending_id, then Store.promote)
        write[spec.run_id] = pending_id(spec.run_id) if existing and force else spec.run_id
        store.start_run({
            "run_id": write[spec.run_id], "config_hash": spec.config_hash, "method": spec.method,
            "dataset": spec.dataset, "protocol": spec.protocol, "seed": spec.seed, "preset": spec.preset,
            "params": spec.params, "dataset_options": spec.dataset_options,
            "dataset_fingerprint": spec.dataset_fingerprint, "protocol_options": spec.protocol_options,
            "classes": list(prep.dataset.classes), "leaky": int(spec.leaky), "selection": SELECTIONS[spec.selection],
            "n_folds": len(folds), **board_facts(prep, spec)})
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
    if max_folds is not None:
        work = [(i, fold, todo) for i, fold, todo in work if i < max_folds]
    saver = None if save_models is None else _model_saver(Path(save_models), prep, folds)
    writer = FoldWriter(store, write, len(folds), on_fold, saver)
    n_workers, threads = choose_workers(workers, prep.method_cls, dev, executor, stack_folds, len(work))
    if work:
        options = dict(ray_options or {}) if executor == "ray" else {
            "stack_folds": stack_folds, "progress": on_progress, "channels_last": channels_last,
            "cudnn_benchmark": cudnn_benchmark, "compile": compile, "workers": n_workers, "threads": threads,
            "kernels": kernels, "save_models": saver is not None}
        dev = EXECUTORS[executor](prep, seed, work, writer, dev if executor == "local" else device, options)
    n_test = sum(len(f.test) for f in folds)
    for spec in pending:
        wid = write[spec.run_id]
        if max_folds is not None and store.completed_folds(wid) != set(range(len(folds))):
            store.mark_partial(wid)
            preds = store.predictions(wid)
            results.append(RunResult(spec, "partial", len(store.completed_folds(wid)), store.fold_times(wid),
                                     run_metrics(preds, prep.dataset.classes), dev, trains, len(folds)))
            continue
        _check_complete(store, wid, spec, len(folds), n_test, len(prep.dataset.classes))
        wall = store.fold_times(wid)
        if executor == "ray":
            threads = int((ray_options or {}).get("num_cpus") or 1)
        store.finish_run(wid, wall_time=wall, device=dev, package_version=__version__, git_commit=git_commit(),
                         torch_version=torch.__version__, cpu=cpu_description(), threads=threads,
                         kernels=_kernels_label(kernels, dev), input=input_label(prep, spec))
        if wid != spec.run_id:
            store.release(wid)
            held.remove(wid)
            store.promote(wid, spec.run_id)
        preds = store.predictions(spec.run_id)
        results.append(RunResult(spec, status[spec.run_id], len(folds), wall,
                                 run_metrics(preds, prep.dataset.classes), dev, trains))
    return results


def _model_saver(folder: Path, prep: Prepared, folds: list):
    """``save(spec, fold_index, fold, state)`` writing ``folder/<run_id>/fold-<k>.pt`` (:mod:`mer_bench.models`)."""
    import torch

    from mer_bench.models import save_model

    table = prep.dataset.table()
    commit = git_commit()

    def save(spec: RunSpec, fold_index: int, fold, state: dict) -> None:
        test_subjects = sorted({str(s) for s in table["subject"].iloc[fold.test]})
        meta = {"method": spec.method, "params": spec.params, "classes": list(prep.dataset.classes),
                "representation": prep.representation, "input": input_label(prep, spec), "dataset": spec.dataset,
                "dataset_options": spec.dataset_options, "dataset_fingerprint": spec.dataset_fingerprint,
                "protocol": spec.protocol, "protocol_options": spec.protocol_options, "seed": spec.seed,
                "fold_index": fold_index, "fold_name": fold.name, "n_folds": len(folds),
                "test_subjects": test_subjects, "selection": SELECTIONS[spec.selection], "leaky": spec.leaky,
                "run_id": spec.run_id, "package_version": __version__, "git_commit": commit,
                "torch_version": torch.__version__}
        save_model(folder / spec.run_id / f"fold-{fold_index:03d}.pt", state, meta)

    return save


def input_label(prep, spec) -> str:
    """What the run's method saw, recorded with the run for boards' *input* column:
    :meth:`mer_bench.method.Method.describe_input` of its parameters, representation and the
    dataset's per-sample shape (``Dataset.sample_shapes``; the name alone where not fixed)."""
    shape = getattr(prep.dataset, "sample_shapes", {}).get(prep.representation)
    label = prep.method_cls.describe_input(spec.params, prep.representation, shape)
    if prep.representation == "regions" and hasattr(prep.dataset, "landmark_source"):
        label += f" (landmarks: {prep.dataset.landmark_source().split()[0]})"  # the file, or fixed
    return label


def _kernels_label(allowed: bool, device: str) -> str:
    """``on`` where mer-bench's CPU fast paths were allowed for a CPU run (:mod:`mer_bench.kernels`), else ``off``."""
    from mer_bench import kernels as cpu_kernels
    from mer_bench import runtime

    with runtime.use(kernels=allowed):
        return "on" if cpu_kernels.enabled() and str(device).endswith("cpu") else "off"


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


def run(method: str, protocol: str = "loso", dataset: str | None = None, seeds: list[int] | None = None,
        overrides: dict[str, Any] | None = None, preset: str | None = None, store: Store | str | None = None,
        device: str = "auto", force: bool = False, dataset_options: dict[str, Any] | None = None,
        protocol_options: dict[str, Any] | None = None, selection: str = "last", max_folds: int | None = None,
        save_models: str | Path | None = None) -> list[RunResult]:
    """Python entry point: :func:`~mer_bench.pipeline.plan.prepare` then :func:`execute` (no progress
    display). ``dataset=None``: the protocol's own dataset, as on the command line."""
    prep = prepare(method, protocol, dataset, seeds, overrides, preset, dataset_options, protocol_options, selection)
    own = not isinstance(store, Store)
    st = Store(store) if own else store
    try:
        return execute(prep, st, device=device, force=force, max_folds=max_folds, save_models=save_models)
    finally:
        if own:
            st.close()
