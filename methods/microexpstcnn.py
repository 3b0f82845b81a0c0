"""MicroExpSTCNN (Reddy, Karri, Dubey, Mukherjee, "Spontaneous Facial Micro-Expression Recognition
using 3D Spatiotemporal Convolutional Neural Networks", IJCNN 2019, arXiv 1904.01390; code
``bogireddytejareddy/micro-expression-recognition``, Keras 2).

Network, as in the released Keras code (Reddy et al., IJCNN 2019): grey clips ``(N, 1, T, 64, 64)`` ->
``Conv3D(32, 3 x 3 x 15)`` + ReLU (15 frames deep in time) -> ``MaxPool3D(3)`` -> Dropout .5 ->
Flatten -> Dense 128 + ReLU -> Dropout .5 -> Dense C. Trained with Keras' default ``SGD(lr=0.01)``
(no momentum), batch 16, 100 epochs, categorical cross-entropy.

Inputs: the clip representation, averaged to grey, resampled to ``frames`` x ``size`` x ``size``
(the paper: 64 x 64; 18 frames for SMIC, 96 for CAS(ME)^2 - ``frames=18`` is the default, the
temporal kernel is ``min(15, frames)``), standardised per clip. The paper's protocol (a random
sample-level 80/20 split with the checkpoint chosen on the test 20 %) is not reproduced: mer-bench
evaluates the last epoch under the chosen protocol. The CAS(ME)^2 set of the paper (206 videos)
cannot be rebuilt from the micro-expression list (which holds 57 MEs).

Deviations from the released code, declared: PyTorch's default initialisation (Kaiming-uniform with
``a = sqrt(5)``), not Keras' Glorot-uniform; and the clip is the apex window resampled to
``frames`` frames, where the released code takes the first 18 frames of each video.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from mer_bench.method import MethodInfo, register_method
from mer_bench.torch_method import TorchClipMethod

__all__ = ["MicroExpSTCNN", "MicroExpSTCNNModel"]


class MicroExpSTCNNModel(nn.Module):
    """``(N, C, T, H, W)`` -> logits ``(N, num_classes)``; ``input_shape`` = ``(C, T, H, W)``.

    Raises:
        ValueError: an input too small for the 3 x 3 kernel and the 3 x 3 x 3 pooling.
    """

    def __init__(self, input_shape: tuple[int, int, int, int], num_classes: int, t_kernel: int = 15) -> None:
        super().__init__()
        c, t, h, w = input_shape
        kt = min(t_kernel, t)
        out = ((t - kt + 1) // 3, (h - 2) // 3, (w - 2) // 3)
        if min(out) < 1:
            raise ValueError(f"MicroExpSTCNN needs clips of at least 3 frames and 5 x 5 pixels, got {input_shape}")
        self.conv = nn.Conv3d(c, 32, kernel_size=(kt, 3, 3))
        self.pool = nn.MaxPool3d(3)
        self.drop = nn.Dropout(0.5)
        self.fc1 = nn.Linear(32 * out[0] * out[1] * out[2], 128)
        self.fc2 = nn.Linear(128, num_classes)
        for fc in (self.fc1, self.fc2):  # Keras init='normal': N(0, 0.05)
            nn.init.normal_(fc.weight, std=0.05)
            nn.init.zeros_(fc.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.drop(self.pool(torch.relu(self.conv(x))))
        return self.fc2(self.drop(torch.relu(self.fc1(x.flatten(1)))))


@register_method("microexpstcnn")
class MicroExpSTCNN(TorchClipMethod):
    """MicroExpSTCNN on grey clips; see the module docstring. Learned state as
    :class:`~mer_bench.torch_method.TorchClipMethod`."""

    info: ClassVar[MethodInfo] = MethodInfo(
        name="microexpstcnn",
        citation="Reddy, Karri, Dubey, Mukherjee. Spontaneous Facial Micro-Expression Recognition using 3D "
                 "Spatiotemporal Convolutional Neural Networks. IJCNN 2019 (arXiv 1904.01390)",
        representation="clip",
        supports_epoch_selection=True,
        summary="3D CNN (one 3x3x15 conv, 64x64 grey clips); SGD 0.01, batch 16, 100 epochs as released",
    )
    presets: ClassVar[dict[str, dict]] = {"fast": dict(epochs=20)}
    grey = True

    def __init__(self, epochs: int = 100, batch_size: int = 16, lr: float = 0.01, momentum: float = 0.0,
                 weight_decay: float = 0.0, optimizer: str = "sgd", schedule: str = "constant", warmup: int = 0,
                 flip: bool = False, frames: int | None = 18, size: int | None = 64, precision: str = "auto",
                 random_state: int = 0) -> None:
        self._store_params(locals())  # hyper-parameters only (scikit-learn style)

    def build_model(self, in_channels: int, num_classes: int) -> nn.Module:
        return MicroExpSTCNNModel(self.input_shape_, num_classes)
