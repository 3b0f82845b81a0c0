"""``mer-bench report``: the leaderboard markdown plus its plots, as PNG files beside it.

For one dataset and protocol (rows with stored predictions only):

* ``<name>-forest.png``: UF1 with its 95 % interval for every ranked row (leak-free, blue) and
  every leaky row (red), in the board's order; linked at the top of the board;
* ``<name>-confusion.png``: the pooled confusion matrix of every row (rows = truth, summed over
  seeds), row-normalised, with counts;
* ``<name>-subjects.png``: the distribution over test subjects of each row's per-subject
  accuracy (every LOSO fold is one subject; the pooled UF1 hides this spread);
* ``<name>-cd.png``: a critical-difference diagram of the ranked rows only, on the table's own
  statistic: each row at its pooled UF1, with a bar joining rows that the pairwise paired subject
  randomisation tests on UF1, Holm-adjusted over all pairs (:func:`mer_bench.stats.pairwise_holm`),
  do not separate at .05. (Average ranks of a per-subject score would disagree with the table:
  on subjects that lack a class a majority-class predictor out-ranks chance.)
* ``<name>-curves.png``: learning curves of every row that trains in epochs: the mean training
  cross-entropy and training accuracy per epoch over its folds and seeds, with the range over
  folds shaded (stored per fold since store layout 7; older runs have none). These are training
  figures only: a fixed-epoch protocol chooses nothing on them.

Plots use seaborn/matplotlib with the Agg backend and are linked from the markdown.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from mer_bench.atomic import save_figure
from mer_bench.data import subject_key

__all__ = ["write_report", "plot_files", "per_subject_accuracy", "cd_cliques", "learning_curves_figure"]


def plot_files(name: str) -> list[tuple[str, str]]:
    """``(caption, file name)`` of the plots of board ``name``."""
    return [("Forest plot: UF1 and its 95 % interval per row (blue: ranked, leak-free; red: leaky)",
             f"{name}-forest.png"),
            ("Confusion matrices (rows: truth; row-normalised, counts in cells)", f"{name}-confusion.png"),
            ("Per-subject accuracy (one point per test subject)", f"{name}-subjects.png"),
            ("Critical-difference diagram of the ranked rows at their pooled UF1 (bars: no significant difference, "
             "paired subject randomisation tests + Holm)", f"{name}-cd.png"),
            ("Learning curves: training loss and accuracy per epoch (mean over folds and seeds; shaded: range over "
             "folds)", f"{name}-curves.png")]


def per_subject_accuracy(preds: list[pd.DataFrame]) -> pd.Series:
    """Accuracy per test subject (``dataset/subject``), averaged over seeds."""
    per = []
    for p in preds:
        key = subject_key(p)
        per.append((p["y_true"] == p["y_pred"]).groupby(key).mean())
    return pd.concat(per, axis=1).mean(axis=1)


def cd_cliques(p_adjusted: np.ndarray, order: list[int], alpha: float = 0.05) -> list[tuple[int, int]]:
    """Maximal runs ``(first, last)`` of positions in rank ``order`` whose members are pairwise
    not significantly different (adjusted p >= ``alpha``); runs of one are left out."""
    k = len(order)
    runs = []
    for i in range(k):
        j = i
        while j + 1 < k and all(p_adjusted[order[a], order[j + 1]] >= alpha for a in range(i, j + 1)):
            j += 1
        if j > i and not any(a <= i and j <= b for a, b in runs):
            runs.append((i, j))
    return runs


def learning_curves_figure(store, rows: pd.DataFrame):
    """Training loss and accuracy per epoch for each row of ``rows`` (board rows with ``_run_ids``)
    whose runs have stored curves (:meth:`mer_bench.store.Store.curves`): the mean over folds and
    seeds, shaded between the lowest and highest fold. A figure saying so when no row has any."""
    import matplotlib.pyplot as plt

    curves = []
    for _, r in rows.iterrows():
        frames = [store.curves(run_id).assign(run=run_id) for run_id in r.get("_run_ids") or []]
        frames = [f for f in frames if not f.empty]
        if frames:
            curves.append((_label(r), pd.concat(frames)))
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    if not curves:
        for ax in axes:
            ax.axis("off")
        axes[0].text(0.5, 0.5, "no learning curves stored: methods without epochs, or runs made before store "
                               "layout 7", ha="center", va="center", fontsize=8, transform=fig.transFigure)
        return fig
    for k, (label, df) in enumerate(curves):
        for ax, col in zip(axes, ("loss", "accuracy")):
            by = df.groupby("epoch")[col]
            mean = by.mean()
            ax.plot(mean.index, mean.to_numpy(), color=f"C{k % 10}", lw=1.2, label=label)
            ax.fill_between(mean.index, by.min().to_numpy(), by.max().to_numpy(), color=f"C{k % 10}", alpha=0.15,
                            lw=0)
    axes[0].set_ylabel("training cross-entropy (mean over the epoch)")
    axes[1].set_ylabel("training accuracy")
    for ax in axes:
        ax.set_xlabel("epoch")
    axes[1].legend(fontsize=6, loc="lower right")
    fig.suptitle("learning curves (training clips only; the evaluated model is the last epoch's)", fontsize=8)
    fig.tight_layout()
    return fig


def _label(row) -> str:
    extra = f" [{row['preset']}]" if row.get("preset") not in ("", "defaults", None) else ""
    leaky = " (LEAKY)" if row.get("leaky") != "no" else ""
    return f"{row['method']}{extra}{leaky}"


def write_report(store, dataset: str, protocol: str, out_dir: str | Path = "leaderboards",
                 name: str | None = None, n_resamples: int = 10_000, allow_dirty: bool = False) -> list[Path]:
    """Write the board markdown and its plots into ``out_dir``; returns the paths written.

    Raises:
        ValueError: no completed run with predictions for this dataset and protocol.
        UnpublishableError: rows measured with uncommitted or unknown code, unless ``allow_dirty``
            (:func:`mer_bench.leaderboard.check_publishable`); nothing is written.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    from mer_bench import stats
    from mer_bench.leaderboard import check_publishable, leaderboard_rows, render_markdown, write_leaderboard
    from mer_bench.metrics import confusion_matrix

    rows = leaderboard_rows(store, protocol, dataset, n_resamples=n_resamples)
    check_publishable(rows, allow_dirty)  # before anything is written
    with_preds = rows["_preds"].apply(lambda v: isinstance(v, list)) if not rows.empty else None
    measured = rows[with_preds & rows["table"].isin(["ranked", "inflation"])] if not rows.empty else rows
    if measured.empty:
        raise ValueError(f"no completed runs with predictions for dataset {dataset!r} and protocol {protocol!r}; "
                         f"run one first (mer-bench run ...) or check --store")
    name = name or protocol
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = dict((cap, out / fn) for cap, fn in plot_files(name))
    paths = []
    sns.set_theme(style="whitegrid", context="paper")

    # forest plot: UF1 and its interval, ranked (leak-free) and leaky rows in the board's order
    shown = measured[measured["_uf1_ci"].apply(lambda v: isinstance(v, tuple))]
    fig, ax = plt.subplots(figsize=(7, 0.4 * max(len(shown), 1) + 1.2))
    for pos, (_, r) in enumerate(shown.iterrows()):
        lo, hi = r["_uf1_ci"]
        colour = "C0" if r["table"] == "ranked" else "C3"
        ax.plot([lo, hi], [pos, pos], color=colour, lw=2)
        ax.plot(r["_uf1"], pos, "o", color=colour, ms=5)
    ax.set_yticks(range(len(shown)), [_label(r) for _, r in shown.iterrows()], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("UF1 (pooled), 95 % subject-bootstrap interval")
    ax.set_title(f"{dataset} / {protocol}: blue = ranked (leak-free), red = leaky (not ranked)", fontsize=8)
    fig.tight_layout()
    path = files[plot_files(name)[0][0]]
    save_figure(fig, path)
    plt.close(fig)
    paths.append(path)

    # confusion matrices
    n = len(measured)
    cols = min(n, 4)
    fig, axes = plt.subplots((n + cols - 1) // cols, cols, figsize=(3.2 * cols, 3.0 * ((n + cols - 1) // cols)),
                             squeeze=False)
    for ax, (_, r) in zip(axes.ravel(), measured.iterrows()):
        classes = list(r["_classes"])
        cm = sum(confusion_matrix(p["y_true"], p["y_pred"], len(classes)) for p in r["_preds"])
        norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
        sns.heatmap(norm, annot=cm, fmt="d", cmap="Blues", vmin=0, vmax=1, cbar=False, ax=ax,
                    xticklabels=classes, yticklabels=classes)
        ax.set_title(_label(r), fontsize=8)
        ax.set_xlabel("predicted")
        ax.set_ylabel("truth")
    for ax in axes.ravel()[n:]:
        ax.axis("off")
    fig.tight_layout()
    path = files[plot_files(name)[1][0]]
    save_figure(fig, path)
    plt.close(fig)
    paths.append(path)

    # per-subject accuracy
    acc = {(_label(r), i): per_subject_accuracy(r["_preds"]) for i, r in measured.iterrows()}
    long = pd.concat([pd.DataFrame({"method": lab, "accuracy": s.to_numpy()}) for (lab, _), s in acc.items()])
    fig, ax = plt.subplots(figsize=(7, 0.45 * n + 1.2))
    sns.boxplot(data=long, x="accuracy", y="method", color="white", fliersize=0, ax=ax)
    sns.stripplot(data=long, x="accuracy", y="method", size=3, alpha=0.6, ax=ax)
    ax.set_xlim(-0.02, 1.02)
    ax.set_title(f"{dataset} / {protocol}: accuracy per test subject")
    fig.tight_layout()
    path = files[plot_files(name)[2][0]]
    save_figure(fig, path)
    plt.close(fig)
    paths.append(path)

    # critical-difference diagram of the ranked rows on the table's own statistic: pooled UF1 on the x axis,
    # bars joining rows that the pairwise paired subject randomisation tests (Holm) do not separate
    ranked = measured[measured["table"] == "ranked"]
    n = max(len(ranked), 1)
    fig, ax = plt.subplots(figsize=(7, 0.35 * n + 1.6))
    try:
        stacked = [stats.stack_runs(r["_preds"]) for _, r in ranked.iterrows()]
        if any(st is None for st in stacked):
            raise stats.StatsError("a ranked row's seeds were tested on different clips")
        p_adj = stats.pairwise_holm(stacked, len(ranked.iloc[0]["_classes"]), n_resamples=n_resamples)
        uf1 = ranked["_uf1"].to_numpy(float)
        labels = [_label(r) for _, r in ranked.iterrows()]
        order = list(np.argsort(-uf1, kind="stable"))
        span = max(uf1.max() - uf1.min(), 0.05)
        ax.set_xlim(uf1.min() - 0.15 * span, uf1.max() + 0.15 * span)
        ax.set_ylim(-len(labels) - 1, 1 + 0.15 * len(labels))
        for pos, m in enumerate(order):
            ax.plot([uf1[m], uf1[m]], [0, -pos - 1], color="0.4", lw=0.8)
            ax.text(uf1[m], -pos - 1.2, f"{labels[m]} ({uf1[m]:.3f})", ha="center", va="top", fontsize=7)
            ax.plot(uf1[m], 0, "o", color="k", ms=3)
        for level, (a, b) in enumerate(cd_cliques(p_adj, order)):
            ax.plot([uf1[order[a]], uf1[order[b]]], [0.3 + 0.15 * level] * 2, color="C3", lw=3)
        ax.set_yticks([])
        ax.set_xlabel("UF1 (pooled over folds, as in the ranked table)")
        ax.set_title("ranked rows; bars: no significant difference in UF1 (paired subject randomisation test, Holm "
                     "over all pairs, .05)", fontsize=8)
    except stats.StatsError as exc:
        ax.axis("off")
        ax.text(0.5, 0.5, f"no critical-difference diagram: {exc}", ha="center", va="center", wrap=True, fontsize=8)
    fig.tight_layout()
    path = files[plot_files(name)[3][0]]
    save_figure(fig, path)
    plt.close(fig)
    paths.append(path)

    path = files[plot_files(name)[4][0]]
    fig = learning_curves_figure(store, rows[with_preds])  # every measured row, ablation arms included
    save_figure(fig, path)
    plt.close(fig)
    paths.append(path)

    title = f"mer-bench leaderboard: {dataset} / {protocol}"
    md = render_markdown(rows, title=title, plots=plot_files(name))
    paths.insert(0, write_leaderboard(md, out, name))
    return paths
