"""The shared torch trainer for deep methods.

* device: from :mod:`mer_bench.runtime` (CUDA when present, else CPU; ``--device`` overrides);
* precision: ``"auto"`` uses bf16 autocast on CUDA devices that support it, fp32 elsewhere
  (bf16 on CPUs without native support is slower than fp32); ``"bf16"`` / ``"fp32"`` force;
* optimiser: Adam (Kingma & Ba 2015) with linear warm-up and cosine annealing to 0
  (Loshchilov & Hutter 2017), the schedule of the MERANet paper (section 4.3). ``warmup`` is a
  number of steps, or ``"untuned"``: Ma & Yarats 2019, ``w_t = min(1, t (1 - beta2) / 2)``,
  i.e. 2 / (1 - beta2) = 2,000 steps at beta2 = 0.999;
* ``schedule="constant"`` keeps the peak lr throughout (after warm-up), as STSTNet and HTNet do;
* a fixed number of epochs: the last epoch's model is the result. No test data is seen during
  training, so no model can be selected on it. The one exception is explicit and labelled:
  ``select_on`` (the runner's ``--select-epoch best-on-test``) scores every epoch on labelled
  samples and returns the best epoch's weights, reproducing the common *leaky* practice of
  choosing the epoch on the test subject (e.g. HTNet); results made so are marked leaky;
* seeded and deterministic: training runs under ``torch.use_deterministic_algorithms(True)``
  (warn-only where an operation has no deterministic kernel), so the same seed gives the same
  model on the same device and thread count. Without it, oneDNN's multi-threaded 3D convolutions
  on the CPU gave probabilities differing by up to 0.08 between two identical fits.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from mer_bench import kernels, runtime
from mer_bench.kernels.conv3d import single_frame_conv3d
from mer_bench.kernels.dropout import same_mask_dropout

__all__ = ["TrainConfig", "fit_classifier", "predict_logits", "lr_factor", "autocast_dtype", "autocast", "FoldData",
           "FoldsSetup", "setup_folds", "lr_schedule", "training_mode", "make_optimizer", "check_settings",
           "report_epoch", "epoch_order"]


@dataclass(frozen=True)
class TrainConfig:
    """Attributes:
        epochs: passes over the training set (> 0).
        batch_size: clips per step (> 0).
        lr: peak learning rate (> 0).
        weight_decay: Adam L2 weight decay (>= 0).
        warmup: linear warm-up steps (>= 0), or ``"untuned"`` (Ma & Yarats 2019).
        betas: Adam betas.
        precision: ``"auto"``, ``"fp32"`` or ``"bf16"``.
        seed: seeds initialisation, shuffling and augmentation.
        schedule: ``"cosine"`` (anneal to 0) or ``"constant"``.
        optimizer: ``"adam"`` (default) or ``"sgd"`` (plain SGD with ``momentum``, e.g. Keras'
            default optimiser ``SGD(lr=0.01)`` of MicroExpSTCNN's code).
        momentum: SGD momentum (>= 0).
        shuffle: a fresh permutation of the training clips every epoch (default); ``False``
            keeps the training set's order in every epoch, as a ``DataLoader`` without
            ``shuffle`` does (STSTNet's released ``main.py``).
    """

    epochs: int = 10
    batch_size: int = 16
    lr: float = 1e-3
    weight_decay: float = 0.0
    warmup: int | str = 0
    betas: tuple[float, float] = (0.9, 0.999)
    precision: str = "auto"
    seed: int = 0
    schedule: str = "cosine"
    optimizer: str = "adam"
    momentum: float = 0.0
    shuffle: bool = True

    def warmup_steps(self) -> int:
        if self.warmup == "untuned":
            return int(round(2 / (1 - self.betas[1])))
        return int(self.warmup)


def lr_factor(step: int, total: int, warmup: int, schedule: str = "cosine") -> float:
    """Multiplier of the peak lr at ``step`` (0-based) of ``total``: linear warm-up x (cosine to 0,
    or 1 for ``schedule="constant"``)."""
    warm = min(1.0, (step + 1) / warmup) if warmup > 0 else 1.0
    if schedule == "constant":
        return warm
    cos = 0.5 * (1 + math.cos(math.pi * min(step, total) / max(total, 1)))
    return warm * cos


def autocast_dtype(device: str, precision: str) -> torch.dtype | None:
    """The autocast dtype for ``precision`` on ``device`` (``None``: plain fp32).

    Raises:
        ValueError: an unknown precision, or bf16 forced on a device that lacks it.
    """
    if precision not in ("auto", "fp32", "bf16"):
        raise ValueError(f"precision must be auto, fp32 or bf16, got {precision!r}")
    is_cuda = device.startswith("cuda")
    if precision == "fp32":
        return None
    supported = is_cuda and torch.cuda.is_bf16_supported()
    if precision == "bf16":
        if is_cuda and not supported:
            raise ValueError(f"bf16 asked for, but {device} does not support it")
        return torch.bfloat16
    return torch.bfloat16 if supported else None


#: training sets up to this size (bytes) are preloaded onto a GPU (a whole CASME II at 16 x 112 x 112
#: is about 100 MB as uint8, 400 MB as float32)
PRELOAD_BYTES = 4 * 2 ** 30


def _memory_format(ndim: int, model: nn.Module, device: str) -> torch.memory_format | None:
    """The channels-last format for ``ndim``-D batches when the runtime asks for it, or, with the
    runtime's ``channels_last=None`` (the default), when ``device`` is a CPU and ``model`` says it
    runs faster so (a ``cpu_channels_last = True`` attribute: measured per network, see its docstring)."""
    wanted = runtime.current().channels_last
    if wanted is None:
        wanted = str(device).startswith("cpu") and bool(getattr(model, "cpu_channels_last", False))
    if not wanted or ndim not in (4, 5):
        return None
    return torch.channels_last_3d if ndim == 5 else torch.channels_last


def _to_tensor(x: np.ndarray | torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(np.ascontiguousarray(x)) if isinstance(x, np.ndarray) else x


def autocast(device: str, amp: torch.dtype | None):
    """The autocast context of a step: ``amp`` (e.g. bf16) on ``device``, or fp32 when ``None``."""
    return torch.autocast(device_type=device.split(":")[0], dtype=amp or torch.float32, enabled=amp is not None)


@dataclass
class FoldData:
    """One fold's training set and random streams, as both training paths use them.

    Attributes:
        X, y: the inputs ``(N, ...)`` and labels ``(N,)`` int64, on the GPU when they fit there
            (their share of ``PRELOAD_BYTES``), else on the CPU (batches move to the device).
        gen: the shuffling generator (CPU), seeded with the fold's seed.
        dev_gen: the augmentation generator, on the device (``gen`` itself on a CPU).
        steps_per_epoch, total_steps: ``ceil(N / batch_size)`` and ``epochs`` times that.
        weight: the cross-entropy class weights on the device, or ``None``.
    """

    X: torch.Tensor
    y: torch.Tensor
    gen: torch.Generator
    dev_gen: torch.Generator
    steps_per_epoch: int
    total_steps: int
    weight: torch.Tensor | None


@dataclass
class FoldsSetup:
    """What every fold of one training call shares: the run-time settings, device and precision."""

    rt: runtime.Runtime
    device: str
    amp: torch.dtype | None
    warmup: int
    folds: list[FoldData]


def setup_folds(cfgs: list[TrainConfig], Xs: list, ys: list, class_weights: list | None) -> FoldsSetup:
    """The one per-fold training setup of :func:`fit_classifier` and :func:`fit_classifiers_stacked`:
    settings checked, device and autocast chosen, each fold's data, generators, step count and
    class weights prepared.

    Raises:
        ValueError: an empty training set or invalid settings.
    """
    cfg = cfgs[0]
    check_settings(cfg, [len(X) for X in Xs])
    rt = runtime.current()
    device = runtime.resolve_device(rt.device)
    is_cuda = device.startswith("cuda")
    folds = []
    for c, X, y, w in zip(cfgs, Xs, ys, class_weights or [None] * len(Xs)):
        gen = torch.Generator().manual_seed(c.seed)
        dev_gen = torch.Generator(device=device).manual_seed(c.seed) if is_cuda else gen
        Xt, yt = _to_tensor(X), torch.tensor(np.asarray(y, dtype=np.int64))
        if is_cuda and Xt.element_size() * Xt.numel() <= PRELOAD_BYTES // len(Xs):
            # MER training sets are small: copy them to the GPU once instead of every batch every epoch
            Xt, yt = Xt.to(device), yt.to(device)
        steps = math.ceil(len(Xt) / c.batch_size)
        folds.append(FoldData(Xt, yt, gen, dev_gen, steps, c.epochs * steps,
                               None if w is None else torch.as_tensor(w, dtype=torch.float32, device=device)))
    return FoldsSetup(rt, device, autocast_dtype(device, cfg.precision), cfg.warmup_steps(), folds)


def lr_schedule(opt: torch.optim.Optimizer, setup: FoldsSetup, schedule: str) -> torch.optim.lr_scheduler.LambdaLR:
    """Warm-up then ``schedule``, one lambda per parameter group (= per fold: each its own step count)."""
    return torch.optim.lr_scheduler.LambdaLR(
        opt, [lambda s, t=f.total_steps: lr_factor(s, t, setup.warmup, schedule) for f in setup.folds])


def report_epoch(rt: runtime.Runtime, label: str, epoch: int, epochs: int) -> None:
    if rt.progress is not None:
        rt.progress(f"{label} epoch {epoch}/{epochs}", epoch, epochs)


def fit_classifier(model: nn.Module, X: np.ndarray | torch.Tensor, y: np.ndarray, cfg: TrainConfig,
                   augment: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None = None,
                   class_weight: np.ndarray | None = None, description: str = "train",
                   select_on: tuple[np.ndarray | torch.Tensor, np.ndarray] | None = None) -> nn.Module:
    """Train ``model`` with cross-entropy on ``(X, y)``; returns the model (in eval mode).

    Args:
        model: maps a batch ``(B, *X.shape[1:])`` to logits ``(B, n_classes)``.
        X: inputs ``(N, ...)`` float32 (kept on the CPU; batches move to the device).
        y: labels ``(N,)`` int in ``0..n_classes-1``.
        cfg: the :class:`TrainConfig`.
        augment: ``augment(batch, generator)`` applied to training batches on the device.
        class_weight: optional ``(n_classes,)`` cross-entropy weights.
        description: the progress label.
        select_on: ``(X, y)`` scored (accuracy) after every epoch; the weights of the best epoch
            are returned (ties: the later epoch, as HTNet's ``<=``). **Leaky** when these are test
            samples; see the module docstring. The chosen epoch is stored as ``model.selected_epoch``
            and the last epoch's weights as ``model.last_epoch_state`` (the leak-free model of
            the same training run, for measuring the inflation).

    The learning curve, ``[(epoch, mean training loss, training accuracy), ...]`` (:class:`EpochTally`),
    is stored as ``model.training_curve``.

    Raises:
        ValueError: an empty training set or invalid settings.
    """
    setup = setup_folds([cfg], [X], [y], [class_weight])
    torch.manual_seed(cfg.seed)  # the global stream: initialisation happened before; dropout from here
    device, fold = setup.device, setup.folds[0]
    fmt = _memory_format(fold.X.ndim, model, device)
    model.to(device).train()
    if fmt is not None:
        model.to(memory_format=fmt)
    opt = make_optimizer(model.parameters(), cfg, device)
    loop = _Loop(model=model, forward=model, fold=fold, cfg=cfg, opt=opt, sched=lr_schedule(opt, setup, cfg.schedule),
                 loss_fn=nn.CrossEntropyLoss(weight=fold.weight), augment=augment, setup=setup,
                 description=description)
    fast = _cpu_fast_paths(device)
    fast_dropout = same_mask_dropout(model) if fast else contextlib.nullcontext()
    frame_conv = single_frame_conv3d(model) if fast else contextlib.nullcontext()
    with training_mode(device, setup.rt), fast_dropout, frame_conv:
        loop.monitor = None if select_on is None else _EpochSelector(model, select_on, cfg.precision)
        loop.forward = _compiled(model) if setup.rt.compile else model
        _train_loop(loop)
        model.training_curve = list(loop.curve)
        if loop.monitor is not None:
            model.last_epoch_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            model.load_state_dict(loop.monitor.best_state)
            model.selected_epoch = loop.monitor.best_epoch
    return model.eval()


def _cpu_fast_paths(device: str) -> bool:
    """Whether mer-bench's CPU fast paths (:mod:`mer_bench.kernels`) apply to a model on ``device``."""
    return device == "cpu" and kernels.enabled()


@contextlib.contextmanager
def training_mode(device: str, rt: runtime.Runtime):
    """Deterministic algorithms (warn-only where an operation has none; new tensors are not filled
    with NaN, ``torch.utils.deterministic.fill_uninitialized_memory``) and, when asked for on a
    GPU, ``cudnn.benchmark``, all restored afterwards; on the CPU, the allocator tuning of
    :func:`mer_bench.runtime.tune_cpu_allocator` (process-wide, once)."""
    was_deterministic = torch.are_deterministic_algorithms_enabled()
    was_warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    was_benchmark = torch.backends.cudnn.benchmark
    was_filling = torch.utils.deterministic.fill_uninitialized_memory
    torch.use_deterministic_algorithms(True, warn_only=True)
    # deterministic mode would also fill every new tensor with NaN (a debugging aid that costs a pass
    # over each activation, e.g. 15 MB per STSTNet step); correct code never reads them
    torch.utils.deterministic.fill_uninitialized_memory = False
    if device == "cpu":
        runtime.tune_cpu_allocator()
    if rt.cudnn_benchmark and device.startswith("cuda"):
        torch.backends.cudnn.benchmark = True
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(was_deterministic, warn_only=was_warn_only)
        torch.backends.cudnn.benchmark = was_benchmark
        torch.utils.deterministic.fill_uninitialized_memory = was_filling


def _compiled(model: nn.Module):
    """``torch.compile(model)``; a missing compiler surfaces on the first step as a clear error.

    Inductor draws its own random numbers by default, so dropout masks would differ from eager
    training; ``fallback_random`` makes it draw eager's (the same results up to floating-point
    noise, as with the other run-time settings)."""
    import torch._inductor.config as inductor_config

    inductor_config.fallback_random = True
    return torch.compile(model)


def check_settings(cfg: TrainConfig, sizes: list[int]) -> None:
    if any(n == 0 for n in sizes):
        raise ValueError("empty training set")
    if cfg.epochs < 1 or cfg.batch_size < 1 or cfg.lr <= 0 or cfg.schedule not in ("cosine", "constant"):
        raise ValueError(f"invalid training settings: {cfg}")


def make_optimizer(params, cfg: TrainConfig, device: str | None = None) -> torch.optim.Optimizer:
    """Adam or SGD over ``params`` (tensors or parameter groups) with ``cfg``'s settings.

    On the CPU (``device="cpu"``) with mer-bench's fast paths allowed (:mod:`mer_bench.kernels`),
    and on a CUDA device, Adam is PyTorch's fused implementation (one kernel for all parameters
    instead of a loop of small operations; the same update up to floating-point rounding, tested
    on the CPU). Elsewhere PyTorch's default implementation."""
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adam":
        fused = True if _cpu_fast_paths(str(device)) or str(device).startswith("cuda") else None
        return torch.optim.Adam(params, lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay, fused=fused)
    raise ValueError(f"optimizer must be 'adam' or 'sgd', got {cfg.optimizer!r}")


class _EpochSelector:
    """Keeps the weights of the epoch with the best accuracy on ``(X, y)`` (ties: later epoch)."""

    def __init__(self, model: nn.Module, data, precision: str) -> None:
        self.model = model
        self.X, self.y = _to_tensor(data[0]), np.asarray(data[1])
        self.precision = precision
        self.best_score, self.best_epoch, self.best_state = -1.0, 0, None

    def __call__(self, epoch: int) -> None:
        was_training = self.model.training
        pred = predict_logits(self.model, self.X, precision=self.precision).argmax(1)
        self.model.train(was_training)
        score = float((pred == self.y).mean()) if len(self.y) else 0.0
        if score >= self.best_score:
            self.best_score, self.best_epoch = score, epoch
            self.best_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}


@dataclass
class _Loop:
    """Everything one fold's training loop needs (:func:`_train_loop`).

    Attributes:
        model: the network being trained; ``forward``: what computes the logits (the model, or its
            ``torch.compile`` form).
        fold: the fold's data and random streams (:class:`FoldData`).
        cfg, opt, sched, loss_fn: the settings, optimiser, learning-rate schedule and loss.
        augment: ``augment(batch, generator)`` or ``None``.
        setup: the shared :class:`FoldsSetup` (device, autocast, run-time settings).
        description: the progress and error label.
        monitor: an :class:`_EpochSelector` called after every epoch (leaky selection), or ``None``.
    """

    model: nn.Module
    forward: Callable
    fold: FoldData
    cfg: TrainConfig
    opt: torch.optim.Optimizer
    sched: torch.optim.lr_scheduler.LambdaLR
    loss_fn: nn.Module
    augment: Callable | None
    setup: FoldsSetup
    description: str
    monitor: _EpochSelector | None = None
    #: ``(epoch, mean training loss, training accuracy)`` per epoch, filled by :func:`_train_loop`
    curve: list = field(default_factory=list)


class EpochTally:
    """Sums of one epoch's training batches for the learning curve: the mean cross-entropy
    (weighted by batch size: the mean over the epoch's clips, with their augmentation and dropout
    as trained) and the accuracy of the logits the step computed (before its update). The sums
    stay on the device; :meth:`epoch` reads them once per epoch."""

    def __init__(self) -> None:
        self.loss, self.correct, self.n = None, None, 0

    def add(self, loss: torch.Tensor, logits: torch.Tensor, y: torch.Tensor) -> None:
        b = len(y)
        loss_sum = loss.float() * b
        correct = (logits.argmax(1) == y).sum()
        self.loss = loss_sum if self.loss is None else self.loss + loss_sum
        self.correct = correct if self.correct is None else self.correct + correct
        self.n += b

    def epoch(self, epoch: int) -> tuple[int, float, float]:
        """``(epoch, mean loss, accuracy)`` of the batches added since the last call; resets."""
        out = (epoch, float(self.loss) / self.n, float(self.correct) / self.n) if self.n else (epoch, float("nan"),
                                                                                               float("nan"))
        self.loss, self.correct, self.n = None, None, 0
        return out


def epoch_order(n: int, cfg: TrainConfig, gen: torch.Generator) -> torch.Tensor:
    """The order ``(n,)`` int64 in which one epoch visits the training clips: a fresh permutation
    from ``gen`` when ``cfg.shuffle``, else ``0 .. n-1`` (and ``gen`` is not advanced)."""
    return torch.randperm(n, generator=gen) if cfg.shuffle else torch.arange(n)


def _train_loop(loop: _Loop) -> None:
    """Train ``loop.model`` for ``cfg.epochs`` epochs: per epoch the order of
    :func:`epoch_order` (a fresh permutation from the fold's generator unless
    ``cfg.shuffle`` is off), batches moved to the device (channels-last where the runtime asks), augmented,
    one optimiser and schedule step each; a non-finite loss stops with the step that made it.

    Raises:
        FloatingPointError: the loss became NaN or infinite.
        RuntimeError: ``torch.compile`` failed on the first step (no compiler).
    """
    model, fold, cfg, device, amp = loop.model, loop.fold, loop.cfg, loop.setup.device, loop.setup.amp
    n = len(fold.X)
    step = 0
    fmt = _memory_format(fold.X.ndim, model, device)
    seen = EpochTally()
    for epoch in range(cfg.epochs):
        order = epoch_order(n, cfg, fold.gen)
        for start in range(0, n, cfg.batch_size):
            idx = order[start:start + cfg.batch_size].to(fold.X.device)
            xb = fold.X[idx].to(device, non_blocking=True)
            if fmt is not None:
                xb = xb.contiguous(memory_format=fmt)
            yb = fold.y[idx].to(device, non_blocking=True)
            if loop.augment is not None:
                xb = loop.augment(xb, fold.dev_gen)
            with autocast(device, amp):
                try:
                    logits = loop.forward(xb)
                    loss = loop.loss_fn(logits, yb)
                except Exception as exc:
                    if loop.forward is model or step > 0:
                        raise
                    raise RuntimeError(f"{loop.description}: torch.compile failed ({type(exc).__name__}: "
                                       f"{str(exc).strip().splitlines()[0][:300]}); it needs a working C++ compiler "
                                       f"on CPU and Triton on GPU. Run without --compile.") from exc
            if not torch.isfinite(loss):
                raise FloatingPointError(f"{loop.description}: loss became {loss.item()} at epoch {epoch + 1}, step "
                                         f"{step + 1} (lr {loop.sched.get_last_lr()[0]:.3g}); lower lr or use fp32")
            loop.opt.zero_grad(set_to_none=True)
            loss.backward()
            loop.opt.step()
            loop.sched.step()
            step += 1
            seen.add(loss.detach(), logits.detach(), yb)
        loop.curve.append(seen.epoch(epoch + 1))
        if loop.monitor is not None:
            loop.monitor(epoch + 1)
        report_epoch(loop.setup.rt, loop.description, epoch + 1, cfg.epochs)


@torch.no_grad()
def predict_logits(model: nn.Module, X: np.ndarray | torch.Tensor, batch_size: int = 64,
                   precision: str = "auto") -> np.ndarray:
    """Logits ``(N, n_classes)`` float32 of ``model`` (in eval mode) on ``X``."""
    device = runtime.resolve_device(runtime.current().device)
    amp = autocast_dtype(device, precision)
    model.to(device).eval()
    Xt = _to_tensor(X)
    fmt = _memory_format(Xt.ndim, model, device)
    if fmt is not None:
        model.to(memory_format=fmt)
    out = []
    frame_conv = single_frame_conv3d(model) if _cpu_fast_paths(device) else contextlib.nullcontext()
    with frame_conv:
        for start in range(0, len(Xt), batch_size):
            xb = Xt[start:start + batch_size].to(device)
            if fmt is not None:
                xb = xb.contiguous(memory_format=fmt)
            with autocast(device, amp):
                out.append(model(xb).float().cpu())
    return torch.cat(out).numpy() if out else np.zeros((0, 0), np.float32)


# --------------------------------------------------------------------------------------------
# Several folds at once: the fold models stacked with torch.func
# --------------------------------------------------------------------------------------------
