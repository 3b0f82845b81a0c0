"""RCN: recurrent convolutional networks with parameter-free modules, on onset-to-apex flow images.

Source: Xia, Peng, Hong, Zhao, "Revealing the Invisible With Model and Data Shrinking for
Composite-Database Micro-Expression Recognition", IEEE Transactions on Image Processing 29,
8590-8605, 2020; the released code (xiazhaoqiang/ParameterFreeRCNs-MicroExpressionRec:
``MeNets.py`` for the networks, ``ModelTrain_Final.py`` for training), which the defaults follow.
The paper reports UF1 .7432 / UAR .7190 on the MEGC 2019 composite (LOSO).

Network (``MeNets.py``), for ``featuremaps`` F, ``pool_size`` P, K classes:

* stem: ``Conv2d(3 -> F, 5x5, no padding)`` -> BatchNorm -> ReLU -> MaxPool 2 -> Dropout(0.5);
* one recurrent convolutional layer (``RclBlock``): ``y = ff(x)`` (1x1 conv -> BN -> ReLU), then
  twice ``y = rr(x + y)`` with **one shared** 3x3 conv -> BN -> ReLU (the recurrence), then
  MaxPool 2 -> Dropout(0.5);
* adaptive average pooling to P x P, flatten, ``Linear(F * P * P, K)``;
* variant ``a`` (RCN-A, ``model_version=3``, the released default): the parameter-free attention
  unit ``SpatialAttentionBlock_P``: the stem's output, average-pooled to P x P, is weighted by
  each class's row of the classifier's weight (reshaped to F x P x P), averaged over channels,
  min-max normalised over the P x P positions, averaged over classes; the pooled features of the
  recurrent layer are multiplied by this map before the classifier. The attention uses the
  classifier weights themselves (gradients flow through them, as released);
* variant ``s`` (RCN-S): the recurrent layer replaced by the dense shortcut block ``DenseBlock``
  (``z = c2(x + c1(x))``, ``e = c2(x + y + z)``, ``out = c2(x + y + z + e)``, one shared 3x3
  conv ``c2``; as released, ``DenseBlock.conv3`` is built but never used, so it holds parameters
  that receive no gradient);
* variant ``w`` (RCN-W): the stem replaced by three parallel strided streams (``Conv 3x3 stride 3``
  with dilation 1, 2, 3 and F/2, F/4, F/4 channels, each ReLU -> BN -> Dropout), concatenated.

RCN-P, RCN-C and RCN-F (architectures found by the paper's search) are not provided: the released
``RCN_P`` cannot be built (its constructor calls ``super(RCN_H, ...)``, a class that does not
exist).

Training (``ModelTrain_Final.py`` defaults): SGD lr 5e-4, momentum 0.9, no weight decay, batch 64,
shuffled every epoch, 100 epochs, cross-entropy, no augmentation, ``featuremaps=64``,
``pool_size=7``; the last epoch is evaluated. The script builds a ``StepLR(10, 0.5)`` but never
steps it, so the learning rate is constant, as here. Weights: Kaiming normal (fan-out) for
convolutions, N(0, 0.01) for the classifier, BN at 1 / 0.

Deviations: the released inputs are the authors' own flow images (``flow_alpha0`` of their data
"version 66"), of a size the repository does not give; here the composite's 28 x 28 TV-L1 images
(u, v, strain in [0, 1], as ``ToTensor`` of a PNG gives), where the stem leaves 12 x 12, the
recurrent layer 6 x 6, and the adaptive pooling to 7 x 7 repeats rows and columns. The released
script seeds torch once for all subjects; here every fold is seeded (``seed * 1000 + fold``).
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn
from torch.nn import functional as F

from mer_bench.method import MethodInfo, ParameterError, register_method
from mer_bench.torch_method import TorchImageMethod

__all__ = ["RCNModel", "RCN", "VARIANTS"]

#: variant -> the released class it follows
VARIANTS = {"a": "RCN_A (model_version 3)", "s": "RCN_S", "w": "RCN_W"}


def _conv_bn_relu(cin: int, cout: int, k: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, kernel_size=k, padding=k // 2), nn.BatchNorm2d(cout),
                         nn.ReLU(inplace=True))


class _RecurrentLayer(nn.Module):
    """``RclBlock``: ``y = ff(x)``; ``y = rr(x + y)`` twice (shared ``rr``); max-pool 2, dropout."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.ffconv = _conv_bn_relu(width, width, 1)
        self.rrconv = _conv_bn_relu(width, width, 3)
        self.downsample = nn.Sequential(nn.MaxPool2d(2, 2), nn.Dropout())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.ffconv(x)
        y = self.rrconv(x + y)
        y = self.rrconv(x + y)
        return self.downsample(y)


class _DenseLayer(nn.Module):
    """``DenseBlock`` of RCN-S (``conv3`` built and unused, as released)."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.conv1 = _conv_bn_relu(width, width, 1)
        self.conv2 = _conv_bn_relu(width, width, 3)
        self.conv3 = _conv_bn_relu(width, width, 3)
        self.downsample = nn.Sequential(nn.MaxPool2d(2, 2), nn.Dropout())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv1(x)
        z = self.conv2(x + y)
        e = self.conv2(x + y + z)
        return self.downsample(self.conv2(x + y + z + e))


def class_attention(features: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``SpatialAttentionBlock_P``: ``features`` ``(N, C, P, P)`` and the classifier weight
    ``(K, C*P*P)`` -> the attention map ``(N, 1, P, P)``: per class the weight-scaled features
    averaged over channels, min-max normalised over positions, then averaged over classes."""
    n, c, h, w = features.shape
    cam = (features.unsqueeze(1) * weight.view(1, -1, c, h, w)).mean(dim=2)  # (N, K, P, P)
    cam = cam - cam.amin(dim=(2, 3), keepdim=True)
    cam = cam / cam.amax(dim=(2, 3), keepdim=True)
    return cam.mean(dim=1, keepdim=True)


