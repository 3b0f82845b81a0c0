"""Run-time settings that are not hyper-parameters: device and progress reporting.

They change where and how a method runs, never what it computes, so they are not part of a
run's configuration hash. The runner sets them with :func:`use`; methods read :func:`current`.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

__all__ = ["Runtime", "current", "use", "resolve_device", "tune_cpu_allocator", "cpu_description",
           "cpu_has_native_bf16", "bf16_warning"]


@dataclass(frozen=True)
class Runtime:
    """Attributes:
        device: ``"auto"`` (CUDA when available, else CPU), ``"cpu"``, ``"cuda"``, ``"cuda:1"``...
        progress: ``progress(description, completed, total)`` callback, or ``None``.
        channels_last: use the channels-last memory format for the model and its batches
            (``True``/``False``); ``None`` (the default): the network's own choice on a CPU, its
            ``cpu_channels_last`` attribute (MERANet, the 3D ResNet and RCN set it), else off.
        cudnn_benchmark: ``torch.backends.cudnn.benchmark`` during training (GPU).
        compile: train through ``torch.compile``.
        kernels: allow mer-bench's own CPU fast paths (:mod:`mer_bench.kernels`).
    """

    device: str = "auto"
    progress: Callable[[str, int, int], None] | None = None
    #: train and predict in the channels-last memory format (``channels_last_3d`` for clips): the
    #: same computation up to floating-point noise, faster with bf16 on CPUs and GPUs; ``None``:
    #: as the network asks on a CPU (``cpu_channels_last``), contiguous elsewhere
    channels_last: bool | None = None
    #: let cuDNN benchmark convolution algorithms and keep the fastest (GPU only; faster, but the
    #: chosen algorithm, hence the last bits of the results, may change from run to run)
    cudnn_benchmark: bool = False
    #: train through ``torch.compile`` (the same computation up to floating-point noise)
    compile: bool = False
    #: on the CPU, mer-bench's fused kernels where a network has one (STSTNet's stem), dropout masks
    #: drawn faster (the same masks) and fused Adam: the same computation up to floating-point noise
    #: (:mod:`mer_bench.kernels`); ``MER_BENCH_KERNELS=0`` also turns them off
    kernels: bool = True


_CURRENT: contextvars.ContextVar[Runtime] = contextvars.ContextVar("mer_bench_runtime", default=Runtime())  # noqa: B039 (frozen)


def current() -> Runtime:
    """The runtime in force."""
    return _CURRENT.get()


@contextlib.contextmanager
def use(**changes) -> Iterator[Runtime]:
    """Temporarily change runtime settings: ``with use(device="cpu"): ...``."""
    token = _CURRENT.set(replace(_CURRENT.get(), **changes))
    try:
        yield _CURRENT.get()
    finally:
        _CURRENT.reset(token)


def resolve_device(device: str = "auto") -> str:
    """``"auto"`` -> ``"cuda"`` when torch sees a GPU, else ``"cpu"``; others are checked.

    Raises:
        ValueError: a CUDA device was asked for and none is available, or the name is unknown.
    """
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(device)
    except RuntimeError as exc:
        raise ValueError(f"unknown device {device!r}: {exc}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} asked for, but torch sees no CUDA GPU; use --device cpu or auto")
    if dev.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"unsupported device {device!r}; use auto, cpu or cuda[:N]")
    return str(dev)


_ALLOCATOR_TUNED: bool | None = None


def tune_cpu_allocator() -> bool:
    """Keep freed large blocks in the process heap (glibc ``mallopt``), once per process.

    By default glibc serves every allocation over 32 MB with a fresh ``mmap`` and gives it back on
    free, so each large activation of a training step page-faults its memory in again: at
    MERANet's paper size (a 64 x 16 x 56 x 56 activation of 8 clips is 51 MB) that cost a third of
    the step time on the development machine (``mer-bench bench --method meranet``: plain 0.71 ->
    1.06 samples/s, optimised 2.31 -> 3.57, measured in separate processes). Raising the mmap and
    trim thresholds keeps those blocks for reuse; the price is that the process keeps its peak
    memory until it exits. It changes no result. A no-op (returns ``False``) outside glibc or with
    ``MER_BENCH_MALLOC=default``.
    """
    global _ALLOCATOR_TUNED
    if _ALLOCATOR_TUNED is not None:
        return _ALLOCATOR_TUNED
    import os
    import sys

    _ALLOCATOR_TUNED = False
    if sys.platform != "linux" or os.environ.get("MER_BENCH_MALLOC", "").lower() == "default":
        return False
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_threshold, limit = -1, -3, 2 ** 31 - 1
        _ALLOCATOR_TUNED = bool(libc.mallopt(m_mmap_threshold, limit)) and bool(libc.mallopt(m_trim_threshold, limit))
    except (OSError, AttributeError):  # not glibc (e.g. musl)
        pass
    return _ALLOCATOR_TUNED


def cpu_has_native_bf16() -> bool:
    """Whether oneDNN runs bf16 natively on this CPU (AVX-512 BF16 or AMX); without it a bf16
    convolution is emulated and far slower than fp32 (about 75x for a conv3d on an AVX2-only CPU)."""
    import torch

    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def cpu_description() -> str:
    """The CPU as results and times depend on it: model name, the instruction set torch's CPU
    kernels use (``torch.backends.cpu.get_cpu_capability()``: ``AVX2``, ``AVX512``...) and whether
    bf16 is native, e.g. ``"AMD EPYC 7B13 (AVX2, no native bf16)"``."""
    import platform

    import torch

    model = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "")
    except OSError:
        pass
    model = model or platform.processor() or platform.machine() or "unknown CPU"
    capability = torch.backends.cpu.get_cpu_capability()
    return f"{model} ({capability}, {'native' if cpu_has_native_bf16() else 'no native'} bf16)"


def bf16_warning(device: str, precision: str) -> str | None:
    """The warning to give before training with ``precision`` on ``device``, or ``None``: bf16
    forced on a CPU without native bf16 is emulated and much slower than fp32 (``auto`` stays fp32
    on CPUs)."""
    if precision != "bf16" or not str(device).startswith("cpu") or cpu_has_native_bf16():
        return None
    return (f"precision=bf16 on this CPU ({cpu_description()}) is emulated: bf16 convolutions run many times "
            f"slower than fp32 here (measured: about 75x for a conv3d on an AVX2-only CPU). The results are "
            f"valid but the run will be slow; precision=auto (fp32 on CPUs) or fp32 is faster")
