"""Saliency: Grad-CAM for the 2D and 3D networks (the MERANet paper's Figure 7) and a quantitative
localisation score on the embedded dataset, whose clips come with known motion masks.

* :func:`grad_cam` (Selvaraju et al., ICCV 2017): the gradient of the target class score with
  respect to a layer's activations, averaged over its spatial (and temporal) positions, weights the
  activation channels; the ReLU of the weighted sum is upsampled to the input size and scaled to
  [0, 1] per sample. The default layer is the last one (in execution order) whose output is still a
  feature map with more than one channel and more than one position: the last residual stage of
  a ResNet or MERANet.
* :func:`localisation_score`: the share of the saliency mass inside the motion mask (the
  energy-based pointing game, Wang et al., Score-CAM, CVPRW 2020), with the mask's share of the
  image as its chance level. 3D maps are averaged over time first, since the masks are spatial.
* :func:`saliency_study`: trains each method once on the training side of a subject hold-out of
  the synthetic dataset, computes Grad-CAM on the held-out subjects' clips (for the predicted
  class) and reports the localisation score with a subject-cluster bootstrap interval, then per
  class motion (the AU that made the clip's class: ``negative`` is AU4, AU9 or AU15, whose masks
  differ in place and size), each against its masks' chance, plus example images and its
  provenance (the commit, marked when uncommitted; the CPU, threads, torch; each training's wall
  time). The MERANet paper claims its attention focuses on the right facial regions: this
  measures it against MERANet's attention-free baseline.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from mer_bench.atomic import save_figure

__all__ = ["render_saliency", "grad_cam", "default_target_layer", "localisation_score", "localisation_ceiling",
           "saliency_study"]


def default_target_layer(model, x) -> Any:
    """The last module (execution order) whose output is a feature map ``(N, C>1, ...>1)``."""
    import torch

    seen = []
    hooks = [m.register_forward_hook(lambda mod, inp, out: seen.append((mod, out)))
             for m in model.modules() if m is not model]
    try:
        with torch.no_grad():
            model(x[:1])
    finally:
        for h in hooks:
            h.remove()
    for mod, out in reversed(seen):
        if isinstance(out, torch.Tensor) and out.ndim in (4, 5) and out.shape[1] > 1 and \
                int(np.prod(out.shape[2:])) > 1:
            return mod
    raise ValueError("the model has no feature-map layer with more than one position for Grad-CAM")


def grad_cam(model, x, target_layer=None, class_idx=None):
    """Grad-CAM maps of inputs ``x`` ``(N, C, H, W)`` or ``(N, C, T, H, W)`` (torch tensor).

    Args:
        target_layer: an ``nn.Module`` of ``model`` (default: :func:`default_target_layer`).
        class_idx: ``(N,)`` classes to explain (default: the predicted ones).

    Returns:
        ``(maps, predicted)``: maps float32 numpy ``(N, H, W)`` or ``(N, T, H, W)`` in [0, 1] (all
        zero where the class score has no positive evidence); predicted ``(N,)`` int.
    """
    import torch
    import torch.nn.functional as F

    model.eval()
    layer = target_layer or default_target_layer(model, x)
    store: dict[str, Any] = {}
    h1 = layer.register_forward_hook(lambda m, i, o: store.__setitem__("a", o))
    h2 = layer.register_full_backward_hook(lambda m, gi, go: store.__setitem__("g", go[0]))
    try:
        x = x.clone().requires_grad_(True)
        logits = model(x)
        pred = logits.argmax(1)
        target = pred if class_idx is None else torch.as_tensor(class_idx, device=logits.device)
        model.zero_grad(set_to_none=True)
        logits.gather(1, target[:, None]).sum().backward()
    finally:
        h1.remove()
        h2.remove()
    a, g = store["a"].detach(), store["g"].detach()
    dims = tuple(range(2, a.ndim))
    cam = torch.relu((g.mean(dim=dims, keepdim=True) * a).sum(1, keepdim=True))
    mode = "trilinear" if cam.ndim == 5 else "bilinear"
    cam = F.interpolate(cam, size=x.shape[2:], mode=mode, align_corners=False)[:, 0]
    flat = cam.flatten(1)
    lo, hi = flat.min(1).values, flat.max(1).values
    scale = torch.where(hi - lo > 0, hi - lo, torch.ones_like(hi))
    cam = ((flat - lo[:, None]) / scale[:, None]).view_as(cam)
    cam = torch.where((hi - lo > 0).view(-1, *([1] * (cam.ndim - 1))), cam, torch.zeros_like(cam))
    return cam.numpy().astype(np.float32), pred.numpy()


def localisation_score(maps: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """Share of each map's mass inside its mask ``(N,)``; maps ``(N, [T,] H, W)``, masks
    ``(N, H, W)`` bool. A map with no mass scores the mask's area share (chance)."""
    m = maps.mean(axis=1) if maps.ndim == 4 else maps
    masks = masks.astype(bool)
    mass = m.sum(axis=(1, 2))
    inside = (m * masks).sum(axis=(1, 2))
    area = masks.mean(axis=(1, 2))
    return np.where(mass > 0, inside / np.where(mass > 0, mass, 1), area)


