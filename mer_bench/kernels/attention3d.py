"""MERANet's channel then spatio-temporal attention, fused on the CPU (``attention3d.cpp``).

Source of the block: Gajjala et al., MERANet (ICVGIP 2021, arXiv 2012.04581), Eqs. 1-9, as
:mod:`mer_bench.methods.meranet` builds it: ``y = x * a`` with the channel map
``a = sigmoid(S(avg_thw x) + S(max_thw x))`` ``(N, C)``, then ``z = y * s`` with the
spatio-temporal map ``s = sigmoid(conv([mean_c y, max_c y]))`` ``(N, 1, T, H, W)``.

PyTorch runs this as about twenty operators, each a pass over the ``(N, C, T, H, W)``
activation (the backward of each maximum alone is three: compare, count the ties, multiply); at
the fast preset's first stage, 16 x 16 x 8 x 16 x 16, one block's attention took about 14 ms
forward and backward on one core of a Xeon restricted to AVX2. Here the large passes are
six C++ loops over the activation in ``channels_last_3d`` (``(N, P, C)``, channels innermost),
three forward and three backward (5.2 ms); the small parts (the shared sub-network ``S``, the attention
convolution, the sigmoids) stay the network's own PyTorch modules, so their parameters and
their gradients are the plain ones.

What it computes is the plain modules' function and gradients up to floating-point rounding
(sums run in another order, those over positions in float32 blocks of 64 added up in float64;
tested against the plain path),
with one declared difference: the gradient of a maximum goes to its first occurrence, where
``amax`` splits it evenly among exact ties (which float activations do not produce; the
values are the same). A NaN in the activation makes the means, hence both maps and the loss, NaN
(the trainer then stops), whichever maximum is kept. No double backward.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.autograd.function import once_differentiable

from mer_bench import kernels

__all__ = ["why_not_fused", "channel_spatial_attention"]


def why_not_fused(x: torch.Tensor, *modules: torch.nn.Module) -> str | None:
    """``None`` when the fused kernel can run the attention on ``x`` here, else the reason (the
    plain modules then run). ``modules``: the attention modules, which must carry no hooks (a hook,
    e.g. Grad-CAM's on one of them, needs the modules themselves to run)."""
    # first: inside torch.func a memory-format query raises
    if getattr(torch._C, "_are_functorch_transforms_active", lambda: False)():
        return "inside torch.func (stacked folds)"
    if torch.compiler.is_compiling():
        return "torch.compile"
    if x.device.type != "cpu" or x.dtype != torch.float32 or x.ndim != 5:
        return "not a float32 (N, C, T, H, W) batch on the CPU"
    if not x.is_contiguous(memory_format=torch.channels_last_3d) or x.is_contiguous():
        return "not in channels_last_3d"
    if torch.is_autocast_enabled("cpu"):
        return "autocast"
    if any(m._forward_hooks or m._forward_pre_hooks or m._backward_hooks or m._backward_pre_hooks
           for mod in modules for m in mod.modules()):
        return "a module carries hooks"
    if not kernels.enabled():
        return "kernels turned off"
    if kernels.load("attention3d") is None:
        return "the kernel could not be built"
    return None


def channel_spatial_attention(x: torch.Tensor, channel_map: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                              spatial_map: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """``z = (x * a) * s`` of the module docstring, fused: ``x`` ``(N, C, T, H, W)`` in
    ``channels_last_3d`` (see :func:`why_not_fused`; the caller checks it) -> ``z``, the same
    shape and layout.

    Args:
        channel_map: ``(avg, max)``, each ``(N, C, 1, 1, 1)``, -> ``a`` ``(N, C, 1, 1, 1)`` in [0, 1].
        spatial_map: the descriptors ``(N, 2, T, H, W)`` (mean, max over channels of ``x * a``)
            -> ``s`` ``(N, 1, T, H, W)`` in [0, 1].
    """
    n, c, t, h, w = x.shape
    xv = x.permute(0, 2, 3, 4, 1).reshape(n, t * h * w, c)  # a view: channels_last_3d is (N, T, H, W, C)
    avg, mx = _PositionStats.apply(xv)
    a = channel_map(avg.view(n, c, 1, 1, 1), mx.view(n, c, 1, 1, 1)).reshape(n, c)
    mean_c, max_c = _ChannelStats.apply(xv, a)
    s = spatial_map(torch.stack([mean_c, max_c], 1).view(n, 2, t, h, w))
    z = _Scale.apply(xv, a, s.reshape(n, t * h * w))
    return z.view(n, t, h, w, c).permute(0, 4, 1, 2, 3)


def _ext():
    return kernels.load("attention3d")


class _PositionStats(torch.autograd.Function):
    """``(N, P, C)`` -> mean and max over the P positions, ``(N, C)`` each."""

    @staticmethod
    def forward(ctx, x):
        avg, mx, arg = _ext().thw_stats(x)
        ctx.save_for_backward(arg)
        ctx.positions = x.shape[1]
        return avg, mx

    @staticmethod
    @once_differentiable
    def backward(ctx, g_avg, g_max):
        (arg,) = ctx.saved_tensors
        g_avg = torch.zeros_like(arg, dtype=torch.float32) if g_avg is None else g_avg.contiguous()
        g_max = torch.zeros_like(arg, dtype=torch.float32) if g_max is None else g_max.contiguous()
        return _ext().thw_stats_backward(g_avg, g_max, arg, ctx.positions)


class _ChannelStats(torch.autograd.Function):
    """``x`` ``(N, P, C)``, ``a`` ``(N, C)`` -> mean and max over channels of ``x * a``, ``(N, P)`` each."""

    @staticmethod
    def forward(ctx, x, a):
        a = a.contiguous()
        mean, mx, arg = _ext().c_stats(x, a)
        ctx.save_for_backward(x, a, arg)
        return mean, mx

    @staticmethod
    @once_differentiable
    def backward(ctx, g_mean, g_max):
        x, a, arg = ctx.saved_tensors
        zeros = torch.zeros(arg.shape, dtype=torch.float32)
        g_mean = zeros if g_mean is None else g_mean.contiguous()
        g_max = zeros if g_max is None else g_max.contiguous()
        gx, ga = _ext().c_stats_backward(x, a, g_mean, g_max, arg)
        return gx, ga


class _Scale(torch.autograd.Function):
    """``(x * a) * s``: ``x`` ``(N, P, C)``, ``a`` ``(N, C)``, ``s`` ``(N, P)``."""

    @staticmethod
    def forward(ctx, x, a, s):
        a, s = a.contiguous(), s.contiguous()
        ctx.save_for_backward(x, a, s)
        return _ext().scale(x, a, s)

    @staticmethod
    @once_differentiable
    def backward(ctx, gz):
        x, a, s = ctx.saved_tensors
        gx, ga, gs = _ext().scale_backward(gz.contiguous(), x, a, s)
        return gx, ga, gs
