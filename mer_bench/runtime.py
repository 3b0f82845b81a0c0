"""Run-time settings that are not hyper-parameters: device and progress reporting.

They change where and how a method runs, never what it computes, so they are not part of a
run's configuration hash. The runner sets them with :func:`use`; methods read :func:`current`.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

__all__ = ["Runtime", "current", "use", "resolve_device"]


@dataclass(frozen=True)
class Runtime:
    """Attributes:
        device: ``"auto"`` (CUDA when available, else CPU), ``"cpu"``, ``"cuda"``, ``"cuda:1"``...
        progress: ``progress(description, completed, total)`` callback, or ``None``.
        channels_last: use the channels-last memory format for the model and its batches.
        cudnn_benchmark: ``torch.backends.cudnn.benchmark`` during training (GPU).
        compile: train through ``torch.compile``.
    """

    device: str = "auto"
    progress: Callable[[str, int, int], None] | None = None
    #: train and predict in the channels-last memory format (``channels_last_3d`` for clips): the
    #: same computation up to floating-point noise, faster with bf16 on CPUs and GPUs
    channels_last: bool = False
    #: let cuDNN benchmark convolution algorithms and keep the fastest (GPU only; faster, but the
    #: chosen algorithm, hence the last bits of the results, may change from run to run)
    cudnn_benchmark: bool = False
    #: train through ``torch.compile`` (the same computation up to floating-point noise)
    compile: bool = False


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
