"""A modern baseline: a timm 2D backbone (default ResNet-18) trained from scratch on the
onset-to-apex flow image (u, v, strain as its 3 input channels).

Source: He, Zhang, Ren, Sun, "Deep Residual Learning for Image Recognition", CVPR 2016, via
``timm.create_model(backbone, pretrained=False, in_chans=3, num_classes=C)`` (Wightman, timm).
No ImageNet weights: they are not available offline, and a flow image is not a photograph.
Training: Adam (L2 weight decay 1e-4), lr 1e-3 with 20 warm-up steps and
cosine annealing, batch 64, 30 epochs, horizontal flips (u changes sign), per-sample standardisation.
These are generic defaults, not tuned on any test fold.
"""

from __future__ import annotations

from typing import ClassVar

from torch import nn

from mer_bench._compat import ensure_torchvision_importable
from mer_bench.method import MethodInfo, register_method
from mer_bench.torch_method import TorchImageMethod, check_timm_backbone

__all__ = ["FlowTimm"]


@register_method("flow-resnet18")
class FlowTimm(TorchImageMethod):
    """A timm backbone on flow images ``(N, 3, H, W)`` -> logits; ``backbone`` names any timm model.

    Raises (on fit):
        ParameterError: ``backbone`` is not a timm model name.
    """

    info: ClassVar[MethodInfo] = MethodInfo(
        name="flow-resnet18",
        citation="He, Zhang, Ren, Sun. Deep Residual Learning for Image Recognition. CVPR 2016 "
                 "(timm ResNet-18, trained from scratch on flow images)",
        representation="flow",
        accepts=("apex",),
        supports_epoch_selection=True,
        practical_on_cpu=False,
        summary="timm ResNet-18 (from scratch) on the 3-channel onset-apex flow image; modern baseline",
    )
    presets: ClassVar[dict[str, dict]] = {"fast": dict(epochs=10)}

    def __init__(self, backbone: str = "resnet18", epochs: int = 30, batch_size: int = 64, lr: float = 1e-3,
                 weight_decay: float = 1e-4, schedule: str = "cosine", warmup: int | str = 20, flip: bool = True,
                 input_scale: float = 1.0, standardise: bool = True, size: int | None = None,
                 precision: str = "auto", random_state: int = 0) -> None:
        self._store_params(locals())  # hyper-parameters only (scikit-learn style)

    @classmethod
    def check_params(cls, params):
        super().check_params(params)
        if "backbone" in params:
            check_timm_backbone(params["backbone"])

    def build_model(self, in_channels: int, num_classes: int) -> nn.Module:
        ensure_torchvision_importable()
        import timm

        return timm.create_model(self.backbone, pretrained=False, in_chans=in_channels, num_classes=num_classes)
