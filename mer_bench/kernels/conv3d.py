"""3D convolutions computed as 2D ones where that is the same function: a convolution with few
channels as one banded 2D convolution (:func:`conv3d_as_conv2d`), and any 3D convolution of a
one-frame clip as the convolution with its one temporal tap (:class:`SingleFrameConv3d`).

``Conv3d(Cin -> Cout, k x k x k, stride 1, padding p)`` on ``(N, Cin, T, H, W)`` equals a
``Conv2d(Cin*T -> Cout*T_out, k x k, padding p)`` over ``(H, W)`` whose weight is *banded* in time:
output frame ``t`` sees input frame ``t'`` through the kernel's temporal slice ``t' - t + p`` (zero
outside ``0..k-1``, which is also the temporal zero padding). The banded weight is built from the
3D kernel with differentiable indexing, so gradients flow to the same parameter.

It does ``T_out / k`` times the 3D convolution's multiply-adds (mostly with zeros), but oneDNN's
2D kernels with ``Cin*T`` channels are far faster on a CPU than its 3D kernels with one or two:
MERANet's spatio-temporal attention convolution (2 -> 1 channels, 5x5x5; measured on a 2-core
Xeon, forward + backward, 1 thread) took 123 ms as ``conv3d`` and 12 ms this way at the fast
preset's 16 x 2 x 8 x 32 x 32, 1.7 s and 0.1 s at the paper's 8 x 2 x 16 x 112 x 112. The same
function and gradients up to floating-point rounding (tested).
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from torch import nn

from mer_bench.kernels import class_swapped, swap_class

__all__ = ["conv3d_as_conv2d", "single_frame_tap", "SingleFrameConv3d", "swap_in_single_frame_conv3d",
           "single_frame_conv3d"]


def conv3d_as_conv2d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, padding: int) -> torch.Tensor:
    """``F.conv3d(x, weight, bias, padding=padding)`` for a cubic kernel and stride 1, computed as
    one banded 2D convolution (module docstring). ``x``: ``(N, Cin, T, H, W)``; ``weight``:
    ``(Cout, Cin, k, k, k)``; returns ``(N, Cout, T + 2p - k + 1, H + 2p - k + 1, W + 2p - k + 1)``.

    Raises:
        ValueError: a non-cubic kernel, or an output with no frames.
    """
    n, cin, t_in, h, w = x.shape
    cout, _, k, kh, kw = weight.shape
    if not (k == kh == kw):
        raise ValueError(f"conv3d_as_conv2d needs a cubic kernel, got {tuple(weight.shape[2:])}")
    t_out = t_in + 2 * padding - k + 1
    if t_out < 1:
        raise ValueError(f"no output frames: {t_in} frames, kernel {k}, padding {padding}")
    d = torch.arange(t_in, device=x.device)[None, :] - torch.arange(t_out, device=x.device)[:, None] + padding
    valid = ((d >= 0) & (d < k)).to(weight.dtype)                       # (T_out, T_in)
    banded = weight[:, :, d.clamp(0, k - 1)]                            # (Cout, Cin, T_out, T_in, k, k)
    banded = banded * valid[None, None, :, :, None, None]
    banded = banded.permute(0, 2, 1, 3, 4, 5).reshape(cout * t_out, cin * t_in, k, k)
    b2 = None if bias is None else bias.repeat_interleave(t_out)
    out = F.conv2d(x.reshape(n, cin * t_in, h, w), banded, b2, padding=padding)
    return out.reshape(n, cout, t_out, *out.shape[-2:])


# --------------------------------------------------------------------------------------------
# One-frame clips: a 3D convolution that sees a single frame is a 2D convolution
# --------------------------------------------------------------------------------------------

def single_frame_tap(conv: nn.Conv3d, frames: int) -> int | None:
    """The temporal tap of ``conv`` that a one-frame input meets, or ``None`` where the one-frame
    path does not apply (more than one input frame or output frame, a padding mode other than
    zeros, a string padding, or no tap on the frame).

    With ``T = 1`` the output has ``floor((1 + 2 p_t - d_t (k_t - 1) - 1) / s_t) + 1`` frames; where
    that is one, its frame reads input frame ``j d_t - p_t`` through tap ``j``, so only
    ``j = p_t / d_t`` meets the frame and every other tap meets zero padding."""
    if frames != 1 or conv.padding_mode != "zeros" or isinstance(conv.padding, str):
        return None
    (kt, st, pt, dt) = (conv.kernel_size[0], conv.stride[0], conv.padding[0], conv.dilation[0])
    t_out = (1 + 2 * pt - dt * (kt - 1) - 1) // st + 1
    if t_out != 1 or pt % dt or pt // dt >= kt:
        return None
    return pt // dt


class SingleFrameConv3d(nn.Conv3d):
    """``nn.Conv3d`` that computes a one-frame input ``(N, C, 1, H, W)`` with only the kernel's one
    temporal tap that meets the frame (:func:`single_frame_tap`): a ``1 x kh x kw`` kernel without
    temporal padding; any other input runs ``nn.Conv3d`` itself.

    The other taps meet only zero padding, so the output is the same sum without its zero terms
    (equal up to floating-point rounding: oneDNN orders the remaining sum its own way) and their
    weight gradients are exactly zero either way. A flow image or an apex frame fed to MERANet or
    the 3D ResNet as a one-frame clip (the MEGC 2019 composite) is such an input: there oneDNN's
    3D kernels also multiply the padding. Forward + backward, 16 -> 16 channels at 28 x 28, batch
    16, 1 thread, channels-last, on a 2-core Intel Xeon with AVX-512 (back to back, while two other
    training processes ran: read the ratios): 3x3x3 5.3 -> 3.0 ms, 5x5x5 24.6 -> 4.8 ms, 7x7x7
    65.4 -> 7.5 ms. Same parameters, same ``state_dict``; the trainer swaps the class in for
    training and prediction on a CPU (:func:`single_frame_conv3d`).

    (A first version selected the frame, ``x[:, :, 0]``, and ran ``F.conv2d`` on it; with two
    threads a backward of that path corrupted the heap now and then, on a 2-core Xeon, in about one
    run in three of a width-4 MERANet on the composite, also with the frame made contiguous first;
    which operator was not narrowed down. The one-tap ``conv3d`` selects nothing from the
    activations, is as fast there, and ran clean.)"""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tap = single_frame_tap(self, x.shape[2]) if x.ndim == 5 else None
        if tap is None:
            return super().forward(x)
        return F.conv3d(x, self.weight[:, :, tap:tap + 1], self.bias, self.stride, (0, *self.padding[1:]),
                        self.dilation, self.groups)


def swap_in_single_frame_conv3d(model: nn.Module) -> list[nn.Module]:
    """Make every ``nn.Conv3d`` of ``model`` (the exact class, not subclasses) a
    :class:`SingleFrameConv3d`; returns the modules swapped."""
    return swap_class(model, nn.Conv3d, SingleFrameConv3d)


def single_frame_conv3d(model: nn.Module) -> contextlib.AbstractContextManager[int]:
    """Within the block, :func:`swap_in_single_frame_conv3d`; restored afterwards. Yields how many
    were swapped."""
    return class_swapped(model, nn.Conv3d, SingleFrameConv3d)
