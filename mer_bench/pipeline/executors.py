"""Executors: where the folds of a run are trained.

Both executors take the same arguments: the plan, a seed, the folds still to train (``work``:
``(fold_index, fold, specs)`` triples), a :class:`FoldWriter` and the device; they return the
device the folds ran on. Only the driver writes the store, through the one :class:`FoldWriter`,
one fold per transaction.

* ``local`` (default): one fold after another in this process (:func:`run_folds_locally`),
  optionally several folds at once with their networks stacked (``stack_folds``).
* ``ray``: every pending fold is a Ray core task (``@ray.remote``) that requests ``num_cpus`` /
  ``num_gpus``; works with a local ``ray.init()`` (default: this machine) and with a cluster
  (``--ray-address ray://host:10001`` or ``auto``). Ray is an optional extra:
  ``pip install mer-bench[ray]``.

A task rebuilds the method, dataset and protocol from their registry names and constructor
arguments, trains its fold with :func:`mer_bench.pipeline.folds.fit_predict_fold` (the same code and seed
as the local executor, hence the same predictions up to floating-point noise) and returns the
prediction rows. Only the driver writes the store, one fold per transaction as results arrive, so
nothing is written twice and every completed fold survives a failure elsewhere. A task whose
worker dies is retried by Ray (``--ray-retries``, default 2); a fold that still fails is reported
after the others finish, and running the same command again resumes with only the missing folds.

Workers must be able to import mer-bench, every plugin the run uses (install the same packages
on every node, or give the run a Ray ``runtime_env``: ``--ray-runtime-env '{"pip": [...]}'``)
and read the dataset at the same ``--data-root`` path.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

from mer_bench import runtime
from mer_bench.pipeline.folds import FoldResult, fit_predict_fold, fit_predict_folds_stacked

__all__ = ["FoldWriter", "run_folds_locally", "run_folds_in_workers", "run_folds_on_ray", "EXECUTORS", "ExecutorError"]


class ExecutorError(RuntimeError):
    """The executor could not run (or finish) the folds; completed folds are in the store."""


class FoldWriter:
    """Stores a finished fold for every run of the seed that asked for it, in the store of the
    driver, and reports it (``on_fold(spec, i, n_folds, name, "done")``).

    Args:
        write_ids: run id -> the id its folds are written under (``--force`` writes a pending run).
        n_folds: the protocol's number of folds (for the progress report).
    """

    def __init__(self, store: Any, write_ids: dict[str, str], n_folds: int,
                 on_fold: Callable[..., None] | None = None, save_model: Callable[..., None] | None = None) -> None:
        self.store, self.write_ids, self.n_folds, self.on_fold = store, write_ids, n_folds, on_fold
        #: ``save_model(spec, fold_index, fold, state)`` for each selection's fitted state (``--save-models``)
        self.save_model = save_model

    def started(self, spec: Any, fold_index: int, fold: Any) -> None:
        if self.on_fold:
            self.on_fold(spec, fold_index, self.n_folds, fold.name, "start")

    def __call__(self, fold_index: int, fold: Any, specs: list, result: FoldResult, wall_time: float,
                 device: str) -> None:
        """Write ``result.rows[spec.selection]`` (and the learning curve) of fold ``fold_index`` for
        each of ``specs``; with ``save_model``, save the fold's models first (a fold whose model
        cannot be saved is not marked done)."""
        if self.save_model is not None:
            for spec in specs:
                self.save_model(spec, fold_index, fold, result.states[spec.selection])
        for spec in specs:
            self.store.write_fold(self.write_ids.get(spec.run_id, spec.run_id), fold_index, fold.name,
                                  len(fold.train), wall_time, device, result.rows[spec.selection], result.curve)
        if self.on_fold:
            self.on_fold(specs[0], fold_index, self.n_folds, fold.name, "done")


def run_folds_locally(prep: Any, seed: int, work: list, write: FoldWriter, device: str,
                      options: dict[str, Any]) -> str:
    """Train ``work`` here, fold by fold (or ``options["stack_folds"]`` at once), writing each
    fold as it finishes; returns ``device``. With ``options["workers"]`` > 1, in worker processes
    instead (:func:`run_folds_in_workers`).

    ``options``: ``stack_folds`` (default 1), ``progress`` (the trainer's progress callback) and the
    trainer's run-time settings ``channels_last``, ``cudnn_benchmark``, ``compile``.
    """
    if int(options.get("workers") or 1) > 1:
        return run_folds_in_workers(prep, seed, work, write, device, options)
    stack_folds = int(options.get("stack_folds", 1))
    params = work[0][2][0].params if work else {}
    with runtime.use(device=device, progress=options.get("progress"), **_runtime_settings(options)):
        for start in range(0, len(work), stack_folds):
            chunk = work[start:start + stack_folds]
            for i, fold, todo in chunk:
                write.started(todo[0], i, fold)
            t0 = time.perf_counter()
            save = bool(options.get("save_models"))
            if len(chunk) > 1:
                rows = fit_predict_folds_stacked(prep.method_cls, params, prep.dataset, prep.representation,
                                                 [(i, f) for i, f, _ in chunk], seed, save)
            else:
                i, fold, todo = chunk[0]
                rows = {i: fit_predict_fold(prep.method_cls, params, prep.dataset, prep.representation, fold, i,
                                            seed, sorted({s.selection for s in todo}), save)}
            per_fold = (time.perf_counter() - t0) / len(chunk)  # a stacked group's time, shared
            for i, fold, todo in chunk:
                write(i, fold, todo, rows[i], per_fold, device)
    return device


def _runtime_settings(options: dict[str, Any]) -> dict[str, bool]:
    """The trainer's run-time settings among an executor's ``options`` (:class:`mer_bench.runtime.Runtime`)."""
    cl = options.get("channels_last")  # None: the network's choice (mer_bench.runtime.Runtime)
    return {"channels_last": None if cl is None else bool(cl),
            "cudnn_benchmark": bool(options.get("cudnn_benchmark")), "compile": bool(options.get("compile")),
            "kernels": bool(options.get("kernels", True))}


#: datasets a worker process has built, by (name, constructor arguments): later folds reuse them
_WORKER_DATASETS: dict[str, Any] = {}


def _fold_task(payload: dict[str, Any]) -> dict[str, Any]:
    """Run in a worker (a Ray task or a local worker process): rebuild the run's objects from
    their registry names and train one fold."""
    import json

    import torch

    from mer_bench.registry import DATASETS, METHODS, PROTOCOLS
    from mer_bench.runtime import resolve_device

    # the thread count changes floating-point sums: use exactly the CPUs the task asked for
    torch.set_num_threads(max(1, int(payload.get("threads", 1))))
    t0 = time.perf_counter()
    method_cls = METHODS.get(payload["method"])
    key = json.dumps([payload["dataset"], payload["dataset_kwargs"]], sort_keys=True, default=str)
    if key not in _WORKER_DATASETS:
        _WORKER_DATASETS[key] = DATASETS.get(payload["dataset"])(**payload["dataset_kwargs"])
    dataset = _WORKER_DATASETS[key]
    protocol = PROTOCOLS.get(payload["protocol"])(**payload["protocol_kwargs"])
    fold = protocol.folds(dataset.table(), payload["seed"])[payload["fold_index"]]
    device = resolve_device(payload["device"])
    with runtime.use(device=device, **payload.get("runtime", {})):
        result = fit_predict_fold(method_cls, payload["params"], dataset, payload["representation"], fold,
                                  payload["fold_index"], payload["seed"], payload["selections"],
                                  bool(payload.get("save_models")))
    return {"result": result, "wall_time": time.perf_counter() - t0, "device": device}


def _check_reachable(address: str, timeout: float = 5.0) -> None:
    """Fail fast on a ``host:port`` / ``ray://host:port`` nobody answers (``ray.init`` would wait
    for minutes)."""
    import socket

    if address == "auto" or address.startswith("local"):
        return
    hostport = address.split("://", 1)[-1]
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise ExecutorError(f"--ray-address {address!r} is not HOST:PORT, ray://HOST:PORT or auto")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as exc:
        raise ExecutorError(f"the Ray cluster at {address} is unreachable ({exc}); is `ray start --head` running "
                            f"there, and is the port open? Completed folds stay in the store.") from None


def _runtime_env(value: str | dict | None) -> dict | None:
    """``--ray-runtime-env``: a JSON object, or the path of a JSON file holding one."""
    import json
    from pathlib import Path

    if value is None or isinstance(value, dict):
        return value
    try:
        text = value if value.lstrip()[:1] in ("{", "[") else Path(value).read_text()
        env = json.loads(text)
    except (OSError, ValueError) as exc:
        raise ExecutorError(f"--ray-runtime-env must be a JSON object or a JSON file, e.g. "
                            f"'{{\"pip\": [\"my-mer-plugin\"]}}': {exc}") from None
    if not isinstance(env, dict):
        raise ExecutorError("--ray-runtime-env must be a JSON object")
    return env


def _connect(address: str | None, num_cpus: int | None, runtime_env: dict | None = None):
    try:
        import ray
    except ImportError:
        raise ExecutorError("--executor ray needs Ray: pip install 'mer-bench[ray]'") from None
    if address:
        _check_reachable(address)
    if ray.is_initialized():
        if runtime_env:
            raise ExecutorError("Ray is already initialised in this process, so --ray-runtime-env cannot apply; pass "
                                "the runtime_env to your own ray.init() instead")
        return ray
    try:
        if address:
            ray.init(address=address, log_to_driver=False, runtime_env=runtime_env)
        else:
            ray.init(num_cpus=num_cpus, log_to_driver=False, include_dashboard=False, runtime_env=runtime_env)
    except Exception as exc:  # ConnectionError, TimeoutError, RuntimeError... depending on the address
        where = address or "a local Ray instance"
        auth = ""
        if address and address != "auto" and os.environ.get("RAY_AUTH_MODE") != "token":
            auth = (" If the cluster uses token authentication (Ray >= 2.59 turns it on for clusters started with "
                    "`ray start`), run with RAY_AUTH_MODE=token and the cluster's token (RAY_AUTH_TOKEN, or the file "
                    "~/.ray/auth_token; `ray get-auth-token` on the head node prints it).")
        raise ExecutorError(f"cannot start or reach {where}: {type(exc).__name__}: {exc}. Check --ray-address "
                            f"(e.g. ray://HOST:10001, or auto for a cluster started with `ray start` on this "
                            f"machine).{auth}") from None
    return ray


def _payload(prep: Any, seed: int, fold_index: int, specs: list, device: str, threads: int,
             settings: dict[str, bool] | None = None, save_models: bool = False) -> dict[str, Any]:
    """What a worker needs to rebuild a run's objects and train fold ``fold_index`` (:func:`_fold_task`),
    with the trainer's run-time ``settings`` (:func:`_runtime_settings`)."""
    lead = specs[0]
    return {"method": lead.method, "params": lead.params, "dataset": lead.dataset,
            "dataset_kwargs": prep.dataset_kwargs, "protocol": lead.protocol, "protocol_kwargs": prep.protocol_kwargs,
            "representation": prep.representation, "seed": seed, "fold_index": fold_index,
            "selections": sorted({s.selection for s in specs}), "device": device, "threads": threads,
            "runtime": dict(settings or {}), "save_models": save_models}


