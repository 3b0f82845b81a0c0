"""Stacked fold training: K networks of one architecture trained at once (``--stack-folds K``).

The K models (one per LOSO fold) are stacked with :func:`torch.func.functional_call` under
:func:`torch.vmap`, so every step runs one batched forward/backward for all folds. Each fold keeps
exactly the training of :func:`mer_bench.trainer.fit_classifier` (the same per-fold setup,
:func:`mer_bench.trainer.setup_folds`), so the results equal fold-by-fold training up to
floating-point noise (tested).
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn

from mer_bench.trainer import (
    TrainConfig,
    autocast,
    epoch_order,
    fit_classifier,
    lr_schedule,
    make_optimizer,
    report_epoch,
    setup_folds,
    training_mode,
)

__all__ = ["fit_classifiers_stacked", "StackingError"]


class StackingError(ValueError):
    """The networks cannot be trained stacked (train their folds one by one, or in concurrent
    workers with ``--executor ray``)."""


class _MaskDropout(nn.Module):
    """Stand-in for ``nn.Dropout`` in the stacked template: multiplies by a mask drawn outside
    ``vmap`` (see :func:`fit_classifiers_stacked`), in the order of the forward calls."""

    def __init__(self, feed: dict) -> None:
        super().__init__()
        self.feed = feed

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mask = self.feed["masks"][self.feed["next"]]
        self.feed["next"] += 1
        return x * mask


def _dropout_calls(model: nn.Module, x1: torch.Tensor, device: str, amp) -> list[tuple]:
    """``(p, per-sample shape, dtype)`` of every ``nn.Dropout`` call of one training forward, in
    call order, from a forward of two samples through a copy (no RNG, no buffer is touched)."""
    probe = copy.deepcopy(model).train()
    calls = []
    hooks = [m.register_forward_hook(lambda mod, inp, out: calls.append((mod.p, tuple(inp[0].shape[1:]),
                                                                       inp[0].dtype)))
             for m in probe.modules() if type(m) is nn.Dropout]
    devices = [torch.device(device)] if device.startswith("cuda") else []
    with torch.random.fork_rng(devices=devices), torch.no_grad(), \
            autocast(device, amp):
        probe(x1)
    for h in hooks:
        h.remove()
    return calls


def fit_classifiers_stacked(models: list[nn.Module], Xs: list, ys: list[np.ndarray], cfgs: list[TrainConfig],
                            augments: list | None = None, class_weights: list | None = None,
                            description: str = "train") -> list[nn.Module]:
    """Train K models of one architecture on K training sets at once; returns them (eval mode).

    The K models (one per LOSO fold) are stacked with :func:`torch.func.functional_call` under
    :func:`torch.vmap`, so every step runs one batched forward/backward for all folds instead of
    K small ones: the way to fill a GPU with a network too small for one fold (STSTNet has 1,683
    parameters). Each fold follows exactly the steps of :func:`fit_classifier`: its own shuffling
    and augmentation generator, its own dropout random stream (``torch.manual_seed(cfg.seed)``;
    the masks of ``nn.Dropout`` are drawn per fold outside ``vmap``, as the fold's own training
    would draw them), its own Adam/SGD state and learning-rate schedule (folds have different
    training-set sizes, hence different step counts; a fold whose batch is shorter at the end of
    an epoch is batched with the folds of the same batch size). So the results equal fold-by-fold
    training up to floating-point noise (tested).

    Args:
        models: K freshly initialised models with the same parameter and buffer shapes.
        Xs, ys: the K training sets (``(N_k, ...)`` float32, ``(N_k,)`` int labels).
        cfgs: the K :class:`TrainConfig`; they may differ only in ``seed``.
        augments: K ``augment(batch, generator)`` callables (or ``None``).
        class_weights: K optional ``(n_classes,)`` cross-entropy weights (or ``None``).

    Raises:
        StackingError: models of different shapes, configurations that differ beyond the seed, or
            a network that draws random numbers other than through ``nn.Dropout`` (e.g. DropPath).
        ValueError, FloatingPointError: as :func:`fit_classifier`.
    """
    from torch.func import functional_call

    K = len(models)
    if K == 0 or not (len(Xs) == len(ys) == len(cfgs) == K):
        raise ValueError("fit_classifiers_stacked needs as many training sets and configs as models")
    if K == 1:
        return [fit_classifier(models[0], Xs[0], ys[0], cfgs[0], augments and augments[0],
                               class_weights and class_weights[0], description)]
    cfg = cfgs[0]
    if any({**vars(c), "seed": 0} != {**vars(cfg), "seed": 0} for c in cfgs):
        raise StackingError("stacked folds must share every training setting but the seed")
    shapes = [[(n, tuple(t.shape)) for n, t in (*m.named_parameters(), *m.named_buffers())] for m in models]
    if any(s != shapes[0] for s in shapes):
        raise StackingError("stacked folds need networks of the same architecture and shapes")
    setup = setup_folds(cfgs, Xs, ys, class_weights)
    rt, device, amp = setup.rt, setup.device, setup.amp
    is_cuda = device.startswith("cuda")
    augments = augments or [None] * K
    # per-fold random streams: the global RNG of dropout, forked per fold (shuffling and augmentation
    # have their generators in the fold's FoldData)
    rng_states = []
    with torch.random.fork_rng(devices=[torch.device(device)] if is_cuda else []):
        for c in cfgs:
            torch.manual_seed(c.seed)
            rng_states.append(torch.cuda.get_rng_state(device) if is_cuda else torch.get_rng_state())
    for m in models:
        m.to(device).train()
    template = copy.deepcopy(models[0])
    feed: dict = {"masks": [], "next": 0}
    for name, mod in list(template.named_modules()):
        if type(mod) is nn.Dropout:
            parent = template.get_submodule(name.rpartition(".")[0]) if "." in name else template
            setattr(parent, name.rpartition(".")[2], _MaskDropout(feed))
    drop_calls = _dropout_calls(models[0], setup.folds[0].X[:2].to(device), device, amp)
    param_names = [n for n, _ in models[0].named_parameters()]
    buffer_names = [n for n, _ in models[0].named_buffers()]
    params = [dict(m.named_parameters()) for m in models]
    buffers = [dict(m.named_buffers()) for m in models]
    totals = [f.total_steps for f in setup.folds]
    # one parameter group per fold: its own learning-rate schedule, and Adam state kept per parameter
    opt = make_optimizer([{"params": list(m.parameters())} for m in models], cfg, device)
    sched = lr_schedule(opt, setup, cfg.schedule)

    def fold_loss(p, b, masks, xb, yb, w):
        feed["masks"], feed["next"] = masks, 0
        logits = functional_call(template, (p, b), (xb,))
        return nn.functional.cross_entropy(logits, yb, weight=w), (logits.argmax(1) == yb).sum()

    orders: list = [None] * K
    tallies = [[0.0, 0, 0] for _ in range(K)]  # per fold: loss sum, correct, clips of the epoch so far
    curves: list[list] = [[] for _ in range(K)]
    with training_mode(device, rt):
        for step in range(max(totals)):
            batches: dict[int, list] = {}
            for k in range(K):
                if step >= totals[k]:
                    continue
                fold = setup.folds[k]
                j = step % fold.steps_per_epoch
                if j == 0:
                    orders[k] = epoch_order(len(fold.X), cfg, fold.gen)
                idx = orders[k][j * cfg.batch_size:(j + 1) * cfg.batch_size].to(fold.X.device)
                xb, yb = fold.X[idx].to(device, non_blocking=True), fold.y[idx].to(device, non_blocking=True)
                if augments[k] is not None:
                    xb = augments[k](xb, fold.dev_gen)
                batches.setdefault(len(idx), []).append((k, xb, yb))
            masks = _draw_dropout_masks(batches, drop_calls, rng_states, device)
            total_loss = 0.0
            for group in batches.values():
                ks = [k for k, _, _ in group]
                p = {n: torch.stack([params[k][n] for k in ks]) for n in param_names}
                bf = {n: torch.stack([buffers[k][n] for k in ks]) for n in buffer_names}
                mk = [torch.stack([masks[k][c] for k in ks]) for c in range(len(drop_calls))]
                xs = torch.stack([xb for _, xb, _ in group])
                ys_ = torch.stack([yb for _, _, yb in group])
                weights = [setup.folds[k].weight for k in ks]
                w = None if weights[0] is None else torch.stack(weights)
                try:
                    with autocast(device, amp):
                        losses, correct = torch.vmap(fold_loss, in_dims=(0, 0, 0, 0, 0, None if w is None else 0))(
                            p, bf, mk, xs, ys_, w)
                except RuntimeError as exc:
                    if "random" in str(exc).lower():
                        raise StackingError(
                            f"{description}: the network draws random numbers inside its forward other than "
                            f"through nn.Dropout (e.g. DropPath), which stacked folds cannot reproduce per fold; "
                            f"train the folds one by one (--stack-folds 1) or in concurrent workers "
                            f"(--executor ray)") from None
                    raise
                for j, k in enumerate(ks):
                    for n in buffer_names:
                        buffers[k][n].copy_(bf[n][j])
                bad = [ks[j] for j in range(len(ks)) if not torch.isfinite(losses[j])]
                if bad:
                    raise FloatingPointError(f"{description}: loss of stacked fold {bad[0]} became non-finite at "
                                             f"step {step + 1}; lower lr or use fp32")
                total_loss = total_loss + losses.sum()
                for j, k in enumerate(ks):  # the learning curves, as fit_classifier's (EpochTally)
                    n_b = int(ys_.shape[1])
                    tallies[k][0] += float(losses[j].detach()) * n_b
                    tallies[k][1] += int(correct[j])
                    tallies[k][2] += n_b
                    if (step + 1) % setup.folds[k].steps_per_epoch == 0:
                        t = tallies[k]
                        curves[k].append(((step + 1) // setup.folds[k].steps_per_epoch, t[0] / t[2], t[1] / t[2]))
                        tallies[k] = [0.0, 0, 0]
            opt.zero_grad(set_to_none=True)
            total_loss.backward()
            opt.step()
            sched.step()
            if (step + 1) % setup.folds[0].steps_per_epoch == 0:
                report_epoch(rt, f"{description} x{K}", (step + 1) // setup.folds[0].steps_per_epoch, cfg.epochs)
    for m, curve in zip(models, curves):
        m.training_curve = curve
    return [m.eval() for m in models]


def _draw_dropout_masks(batches: dict, drop_calls: list, rng_states: list, device: str) -> dict[int, list]:
    """Per fold, the dropout masks of this step, drawn from the fold's own global-RNG stream with
    ``F.dropout`` itself (so exactly the numbers the fold's own training would draw)."""
    if not drop_calls:
        return {k: [] for group in batches.values() for k, _, _ in group}
    is_cuda = device.startswith("cuda")
    out = {}
    with torch.random.fork_rng(devices=[torch.device(device)] if is_cuda else []):
        for b, group in batches.items():
            for k, _, _ in group:
                if is_cuda:
                    torch.cuda.set_rng_state(rng_states[k], device)
                else:
                    torch.set_rng_state(rng_states[k])
                out[k] = [nn.functional.dropout(torch.ones((b, *shape), dtype=dtype, device=device), p, True)
                          for p, shape, dtype in drop_calls]
                rng_states[k] = torch.cuda.get_rng_state(device) if is_cuda else torch.get_rng_state()
    return out
