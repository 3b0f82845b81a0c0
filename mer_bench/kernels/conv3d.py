"""A 3D convolution with few channels as one 2D convolution: the frames become channels.

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

import torch
import torch.nn.functional as F

__all__ = ["conv3d_as_conv2d"]


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