def localisation_ceiling(masks: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
    """The best localisation score ``(N,)`` that any non-negative map on a ``grid`` = ``(h, w)`` of
    cells reaches on each mask ``(N, H, W)`` once upsampled bilinearly to ``(H, W)``, as Grad-CAM
    upsamples a layer's map: the score is a ratio of two linear functions of the cells' weights, so
    its maximum over non-negative weights is at one cell (the best single cell). A layer whose map
    is ``1 x 2 x 2`` cannot score much above chance even when it points at the right quadrant; this
    says how far above chance its resolution allows.
    """
    import torch
    import torch.nn.functional as F

    h, w = (int(v) for v in grid)
    basis = torch.eye(h * w, dtype=torch.float64).view(h * w, 1, h, w)
    up = F.interpolate(basis, size=masks.shape[-2:], mode="bilinear", align_corners=False)[:, 0].numpy()
    share = np.einsum("khw,nhw->nk", up, masks.astype(np.float64)) / up.sum(axis=(1, 2))[None]
    return share.max(axis=1)


def _output_grid(model, layer, x) -> tuple[int, int]:
    """The spatial ``(h, w)`` of ``layer``'s output on inputs ``x``."""
    import torch

    shape: list = []
    hook = layer.register_forward_hook(lambda m, i, o: shape.append(tuple(o.shape)))
    try:
        with torch.no_grad():
            model.eval()
            model(x)
    finally:
        hook.remove()
    return shape[0][-2], shape[0][-1]


def saliency_study(methods: list[str], preset: str | None = None, seed: int = 0, out_dir: str | Path | None = None,
                   n_examples: int = 4, dataset_options: dict | None = None,
                   overrides: dict[str, Any] | None = None, layer: str | None = None) -> dict[str, Any]:
    """Train each method on a subject hold-out of the synthetic dataset and score its Grad-CAM maps
    on the held-out clips; see the module docstring. Returns a JSON-ready dict; with ``out_dir``,
    writes ``saliency-<method>.png`` examples there. ``layer``: a module name of the networks
    (e.g. ``layer3``) instead of the default last feature-map stage.

    Raises:
        ValueError: a method without a network (Grad-CAM needs gradients), or an unknown layer.
    """
    import time

    import torch

    from mer_bench import stats
    from mer_bench.datasets.synthetic import SyntheticMER
    from mer_bench.method import resolve_params
    from mer_bench.pipeline.runner import git_commit
    from mer_bench.protocols.holdout import SubjectHoldout
    from mer_bench.registry import METHODS
    from mer_bench.runtime import cpu_description

    for name in methods:  # before any data is rendered
        if not hasattr(METHODS.get(name), "build_model"):
            raise ValueError(f"{name} has no network: Grad-CAM needs a neural method")
    ds = SyntheticMER(**(dataset_options or {}))
    table = ds.table()
    fold = SubjectHoldout(test_size=0.25).folds(table, seed)[0]
    masks = ds.motion_mask(fold.test)
    subjects = table["subject"].to_numpy()[fold.test]
    aus = table["aus"].astype(str).to_numpy()[fold.test]
    emotion_of = dict(zip(aus, table["emotion"].astype(str).to_numpy()[fold.test]))  # an AU makes one class
    au_groups = sorted(emotion_of, key=lambda a: (emotion_of[a], a))
    result: dict[str, Any] = {"dataset": "synthetic", "dataset_options": ds.options(), "seed": seed,
                              "provenance": {"commit": git_commit(), "cpu": cpu_description(),
                                             "threads": torch.get_num_threads(), "torch": torch.__version__},
                              "layer": layer or "the last feature-map stage",
                              "test_clips": int(len(fold.test)), "test_subjects": int(len(set(subjects))),
                              "mask_area": float(masks.mean()),
                              "by_au": [{"aus": a, "emotion": emotion_of[a],
                                         "clips": int((aus == a).sum()), "mask_area": float(masks[aus == a].mean())}
                                        for a in au_groups],
                              "methods": {}}
    scores = {}
    for name in methods:
        cls = METHODS.get(name)
        chosen = preset if preset in (getattr(cls, "presets", None) or {}) else ds.preset_for(cls)
        params = {**resolve_params(cls, chosen, overrides or {}), "random_state": seed}
        rep = cls.info.choose_representation(ds.representations)
        started = time.perf_counter()
        method = cls(**params).fit(ds.samples(rep, fold.train))
        train_s = time.perf_counter() - started
        x = method._prepare(ds.load(rep, fold.test))
        torch.manual_seed(0)
        target = None
        if layer is not None:
            modules = dict(method.model_.named_modules())
            if layer not in modules:
                top = [n for n in modules if n and "." not in n]
                raise ValueError(f"{name} has no layer {layer!r}; top-level modules: {', '.join(top)}")
            target = modules[layer]
        target = target if target is not None else default_target_layer(method.model_, x)
        grid = _output_grid(method.model_, target, x[:1])
        maps, pred = grad_cam(method.model_, x, target)
        if maps.shape[-2:] != masks.shape[-2:]:
            raise ValueError(f"{name}: maps {maps.shape} do not match the masks {masks.shape}; use size=None")
        s = localisation_score(maps, masks)
        scores[name] = s
        boot = _subject_bootstrap_mean(s, subjects)
        result["methods"][name] = {"params": params, "preset": chosen, "representation": rep,
                                   "localisation": float(s.mean()),
                                   "ci": boot, "train_s": train_s,
                                   "by_au": {a: float(s[aus == a].mean()) for a in au_groups},
                                   "grid": list(grid), "ceiling": float(localisation_ceiling(masks, grid).mean()),
                                   "accuracy": float((pred == table["label"].to_numpy()[fold.test]).mean())}
        if out_dir is not None:
            tag = name if layer is None else f"{name}-{layer}"
            result["methods"][name]["figure"] = str(_figure(tag, ds.load(rep, fold.test[:n_examples]),
                                                           maps[:n_examples], masks[:n_examples], out_dir))
    if len(methods) == 2:
        a, b = (scores[m] for m in methods)
        per = [np.array([v[subjects == s].mean() for s in sorted(set(subjects))]) for v in (a, b)]
        result["difference"] = {"a_minus_b": float((a - b).mean()),
                                "ci": _subject_bootstrap_mean(a - b, subjects),
                                "bayes": stats.bayesian_signed_rank(*per, rope=0.01) if len(per[0]) >= 2 else None}
    return result


def _subject_bootstrap_mean(values: np.ndarray, subjects: np.ndarray, n: int = 10_000) -> list[float]:
    ids = sorted(set(subjects))
    groups = [values[subjects == s] for s in ids]
    sums = np.array([g.sum() for g in groups])
    counts = np.array([len(g) for g in groups])
    rng = np.random.default_rng(0)
    draw = rng.integers(0, len(ids), (n, len(ids)))
    means = sums[draw].sum(1) / counts[draw].sum(1)
    return [float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))]


