"""Base class of deep methods on clips, built on :mod:`mer_bench.trainer`.

Subclasses store their hyper-parameters in ``__init__`` and implement
``build_model(in_channels, num_classes) -> nn.Module`` mapping ``(N, C, T, H, W)`` to logits.

Preprocessing (MERANet paper section 4.2):

1. optional resampling to ``frames`` x ``size`` x ``size`` (trilinear; ``None`` keeps the
   dataset's native size; the paper uses 16 x 112 x 112);
2. per-sample, per-channel standardisation: subtract each clip's channel mean and divide by its
   channel standard deviation (+1e-6), so no statistic is shared between clips (and none leaks
   from test clips into training);
3. training only: horizontal flip with probability 0.5 (``flip=True``); on a flow image the
   horizontal component u (channel 0) also changes sign, as mirroring a motion does.

A 4-D input ``(N, C, H, W)`` (an apex frame or a flow image) is treated as a one-frame clip.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mer_bench._compat import ensure_torchvision_importable
from mer_bench.data import Samples
from mer_bench.method import Method, ParameterError, shape_label
from mer_bench.trainer import TrainConfig, fit_classifier, predict_logits

ensure_torchvision_importable()

__all__ = ["TorchClipMethod", "TorchImageMethod", "standardise_clips", "hflip", "check_timm_backbone"]


def check_timm_backbone(name: str) -> None:
    """Raise :class:`~mer_bench.method.ParameterError` unless ``name`` is a timm model."""
    import timm

    if not timm.list_models(name):
        raise ParameterError(f"backbone {name!r} is not a timm model; see timm.list_models()")


def _as_tensor(X: np.ndarray | torch.Tensor) -> torch.Tensor:
    return X if isinstance(X, torch.Tensor) else torch.as_tensor(np.ascontiguousarray(X))


def _on_work_device(X: np.ndarray) -> np.ndarray | torch.Tensor:
    """On a GPU, the raw inputs of a fit or predict go to the device first, so that resizing and
    standardisation run there too and the prepared set stays there for every epoch (MER datasets
    are small: a CASME II at 16 x 112 x 112 is about 100 MB as uint8). Elsewhere, or for inputs over
    a quarter of :data:`mer_bench.trainer.PRELOAD_BYTES` (room for resizing), ``X`` unchanged."""
    from mer_bench import runtime
    from mer_bench.trainer import PRELOAD_BYTES

    device = runtime.resolve_device(runtime.current().device)
    if not device.startswith("cuda") or np.asarray(X).nbytes > PRELOAD_BYTES // 4:
        return X
    return _as_tensor(X).to(device)


def standardise_clips(x: torch.Tensor) -> torch.Tensor:
    """Per-sample, per-channel standardisation of ``(N, C, ...)``; returns float32."""
    x = x.float()
    dims = tuple(range(2, x.ndim))
    mean = x.mean(dim=dims, keepdim=True)
    std = x.std(dim=dims, keepdim=True)
    return (x - mean) / (std + 1e-6)


def hflip(x: torch.Tensor, gen: torch.Generator, p: float = 0.5, negate_channel: int | None = None,
          mirror: float = 0.0) -> torch.Tensor:
    """Flip each sample of ``(N, C, ..., W)`` along W with probability ``p``.

    ``negate_channel``: a channel whose value is mirrored with the image, ``v -> mirror - v`` (u of
    a flow image: ``mirror=0`` on a standardised channel, the scale's maximum on a [0, max] one).
    """
    mask = torch.rand(x.shape[0], generator=gen, device=gen.device) < p
    if not mask.any():
        return x
    x = x.clone()
    flipped = x[mask].flip(-1)
    if negate_channel is not None:
        flipped[:, negate_channel] = mirror - flipped[:, negate_channel]
    x[mask] = flipped
    return x


class TorchClipMethod(Method):
    """Shared fit/predict for clip networks; see the module docstring.

    Hyper-parameters every subclass has: ``epochs``, ``batch_size``, ``lr``, ``weight_decay``,
    ``warmup`` (steps or ``"untuned"``), ``flip``, ``frames``, ``size``, ``precision``,
    ``random_state``. Learned state: ``model_`` (the trained ``nn.Module``, eval mode, on CPU),
    ``classes_``, ``input_shape_``.
    """

    def build_model(self, in_channels: int, num_classes: int) -> nn.Module:  # pragma: no cover
        raise NotImplementedError

    @classmethod
    def describe_input(cls, params: dict[str, Any], representation: str, shape: tuple[int, ...] | None) -> str:
        """As :meth:`mer_bench.method.Method.describe_input`, with what :meth:`_prepare` does: an
        image becomes a one-frame clip, ``grey`` averages the channels, ``frames`` / ``size``
        resample; e.g. ``"flow 3x28x28 as 1-frame clip"`` or ``"clip 3x8x32x32 -> 3x16x112x112"``."""
        base = shape_label(representation, shape)
        if shape is None:
            return base
        image = len(shape) == 3
        c, t, h, w = (shape[0], 1, *shape[1:]) if image else shape
        c = 1 if cls.grey and c > 1 else c
        size = params.get("size")
        seen = (c, params.get("frames") or t, size or h, size or w)
        if image:
            return f"{base} as 1-frame clip" + ("" if seen == (c, 1, h, w) and c == shape[0]
                                                  else f" {'x'.join(map(str, seen))}")
        return base if seen == tuple(shape) else f"{base} -> {'x'.join(map(str, seen))}"

    @classmethod
    def check_params(cls, params: dict[str, Any]) -> None:
        def need(key: str, ok: bool, what: str) -> None:
            if key in params and not ok:
                raise ParameterError(f"{key} must be {what}, got {params[key]!r}")

        need("epochs", isinstance(params.get("epochs"), int) and params.get("epochs", 0) > 0, "a positive int")
        need("batch_size", isinstance(params.get("batch_size"), int) and params.get("batch_size", 0) > 0,
             "a positive int")
        need("lr", isinstance(params.get("lr"), (int, float)) and params.get("lr", 0) > 0, "a positive number")
        need("weight_decay", params.get("weight_decay", 0) >= 0, ">= 0")
        w = params.get("warmup", 0)
        need("warmup", w == "untuned" or (isinstance(w, int) and w >= 0), "a non-negative int or 'untuned'")
        need("precision", params.get("precision") in ("auto", "fp32", "bf16"), "one of auto, fp32, bf16")
        need("schedule", params.get("schedule", "cosine") in ("cosine", "constant"), "'cosine' or 'constant'")
        need("optimizer", params.get("optimizer", "adam") in ("adam", "sgd"), "'adam' or 'sgd'")
        need("shuffle", isinstance(params.get("shuffle", True), bool), "true or false")
        need("input_scale", isinstance(params.get("input_scale", 1.0), (int, float)) and params.get("input_scale", 1.0)
             > 0, "a positive number")
        for key in ("frames", "size", "width"):
            v = params.get(key)
            need(key, v is None or (isinstance(v, int) and v > 0), "a positive int" + (" or None" if key != "width"
                                                                                    else ""))

    #: average the input channels to one grey channel first (networks defined on grey frames)
    grey: bool = False

    def _prepare(self, X: np.ndarray | torch.Tensor) -> torch.Tensor:
        x = _as_tensor(X)
        if x.ndim == 4:
            x = x.unsqueeze(2)
        if x.ndim != 5:
            raise ValueError(f"{self.info.name} expects clips (N, C, T, H, W) or images (N, C, H, W), "
                             f"got shape {tuple(x.shape)}")
        if self.grey and x.shape[1] > 1:
            x = x.float().mean(dim=1, keepdim=True)
        t, h, w = x.shape[2:]
        size = (self.frames or t, self.size or h, self.size or w)
        if size != (t, h, w):
            x = F.interpolate(x.float(), size=size, mode="trilinear", align_corners=False)
        return standardise_clips(x)

    def _augment(self, xb: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        if not self.flip:
            return xb
        return hflip(xb, gen, negate_channel=0 if self.representation_ == "flow" else None)

    def fit(self, train: Samples, select_on: Samples | None = None) -> TorchClipMethod:
        """Train on ``train`` (``X`` as in the module docstring, ``y`` required); returns self.

        Args:
            select_on: labelled samples on which the best epoch is kept instead of the last
                (:func:`mer_bench.trainer.fit_classifier`). Only the runner's explicitly leaky
                ``--select-epoch best-on-test`` passes it.

        Raises:
            ValueError: missing labels or a wrong input shape.
        """
        if train.y is None or (select_on is not None and select_on.y is None):
            raise ValueError("fit needs labelled samples")
        x, model, cfg = self._setup_fit(train)
        sel = None if select_on is None else (self._prepare(_on_work_device(select_on.X)), select_on.y)
        self.model_ = fit_classifier(model, x, train.y, cfg, augment=self._augment,
                                     description=self.info.name, select_on=sel).cpu()
        self.selected_epoch_ = getattr(self.model_, "selected_epoch", self.epochs)
        self.training_curve_ = list(getattr(self.model_, "training_curve", []))
        return self

    def _setup_fit(self, train: Samples) -> tuple[torch.Tensor, nn.Module, TrainConfig]:
        """Prepared inputs, the seeded initial network and the training settings of a fit."""
        self.representation_ = train.representation
        x = self._prepare(_on_work_device(train.X))
        self.classes_ = np.arange(train.n_classes)
        self.input_shape_ = tuple(x.shape[1:])
        torch.manual_seed(self.random_state)
        model = self.build_model(x.shape[1], train.n_classes)
        cfg = TrainConfig(epochs=self.epochs, batch_size=self.batch_size, lr=self.lr,
                          weight_decay=self.weight_decay, warmup=self.warmup, precision=self.precision,
                          seed=self.random_state, schedule=getattr(self, "schedule", "cosine"),
                          optimizer=getattr(self, "optimizer", "adam"), momentum=getattr(self, "momentum", 0.0),
                          shuffle=getattr(self, "shuffle", True))
        return x, model, cfg

    @staticmethod
    def fit_stacked(methods: list[TorchClipMethod], trains: list[Samples]) -> list[TorchClipMethod]:
        """Fit several instances (one per fold, differing only in ``random_state``) at once, with
        their networks stacked (:func:`mer_bench.stacking.fit_classifiers_stacked`): the same
        models as ``m.fit(t)`` for each pair, up to floating-point noise. Returns ``methods``.

        Raises:
            ValueError: unlabelled samples or a wrong input shape.
            StackingError: instances that differ beyond ``random_state``, or a network that
                draws random numbers other than through ``nn.Dropout``.
        """
        from mer_bench.stacking import StackingError, fit_classifiers_stacked

        if len(methods) != len(trains):
            raise ValueError("fit_stacked needs one training set per method")
        if len({type(m) for m in methods}) > 1 or any(
                {**m.get_params(), "random_state": 0} != {**methods[0].get_params(), "random_state": 0}
                for m in methods):
            raise StackingError("stacked fits need one method with the same hyper-parameters but random_state")
        if any(t.y is None for t in trains):
            raise ValueError("fit needs labelled samples")
        setups = [m._setup_fit(t) for m, t in zip(methods, trains)]
        models = fit_classifiers_stacked([s[1] for s in setups], [s[0] for s in setups], [t.y for t in trains],
                                         [s[2] for s in setups], augments=[m._augment for m in methods],
                                         description=methods[0].info.name)
        for m, model in zip(methods, models):
            m.model_ = model.cpu()
            m.selected_epoch_ = m.epochs
            m.training_curve_ = list(getattr(model, "training_curve", []))
        return methods

    def last_epoch(self) -> TorchClipMethod:
        """After ``fit(..., select_on=...)``: a fitted copy holding the last epoch's weights, i.e.
        the leak-free model of the same training run (training is identical: scoring an epoch
        draws no random numbers and does not touch BatchNorm statistics). Without ``select_on``:
        ``self``."""
        state = getattr(self.model_, "last_epoch_state", None)
        if state is None:
            return self
        import copy

        other = copy.copy(self)
        other.model_ = copy.deepcopy(self.model_)
        other.model_.load_state_dict(state)
        other.selected_epoch_ = self.epochs
        return other

    transient_state = ("training_curve_",)

    def get_state(self) -> dict[str, Any]:
        """As :meth:`mer_bench.method.Method.get_state`, with the network as its ``state_dict``
        (tensors on the CPU) under ``"model"``."""
        if not hasattr(self, "model_"):
            raise RuntimeError(f"{type(self).__name__} is not fitted; call fit first")
        model = self.model_
        try:
            del self.model_
            state = super().get_state()
        finally:
            self.model_ = model
        state["model"] = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        return state

    def set_state(self, state: dict[str, Any]) -> TorchClipMethod:
        """Restore :meth:`get_state`: the learned attributes, then the network built by
        ``build_model`` for ``input_shape_`` and ``classes_`` with the saved weights (eval mode)."""
        super().set_state({k: v for k, v in state.items() if k != "model"})
        self.input_shape_ = tuple(int(d) for d in self.input_shape_)
        model = self.build_model(int(self.input_shape_[0]), len(self.classes_))
        model.load_state_dict(state["model"])
        self.model_ = model.eval()
        return self

    def predict_proba(self, test: Samples) -> np.ndarray:
        """Class probabilities ``(N, n_classes)`` (softmax of the logits)."""
        if not hasattr(self, "model_"):
            raise RuntimeError(f"{type(self).__name__} is not fitted; call fit first")
        logits = predict_logits(self.model_, self._prepare(_on_work_device(test.X)), precision=self.precision)
        self.model_.cpu()
        return torch.softmax(torch.as_tensor(logits), dim=1).numpy()

    def predict(self, test: Samples) -> np.ndarray:
        """Labels ``(N,)`` int64: the argmax of :meth:`predict_proba`."""
        return self.predict_proba(test).argmax(axis=1).astype(np.int64)


class TorchImageMethod(TorchClipMethod):
    """Shared fit/predict for 2D networks on images ``(N, C, H, W)``, e.g. flow images.

    Subclasses set ``input_channels`` (the channels they use, e.g. ``(0, 1)`` = u, v of a flow
    image) and implement ``build_model(in_channels, num_classes)`` mapping ``(N, C, H, W)`` to
    logits. Hyper-parameters: those of :class:`TorchClipMethod` (without ``frames``) plus
    ``schedule`` (``"cosine"`` / ``"constant"``), ``input_scale`` (inputs in [0, 1] are
    multiplied by it: 255 feeds raw 8-bit values as STSTNet's code does) and ``standardise``
    (per-sample, per-channel standardisation after scaling). ``size`` resizes bilinearly.
    A clip ``(N, C, T, H, W)`` is refused: give these methods flow images or apex frames.
    """

    input_channels: tuple[int, ...] | None = None

    @classmethod
    def describe_input(cls, params: dict[str, Any], representation: str, shape: tuple[int, ...] | None) -> str:
        """As :meth:`mer_bench.method.Method.describe_input`, with the channels used, ``grey`` and
        ``size``; e.g. ``"flow 3x28x28"`` or ``"flow 3x28x28 -> 2x28x28 (u, v)"``."""
        base = shape_label(representation, shape)
        if shape is None or len(shape) != 3:
            return base
        c = len(cls.input_channels) if cls.input_channels is not None else shape[0]
        c = 1 if cls.grey and c > 1 else c
        size = params.get("size")
        seen = (c, size or shape[1], size or shape[2])
        return base if seen == tuple(shape) else f"{base} -> {'x'.join(map(str, seen))}"

    def _prepare(self, X: np.ndarray | torch.Tensor) -> torch.Tensor:
        x = _as_tensor(X).float()
        if x.ndim != 4:
            raise ValueError(f"{self.info.name} expects images (N, C, H, W), got shape {tuple(x.shape)}")
        if self.input_channels is not None:
            if x.shape[1] <= max(self.input_channels):
                raise ValueError(f"{self.info.name} uses channels {self.input_channels} of its input, which has "
                                 f"{x.shape[1]}")
            x = x[:, list(self.input_channels)]
        if self.grey and x.shape[1] > 1:
            x = x.mean(dim=1, keepdim=True)
        if self.size is not None and tuple(x.shape[2:]) != (self.size, self.size):
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False)
        x = x * float(self.input_scale)
        return standardise_clips(x) if self.standardise else x.contiguous()

    def _augment(self, xb: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        if not self.flip:
            return xb
        # u changes sign under a mirror: -u on a standardised channel, (scale - u) on a [0, scale] one
        u_first = self.representation_ == "flow" and self.input_channels in (None, (0, 1), (0, 1, 2))
        return hflip(xb, gen, negate_channel=0 if u_first else None,
                     mirror=0.0 if self.standardise else float(self.input_scale))
