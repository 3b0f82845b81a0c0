"""MERANet-18 and its attention-free baseline, 3D ResNet-18 (R3D-18).

Source: Gajjala, Reddy, Mukherjee, Dubey, "MERANet: Facial Micro-Expression Recognition using 3D
Residual Attention Network", ICVGIP 2021 (arXiv 2012.04581), sections 3.1-3.4 and 4.2-4.3.
The 3D ResNet-18 is R3D-18 of Tran et al., CVPR 2018 ("A Closer Look at Spatiotemporal
Convolutions"), whose layout is the one of ``torchvision.models.video.r3d_18``.

Network (input ``(N, C, T, H, W)``, float32, per-sample standardised):

* stem ``Conv3d(C, w, k=(3, 7, 7), s=(1, 2, 2), p=(1, 3, 3))`` + BN + ReLU;
* four stages of two residual blocks, widths ``w, 2w, 4w, 8w`` (``w = 64`` in the paper),
  stride 2 in T, H and W at the first block of stages 2-4, projection shortcut
  ``Conv3d(k=1, stride 2)`` + BN where the shape changes (paper section 3.3 case (b));
* global average pooling and one fully connected layer.

A residual *attention* block (paper Eqs. 10-12) computes ``I_conv`` with two 3x3x3 convolutions
(BN, ReLU between), then channel attention (Eq. 8: average- and max-pooled descriptors through
a shared ``1x1x1 conv (C -> C/r) -> ReLU -> 1x1x1 conv (C/r -> C)`` bottleneck, summed, sigmoid;
Eq. 8 sums the two descriptors where the paper's text says "concatenating": mer-bench follows the
equation),
then spatio-temporal attention (Eqs. 1-5: channel-wise average and max maps, concatenated,
one ``k x k x k`` convolution with same padding, sigmoid), and finally ``ReLU(I_st + d(I))``.

Parameter counts at 3 classes, ``w = 64`` (checked by ``tests/test_meranet.py``):

* ``resnet3d18``: 33,167,811, exactly the paper's 3D ResNet count (and torchvision ``r3d_18``).
* ``meranet``: 33,258,899 = R3D-18 + 91,088 attention parameters (8 blocks; channel attention
  with r = 16 and biases, spatio-temporal kernel 5 with bias). The paper reports 33,547,552
  (+379,741). The layer table that would explain the difference is in an unavailable
  supplementary; no simple variant reproduces it (kernel 3: +89,520; kernel 7: +94,576;
  r = 4: +352,568), so mer-bench reports its own count and does not guess.

Initialisation follows paper section 4.3: Xavier uniform for convolutions and linear layers,
biases 0, BN weights 1. PyTorch's ``xavier_uniform_`` computes fan-in/fan-out as channels x
kernel volume; the paper's text says "size of input and output channels". We use PyTorch's
definition (the receptive field counts), and say so here.

Optimiser (paper 4.3): Adam with untuned linear warm-up (Ma & Yarats 2019) and cosine annealing,
cross-entropy, batch 8, 100 epochs, lr 0.1 as written. These are the ``paper`` preset. The
``fast`` preset (width 16, 12 epochs, batch 16, lr 1e-3) is what the MEGC 2019 composite's flow
images use by default, and ``testbed`` (the same at lr 3e-3, which learned the clips better on the
embedded dataset's development seeds) what the embedded synthetic dataset uses, so that a full
LOSO runs on two CPU cores in minutes; both are a narrower MERANet, not the paper's network, and
every result records the parameters it ran with.

Deviations from the paper's setup (section 4.2-4.3), declared:

* temporal depth: the paper uses 32 frames for CASME / CASME II and 64 for SAMM and keeps only
  clips of at least 16 frames; mer-bench's raw datasets give every method 16 frames around the
  apex (``--dataset-set frames=32`` for the paper's depth) and keep every clip, replicating edge
  frames where a clip is shorter (as the paper does below its minimum).
* validation: the paper splits its training part 80/20 into train and validation once; mer-bench
  trains on the whole training fold and evaluates the last epoch (no validation-based selection).
* on the MEGC 2019 composite the input is the 28x28 flow image taken as a one-frame clip
  ``(3, 1, 28, 28)`` (the paper trains on frame clips); boards show it in the input column.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from mer_bench.kernels import enabled as kernels_enabled
from mer_bench.kernels.attention3d import channel_spatial_attention
from mer_bench.kernels.attention3d import why_not_fused as why_attention_not_fused
from mer_bench.kernels.conv3d import conv3d_as_conv2d
from mer_bench.method import MethodInfo, ParameterError, register_method
from mer_bench.torch_method import TorchClipMethod

__all__ = ["MERANet3D", "ChannelAttention3d", "SpatioTemporalAttention3d", "MERANet", "ResNet3D18"]


class ChannelAttention3d(nn.Module):
    """Channel attention, paper Eqs. 6-9.

    Input and output ``(N, C, T, H, W)``; the attention map ``(N, C, 1, 1, 1)`` lies in [0, 1].

    Args:
        channels: C.
        reduction: r, the bottleneck has ``max(1, C // r)`` channels (paper: 16).
        shared: ``"cnn"`` (1x1x1 convolutions, CN-SCNN, the paper's choice) or ``"mlp"``
            (linear layers, CN-SMLP). On 1x1x1 descriptors both are the same map with the same
            parameter count; they differ only in how the weights are laid out. The paper (Section
            5.2, Fig. 5) reports CN-SCNN better and credits a "sliding window" that 1x1x1
            convolutions on 1x1x1 descriptors (its Eq. 8 and text) do not have. Here both also start
            from the same weights (Xavier draws of the same shapes in the same order), and with
            mer-bench's CPU fast paths both run as the same ``F.linear`` products, so they train to
            bit-identical predictions: the shared ablation on the composite shows a difference of
            exactly zero (``leaderboards/ablation-shared-megc2019-cde.md``, 3 seeds). With
            ``--no-kernels`` the two differ by rounding only (oneDNN's convolutions against the
            linear layers' GEMMs), which training amplifies to seed-sized differences: a one-seed
            board of that path once showed -0.024, p_Holm .045, from rounding alone.

    Raises:
        ValueError: on an unknown ``shared`` value or a non-positive reduction.
    """

    def __init__(self, channels: int, reduction: int = 16, shared: str = "cnn") -> None:
        super().__init__()
        if reduction < 1:
            raise ValueError(f"reduction must be >= 1, got {reduction}")
        hidden = max(1, channels // reduction)
        if shared == "cnn":
            self.shared = nn.Sequential(
                nn.Conv3d(channels, hidden, 1), nn.ReLU(inplace=True), nn.Conv3d(hidden, channels, 1)
            )
        elif shared == "mlp":
            self.shared = nn.Sequential(
                nn.Flatten(1), nn.Linear(channels, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, channels)
            )
        else:
            raise ValueError(f"shared must be 'cnn' or 'mlp', got {shared!r}")
        self.mode = shared

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        """The map A_ch, shape ``(N, C, 1, 1, 1)``, values in [0, 1] (Eq. 8)."""
        return self.from_descriptors(x.mean(dim=(2, 3, 4), keepdim=True), x.amax(dim=(2, 3, 4), keepdim=True))

    def from_descriptors(self, avg: torch.Tensor, mx: torch.Tensor) -> torch.Tensor:
        """A_ch ``(N, C, 1, 1, 1)`` from the average- and max-pooled descriptors, each ``(N, C, 1, 1, 1)``.

        On the CPU with mer-bench's fast paths (:mod:`mer_bench.kernels`) both descriptors go through
        the shared sub-network as one batch of ``2N`` vectors, its 1x1x1 convolutions as the matrix
        products they are (``F.linear`` with the same weights): two small operators instead of four
        oneDNN convolutions, each about 0.2 ms of fixed cost on a CPU; the same map up to rounding."""
        n, c = avg.shape[0], avg.shape[1]
        if avg.device.type == "cpu" and kernels_enabled() and not torch.is_autocast_enabled("cpu"):
            both = torch.cat([avg.reshape(n, c), mx.reshape(n, c)])
            first, last = (self.shared[0], self.shared[2]) if self.mode == "cnn" else (self.shared[1], self.shared[3])
            h = torch.relu(F.linear(both, first.weight.reshape(first.weight.shape[0], -1), first.bias))
            out = F.linear(h, last.weight.reshape(last.weight.shape[0], -1), last.bias)
            return torch.sigmoid(out[:n] + out[n:]).view(n, c, 1, 1, 1)
        return torch.sigmoid(self.shared(avg) + self.shared(mx)).view(n, c, 1, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.attention(x)


class SpatioTemporalAttention3d(nn.Module):
    """Spatio-temporal attention, paper Eqs. 1-5.

    Input and output ``(N, C, T, H, W)``; the map ``(N, 1, T, H, W)`` lies in [0, 1].

    Args:
        kernel_size: odd k of the single ``k x k x k`` convolution (paper: 5; ablation 3/5/7).

    Raises:
        ValueError: on an even or non-positive kernel size ("same" padding needs an odd k).
    """

    def __init__(self, kernel_size: int = 5) -> None:
        super().__init__()
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be a positive odd integer, got {kernel_size}")
        self.conv = nn.Conv3d(2, 1, kernel_size, padding=kernel_size // 2)

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        """The map A_st, shape ``(N, 1, T, H, W)``, values in [0, 1] (Eq. 3).

        On the CPU (with mer-bench's fast paths, :mod:`mer_bench.kernels`) the 2 -> 1 channel
        convolution runs as one banded 2D convolution with the frames as channels
        (:func:`mer_bench.kernels.conv3d.conv3d_as_conv2d`: the same function and gradients up
        to rounding, about 10x faster there); ``--no-kernels`` uses ``nn.Conv3d`` itself."""
        return self.from_descriptors(torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1))

    def from_descriptors(self, desc: torch.Tensor) -> torch.Tensor:
        """A_st ``(N, 1, T, H, W)`` from the channel-wise average and max maps ``(N, 2, T, H, W)``."""
        if desc.device.type == "cpu" and kernels_enabled():
            return torch.sigmoid(conv3d_as_conv2d(desc, self.conv.weight, self.conv.bias, self.conv.padding[0]))
        return torch.sigmoid(self.conv(desc))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.attention(x)


class _Block(nn.Module):
    """Residual (attention) block; see the module docstring. Where
    :func:`mer_bench.kernels.attention3d.why_not_fused` allows (a float32 ``channels_last_3d`` batch
    on the CPU, fast paths on, no hooks on the attention modules), ``sta(ca(out))`` is computed by
    the fused kernel with the modules' own parameters."""

    def __init__(self, cin: int, cout: int, stride: int, attention: bool, kernel_size: int,
                 reduction: int, shared: str) -> None:
        super().__init__()
        self.conv1 = nn.Conv3d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm3d(cout)
        self.conv2 = nn.Conv3d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm3d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.ca = ChannelAttention3d(cout, reduction, shared) if attention else None
        self.sta = SpatioTemporalAttention3d(kernel_size) if attention else None
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv3d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm3d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.ca is not None:
            if why_attention_not_fused(out, self.ca, self.sta) is None:  # the same function, fewer passes
                out = channel_spatial_attention(out, self.ca.from_descriptors, self.sta.from_descriptors)
            else:
                out = self.sta(self.ca(out))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


class MERANet3D(nn.Module):
    """MERANet-18 (``attention=True``) or R3D-18 (``attention=False``).

    Args:
        num_classes: output logits.
        in_channels: C of the input clip ``(N, C, T, H, W)`` (3 for RGB; flow images: 3).
        width: channels of the first stage (paper: 64).
        attention: add channel + spatio-temporal attention to every residual block.
        kernel_size: spatio-temporal attention kernel (odd).
        reduction: channel attention bottleneck ratio r.
        shared: ``"cnn"`` or ``"mlp"`` channel-attention sub-network.

    Shapes: input ``(N, C, T, H, W)`` with T >= 1 and H, W >= 1; output logits ``(N, num_classes)``.

    On a CPU the trainer runs it in ``channels_last_3d`` unless told otherwise (``--no-channels-last``):
    oneDNN's 3D convolutions, above all their weight gradients, run faster in that layout: the main
    job (``mer-bench run --method meranet``, 2 workers) took 311 s contiguous and 278 s so, back to
    back on an Intel Xeon restricted to AVX2; one fast-preset training step (batch 16, one thread)
    1.16x faster there, 1.11x with AVX-512. The same computation up to floating-point rounding.
    In that layout, with mer-bench's fast paths, each block's channel and spatio-temporal attention
    runs fused (:mod:`mer_bench.kernels.attention3d`: the same function up to rounding, a maximum's
    gradient at its first occurrence under exact ties); ``--no-kernels`` runs the modules.
    A one-frame clip (a flow image or apex frame, e.g. the MEGC 2019 composite) trains with every
    ``Conv3d`` computed with only the temporal tap that meets the frame
    (:class:`mer_bench.kernels.conv3d.SingleFrameConv3d`; the other taps meet only zero padding):
    the same function up to rounding.
    """

    #: the trainer's default memory format on a CPU (:func:`mer_bench.trainer._memory_format`)
    cpu_channels_last = True

    def __init__(self, num_classes: int = 3, in_channels: int = 3, width: int = 64, attention: bool = True,
                 kernel_size: int = 5, reduction: int = 16, shared: str = "cnn") -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv3d(in_channels, width, (3, 7, 7), stride=(1, 2, 2), padding=(1, 3, 3), bias=False),
            nn.BatchNorm3d(width),
            nn.ReLU(inplace=True),
        )
        layers, cin = [], width
        for i, mult in enumerate((1, 2, 4, 8)):
            cout = width * mult
            stride = 1 if i == 0 else 2
            layers += [
                _Block(cin, cout, stride, attention, kernel_size, reduction, shared),
                _Block(cout, cout, 1, attention, kernel_size, reduction, shared),
            ]
            cin = cout
        self.layers = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool3d(1)
        self.fc = nn.Linear(cin, num_classes)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Paper 4.3: Xavier uniform weights, zero biases, BN weight 1 / bias 0."""
        for m in self.modules():
            if isinstance(m, (nn.Conv3d, nn.Linear)):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm3d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 5:
            raise ValueError(f"expected a clip batch (N, C, T, H, W), got shape {tuple(x.shape)}")
        x = self.layers(self.stem(x))
        return self.fc(torch.flatten(self.pool(x), 1))


_CITATION = ("Gajjala, Reddy, Mukherjee, Dubey. MERANet: Facial Micro-Expression Recognition using "
             "3D Residual Attention Network. ICVGIP 2021. arXiv:2012.04581")


@register_method("meranet")
class MERANet(TorchClipMethod):
    """MERANet-18 as a mer-bench method (see the module docstring for the network and sources).

    Input: clips ``(N, C, T, H, W)``; T, H, W are the dataset's native clip size unless
    ``frames`` / ``size`` resample them (paper: 16 x 112 x 112). A dataset without clips can feed
    a flow image or an apex frame ``(N, C, H, W)``, taken as a one-frame clip.

    Hyper-parameters (constructor arguments): ``width``, ``kernel_size``, ``reduction``,
    ``shared`` (network); ``epochs``, ``batch_size``, ``lr``, ``weight_decay``, ``warmup``,
    ``flip`` (training, see :class:`mer_bench.torch_method.TorchClipMethod`); ``frames``,
    ``size`` (input resampling); ``precision``.
    """

    info: ClassVar[MethodInfo] = MethodInfo(
        name="meranet",
        citation=_CITATION,
        representation="clip",
        accepts=("flow", "apex"),
        supports_epoch_selection=True,
        practical_on_cpu=True,
        summary="MERANet-18: 3D ResNet-18 with channel + spatio-temporal attention in every block",
        paper_size=(33_547_552, 1.72, "MERANet paper (Gajjala et al., ICVGIP 2021), Table 4"),
    )
    presets: ClassVar[dict[str, dict]] = {
        "paper": dict(frames=16, size=112),
        "fast": dict(width=16, epochs=12, batch_size=16, lr=1e-3, warmup=20),
        # the embedded dataset's suggestion: ``fast`` at lr 3e-3, chosen on its development seeds
        "testbed": dict(width=16, epochs=12, batch_size=16, lr=3e-3, warmup=20),
    }
    attention: ClassVar[bool] = True
    #: the paper's ablations (``mer-bench ablate --ablation NAME``): name -> arms ``(label, method,
    #: overrides)``, the first the reference. Fig. 6: the spatio-temporal kernel; Fig. 5: the shared
    #: layer of channel attention; attention on (MERANet) or off (its 3D ResNet-18)
    ablations: ClassVar[dict[str, list[tuple[str, str, dict]]]] = {
        "kernel": [(f"kernel_size={k}", "meranet", {"kernel_size": k}) for k in (5, 3, 7)],
        "shared": [(f"shared={v}", "meranet", {"shared": v}) for v in ("cnn", "mlp")],
        "attention": [("MERANet (attention)", "meranet", {}), ("3D ResNet-18 (no attention)", "resnet3d18", {})],
    }

    @classmethod
    def check_params(cls, params: dict[str, Any]) -> None:
        """The training settings (:meth:`TorchClipMethod.check_params`), then the attention ones."""
        super().check_params(params)

        def need(key: str, ok: bool, what: str) -> None:
            if key in params and not ok:
                raise ParameterError(f"{key} must be {what}, got {params[key]!r}")

        need("shared", params.get("shared") in ("cnn", "mlp"), "'cnn' or 'mlp'")
        k = params.get("kernel_size")
        need("kernel_size", isinstance(k, int) and k > 0 and k % 2 == 1, "a positive odd int (3, 5, 7)")
        need("reduction", isinstance(params.get("reduction"), int) and params.get("reduction", 0) >= 1, "an int >= 1")

    def __init__(self, width: int = 64, kernel_size: int = 5, reduction: int = 16, shared: str = "cnn",
                 epochs: int = 100, batch_size: int = 8, lr: float = 0.1, weight_decay: float = 0.0,
                 warmup: int | str = "untuned", flip: bool = True, frames: int | None = None,
                 size: int | None = None, precision: str = "auto", random_state: int = 0) -> None:
        self._store_params(locals())  # hyper-parameters only (scikit-learn style)

    def build_model(self, in_channels: int, num_classes: int) -> nn.Module:
        return MERANet3D(num_classes, in_channels, self.width, attention=self.attention,
                         kernel_size=self.kernel_size, reduction=self.reduction, shared=self.shared)


@register_method("resnet3d18")
class ResNet3D18(TorchClipMethod):
    """3D ResNet-18 (R3D-18, Tran et al. 2018): MERANet without attention; the paper's baseline.

    Same training and inputs as :class:`MERANet`; hyper-parameters as there, minus the attention
    ones (``kernel_size``, ``reduction``, ``shared``).
    """

    info: ClassVar[MethodInfo] = MethodInfo(
        name="resnet3d18",
        citation="Tran, Wang, Torresani, Ray, LeCun, Paluri. A Closer Look at Spatiotemporal "
                 "Convolutions for Action Recognition. CVPR 2018",
        representation="clip",
        accepts=("flow", "apex"),
        supports_epoch_selection=True,
        practical_on_cpu=True,
        summary="3D ResNet-18 (R3D-18), the attention-free MERANet baseline",
        paper_size=(33_167_811, 1.61, "MERANet paper (Gajjala et al., ICVGIP 2021), Table 4"),
    )
    presets: ClassVar[dict[str, dict]] = MERANet.presets

    def __init__(self, width: int = 64, epochs: int = 100, batch_size: int = 8, lr: float = 0.1,
                 weight_decay: float = 0.0, warmup: int | str = "untuned", flip: bool = True,
                 frames: int | None = None, size: int | None = None, precision: str = "auto",
                 random_state: int = 0) -> None:
        self._store_params(locals())  # hyper-parameters only (scikit-learn style)

    def build_model(self, in_channels: int, num_classes: int) -> nn.Module:
        return MERANet3D(num_classes, in_channels, self.width, attention=False)