def run_folds_in_workers(prep: Any, seed: int, work: list, write: FoldWriter, device: str,
                         options: dict[str, Any]) -> str:
    """Train ``work`` in ``options["workers"]`` local worker processes (``spawn``), each with
    ``options["threads"]`` torch threads, writing each fold here, in the driver, as it arrives
    (one transaction per fold, as everywhere); returns ``device``.

    Each worker trains whole folds with :func:`mer_bench.pipeline.folds.fit_predict_fold`, the
    code and seeds of the one-process loop, so a run's identity does not change; with another
    thread count per fold, floating-point sums change order and the last bits of the results can
    change (the thread count is recorded with the run). Workers import methods, datasets and
    protocols by their registry names: a method registered only inside this process (not through
    an entry point) needs ``--workers 1``.

    Raises:
        MethodError: the one fold that failed (the others are stored).
        ExecutorError: several folds failed (listed; the others are stored).
    """
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    workers, threads = int(options["workers"]), int(options.get("threads") or 1)
    failures: list[tuple[int, Any, BaseException]] = []
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {}
        for i, fold, todo in work:
            futures[pool.submit(_fold_task, _payload(prep, seed, i, todo, device, threads, _runtime_settings(options),
                                                     bool(options.get("save_models"))))] = (i, fold, todo)
            write.started(todo[0], i, fold)
        for future in as_completed(futures):
            i, fold, todo = futures[future]
            try:
                res = future.result()
            except Exception as exc:  # the fold raised, or its worker died (BrokenProcessPool)
                failures.append((i, fold, exc))
                continue
            write(i, fold, todo, res["result"], res["wall_time"], device)
    if len(failures) == 1:
        raise failures[0][2]
    if failures:
        raise ExecutorError(f"{len(failures)} fold(s) failed in worker processes; the {len(work) - len(failures)} "
                            f"others are stored, and re-running the command resumes with the missing ones:\n  "
                            + "\n  ".join(f"fold {i} ({fold.name}): {type(exc).__name__}: {exc}"
                                           for i, fold, exc in failures))
    return device


