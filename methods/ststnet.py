"""STSTNet: the shallow triple-stream network on onset-to-apex optical flow.

Source: Liong, See, Wong, Phan, "Shallow Triple Stream Three-dimensional CNN (STSTNet) for
Micro-expression Recognition", FG 2019 (arXiv:1902.03634); the released PyTorch code
(christy1206/STSTNet, ``main.py``), which the defaults follow:

* input: 28 x 28 flow image, channels u, v, optical strain (raw 0..255 values, no scaling);
* three parallel ``Conv2d(3 -> {3, 5, 8}, 3x3, padding 2)``, each followed by ReLU -> BatchNorm
  -> MaxPool(3, stride 3, padding 1) -> Dropout(0.5); concatenated (16 x 10 x 10) ->
  AvgPool(2) -> 400 -> ``Linear(400, n_classes)``. 1,683 parameters at 3 classes.
  Despite the name, the released code uses 2D convolutions on the 3-channel image.
* Adam, lr 5e-5 (constant), batch 256, 800 epochs, the last epoch's weights; re-initialised for
  every LOSO subject.
* no shuffling: ``main.py`` builds its ``DataLoader`` without ``shuffle``, so every epoch visits
  the training clips in the same order (here: the fold's training order, the dataset's clip
  order less the test subject) and cuts the same batches; ``--set shuffle=true`` draws a fresh
  permutation every epoch instead (mer-bench's default for other methods).

Here the three streams are one 16-channel convolution (and one 16-channel BatchNorm): the same
function, the same parameters and the same initial distribution (every stream's fan-in is 27),
in one kernel call instead of three. STSTNet reads its PNGs with OpenCV (B, G, R = strain, v, u);
mer-bench feeds u, v, strain. For a network trained from scratch the order of input channels
does not matter (it permutes the first layer's i.i.d. initial weights).

Speed: in training on the CPU the block conv -> ReLU -> BatchNorm -> max-pool -> dropout ->
average pool runs as one fused kernel (:mod:`mer_bench.kernels.stem2d`; the same function and
gradients up to floating-point rounding, the same dropout masks; where two activations of a
pooling window round to the same normalised value its gradient goes to the larger, as in exact
arithmetic, not to the first, as in ATen) and Adam is fused; ``mer-bench run --no-kernels`` trains
with the plain layers.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from mer_bench.kernels.stem2d import stem_dropout_avgpool
from mer_bench.method import MethodInfo, register_method
from mer_bench.torch_method import TorchImageMethod

__all__ = ["STSTNetModel", "STSTNet"]


class STSTNetModel(nn.Module):
    """STSTNet: ``(N, 3, 28, 28)`` -> logits ``(N, num_classes)``; see the module docstring.

    Args:
        num_classes: output classes.
        in_channels: input channels (3: u, v, strain).
        streams: output channels of the parallel streams (paper: 3, 5, 8).
        dropout: dropout probability after pooling (paper: 0.5).
    """

    def __init__(self, num_classes: int = 3, in_channels: int = 3, streams: tuple[int, ...] = (3, 5, 8),
                 dropout: float = 0.5) -> None:
        super().__init__()
        width = sum(streams)
        self.streams = tuple(streams)
        self.conv = nn.Conv2d(in_channels, width, kernel_size=3, padding=2)
        self.bn = nn.BatchNorm2d(width)
        self.pool = nn.MaxPool2d(kernel_size=3, stride=3, padding=1)
        self.dropout = nn.Dropout(dropout)
        self.avgpool = nn.AvgPool2d(kernel_size=2)
        self.fc = nn.Linear(width * 5 * 5, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[-2:] != (28, 28):
            raise ValueError(f"STSTNet expects (N, C, 28, 28) flow images, got shape {tuple(x.shape)}")
        # avgpool(dropout(pool(bn(relu(conv(x)))))), fused on the CPU in training (mer_bench.kernels.stem2d)
        x = stem_dropout_avgpool(x, self.conv, self.bn, self.pool, self.dropout, self.avgpool)
        return self.fc(torch.flatten(x, 1))


@register_method("ststnet")
class STSTNet(TorchImageMethod):
    """STSTNet as a mer-bench method; defaults are the released code's settings (module docstring).

    Input: flow images ``(N, 3, 28, 28)`` in [0, 1] (u, v, strain), multiplied by ``input_scale``.
    Hyper-parameters: ``epochs``, ``batch_size``, ``lr``, ``weight_decay``, ``schedule``,
    ``warmup``, ``flip``, ``input_scale``, ``standardise``, ``size`` (must stay None or 28),
    ``precision``, ``shuffle`` (default ``False``, as released).
    """

    info: ClassVar[MethodInfo] = MethodInfo(
        name="ststnet",
        citation="Liong, See, Wong, Phan. Shallow Triple Stream Three-dimensional CNN (STSTNet) for "
                 "Micro-expression Recognition. FG 2019. arXiv:1902.03634",
        representation="flow",
        supports_epoch_selection=True,
        summary="STSTNet: three shallow conv streams on the 28x28 onset-apex flow image (1,683 parameters)",
    )

    def __init__(self, epochs: int = 800, batch_size: int = 256, lr: float = 5e-5, weight_decay: float = 0.0,
                 schedule: str = "constant", warmup: int | str = 0, flip: bool = False, input_scale: float = 255.0,
                 standardise: bool = False, size: int | None = None, precision: str = "fp32",
                 shuffle: bool = False, random_state: int = 0) -> None:
        self._store_params(locals())  # hyper-parameters only (scikit-learn style)

    def build_model(self, in_channels: int, num_classes: int) -> nn.Module:
        return STSTNetModel(num_classes, in_channels)
