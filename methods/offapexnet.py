"""Off-ApexNet: a two-layer CNN on the onset-to-apex optical flow (u, v).

Source: Gan, Liong, Yau, Huang, Tan, "OFF-ApexNet on micro-expression recognition system",
Signal Processing: Image Communication 74:129-139, 2019. No official code was found; the
network follows MEB's re-implementation (tvaranka/meb, ``meb/models/me_networks.py``):

``Conv(2 -> 6, 3x3, pad 1)`` - ReLU - MaxPool 2 -> ``Conv(6 -> 16, 3x3, pad 1)`` - ReLU - MaxPool 2
-> 784 -> Dropout -> ``Linear(784, 1024)`` - ReLU -> Dropout -> ``Linear(1024, n_classes)``;
807,909 parameters at 3 classes.

Training defaults are MEB's (Adam, lr 1e-4, weight decay 1e-3, 3,000 epochs): Off-ApexNet's
official hyper-parameters are not published. The batch size is not published
either; 256 is used, as for STSTNet on the same composite. Inputs are the u and v channels of the
flow image in [0, 1], standardised per sample and channel.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from mer_bench.method import MethodInfo, register_method
from mer_bench.torch_method import TorchImageMethod

__all__ = ["OffApexNetModel", "OffApexNet"]


class OffApexNetModel(nn.Module):
    """``(N, 2, 28, 28)`` -> logits ``(N, num_classes)``; see the module docstring."""

    def __init__(self, num_classes: int = 3, in_channels: int = 2, dropout: float = 0.5) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 6, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(
            nn.Dropout(dropout), nn.Linear(16 * 7 * 7, 1024), nn.ReLU(inplace=True),
            nn.Dropout(dropout), nn.Linear(1024, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[-2:] != (28, 28):
            raise ValueError(f"Off-ApexNet expects (N, 2, 28, 28) flow images, got shape {tuple(x.shape)}")
        return self.classifier(torch.flatten(self.features(x), 1))


@register_method("offapexnet")
class OffApexNet(TorchImageMethod):
    """Off-ApexNet as a mer-bench method (module docstring). Input: flow images, channels u, v."""

    info: ClassVar[MethodInfo] = MethodInfo(
        name="offapexnet",
        citation="Gan, Liong, Yau, Huang, Tan. OFF-ApexNet on micro-expression recognition system. "
                 "Signal Processing: Image Communication 74:129-139, 2019 (network as re-implemented in MEB)",
        representation="flow",
        supports_epoch_selection=True,
        practical_on_cpu=False,
        summary="Off-ApexNet: two conv layers + two FC layers on the onset-apex flow u, v (807,909 parameters)",
    )
    presets: ClassVar[dict[str, dict]] = {"fast": dict(epochs=300)}
    input_channels = (0, 1)

    def __init__(self, epochs: int = 3000, batch_size: int = 256, lr: float = 1e-4, weight_decay: float = 1e-3,
                 schedule: str = "constant", warmup: int | str = 0, flip: bool = False, input_scale: float = 1.0,
                 standardise: bool = True, size: int | None = None, precision: str = "fp32",
                 random_state: int = 0) -> None:
        self._store_params(locals())  # hyper-parameters only (scikit-learn style)

    def build_model(self, in_channels: int, num_classes: int) -> nn.Module:
        return OffApexNetModel(num_classes, in_channels)
