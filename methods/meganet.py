"""MEGANet with MESTI input (Nguyen, Khuong, Le, Ngo, arXiv 2509.00056, 2025): **a placeholder built
from the abstract**, the only part of the paper available (``../shared/seeds/mesti-meganet-abstract.txt``).

What the paper defines: MESTI, one image per clip that "preserves the essential characteristics of
micro-movements"; MEGANet, a CNN with a "Gradient Attention block"; comparisons with apex,
optical-flow and dynamic-image inputs on VGG19, ResNet50 and EfficientNetB0, on CASME II and SAMM.

What is not defined, and mer-bench's named choices for it:

* MESTI -> ``mesti-v1`` (:func:`mer_bench.preprocess.mesti`): apex frame, |apex - onset| and the
  per-pixel temporal standard deviation as the three channels.
* Gradient Attention block -> ``gradient-attention-v1``: the Sobel gradients (x, y) of the input's
  channel mean, a 3 x 3 convolution to one map, a sigmoid, and ``x * (1 + map)`` before the backbone.
* Backbone -> timm ``resnet18`` from scratch (``backbone`` takes any timm model, e.g. ``resnet50``,
  ``vgg19``, ``efficientnet_b0``, the paper's three).
* Training -> Adam 1e-3, batch 32, 40 epochs, cosine annealing, horizontal flips.

Results of this plugin are mer-bench's, not the paper's; the leaderboard shows the method name and
this citation, which says so.
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from mer_bench._compat import ensure_torchvision_importable
from mer_bench.method import MethodInfo, register_method
from mer_bench.torch_method import TorchImageMethod, check_timm_backbone

__all__ = ["MEGANet", "GradientAttention"]


class GradientAttention(nn.Module):
    """``(N, C, H, W)`` -> the same shape: ``x * (1 + sigmoid(conv(sobel(mean_c(x)))))``."""

    def __init__(self) -> None:
        super().__init__()
        sobel = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])
        self.register_buffer("kernels", torch.stack([sobel, sobel.t()]).unsqueeze(1))  # (2, 1, 3, 3)
        self.conv = nn.Conv2d(2, 1, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        grad = F.conv2d(x.mean(dim=1, keepdim=True), self.kernels.to(x.dtype), padding=1)
        return x * (1 + torch.sigmoid(self.conv(grad)))


@register_method("meganet")
class MEGANet(TorchImageMethod):
    """Gradient attention + a timm backbone on the MESTI image (placeholder; see the module docstring)."""

    info: ClassVar[MethodInfo] = MethodInfo(
        name="meganet",
        citation="Nguyen, Khuong, Le, Ngo. MEGANet/MESTI, arXiv 2509.00056, 2025 - abstract only; MESTI and the "
                 "gradient attention block are mer-bench's named choices (mesti-v1, gradient-attention-v1)",
        representation="mesti",
        accepts=("apex", "dynamic", "flow"),
        supports_epoch_selection=True,
        practical_on_cpu=False,
        placeholder=True,
        summary="PLACEHOLDER from the abstract: gradient attention + timm ResNet-18 on mer-bench's MESTI image",
    )
    presets: ClassVar[dict[str, dict]] = {"fast": dict(size=64, epochs=15)}

    def __init__(self, backbone: str = "resnet18", epochs: int = 40, batch_size: int = 32, lr: float = 1e-3,
                 weight_decay: float = 1e-4, schedule: str = "cosine", warmup: int = 0, flip: bool = True,
                 size: int | None = 112, input_scale: float = 1.0, standardise: bool = True,
                 precision: str = "auto", random_state: int = 0) -> None:
        self._store_params(locals())  # hyper-parameters only (scikit-learn style)

    def build_model(self, in_channels: int, num_classes: int) -> nn.Module:
        ensure_torchvision_importable()
        import timm

        check_timm_backbone(self.backbone)
        return nn.Sequential(GradientAttention(), timm.create_model(self.backbone, pretrained=False,
                                                                    in_chans=in_channels, num_classes=num_classes))
