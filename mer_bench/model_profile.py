"""``mer-bench profile``: parameters, FLOPs and throughput of a method at its input size.

For a neural method the network is built exactly as ``fit`` builds it, at the input its
preprocessing produces from the representation's natural size (clips 3 x 16 x 112 x 112 unless
the method sets ``frames`` / ``size``; flow images and HTNet's flow regions 3 x 28 x 28; other images
3 x 112 x 112), for
3 classes. Reported:

* ``parameters``: trainable parameters;
* ``gflops_per_sample``: forward FLOPs of one sample counted by ``torch.utils.flop_counter``
  (2 FLOPs per multiply-add; torchvision's model cards count multiply-adds, half of this);
* ``train_samples_per_s``: forward + backward + Adam step on batches of ``batch_size`` random
  inputs, timed after one warm-up step; ``infer_samples_per_s``: forward in eval mode without
  gradients. Both on the chosen device (``auto``: CUDA when present).

A method whose paper publishes its size (``MethodInfo.paper_size``; MERANet and 3D ResNet-18: the
MERANet paper, Table 4) is shown beside it; the MERANet paper's 1.72 GFLOPs cannot be per-clip
FLOPs at 3 x 16 x 112 x 112 (81 GFLOPs counted here), so its FLOP convention is unknown. Methods without a network
(``lbptop-svm``) report their feature-extraction throughput; floors report nothing to measure.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

__all__ = ["profile_method", "profile_table"]


def _natural_input(method: Any) -> tuple[int, ...]:
    rep = method.info.representation
    if rep == "clip":
        frames = getattr(method, "frames", None) or 16
        size = getattr(method, "size", None) or 112
        return (3, frames, size, size)
    if rep in ("flow", "regions"):  # the composite's flow images and HTNet's regions of them
        return (3, 28, 28)
    return (3, 112, 112)


def _timed(step, seconds: float, max_steps: int) -> float:
    """Seconds per call of ``step`` after one warm-up call (at least 2 timed calls)."""
    step()
    n, t0 = 0, time.perf_counter()
    while n < 2 or (time.perf_counter() - t0 < seconds and n < max_steps):
        step()
        n += 1
    return (time.perf_counter() - t0) / n


def profile_method(name: str, preset: str | None = None, overrides: dict[str, Any] | None = None,
                   device: str = "auto", batch_size: int | None = None, seconds: float = 2.0,
                   max_steps: int = 20) -> dict[str, Any]:
    """Profile registered method ``name``; see the module docstring. Returns a JSON-ready dict.

    Raises:
        UnknownNameError, ParameterError: an unknown method, preset or hyper-parameter.
        ValueError: an unavailable device.
    """
    from mer_bench.method import resolve_params
    from mer_bench.registry import METHODS

    cls = METHODS.get(name)
    params = resolve_params(cls, preset, overrides or {})
    method = cls(**params)
    out: dict[str, Any] = {"method": name, "preset": preset, "params": params,
                           "representation": cls.info.representation}
    natural = _natural_input(method)
    out["input_shape"] = list(natural)
    if hasattr(method, "build_model"):
        out.update(_profile_network(method, natural, device, batch_size, seconds, max_steps))
    elif hasattr(method, "features"):
        x = np.random.default_rng(0).random((1, *natural)).astype(np.float32)
        per = _timed(lambda: method.features(x), seconds, max_steps)
        out.update({"device": "cpu", "parameters": None, "gflops_per_sample": None,
                    "features_per_s": 1.0 / per, "note": "no network: feature extraction throughput"})
    else:
        out.update({"device": "cpu", "parameters": None, "gflops_per_sample": None,
                    "note": "nothing to measure (no model)"})
    if cls.info.paper_size is not None:
        p, g, src = cls.info.paper_size
        out["paper"] = {"parameters": p, "gflops": g, "source": src}
    return out


def _profile_network(method, natural, device, batch_size, seconds, max_steps) -> dict[str, Any]:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from mer_bench.runtime import resolve_device

    dev = torch.device(resolve_device(device))
    x1 = method._prepare(np.zeros((1, *natural), np.float32))
    method.input_shape_ = tuple(x1.shape[1:])
    method.representation_ = method.info.representation
    torch.manual_seed(0)
    model = method.build_model(x1.shape[1], 3).to(dev)
    n_params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    model.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x1.to(dev))
    flops = counter.get_total_flops()
    bs = batch_size or getattr(method, "batch_size", 8)
    xb = torch.randn(bs, *x1.shape[1:], device=dev)
    yb = torch.randint(0, 3, (bs,), device=dev)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)

    def train_step():
        opt.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(xb), yb).backward()
        opt.step()
        sync()

    def infer_step():
        with torch.no_grad():
            model(xb)
        sync()

    model.train()
    train = _timed(train_step, seconds, max_steps)
    model.eval()
    infer = _timed(infer_step, seconds, max_steps)
    return {"device": str(dev), "model_input_shape": list(x1.shape[1:]), "parameters": n_params,
            "gflops_per_sample": flops / 1e9, "batch_size": bs, "train_samples_per_s": bs / train,
            "infer_samples_per_s": bs / infer}


def profile_table(res: dict[str, Any]) -> list:
    """What ``mer-bench profile`` prints for :func:`profile_method`'s result: a rich table, then notes."""
    from rich.table import Table

    def num(v, fmt):
        return "n/a" if v is None else format(v, fmt)

    table = Table(title=f"profile: {res['method']}" + (f" (preset {res['preset']})" if res["preset"] else ""))
    table.add_column("quantity")
    table.add_column("mer-bench", justify="right")
    table.add_column("paper", justify="right")
    paper = res.get("paper", {})
    table.add_row("device", res["device"], "")
    table.add_row("input (representation)", f"{'x'.join(map(str, res['input_shape']))} ({res['representation']})", "")
    if "model_input_shape" in res:
        table.add_row("network input", "x".join(map(str, res["model_input_shape"])), "")
    table.add_row("parameters", num(res["parameters"], ","), num(paper.get("parameters"), ","))
    table.add_row("GFLOPs / sample (forward, 2 per MAC)", num(res["gflops_per_sample"], ".3f"),
                  num(paper.get("gflops"), ".2f"))
    if "train_samples_per_s" in res:
        table.add_row(f"train samples/s (batch {res['batch_size']})", f"{res['train_samples_per_s']:.1f}", "")
        table.add_row(f"inference samples/s (batch {res['batch_size']})", f"{res['infer_samples_per_s']:.1f}", "")
    if "features_per_s" in res:
        table.add_row("feature extraction samples/s", f"{res['features_per_s']:.1f}", "")
    out = [table]
    if paper:
        out.append(f"paper figures: {paper['source']}; its FLOP convention is unknown")
    if res.get("note"):
        out.append(res["note"])
    return out
