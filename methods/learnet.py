"""LEARNet (Verma, Vipparthi, Singh, Murala, "LEARNet: Dynamic Imaging Network for Micro Expression
Recognition", IEEE TIP 29:1618-1627, 2020; code ``MonuVermaCV/LearNet``, Keras ``LEARNet_Model.py``).

Input: the dynamic image of the clip (approximate rank pooling, Bilen et al. CVPR 2016;
:func:`mer_bench.preprocess.dynamic_image`), 3 x 112 x 112.

Network, as read from ``LEARNet_Model.py`` (the released Keras model; see
``../shared/seeds/learnet-summary.txt``): stem ``Conv2D(16, 3x3, stride 2)``; four lateral
branches, each ``1x1 (16) -> 3x3 (32) -> 5x5 (64)``, every convolution stride 2;
branches 2 and 4 receive the "accretion" of branches 1 and 3: after their 1x1 and 3x3 convolutions
(not after the 5x5, as in ``LEARNet_Model.py``) the neighbouring branch's output at the same depth
is added and batch-normalised (``accretion_depths=2``; ``3`` also accretes after the 5x5, as
mer-bench did before); the four 64-channel
outputs are concatenated (256) -> BN -> ``Conv2D(256, 3x3, stride 2)`` -> Dense 256 -> Dropout .5 ->
Dense C. Named choices where the code leaves room: ReLU after every convolution, "same" padding.

No training code is published: mer-bench trains with Adam 1e-3, batch 32, 50 epochs, cosine
annealing, horizontal flips (generic defaults, not tuned on any test fold).

Deviation: the dynamic image uses Bilen et al.'s approximate rank pooling weights
(:func:`mer_bench.preprocess.dynamic_image`), not the weights of LEARNet's own ``dynamicimage.py``.
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch
from torch import nn

from mer_bench.method import MethodInfo, register_method
from mer_bench.torch_method import TorchImageMethod

__all__ = ["LEARNet", "LEARNetModel"]


def _conv(cin: int, cout: int, k: int, stride: int = 2) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2), nn.ReLU(inplace=True))


class LEARNetModel(nn.Module):
    """``(N, C, H, W)`` -> logits ``(N, num_classes)``; ``size`` = ``(H, W)`` of the input (the five
    stride-2 "same" convolutions leave ``ceil(H / 32) x ceil(W / 32)``)."""

    widths = (16, 32, 64)
    kernels = (1, 3, 5)

    def __init__(self, in_channels: int, num_classes: int, size: tuple[int, int] = (112, 112),
                 accretion_depths: int = 2) -> None:
        super().__init__()
        if accretion_depths not in (1, 2, 3):
            raise ValueError(f"accretion_depths must be 1, 2 or 3, got {accretion_depths}")
        self.accretion_depths = accretion_depths
        self.stem = _conv(in_channels, 16, 3)
        self.branches = nn.ModuleList()
        for _ in range(4):
            layers, cin = [], 16
            for w, k in zip(self.widths, self.kernels):
                layers.append(_conv(cin, w, k))
                cin = w
            self.branches.append(nn.ModuleList(layers))
        # accretion BN of branches 2 and 4 (index 1 and 3), one per accreted depth
        self.accretion = nn.ModuleDict({str(b): nn.ModuleList(nn.BatchNorm2d(w) for w in self.widths[:accretion_depths])
                                        for b in (1, 3)})
        self.bn = nn.BatchNorm2d(256)
        self.head_conv = _conv(256, 256, 3)
        self.fc = nn.Linear(256 * math.ceil(size[0] / 32) * math.ceil(size[1] / 32), 256)
        self.drop = nn.Dropout(0.5)
        self.out = nn.Linear(256, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        h = [x, x, x, x]
        for depth in range(len(self.widths)):
            h = [self.branches[b][depth](h[b]) for b in range(4)]
            if depth < self.accretion_depths:
                for b in (1, 3):
                    h[b] = self.accretion[str(b)][depth](h[b] + h[b - 1])
        x = self.head_conv(self.bn(torch.cat(h, dim=1)))
        return self.out(self.drop(torch.relu(self.fc(x.flatten(1)))))


@register_method("learnet")
class LEARNet(TorchImageMethod):
    """LEARNet on dynamic images; see the module docstring."""

    info: ClassVar[MethodInfo] = MethodInfo(
        name="learnet",
        citation="Verma, Vipparthi, Singh, Murala. LEARNet: Dynamic Imaging Network for Micro Expression "
                 "Recognition. IEEE TIP 29:1618-1627, 2020 (network from LEARNet_Model.py)",
        representation="dynamic",
        supports_epoch_selection=True,
        summary="lateral accretive hybrid network on the dynamic image (approximate rank pooling)",
    )
    presets: ClassVar[dict[str, dict]] = {"fast": dict(epochs=15)}

    def __init__(self, epochs: int = 50, batch_size: int = 32, lr: float = 1e-3, weight_decay: float = 0.0,
                 schedule: str = "cosine", warmup: int = 0, flip: bool = True, size: int | None = 112,
                 input_scale: float = 1.0, standardise: bool = True, precision: str = "auto",
                 accretion_depths: int = 2, random_state: int = 0) -> None:
        self._store_params(locals())  # hyper-parameters only (scikit-learn style)

    def build_model(self, in_channels: int, num_classes: int) -> nn.Module:
        return LEARNetModel(in_channels, num_classes, tuple(self.input_shape_[-2:]), self.accretion_depths)