def run_folds_on_ray(prep: Any, seed: int, work: list, write: FoldWriter, device: str,
                     options: dict[str, Any]) -> str:
    """Run ``work`` of ``prep`` as Ray tasks and write each result as it arrives; returns the
    workers' device (``"ray:cpu"`` or ``"ray:cuda"``).

    ``options``: ``address``, ``num_cpus`` / ``num_gpus`` per fold, ``max_retries``, ``runtime_env``.

    Raises:
        ExecutorError: Ray missing or unreachable, a GPU requested from a cluster without one, or
            folds that failed (listed; the others are stored).
    """
    ray = _connect(options.get("address"), options.get("local_cpus"), _runtime_env(options.get("runtime_env")))
    num_gpus = float(options.get("num_gpus") or (1 if str(device).startswith("cuda") else 0))
    if num_gpus > 0 and ray.cluster_resources().get("GPU", 0) < num_gpus:
        raise ExecutorError(f"each fold asks for {num_gpus:g} GPU but the Ray cluster has "
                            f"{ray.cluster_resources().get('GPU', 0):g}; use --device cpu or add GPU nodes")
    if num_gpus == 0 and str(device).startswith("cuda"):
        raise ExecutorError("--device cuda with --ray-gpus 0: request GPUs for the folds (--ray-gpus 1)")
    num_cpus = float(options.get("num_cpus") or 1)
    retries = int(options.get("max_retries", 2))
    task = ray.remote(_fold_task).options(num_cpus=num_cpus, num_gpus=num_gpus,
                                          max_retries=retries, retry_exceptions=False)
    task_device = "cuda" if num_gpus > 0 else "cpu"
    lead = work[0][2][0] if work else None
    refs = {}
    for i, fold, todo in work:
        refs[task.remote(_payload(prep, seed, i, todo, task_device, max(1, int(num_cpus)),
                                  save_models=bool(options.get("save_models"))))] = (i, fold, todo)
        write.started(lead, i, fold)
    failures = []
    pending = list(refs)
    while pending:
        ready, pending = ray.wait(pending, num_returns=1)
        i, fold, todo = refs[ready[0]]
        try:
            res = ray.get(ready[0])
        except Exception as exc:  # the task raised (e.g. a plugin missing on the worker) or its worker died
            failures.append(f"fold {i} ({fold.name}): {type(exc).__name__}: {str(exc).strip().splitlines()[-1]}")
            continue
        write(i, fold, todo, res["result"], res["wall_time"], f"ray:{res['device']}")
    if failures:
        hint = ""
        if any("UnknownNameError" in f or "PluginLoadError" in f or "ModuleNotFoundError" in f for f in failures):
            hint = ("\nA worker could not import a method, dataset or protocol: install the same packages (mer-bench "
                    "and every plugin the run uses) on every Ray node, or start the cluster with a runtime_env "
                    "that provides them.")
        if any("WorkerCrashedError" in f or "died" in f for f in failures):
            hint += (f"\nA worker died while training (each such fold was tried {1 + retries} times): often out of "
                     f"memory; ask more per fold (--ray-cpus, --ray-gpus), lower batch_size, or allow more tries "
                     f"(--ray-retries).")
        raise ExecutorError(f"{len(failures)} fold(s) failed on Ray workers; the {len(work) - len(failures)} others "
                            f"are stored, and re-running the command resumes with the missing ones:\n  "
                            + "\n  ".join(failures) + hint)
    return f"ray:{task_device}"


#: executor name -> function(prep, seed, work, write, device, options) -> device
EXECUTORS: dict[str, Callable[..., str]] = {"local": run_folds_locally, "ray": run_folds_on_ray}