class RCNModel(nn.Module):
    """RCN-A / RCN-S / RCN-W: ``(N, C, H, W)`` flow images -> logits ``(N, num_classes)``
    (module docstring).

    Args:
        num_classes: output classes.
        in_channels: input channels (3: u, v, strain).
        featuremaps: channels F of every layer (released default 64).
        pool_size: P of the adaptive pooling before the classifier (released default 7).
        variant: ``"a"``, ``"s"`` or ``"w"`` (:data:`VARIANTS`).

    On a CPU the trainer runs it in ``channels_last`` unless told otherwise (``--no-channels-last``):
    one composite fold of 20 epochs (1 thread, a 2-core Intel Xeon with AVX-512, back to back
    twice) took 22.0 s contiguous and 17.6 s so; the same computation up to floating-point rounding.
    """

    #: the trainer's default memory format on a CPU (:func:`mer_bench.trainer._memory_format`)
    cpu_channels_last = True

    def __init__(self, num_classes: int = 3, in_channels: int = 3, featuremaps: int = 64, pool_size: int = 7,
                 variant: str = "a") -> None:
        super().__init__()
        self.variant, self.pool_size = variant, pool_size
        fm = featuremaps
        if variant == "w":
            half = fm // 2
            self.streams = nn.ModuleList([
                nn.Sequential(nn.Conv2d(in_channels, c, kernel_size=3, stride=3, padding=d, dilation=d),
                              nn.ReLU(inplace=True), nn.BatchNorm2d(c), nn.Dropout())
                for c, d in ((half, 1), (half // 2, 2), (half // 2, 3))])
            width = half + 2 * (half // 2)
        else:
            self.conv1 = nn.Sequential(nn.Conv2d(in_channels, fm, kernel_size=5), nn.BatchNorm2d(fm),
                                       nn.ReLU(inplace=True), nn.MaxPool2d(2, 2), nn.Dropout())
            width = fm
        self.layer = _DenseLayer(width) if variant == "s" else _RecurrentLayer(width)
        self.classifier = nn.Linear(pool_size * pool_size * width, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.constant_(m.bias, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4:
            raise ValueError(f"RCN expects flow images (N, C, H, W), got shape {tuple(x.shape)}")
        p = (self.pool_size, self.pool_size)
        if self.variant == "w":
            x = torch.cat([s(x) for s in self.streams], dim=1)
            return self.classifier(torch.flatten(F.adaptive_avg_pool2d(self.layer(x), p), 1))
        x = self.conv1(x)
        if self.variant == "a":
            att = class_attention(F.adaptive_avg_pool2d(x, p), self.classifier.weight)
            x = F.adaptive_avg_pool2d(self.layer(x), p) * att
        else:
            x = F.adaptive_avg_pool2d(self.layer(x), p)
        return self.classifier(torch.flatten(x, 1))


@register_method("rcn")
class RCN(TorchImageMethod):
    """RCN as a mer-bench method; defaults are the released training script's (module docstring).

    Input: flow images ``(N, 3, H, W)`` in [0, 1] (u, v, strain), fed unscaled. Hyper-parameters:
    ``variant`` (``a``, ``s``, ``w``), ``featuremaps``, ``pool_size``, ``epochs``, ``batch_size``,
    ``lr``, ``momentum``, ``weight_decay``, ``optimizer`` (``sgd``), ``schedule``, ``warmup``,
    ``flip``, ``input_scale``, ``standardise``, ``size``, ``precision``, ``shuffle``.
    """

    info: ClassVar[MethodInfo] = MethodInfo(
        name="rcn",
        citation="Xia, Peng, Hong, Zhao. Revealing the Invisible With Model and Data Shrinking for Composite-Database "
                 "Micro-Expression Recognition. IEEE TIP 29:8590-8605, 2020 (code: "
                 "xiazhaoqiang/ParameterFreeRCNs-MicroExpressionRec)",
        representation="flow",
        supports_epoch_selection=True,
        summary="RCN-A (Xia et al., IEEE TIP 2020): recurrent convolutional layer + parameter-free class "
                "attention on the onset-apex flow image (55,747 parameters)",
    )

    def __init__(self, variant: str = "a", featuremaps: int = 64, pool_size: int = 7, epochs: int = 100,
                 batch_size: int = 64, lr: float = 5e-4, momentum: float = 0.9, weight_decay: float = 0.0,
                 optimizer: str = "sgd", schedule: str = "constant", warmup: int | str = 0, flip: bool = False,
                 input_scale: float = 1.0, standardise: bool = False, size: int | None = None,
                 precision: str = "fp32", shuffle: bool = True, random_state: int = 0) -> None:
        self._store_params(locals())  # hyper-parameters only (scikit-learn style)

    @classmethod
    def check_params(cls, params: dict[str, Any]) -> None:
        super().check_params(params)
        if params.get("variant", "a") not in VARIANTS:
            names = "; ".join(f"{k}: {v}" for k, v in VARIANTS.items())
            raise ParameterError(f"variant must be one of {', '.join(VARIANTS)} ({names}), got {params['variant']!r}")
        for key in ("featuremaps", "pool_size"):
            v = params.get(key)
            if not isinstance(v, int) or v < (4 if key == "featuremaps" else 1):
                raise ParameterError(f"{key} must be a positive int{' >= 4' if key == 'featuremaps' else ''}, "
                                     f"got {v!r}")

    def build_model(self, in_channels: int, num_classes: int) -> nn.Module:
        return RCNModel(num_classes, in_channels, self.featuremaps, self.pool_size, self.variant)