def _figure(name: str, inputs: np.ndarray, maps: np.ndarray, masks: np.ndarray, out_dir) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k = len(inputs)
    fig, axes = plt.subplots(2, k, figsize=(2.0 * k, 4.2), squeeze=False)
    for i in range(k):
        img = inputs[i]
        img = img[:, img.shape[1] // 2] if img.ndim == 4 else img  # middle frame of a clip
        img = np.moveaxis(img[:3], 0, -1)
        img = (img - img.min()) / max(float(img.max() - img.min()), 1e-8)
        cam = maps[i].mean(0) if maps[i].ndim == 3 else maps[i]
        axes[0, i].imshow(img)
        axes[0, i].contour(masks[i], levels=[0.5], colors="yellow", linewidths=0.8)
        axes[1, i].imshow(img)
        axes[1, i].imshow(cam, cmap="jet", alpha=0.5, vmin=0, vmax=1)
        axes[1, i].contour(masks[i], levels=[0.5], colors="white", linewidths=0.8)
        for ax in axes[:, i]:
            ax.axis("off")
    fig.suptitle(f"{name}: input (motion mask in yellow) and Grad-CAM", fontsize=9)
    fig.tight_layout()
    path = Path(out_dir) / f"saliency-{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    save_figure(fig, path)
    plt.close(fig)
    return path


def _provenance(res: dict[str, Any]) -> str:
    """One line: the commit (marked when uncommitted), CPU, threads, torch and each training's time."""
    from mer_bench.provenance import clean_commit, wall_text

    p = res["provenance"]
    commit = p["commit"] if clean_commit(p["commit"]) else f"{p['commit']} (**uncommitted code**: not reproducible)"
    times = "; ".join(f"{n} trained in {wall_text(r['train_s'])}" for n, r in res["methods"].items())
    return f"- commit {commit}; on cpu ({p['cpu']}, {p['threads']} thread(s)); torch {p['torch']}; {times}"


def render_saliency(res: dict[str, Any], methods: list[str], preset: str | None, seed: int, overrides: list[str],
                    layer: str | None) -> str:
    """The markdown of a saliency study (:func:`saliency_study`'s result), with the command that
    reproduces it (``preset``: the one the user named, ``None`` for each method's suggestion;
    ``overrides``: the ``--set KEY=VALUE`` items)."""
    from mer_bench.commands import mer_bench_command

    lines = ["# Saliency: Grad-CAM localisation on the embedded dataset", "",
             f"Each method is trained once on the training side of a subject hold-out (seed {res['seed']}) of the "
             f"synthetic dataset ({res['test_clips']} held-out clips from {res['test_subjects']} subjects) and "
             f"explained with Grad-CAM (Selvaraju et al., ICCV 2017) at {res['layer']}, for the predicted "
             "class. Localisation: the share of the saliency mass inside the clip's known motion mask (energy-based "
             f"pointing game), averaged over clips; chance (the masks' area share) is {res['mask_area']:.3f}. "
             "Intervals: 95 % subject-cluster bootstrap.", "",
             "*Ceiling*: the best score any non-negative map on the layer's grid reaches once upsampled "
             "(`mer_bench.saliency.localisation_ceiling`): a coarse layer cannot score far above chance.", "",
             "| method | preset | localisation [95% CI] | layer grid | ceiling | accuracy on held-out clips |",
             "|---|---|---|---|---|---|"]
    for name, r in res["methods"].items():
        lines.append(f"| {name} | {r.get('preset') or 'defaults'} | {r['localisation']:.3f} "
                     f"[{r['ci'][0]:.3f}, {r['ci'][1]:.3f}] | {'x'.join(str(v) for v in r['grid'])} | "
                     f"{r['ceiling']:.3f} | {r['accuracy']:.3f} |")
    names = list(res["methods"])
    lines += ["", "Per class motion (the AU that made the clip's class; its mask is where that motion is): "
              "localisation against the chance of those masks.", "",
              "| AU (class) | held-out clips | chance | " + " | ".join(names) + " |",
              "|---|---|---|" + "---|" * len(names)]
    for g in res["by_au"]:
        lines.append(f"| AU{g['aus']} ({g['emotion']}) | {g['clips']} | {g['mask_area']:.3f} | " +
                     " | ".join(f"{res['methods'][n]['by_au'][g['aus']]:.3f}" for n in names) + " |")
    if "difference" in res:
        d = res["difference"]
        a, b = methods
        lines += ["", f"{a} minus {b}: {d['a_minus_b']:+.3f} [{d['ci'][0]:+.3f}, {d['ci'][1]:+.3f}]."]
        if d["bayes"]:
            bayes = d["bayes"]
            lines[-1] += (f" Bayesian signed-rank over subjects (ROPE ±0.01): P({a} better) {bayes['p_a_better']:.2f}, "
                          f"P(equivalent) {bayes['p_equivalent']:.2f}, P({b} better) {bayes['p_b_better']:.2f}.")
    lines += ["", *[f"![{n}]({Path(r['figure']).name})" for n, r in res["methods"].items()],
              "", "## Provenance", "", _provenance(res)]
    lines += ["", "Reproduce: `" + mer_bench_command(
                  "saliency", *[a for m in methods for a in ("--method", m)], *(["--preset", preset] if preset else []),
                  "--seed", seed,
                  *[a for k, v in res["dataset_options"].items() for a in ("--dataset-set", f"{k}={v}")],
                  *[a for o in overrides for a in ("--set", o)],
                  *(["--layer", layer] if layer else [])) + "`", ""]
    return "\n".join(lines)
