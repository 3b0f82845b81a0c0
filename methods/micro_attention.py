"""Micro-Attention (Wang, Peng, Bi, Chen, "Micro-attention for micro-expression recognition",
Neurocomputing 410:354-362, 2020; arXiv 1811.02360; code
``CodeShareBot/Micro-Attention-for-Micro-Expression``, a Caffe prototxt only).

Input: one grey apex frame resized to ``size`` x ``size`` (224; the ``fast`` preset uses 64). The
paper resizes to 240 and crops 224 at random for training (224 centre at test); **mer-bench does not
crop**: training augments with horizontal flips only (a declared deviation). Network: a ResNet
(timm ``resnet18`` by default, ``backbone`` takes any timm ResNet) with a micro-attention unit
after each of its four stages. The paper's unit is an attention branch over multi-scale features
of the residual stage; its exact layers are only in the prototxt, so mer-bench's unit is a named
choice (``micro-attention-v1``): ``mask = sigmoid(conv1x1(upsample(relu(conv3x3(maxpool2(x))))))``
(no batch norm: the last stage can be 1 x 1) (a bottom-up / top-down branch at half resolution)
and ``out = x * (1 + mask)`` (attention residual learning, Wang et al., CVPR 2017), so a unit
starts close to the identity.

Not reproduced: the macro-expression transfer learning (no weights are published and none can be
downloaded offline; the network is trained from scratch) and the paper's Train/Test lists.
Training: Adam 1e-3, weight decay 1e-4, batch 32, 40 epochs, cosine annealing, horizontal flips
(generic defaults, not the paper's).
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from mer_bench._compat import ensure_torchvision_importable
from mer_bench.method import MethodInfo, ParameterError, register_method
from mer_bench.torch_method import TorchImageMethod, check_timm_backbone

__all__ = ["MicroAttention", "MicroAttentionUnit", "micro_attention_resnet"]


class MicroAttentionUnit(nn.Module):
    """``(N, C, H, W)`` -> the same shape: ``x * (1 + mask(x))``, ``mask`` in (0, 1)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.down = nn.Sequential(nn.MaxPool2d(2, ceil_mode=True), nn.Conv2d(channels, channels, 3, padding=1),
                                  nn.ReLU(inplace=True))
        self.up = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = self.down(x)
        m = F.interpolate(m, size=x.shape[-2:], mode="bilinear", align_corners=False)
        return x * (1 + torch.sigmoid(self.up(m)))


def micro_attention_resnet(backbone: str, in_channels: int, num_classes: int) -> nn.Module:
    """A timm ResNet with a :class:`MicroAttentionUnit` after ``layer1``..``layer4``.

    Raises:
        ParameterError: ``backbone`` is not a timm ResNet (no ``layer1``..``layer4``).
    """
    ensure_torchvision_importable()
    import timm

    check_timm_backbone(backbone)
    model = timm.create_model(backbone, pretrained=False, in_chans=in_channels, num_classes=num_classes)
    stages = {f["module"]: f["num_chs"] for f in model.feature_info}
    if not all(f"layer{i}" in stages for i in range(1, 5)):
        raise ParameterError(f"backbone {backbone!r} is not a ResNet with layer1..layer4")
    for i in range(1, 5):
        name = f"layer{i}"
        setattr(model, name, nn.Sequential(getattr(model, name), MicroAttentionUnit(stages[name])))
    return model


@register_method("micro-attention")
class MicroAttention(TorchImageMethod):
    """ResNet with micro-attention units on the grey apex frame; see the module docstring."""

    info: ClassVar[MethodInfo] = MethodInfo(
        name="micro-attention",
        citation="Wang, Peng, Bi, Chen. Micro-attention for micro-expression recognition. Neurocomputing "
                 "410:354-362, 2020 (arXiv 1811.02360)",
        representation="apex",
        supports_epoch_selection=True,
        practical_on_cpu=False,
        summary="timm ResNet-18 + micro-attention units on the grey apex frame (224x224; from scratch)",
    )
    presets: ClassVar[dict[str, dict]] = {"fast": dict(size=64, epochs=15)}
    grey = True

    def __init__(self, backbone: str = "resnet18", epochs: int = 40, batch_size: int = 32, lr: float = 1e-3,
                 weight_decay: float = 1e-4, schedule: str = "cosine", warmup: int = 0, flip: bool = True,
                 size: int | None = 224, input_scale: float = 1.0, standardise: bool = True,
                 precision: str = "auto", random_state: int = 0) -> None:
        self._store_params(locals())  # hyper-parameters only (scikit-learn style)

    def build_model(self, in_channels: int, num_classes: int) -> nn.Module:
        return micro_attention_resnet(self.backbone, in_channels, num_classes)
