"""STSTNet's stem, fused on the CPU: ``Conv2d(Cin -> C, 3x3) -> ReLU -> BatchNorm2d -> MaxPool2d(3, 3, 1)``.

Source of the block: Liong et al., STSTNet (FG 2019, arXiv:1902.03634; christy1206/STSTNet
``main.py``), as :mod:`mer_bench.methods.ststnet` builds it (the three streams as one 16-channel
convolution). What it computes is exactly the plain layers' function in training mode (batch
statistics, running statistics updated with the layer's momentum and the unbiased variance) and
its gradients with respect to every parameter, up to floating-point rounding:

* the batch variance is accumulated in float32 per output row, shifted by the row's first value,
  and in float64 across rows (PyTorch: float32 two-pass); so ``E[r^2] - E[r]^2`` does not cancel;
* the max-pool is taken from each window's largest and smallest activation ``r`` (recorded in the
  convolution's pass; BatchNorm's ``r * scale + shift`` is monotone in ``r``), so where two
  activations of a window differ but round to the same normalised value, the gradient goes to the
  larger (for a negative scale the smaller) one, as in exact arithmetic, where ATen takes the
  first in scan order; exact ties go to the first, as in ATen. The ReLU maps a NaN to 0 (ATen's
  keeps it; a NaN input makes the loss NaN either way and the trainer stops);
* the convolution's weight gradient is summed per sample in float32 and across samples in float64;
* with dropout (:func:`stem_dropout_avgpool`), the factors are ``nn.Dropout``'s own: the kernel
  draws them from PyTorch's default generator exactly as ``torch.rand(float64) < 1 - p`` would
  (the same Mersenne Twister outputs in the same order, its 624-word state advanced in vectorised
  blocks and handed back; :func:`draws_like_rand` checks this once per run against ``torch.rand``,
  else ``torch.rand`` draws them), about 4x faster than ``torch.rand`` on an AVX2 EPYC (256 x 16
  x 10 x 10: 3.9 -> 1.0 ms with the average pool); the average pool's and dropout's backward and
  BatchNorm's two gradient sums are one pass.

Measured against the plain layers in one process (``benchmarks/bench_ststnet_loso.py``; numbers in
the README's speed section). It does not compute the gradient with respect to the block's input
(STSTNet's input is data), so it applies only where the input does not require one.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import nn

from mer_bench import kernels

__all__ = ["conv_relu_bn_maxpool", "stem_dropout_avgpool", "why_not_fused", "draws_like_rand"]


def why_not_fused(x: torch.Tensor, conv: nn.Conv2d, bn: nn.BatchNorm2d, pool: nn.MaxPool2d) -> str | None:
    """``None`` when the fused kernel can compute ``pool(bn(relu(conv(x))))`` here, else the reason
    (the block is then run with the plain layers)."""
    if not (bn.training and torch.is_grad_enabled()):
        return "not training"
    if x.device.type != "cpu" or x.dtype != torch.float32 or conv.weight.dtype != torch.float32:
        return "not float32 on the CPU"
    if x.requires_grad:
        return "the input needs a gradient"
    if torch.is_autocast_enabled("cpu"):
        return "autocast"
    if torch.compiler.is_compiling():
        return "torch.compile"
    if getattr(torch._C, "_are_functorch_transforms_active", lambda: False)():
        return "inside torch.func (stacked folds)"
    if not kernels.enabled():
        return "kernels turned off"
    if (conv.kernel_size != (3, 3) or conv.stride != (1, 1) or conv.dilation != (1, 1) or conv.groups != 1
            or conv.bias is None or not isinstance(conv.padding, tuple) or conv.padding_mode != "zeros"
            or conv.out_channels not in (8, 16, 32) or x.ndim != 4):
        return "a convolution other than 3x3, stride 1, zero padding, bias, 8/16/32 channels"
    if not (bn.affine and bn.track_running_stats and bn.momentum is not None and bn.num_features == conv.out_channels):
        return "a BatchNorm2d without affine parameters, running statistics or momentum"
    if not (_pair(pool.kernel_size) == (3, 3) and _pair(pool.stride) == (3, 3) and _pair(pool.padding) == (1, 1)
            and _pair(pool.dilation) == (1, 1) and not pool.ceil_mode and not pool.return_indices):
        return "a max-pool other than 3x3, stride 3, padding 1"
    if kernels.load("stem2d") is None:
        return "the kernel could not be built"
    return None


@functools.cache
def draws_like_rand(q: float) -> bool:
    """Whether the kernel's own draws (``stem2d.cpp``: the default generator's Mersenne Twister
    advanced in vectorised blocks) give exactly ``torch.rand(n, dtype=torch.float64) < q`` and leave
    the generator where ``torch.rand`` leaves it, on this PyTorch build: checked once per ``q`` from
    several starting points of the generator (the global generator is restored). ``False`` also
    where the kernel cannot be built; the dropout factors are then drawn with ``torch.rand``."""
    ext = kernels.load("stem2d")
    if ext is None:
        return False
    with torch.random.fork_rng(devices=[]):
        for offset in (0, 1, 623, 1250):
            torch.manual_seed(2024)
            torch.rand(offset)
            ours = ext.rand_keep(3001, q)
            ours_after = torch.rand(5)
            torch.manual_seed(2024)
            torch.rand(offset)
            theirs = torch.rand(3001, dtype=torch.float64).lt_(q).to(torch.uint8)
            if not (torch.equal(ours, theirs) and torch.equal(ours_after, torch.rand(5))):
                return False
    return True


@functools.cache
def _kept_factor(q: float) -> float:
    """The float32 factor of a kept element, as ``mask.to(float32).div_(q)`` computes it."""
    return torch.ones(1).div_(q).item()


def _pair(v) -> tuple:
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v)


def conv_relu_bn_maxpool(x: torch.Tensor, conv: nn.Conv2d, bn: nn.BatchNorm2d, pool: nn.MaxPool2d) -> torch.Tensor:
    """``pool(bn(relu(conv(x))))``: ``(N, Cin, H, W)`` -> ``(N, C, PH, PW)`` (channels-last
    strides when fused), fused where :func:`why_not_fused` allows, else with the layers themselves."""
    if why_not_fused(x, conv, bn, pool) is not None:
        return pool(bn(torch.relu(conv(x))))
    bn.num_batches_tracked.add_(1)  # as nn.BatchNorm2d does in training (its momentum is set, so unused)
    return _Stem.apply(x, conv.weight, conv.bias, bn.weight, bn.bias, bn.running_mean, bn.running_var,
                       float(bn.momentum), float(bn.eps), tuple(conv.padding), None)


def stem_dropout_avgpool(x: torch.Tensor, conv: nn.Conv2d, bn: nn.BatchNorm2d, pool: nn.MaxPool2d,
                         dropout: nn.Module, avgpool: nn.AvgPool2d) -> torch.Tensor:
    """``avgpool(dropout(pool(bn(relu(conv(x))))))``, STSTNet's features: ``(N, Cin, H, W)`` ->
    ``(N, C, PH // 2, PW // 2)``. Fused where :func:`why_not_fused` allows and ``dropout`` is an
    ``nn.Dropout`` whose masks :func:`mer_bench.kernels.dropout.draws_like_bernoulli` confirms (its
    masks are then drawn exactly as ``nn.Dropout`` draws them on a contiguous batch) and
    ``avgpool`` a plain ``AvgPool2d(2)``; else the stem alone is fused (:func:`conv_relu_bn_maxpool`)
    and the rest runs as layers."""
    from mer_bench.kernels.dropout import SameMaskDropout, draws_like_bernoulli

    plain_tail = not (isinstance(dropout, nn.Dropout) and type(dropout) in (nn.Dropout, SameMaskDropout)
                      and 0.0 < dropout.p < 1.0 and dropout.training and not dropout.inplace
                      and _pair(avgpool.kernel_size) == (2, 2) and _pair(avgpool.stride) == (2, 2)
                      and _pair(avgpool.padding) == (0, 0) and not avgpool.ceil_mode
                      and avgpool.divisor_override is None)
    if plain_tail or why_not_fused(x, conv, bn, pool) is not None or not draws_like_bernoulli(float(dropout.p)):
        return avgpool(dropout(conv_relu_bn_maxpool(x, conv, bn, pool)))
    bn.num_batches_tracked.add_(1)
    return _Stem.apply(x, conv.weight, conv.bias, bn.weight, bn.bias, bn.running_mean, bn.running_var,
                       float(bn.momentum), float(bn.eps), tuple(conv.padding), float(dropout.p))


class _Stem(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, conv_w, conv_b, bn_w, bn_b, running_mean, running_var, momentum, eps, padding, drop):
        ext = kernels.load("stem2d")
        ph, pw = padding
        xpad = F.pad(x, (pw, pw, ph, ph)).contiguous()
        C = conv_w.shape[0]
        wt = conv_w.detach().permute(1, 2, 3, 0).reshape(-1, C).contiguous()  # (Cin * 9, C), tap-major
        r, sums, window_stats = ext.conv_relu(xpad, wt, conv_b.detach().contiguous())
        M = r.numel() // C
        if M < 2:
            raise ValueError(f"BatchNorm2d needs more than one value per channel in training, got input "
                             f"{tuple(x.shape)}")
        mean64 = sums[0] / M
        var64 = (sums[1] / M - mean64 * mean64).clamp_min(0)
        with torch.no_grad():
            running_mean.mul_(1 - momentum).add_(mean64.to(running_mean.dtype), alpha=momentum)
            running_var.mul_(1 - momentum).add_((var64 * (M / (M - 1))).to(running_var.dtype), alpha=momentum)
        mean = mean64.float()
        invstd = torch.rsqrt(var64 + eps).float()
        scale = (bn_w.detach() * invstd).contiguous()
        shift = (bn_b.detach() - mean * scale).contiguous()
        pooled, argmax, r_at = ext.pool_from_stats(r, window_stats, scale, shift)
        ctx.M, ctx.in_shape, ctx.drop = M, conv_w.shape, drop
        if drop is None:
            ctx.save_for_backward(xpad, r, argmax, r_at, mean, invstd, bn_w.detach())
            return pooled.permute(0, 3, 1, 2).contiguous()  # (N, C, PH, PW): the layers after it are faster so
        # nn.Dropout's factors, drawn as it draws them on a contiguous (N, C, PH, PW) batch
        # (mer_bench.kernels.dropout), laid out as the kernel reads them
        q = 1.0 - drop
        if draws_like_rand(q):  # drawn in the kernel, from the same generator (see draws_like_rand)
            out, noise = ext.dropout_avgpool_draw(pooled, q, _kept_factor(q))
        else:
            noise = torch.rand(pooled.permute(0, 3, 1, 2).shape, dtype=torch.float64).lt_(q).to(torch.float32).div_(q)
            noise = noise.permute(0, 2, 3, 1).contiguous()
            out = ext.dropout_avgpool(pooled, noise)
        ctx.save_for_backward(xpad, r, argmax, r_at, mean, invstd, bn_w.detach(), noise)
        return out.permute(0, 3, 1, 2).contiguous()  # (N, C, PH // 2, PW // 2)

    @staticmethod
    def backward(ctx, grad):
        xpad, r, argmax, r_at, mean, invstd, bn_w = ctx.saved_tensors[:7]
        M = ctx.M
        ext = kernels.load("stem2d")
        k = (bn_w * invstd).double()
        if ctx.drop is not None:
            # AvgPool2d(2)'s and dropout's backward, and BatchNorm's two sums, in one pass
            gk, sums = ext.dropout_avgpool_backward(grad.contiguous(), ctx.saved_tensors[7], r_at, mean, invstd,
                                                    k.float().contiguous())
            sum_g, sum_gx = sums[0], sums[1]
        else:
            g = grad.permute(0, 2, 3, 1).contiguous()  # (N, PH, PW, C)
            xhat = (r_at - mean) * invstd
            sum_g = g.sum((0, 1, 2), dtype=torch.float64)
            sum_gx = (g * xhat).sum((0, 1, 2), dtype=torch.float64)
            gk = (g * k.float()).contiguous()
        # dL/dr = k (g_y - sum_g / M - xhat sum_gx / M) = a + b r (+ k g at each window's argmax)
        b = -k * invstd.double() * sum_gx / M
        a = -k * sum_g / M - b * mean.double()
        gw = ext.backward_weight(xpad, r, argmax, gk, a.float().contiguous(), b.float().contiguous())[0]
        C, Cin = ctx.in_shape[0], ctx.in_shape[1]
        conv_w_grad = gw[:-1].t().reshape(C, Cin, 3, 3).float()
        return (None, conv_w_grad, gw[-1].float(), sum_gx.float(), sum_g.float(), None, None, None, None, None, None)
