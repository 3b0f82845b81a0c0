"""mer-bench's own CPU kernels: fused training blocks for networks too small to keep a CPU busy
through PyTorch's one-operator-at-a-time path (STSTNet: :mod:`mer_bench.kernels.stem2d`; MERANet's
attention: :mod:`mer_bench.kernels.attention3d`), and a faster way to draw the same dropout masks
(:mod:`mer_bench.kernels.dropout`).

Each kernel computes what the plain PyTorch layers compute, up to floating-point rounding (tested
against them), so it is a run-time choice like the thread count: not part of a run's identity,
recorded in its provenance. The C++ source is compiled on first use with PyTorch's extension
builder (a C++ compiler and ``ninja``; about 30 s, once per machine and PyTorch version, cached in
``$MER_BENCH_KERNEL_CACHE`` or ``~/.cache/mer-bench/kernels``), for this CPU's instruction set
(``-march=native``; the cache is keyed by the CPU's flags; ``MER_BENCH_KERNEL_MARCH=x86-64-v3``
builds for AVX2 only, e.g. to measure on an AVX-512 machine what an AVX2 one gets, together with
PyTorch's ``ATEN_CPU_CAPABILITY=avx2`` and oneDNN's ``DNNL_MAX_CPU_ISA=AVX2``). Where the build
fails, training warns once and uses the plain layers. ``MER_BENCH_KERNELS=0`` (or ``mer-bench run --no-kernels``) turns
the kernels off.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import platform
import sys
import threading
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import nn

__all__ = ["load", "enabled", "KernelWarning", "cache_dir", "swap_class", "class_swapped"]

_LOCK = threading.Lock()
#: bump when the compiler flags change, so cached builds are rebuilt
_FLAGS_VERSION = b"2"
_LOADED: dict[str, ModuleType | None] = {}


class KernelWarning(RuntimeWarning):
    """A mer-bench CPU kernel could not be built; the plain PyTorch layers are used instead."""


def enabled() -> bool:
    """``False`` when ``MER_BENCH_KERNELS`` is ``0``/``off``/``false``, or the runtime says
    ``kernels=False`` (:class:`mer_bench.runtime.Runtime`)."""
    from mer_bench import runtime

    if os.environ.get("MER_BENCH_KERNELS", "1").strip().lower() in ("0", "off", "false", "no"):
        return False
    return runtime.current().kernels


def swap_class(model: nn.Module, old: type, new: type, where: Callable[[nn.Module], bool] | None = None
               ) -> list[nn.Module]:
    """Make every module of ``model`` whose class is exactly ``old`` (not a subclass), and for which
    ``where`` holds, an instance of ``new``, a subclass with the same parameters and ``state_dict``
    that computes the same function another way; returns the modules swapped."""
    swapped = [m for m in model.modules() if type(m) is old and (where is None or where(m))]
    for m in swapped:
        m.__class__ = new
    return swapped


@contextlib.contextmanager
def class_swapped(model: nn.Module, old: type, new: type,
                  where: Callable[[nn.Module], bool] | None = None) -> Iterator[int]:
    """Within the block, :func:`swap_class`; the modules get ``old`` back afterwards. Yields how
    many were swapped (none where an enclosing block already swapped them)."""
    swapped = swap_class(model, old, new, where)
    try:
        yield len(swapped)
    finally:
        for m in swapped:
            m.__class__ = old


def cache_dir() -> Path:
    """Where built kernels are kept: ``$MER_BENCH_KERNEL_CACHE`` or ``~/.cache/mer-bench/kernels``."""
    root = os.environ.get("MER_BENCH_KERNEL_CACHE")
    return Path(root) if root else Path.home() / ".cache" / "mer-bench" / "kernels"


def _cpu_key() -> str:
    """A key of this CPU's instruction set (the build uses ``-march=native``)."""
    flags = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                flags = line
                break
    except OSError:
        pass
    return flags or platform.processor() or platform.machine()


def load(name: str) -> ModuleType | None:
    """The compiled kernel module ``name`` (``mer_bench/kernels/<name>.cpp``), built on first use;
    ``None`` (with one :class:`KernelWarning` naming the reason) where it cannot be built."""
    with _LOCK:
        if name in _LOADED:
            return _LOADED[name]
        _LOADED[name] = module = _build(name)
        return module


def _build(name: str) -> ModuleType | None:
    import torch

    source = Path(__file__).with_name(f"{name}.cpp")
    text = source.read_bytes()
    march = os.environ.get("MER_BENCH_KERNEL_MARCH", "native")
    key = hashlib.sha256(b"\0".join([text, torch.__version__.encode(), _cpu_key().encode(), march.encode(),
                                     _FLAGS_VERSION, sys.version.encode()])).hexdigest()[:12]
    module_name = f"mer_bench_{name}_{key}"
    build = cache_dir() / module_name
    try:
        from torch.utils.cpp_extension import load as load_extension

        build.mkdir(parents=True, exist_ok=True)
        if not any(build.glob(f"{module_name}*.so")):
            print(f"mer-bench: building the {name} CPU kernel for this machine (once, about 30 s) in {build}",
                  file=sys.stderr, flush=True)
        return load_extension(module_name, [str(source)], build_directory=str(build),
                              # -fno-trapping-math: no floating-point traps are ever enabled, so selects on
                              # float compares vectorise on AVX2 too; it changes no value (unlike -ffast-math)
                              extra_cflags=["-O3", f"-march={march}", "-fno-trapping-math", "-fopenmp"],
                              extra_ldflags=["-fopenmp"],
                              verbose=False)
    except Exception as exc:  # no compiler, no ninja, a build error: train with the plain layers
        first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
        warnings.warn(f"mer-bench's {name} CPU kernel could not be built ({first}); training uses the plain "
                      f"PyTorch layers (the same results, slower). It needs a C++ compiler and ninja "
                      f"(pip install ninja); MER_BENCH_KERNELS=0 silences this.", KernelWarning, stacklevel=3)
        return None
