"""``mer-bench bench``: training throughput of a method's network, the plain path against the
optimised one, measured in the same run on the current device.

* ``plain``: fp32, eager, default (contiguous) memory format;
* ``optimised``: bf16 autocast, ``channels_last_3d`` (``channels_last`` for 2D networks) for the
  model and its inputs, ``cudnn.benchmark`` on a GPU, and ``torch.compile`` with ``compile=True``.

Each path builds the network as ``fit`` does (:mod:`mer_bench.profile`), then times
forward + backward + Adam steps on a batch of random inputs after ``warmup`` untimed steps.
Reported: samples per second of both paths and their ratio; the achieved FLOP/s (the forward
FLOPs counted by ``torch.utils.flop_counter`` times 3 for forward + backward) and, on a GPU whose
bf16 dense peak is known, its fraction of the peak.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

__all__ = ["train_throughput", "compare_paths", "PEAK_BF16_TFLOPS"]

#: dense bf16 tensor-core peaks (TFLOP/s) by device-name fragment, from the vendors' data sheets
PEAK_BF16_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L4": 121.0, "A10": 125.0}


def _peak(device) -> float | None:
    import torch

    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((v for k, v in PEAK_BF16_TFLOPS.items() if k in name), None)


def train_throughput(name: str, path: str, preset: str | None = None, overrides: dict[str, Any] | None = None,
                     batch_size: int | None = None, steps: int = 5, warmup: int = 2, device: str = "auto",
                     compile: bool = False) -> dict[str, Any]:
    """Train-step throughput of method ``name`` on ``path`` (``"plain"`` or ``"optimised"``).

    Raises:
        ValueError: an unknown path, a method without a network, or an unavailable device.
    """
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from mer_bench.method import resolve_params
    from mer_bench.profile import _natural_input
    from mer_bench.registry import METHODS
    from mer_bench.runtime import resolve_device

    if path not in ("plain", "optimised"):
        raise ValueError(f"path must be plain or optimised, got {path!r}")
    cls = METHODS.get(name)
    method = cls(**resolve_params(cls, preset, overrides or {}))
    if not hasattr(method, "build_model"):
        raise ValueError(f"{name} has no network to benchmark")
    dev = torch.device(resolve_device(device))
    x1 = method._prepare(np.zeros((1, *_natural_input(method)), np.float32))
    method.input_shape_ = tuple(x1.shape[1:])
    method.representation_ = method.info.representation
    torch.manual_seed(0)
    model = method.build_model(x1.shape[1], 3).to(dev)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model.eval()(x1.to(dev))
    fwd_flops = counter.get_total_flops()
    bs = batch_size or getattr(method, "batch_size", 8)
    xb = torch.randn(bs, *x1.shape[1:], device=dev)
    yb = torch.randint(0, 3, (bs,), device=dev)
    fast = path == "optimised"
    amp = torch.bfloat16 if fast else None
    if fast:
        fmt = torch.channels_last_3d if xb.ndim == 5 else torch.channels_last
        model = model.to(memory_format=fmt)
        xb = xb.contiguous(memory_format=fmt)
        if dev.type == "cuda":
            torch.backends.cudnn.benchmark = True
    run_model = torch.compile(model) if (fast and compile) else model
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    model.train()

    def step():
        opt.zero_grad(set_to_none=True)
        with torch.autocast(device_type=dev.type, dtype=amp or torch.float32, enabled=amp is not None):
            loss = torch.nn.functional.cross_entropy(run_model(xb), yb)
        loss.backward()
        opt.step()

    for _ in range(warmup):
        step()
    sync()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    sync()
    dt = (time.perf_counter() - t0) / steps
    achieved = 3 * fwd_flops * bs / dt
    peak = _peak(dev)
    return {"method": name, "path": path, "device": str(dev), "batch_size": bs,
            "input_shape": list(x1.shape[1:]), "seconds_per_step": dt, "samples_per_s": bs / dt,
            "tflops_achieved": achieved / 1e12, "peak_bf16_tflops": peak,
            "fraction_of_peak": None if peak is None else achieved / (peak * 1e12)}


def compare_paths(name: str, **kw) -> dict[str, Any]:
    """Both paths in one run (plain first) and ``speedup`` = optimised / plain samples per second."""
    plain = train_throughput(name, "plain", **kw)
    opt = train_throughput(name, "optimised", **kw)
    return {"plain": plain, "optimised": opt, "speedup": opt["samples_per_s"] / plain["samples_per_s"]}
