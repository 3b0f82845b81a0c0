"""``mer-bench bench``: training throughput of a method's network, the plain path against the
optimised one, measured in the same run on the current device.

* ``plain``: fp32, eager, default (contiguous) memory format;
* ``optimised``: bf16 autocast where the device runs bf16 natively (a GPU that supports it, a CPU
  with AVX-512 BF16 or AMX) and a bf16 matmul measured in the same run beats fp32 (elsewhere fp32:
  emulated bf16 is far slower),
  ``channels_last_3d`` (``channels_last`` for 2D networks) for the model and its inputs,
  ``cudnn.benchmark`` on a GPU, and ``torch.compile`` with ``compile=True``; on a CPU also
  mer-bench's fast paths (:mod:`mer_bench.kernels`: a network's fused kernel where it has one,
  the same dropout masks drawn faster, fused Adam), which the plain path does without.

Each path builds the network as ``fit`` does (:mod:`mer_bench.model_profile`), then times
forward + backward + Adam steps on a batch of random inputs after ``warmup`` untimed steps.
Reported: samples per second of both paths and their ratio; the achieved FLOP/s (the forward
FLOPs counted by ``torch.utils.flop_counter`` times 3 for forward + backward) and, on a GPU whose
bf16 dense peak is known, its fraction of the peak.

``mer-bench bench --stack-folds K`` (:func:`compare_stacking`) instead trains K folds of the
method's network on random data, fold by fold (:func:`mer_bench.trainer.fit_classifier`) and
stacked (:func:`mer_bench.stacking.fit_classifiers_stacked`), with the method's own settings, and
reports training samples per second (all folds) of both and their ratio.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

__all__ = ["train_step", "train_throughput", "compare_paths", "stacking_run", "compare_stacking", "PEAK_BF16_TFLOPS"]

#: dense bf16 tensor-core peaks (TFLOP/s) by device-name fragment, from the vendors' data sheets
PEAK_BF16_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L4": 121.0, "A10": 125.0}


def _peak(device) -> float | None:
    import torch

    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((v for k, v in PEAK_BF16_TFLOPS.items() if k in name), None)


def train_step(name: str, path: str, preset: str | None = None, overrides: dict[str, Any] | None = None,
               batch_size: int | None = None, device: str = "auto", compile: bool = False,
               bf16: bool | None = None):
    """One training step (forward + backward + Adam) of method ``name``'s network on ``path``
    (``"plain"`` or ``"optimised"``) on a fixed random batch, for timing.

    Returns:
        ``(step, info)``: ``step()`` runs one step and waits for the device; ``info`` holds
        ``device``, ``batch_size``, ``input_shape``, ``forward_flops`` (per sample) and
        ``cpu_allocator_tuned`` (:func:`mer_bench.runtime.tune_cpu_allocator` in force).

    Raises:
        ValueError: an unknown path, a method without a network, or an unavailable device.
    """
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from mer_bench import runtime
    from mer_bench.method import resolve_params
    from mer_bench.model_profile import _natural_input
    from mer_bench.registry import METHODS
    from mer_bench.runtime import resolve_device

    if path not in ("plain", "optimised"):
        raise ValueError(f"path must be plain or optimised, got {path!r}")
    cls = METHODS.get(name)
    method = cls(**resolve_params(cls, preset, overrides or {}))
    if not hasattr(method, "build_model"):
        raise ValueError(f"{name} has no network to benchmark")
    dev = torch.device(resolve_device(device))
    tuned = False
    if dev.type == "cpu":
        from mer_bench.runtime import tune_cpu_allocator

        tuned = tune_cpu_allocator()  # as training does (both paths)
    x1 = method._prepare(np.zeros((1, *_natural_input(method)), np.float32))
    method.input_shape_ = tuple(x1.shape[1:])
    method.representation_ = method.info.representation
    torch.manual_seed(0)
    model = method.build_model(x1.shape[1], 3).to(dev)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model.eval()(x1.to(dev))
    bs = batch_size or getattr(method, "batch_size", 8)
    xb = torch.randn(bs, *x1.shape[1:], device=dev)
    yb = torch.randint(0, 3, (bs,), device=dev)
    fast = path == "optimised"
    from mer_bench.runtime import cpu_has_native_bf16

    native_bf16 = torch.cuda.is_bf16_supported() if dev.type == "cuda" else cpu_has_native_bf16()
    amp = torch.bfloat16 if fast and (native_bf16 if bf16 is None else bf16 and native_bf16) else None
    if fast:
        fmt = torch.channels_last_3d if xb.ndim == 5 else torch.channels_last
        model = model.to(memory_format=fmt)
        xb = xb.contiguous(memory_format=fmt)
        if dev.type == "cuda":
            torch.backends.cudnn.benchmark = True
    run_model = torch.compile(model) if (fast and compile) else model
    # mer-bench's CPU fast paths (mer_bench.kernels) on the optimised path only: fused kernels where
    # the network has one, the same dropout masks drawn faster, fused Adam
    cpu_fast = fast and dev.type == "cpu"
    opt = torch.optim.Adam(model.parameters(), lr=1e-4, fused=True if cpu_fast else None)
    if cpu_fast:  # a model built for timing only: swapped for good
        from mer_bench.kernels.dropout import swap_in_same_mask_dropout

        swap_in_same_mask_dropout(model)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    model.train()

    def step():
        opt.zero_grad(set_to_none=True)
        with runtime.use(kernels=cpu_fast), \
                torch.autocast(device_type=dev.type, dtype=amp or torch.float32, enabled=amp is not None):
            loss = torch.nn.functional.cross_entropy(run_model(xb), yb)
        loss.backward()
        opt.step()
        sync()

    return step, {"device": dev, "batch_size": bs, "input_shape": list(x1.shape[1:]),
                  "forward_flops": counter.get_total_flops(), "cpu_allocator_tuned": tuned,
                  "precision": "bf16" if amp is not None else "fp32"}


def train_throughput(name: str, path: str, preset: str | None = None, overrides: dict[str, Any] | None = None,
                     batch_size: int | None = None, steps: int = 5, warmup: int = 2, device: str = "auto",
                     compile: bool = False, bf16: bool | None = None) -> dict[str, Any]:
    """Train-step throughput of method ``name`` on ``path`` (``"plain"`` or ``"optimised"``):
    ``warmup`` untimed steps, then the mean of ``steps`` timed ones (:func:`train_step`).

    Raises:
        ValueError: an unknown path, a method without a network, or an unavailable device.
    """
    step, info = train_step(name, path, preset, overrides, batch_size, device, compile, bf16)
    for _ in range(warmup):
        step()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    dt = (time.perf_counter() - t0) / steps
    bs, dev = info["batch_size"], info["device"]
    achieved = 3 * info["forward_flops"] * bs / dt
    peak = _peak(dev)
    return {"method": name, "path": path, "device": str(dev), "batch_size": bs,
            "input_shape": info["input_shape"], "seconds_per_step": dt, "samples_per_s": bs / dt,
            "tflops_achieved": achieved / 1e12, "peak_bf16_tflops": peak,
            "fraction_of_peak": None if peak is None else achieved / (peak * 1e12),
            "cpu_allocator_tuned": info["cpu_allocator_tuned"], "precision": info["precision"]}


def measured_peak_tflops(device: str = "auto", seconds: float = 1.0, n: int = 1024) -> dict[str, float]:
    """The dense matrix-multiply throughput this device reaches now, in the same process: square
    ``n`` x ``n`` products (2 n^3 FLOP each) for about ``seconds``, after one warm-up, the best of
    eight short trials (on a shared machine others' load only ever slows a trial), in fp32 and,
    where it is native (a GPU that has it, a CPU with AVX-512 BF16 or AMX), bf16. A practical
    peak to hold a training throughput against: ``{"fp32": TFLOP/s[, "bf16": TFLOP/s]}``."""
    import torch

    from mer_bench.runtime import cpu_has_native_bf16, resolve_device

    dev = torch.device(resolve_device(device))
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    native_bf16 = torch.cuda.is_bf16_supported() if dev.type == "cuda" else cpu_has_native_bf16()
    out = {}
    for name, dtype in (("fp32", torch.float32), *((("bf16", torch.bfloat16),) if native_bf16 else ())):
        a, b = torch.randn(n, n, device=dev, dtype=dtype), torch.randn(n, n, device=dev, dtype=dtype)
        a @ b
        sync()
        best, t_end = 0.0, time.perf_counter() + seconds
        while best == 0.0 or time.perf_counter() < t_end:  # the best of short trials: a shared machine's
            k, t0 = 0, time.perf_counter()                 # neighbours only ever slow a trial down
            while k < 2 or time.perf_counter() - t0 < seconds / 8:
                a @ b
                k += 1
            sync()
            best = max(best, 2 * n ** 3 * k / (time.perf_counter() - t0) / 1e12)
        out[name] = best
    return out


def compare_paths(name: str, **kw) -> dict[str, Any]:
    """Both paths in one run (plain first) and ``speedup`` = optimised / plain samples per second;
    ``measured_peak``: :func:`measured_peak_tflops` on the same device in the same run, and each
    path's ``fraction_of_measured_peak`` (against the peak of the precision it ran in). The
    optimised path uses bf16 only where its measured matmul peak beats fp32's."""
    peak = measured_peak_tflops(kw.get("device", "auto"))
    plain = train_throughput(name, "plain", **kw)
    # bf16 only where it is native and, measured here, faster than fp32: never slower by choice
    opt = train_throughput(name, "optimised", **kw, bf16=peak.get("bf16", 0.0) > peak["fp32"])
    for r in (plain, opt):
        ref = peak.get(r["precision"], peak["fp32"])
        r["fraction_of_measured_peak"] = r["tflops_achieved"] / ref if ref else None
    return {"plain": plain, "optimised": opt, "speedup": opt["samples_per_s"] / plain["samples_per_s"],
            "cpu_allocator_tuned": plain["cpu_allocator_tuned"], "measured_peak_tflops": peak}


def stacking_run(name: str, path: str, folds: int = 8, n_train: int = 64, epochs: int = 2,
                 preset: str | None = None, overrides: dict[str, Any] | None = None, batch_size: int | None = None,
                 device: str = "auto") -> dict[str, Any]:
    """Train ``folds`` folds of method ``name``'s network (its own settings, ``epochs`` epochs) on
    ``n_train`` random samples each, ``path`` = ``"fold-by-fold"`` or ``"stacked"``; returns the
    training time (``seconds``, model building excluded) and the run's sizes.

    Raises:
        ValueError: a method without a network, an unknown path, or bad sizes.
    """
    import torch

    from mer_bench import runtime
    from mer_bench.data import Samples
    from mer_bench.method import resolve_params
    from mer_bench.model_profile import _natural_input
    from mer_bench.registry import METHODS
    from mer_bench.runtime import resolve_device
    from mer_bench.stacking import fit_classifiers_stacked
    from mer_bench.trainer import fit_classifier

    if path not in ("fold-by-fold", "stacked"):
        raise ValueError(f"path must be fold-by-fold or stacked, got {path!r}")
    if folds < 2 or n_train < 2 or epochs < 1:
        raise ValueError("--stack-folds must be >= 2, and the training size and epochs positive")
    cls = METHODS.get(name)
    if not hasattr(cls, "fit_stacked"):
        raise ValueError(f"{name} has no network to stack")
    params = resolve_params(cls, preset, {**(overrides or {}), "epochs": epochs,
                                          **({"batch_size": batch_size} if batch_size else {})})
    dev = resolve_device(device)
    shape = _natural_input(cls(**params))
    X = np.random.default_rng(0).random((n_train, *shape), dtype=np.float32)
    y = np.arange(n_train) % 3
    train = Samples(X=X, y=y, subject=np.full(n_train, "s"), sample_id=np.arange(n_train).astype(str),
                    classes=("a", "b", "c"), representation=cls.info.representation)
    sync = torch.cuda.synchronize if dev.startswith("cuda") else (lambda: None)
    with runtime.use(device=dev):
        methods = [cls(**{**params, "random_state": k}) for k in range(folds)]
        built = [m._setup_fit(train) for m in methods]
        sync()
        t0 = time.perf_counter()
        if path == "stacked":
            fit_classifiers_stacked([b[1] for b in built], [b[0] for b in built], [y] * folds, [b[2] for b in built],
                                    augments=[m._augment for m in methods])
        else:
            for m, (x, model, cfg) in zip(methods, built):
                fit_classifier(model, x, y, cfg, augment=m._augment)
        sync()
        seconds = time.perf_counter() - t0
    return {"seconds": seconds, "samples_per_s": folds * n_train * epochs / seconds, "device": dev,
            "batch_size": params["batch_size"], "input_shape": list(shape)}


def compare_stacking(name: str, folds: int = 8, n_train: int = 64, epochs: int = 2, **kw) -> dict[str, Any]:
    """:func:`stacking_run` fold by fold, then stacked, in the same run, after an untimed warm-up
    of both (first calls pay for allocations and kernel selection); ``speedup`` = stacked /
    fold-by-fold training samples per second."""
    for path in ("fold-by-fold", "stacked"):
        stacking_run(name, path, 2, min(n_train, 16), 1, **kw)
    res = {path: stacking_run(name, path, folds, n_train, epochs, **kw) for path in ("fold-by-fold", "stacked")}
    first = res["stacked"]
    return {"method": name, "device": first["device"], "folds": folds, "n_train": n_train, "epochs": epochs,
            "batch_size": first["batch_size"], "input_shape": first["input_shape"], **res,
            "speedup": res["fold-by-fold"]["seconds"] / res["stacked"]["seconds"]}


def describe_stacking(res: dict) -> str:
    """The lines ``mer-bench bench --stack-folds K`` prints for :func:`compare_stacking`'s result."""
    lines = []
    for path in ("fold-by-fold", "stacked"):
        r = res[path]
        lines.append(f"{path:12s}: {r['samples_per_s']:9.1f} training samples/s ({r['seconds']:.2f} s for "
                     f"{res['folds']} folds x {res['n_train']} samples x {res['epochs']} epochs, batch "
                     f"{res['batch_size']}, input {'x'.join(map(str, res['input_shape']))}, {res['device']})")
    lines.append(f"speed-up (stacked / fold by fold): {res['speedup']:.2f}x")
    return "\n".join(lines)


def describe_paths(res: dict) -> str:
    """The lines ``mer-bench bench`` prints for :func:`compare_paths`'s result."""
    lines = []
    for path in ("plain", "optimised"):
        r = res[path]
        frac = "" if r["fraction_of_peak"] is None else f", {100 * r['fraction_of_peak']:.1f} % of the bf16 peak"
        if r.get("fraction_of_measured_peak") is not None:
            frac += (f", {100 * r['fraction_of_measured_peak']:.1f} % of the {r['precision']} matmul peak "
                     f"measured here")
        lines.append(f"{path:9s}: {r['samples_per_s']:8.2f} samples/s ({r['seconds_per_step']:.3f} s/step, batch "
                     f"{r['batch_size']}, input {'x'.join(map(str, r['input_shape']))}, {r['device']}; "
                     f"{r['tflops_achieved']:.3f} TFLOP/s{frac})")
    lines.append(f"speed-up (optimised / plain): {res['speedup']:.2f}x")
    if res.get("measured_peak_tflops"):
        lines.append("matmul peak measured in this run: " + ", ".join(
            f"{k} {v:.3f} TFLOP/s" for k, v in res["measured_peak_tflops"].items()))
    if res["plain"]["device"].startswith("cpu"):
        from mer_bench.runtime import cpu_description

        peak = res.get("measured_peak_tflops") or {}
        note = "" if res["optimised"]["precision"] == "bf16" else (
            " (bf16 is native here but its matmul measured slower than fp32's, so it is not used)" if "bf16" in peak
            else " (bf16 is not native here, so it is not used)")
        lines.append(f"CPU: {cpu_description()}; the optimised path ran in {res['optimised']['precision']}{note}")
    if res["cpu_allocator_tuned"]:
        lines.append("both paths ran with the CPU allocator tuning that training uses "
                     "(mer_bench.runtime.tune_cpu_allocator; MER_BENCH_MALLOC=default turns it off)")
    return "\n".join(lines)
