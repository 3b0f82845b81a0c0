"""Statistics for leaderboards and ablations (the subject-cluster bootstrap after Field & Welsh,
JRSS-B 69:369-390, 2007). Importable without torch.

Under LOSO the independent units are **subjects** (clusters of clips), so every interval and
test here resamples or permutes subjects, never clips:

* :func:`cluster_bootstrap_ci`: percentile CI of pooled UF1 / UAR by resampling subjects with
  replacement (optionally within strata, e.g. the composite's databases), pooling their
  predictions and recomputing the metric (Field & Welsh, JRSS-B 69:369-390, 2007). Intervals from
  fewer than :data:`FEW_CLUSTERS` subjects are flagged: cluster bootstraps under-cover with few
  clusters.
* :func:`paired_comparison`: two methods on the same folds; a paired subject bootstrap CI on the
  difference and a paired randomisation test that swaps the two methods' predictions per
  subject (the p-value).
* :func:`holm`: Holm's step-down adjustment (``statsmodels ... multipletests(method="holm")``;
  statsmodels' default is Holm-Sidak, so the method is always named).
* :func:`mcnemar_test`: McNemar's exact test on paired correctness (statsmodels); valid for one
  fixed hold-out split (Dietterich 1998), a secondary view under LOSO.
* :func:`wilcoxon_holm`: pairwise Wilcoxon signed-rank tests across blocks (datasets) with Holm,
  the significance matrix of a critical-difference diagram (not Nemenyi: Benavoli et al. 2016).
* :func:`paired_power`: the power of :func:`paired_comparison` to detect a given difference with a
  given number of subjects, by simulation from a pilot pair of runs (how the ablation
  configuration's size was chosen).
* :func:`bayesian_signed_rank`: P(A better), P(equivalent within ROPE), P(B better) from the
  Bayesian signed-rank test (Benavoli, Corani, Demsar & Zaffalon, JMLR 18(77), 2017), by Monte
  Carlo over the Dirichlet process posterior.

Bad input (one subject, runs on different samples, one block) raises :class:`StatsError` with an
explanation instead of returning a meaningless p-value.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mer_bench.data import subject_key

__all__ = ["StatsError", "Interval", "Comparison", "FEW_CLUSTERS", "cluster_bootstrap_ci", "paired_comparison",
           "stack_runs", "split_mean_ci",
           "holm", "mcnemar_test", "wilcoxon_holm", "pairwise_holm", "bayesian_signed_rank", "subject_counts",
           "scores_from_counts", "Power", "paired_power"]

#: fewer subjects than this: the interval is flagged (cluster bootstraps under-cover with few clusters)
FEW_CLUSTERS = 24
METRICS = ("uf1", "uar")


class StatsError(ValueError):
    """A statistic asked for on data that cannot support it (the message says why)."""


@dataclass(frozen=True)
class Interval:
    """A point estimate with a percentile interval. ``few_clusters``: built from fewer than
    :data:`FEW_CLUSTERS` subjects (may under-cover)."""

    metric: str
    estimate: float
    low: float
    high: float
    n_clusters: int
    confidence: float
    n_resamples: int
    few_clusters: bool


@dataclass(frozen=True)
class Comparison:
    """A minus B on the same samples: the pooled difference, its paired-bootstrap interval and the
    randomisation-test p-value (two-sided)."""

    metric: str
    difference: float
    low: float
    high: float
    p_value: float
    n_clusters: int
    #: set by :func:`compare_with_reference`: significant at .05 after Holm's adjustment
    significant: bool | None = None


def stack_runs(preds: list) -> tuple | None:
    """The seeds of one configuration as arrays: ``(y_true (N,), y_pred (R, N), clusters (N,),
    strata (N,), sample_ids (N,))`` from per-seed prediction tables (columns ``sample_id``,
    ``dataset``, ``subject``, ``y_true``, ``y_pred``, as :meth:`mer_bench.store.Store.predictions`);
    clusters are ``dataset/subject``; later seeds are put in seed 0's clip order. ``None`` when the
    seeds are not on the same samples (e.g. hold-outs drawn per seed)."""
    ids = preds[0]["sample_id"].to_numpy()
    aligned = [preds[0]]
    for p in preds[1:]:
        other = p["sample_id"].to_numpy()
        if len(other) != len(ids) or set(other) != set(ids):
            return None
        # the same clips in another order (e.g. K folds drawn per seed): seed 0's order
        aligned.append(p if np.array_equal(other, ids) else p.set_index("sample_id", drop=False).loc[ids])
    preds = aligned
    p0 = preds[0]
    clusters = subject_key(p0)
    return (p0["y_true"].to_numpy(), np.stack([p["y_pred"].to_numpy() for p in preds]), clusters,
            p0["dataset"].astype(str).to_numpy(), ids)


def subject_counts(y_true, y_pred, subjects, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-subject ``(tp, fp, fn)`` counts ``(S, 3, C)`` and the subject ids ``(S,)``.

    Raises:
        StatsError: empty or mismatched inputs, or labels outside ``0..n_classes-1``.
    """
    y_true, y_pred, subjects = np.asarray(y_true), np.asarray(y_pred), np.asarray(subjects)
    if not (len(y_true) == len(y_pred) == len(subjects)) or len(y_true) == 0:
        raise StatsError(f"need equally long, non-empty labels, predictions and subjects; got {len(y_true)}, "
                         f"{len(y_pred)}, {len(subjects)}")
    for name, y in (("labels", y_true), ("predictions", y_pred)):
        if y.min() < 0 or y.max() >= n_classes:
            raise StatsError(f"{name} outside 0..{n_classes - 1}")
    ids, s = np.unique(subjects, return_inverse=True)
    counts = np.zeros((len(ids), 3, n_classes))
    hit = y_true == y_pred
    np.add.at(counts, (s[hit], 0, y_true[hit]), 1)
    np.add.at(counts, (s[~hit], 1, y_pred[~hit]), 1)
    np.add.at(counts, (s[~hit], 2, y_true[~hit]), 1)
    return counts, ids


def scores_from_counts(counts: np.ndarray, metric: str) -> np.ndarray:
    """Pooled UF1 or UAR from summed counts ``(..., 3, C)``, averaged over the classes with true
    samples (as :func:`mer_bench.metrics.pooled_scores` with ``absent="exclude"``)."""
    tp, fp, fn = counts[..., 0, :], counts[..., 1, :], counts[..., 2, :]
    present = (tp + fn) > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        if metric == "uf1":
            per = np.where(present, 2 * tp / (2 * tp + fp + fn), 0.0)
        elif metric == "uar":
            per = np.where(present, tp / (tp + fn), 0.0)
        else:
            raise StatsError(f"metric must be one of {METRICS}, got {metric!r}")
        return per.sum(-1) / present.sum(-1)


def _resample_weights(n: int, strata: np.ndarray | None, n_resamples: int, rng) -> np.ndarray:
    """``(B, n)`` multiplicities of each subject in each bootstrap resample (within strata)."""
    w = np.zeros((n_resamples, n))
    groups = [np.arange(n)] if strata is None else [np.flatnonzero(strata == g) for g in np.unique(strata)]
    rows = np.arange(n_resamples)[:, None]
    for members in groups:
        draw = members[rng.integers(0, len(members), (n_resamples, len(members)))]
        np.add.at(w, (rows, draw), 1)
    return w


def _subject_strata(subjects, strata, ids) -> np.ndarray | None:
    if strata is None:
        return None
    first = {}
    for s, g in zip(np.asarray(subjects), np.asarray(strata)):
        if first.setdefault(s, g) != g:
            raise StatsError(f"subject {s!r} appears in two strata ({first[s]!r}, {g!r})")
    return np.asarray([first[s] for s in ids])


def _seed_counts(y_true, y_pred, subjects, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Counts ``(R, S, 3, C)`` for predictions ``(N,)`` (R = 1) or ``(R, N)`` (R seeds, same samples)."""
    preds = np.asarray(y_pred)
    preds = preds[None] if preds.ndim == 1 else preds
    per = [subject_counts(y_true, p, subjects, n_classes) for p in preds]
    return np.stack([c for c, _ in per]), per[0][1]


def _mean_score(counts: np.ndarray, metric: str) -> np.ndarray:
    """Seed-mean pooled score of counts ``(..., R, 3, C)`` (already summed over subjects)."""
    return scores_from_counts(counts, metric).mean(-1)


def cluster_bootstrap_ci(y_true, y_pred, subjects, n_classes: int, metric: str = "uf1", strata=None,
                         n_resamples: int = 10_000, confidence: float = 0.95, seed: int = 0) -> Interval:
    """Subject-cluster bootstrap percentile interval of a pooled metric; see the module docstring.

    Args:
        y_true, subjects: ``(N,)`` pooled over all folds.
        y_pred: ``(N,)``, or ``(R, N)`` for R seeds on the same samples: the estimate is the mean
            over seeds, and each resample draws the same subjects for every seed.
        strata: ``(N,)`` stratum per sample (constant within a subject), e.g. the database.

    Raises:
        StatsError: fewer than 2 subjects, or bad inputs.
    """
    counts, ids = _seed_counts(y_true, y_pred, subjects, n_classes)
    if len(ids) < 2:
        raise StatsError(f"a subject-cluster interval needs at least 2 subjects; these predictions come from "
                         f"{len(ids)} ({', '.join(map(str, ids))}). Use a protocol with more test subjects")
    if not 0 < confidence < 1:
        raise StatsError(f"confidence must be in (0, 1), got {confidence}")
    rng = np.random.default_rng(seed)
    w = _resample_weights(len(ids), _subject_strata(subjects, strata, ids), n_resamples, rng)
    boot = _mean_score(np.einsum("bs,rsjc->brjc", w, counts), metric)
    alpha = (1 - confidence) / 2
    lo, hi = np.nanquantile(boot, [alpha, 1 - alpha])
    point = float(_mean_score(counts.sum(1), metric))
    return Interval(metric, point, float(lo), float(hi), len(ids), confidence, n_resamples,
                    len(ids) < FEW_CLUSTERS)


def split_mean_ci(runs: list[tuple], n_classes: int, metric: str = "uf1", n_resamples: int = 10_000,
                  confidence: float = 0.95, seed: int = 0) -> Interval:
    """Interval of the mean over seeds whose test sets differ (e.g. a hold-out drawn per seed):
    ``runs`` holds ``(y_true, y_pred, subjects)`` per seed; each bootstrap resample draws every
    seed's subjects independently and averages the per-seed pooled scores.

    Raises:
        StatsError: a seed with fewer than 2 test subjects, or no runs.
    """
    if not runs:
        raise StatsError("no runs to summarise")
    rng = np.random.default_rng(seed)
    boots, points, n_clusters = [], [], 0
    for y, p, subjects in runs:
        counts, ids = subject_counts(y, p, subjects, n_classes)
        if len(ids) < 2:
            raise StatsError(f"a seed's test side holds {len(ids)} subject(s); an interval needs at least 2")
        w = _resample_weights(len(ids), None, n_resamples, rng)
        boots.append(scores_from_counts(np.einsum("bs,sjc->bjc", w, counts), metric))
        points.append(float(scores_from_counts(counts.sum(0), metric)))
        n_clusters += len(ids)
    boot = np.mean(boots, axis=0)
    alpha = (1 - confidence) / 2
    lo, hi = np.nanquantile(boot, [alpha, 1 - alpha])
    few = min(len(set(r[2])) for r in runs) < FEW_CLUSTERS
    return Interval(metric, float(np.mean(points)), float(lo), float(hi), n_clusters, confidence, n_resamples, few)


def _aligned(a_ids, b_ids) -> None:
    a_ids, b_ids = np.asarray(a_ids), np.asarray(b_ids)
    if len(a_ids) != len(b_ids) or not np.array_equal(a_ids, b_ids):
        raise StatsError("the two runs are not on the same samples (different folds, datasets or subsets): a "
                         "paired comparison needs the same clips in the same order; compare runs of one protocol "
                         "and dataset")


def paired_comparison(y_true, pred_a, pred_b, subjects, n_classes: int, metric: str = "uf1", strata=None,
                      n_resamples: int = 10_000, confidence: float = 0.95, seed: int = 0,
                      sample_ids_a=None, sample_ids_b=None) -> Comparison:
    """A minus B: paired subject bootstrap CI and paired randomisation test (per-subject swaps).

    ``pred_a`` / ``pred_b``: ``(N,)`` or ``(R, N)`` (seeds; each side is averaged over its seeds).
    ``sample_ids_a`` / ``sample_ids_b``, when given, must be identical (the same clips in the
    same order); otherwise the predictions are taken as aligned.

    Raises:
        StatsError: misaligned runs, or fewer than 2 subjects.
    """
    if sample_ids_a is not None or sample_ids_b is not None:
        _aligned(sample_ids_a, sample_ids_b)
    if np.asarray(pred_a).shape[-1] != np.asarray(pred_b).shape[-1]:
        raise StatsError("the two runs have different numbers of predictions: not the same folds")
    ca, ids = _seed_counts(y_true, pred_a, subjects, n_classes)
    cb, _ = _seed_counts(y_true, pred_b, subjects, n_classes)
    if len(ids) < 2:
        raise StatsError(f"a paired comparison over subjects needs at least 2 subjects, got {len(ids)}")
    rng = np.random.default_rng(seed)
    diff = float(_mean_score(ca.sum(1), metric) - _mean_score(cb.sum(1), metric))
    w = _resample_weights(len(ids), _subject_strata(subjects, strata, ids), n_resamples, rng)
    boot = (_mean_score(np.einsum("bs,rsjc->brjc", w, ca), metric)
            - _mean_score(np.einsum("bs,rsjc->brjc", w, cb), metric))
    alpha = (1 - confidence) / 2
    lo, hi = np.nanquantile(boot, [alpha, 1 - alpha])
    # the null: per subject, A's and B's predictions are exchangeable (seeds averaged per side first)
    ma, mb = ca.mean(0), cb.mean(0)  # (S, 3, C) seed-mean counts
    swap = rng.random((n_resamples, len(ids))) < 0.5
    sa = np.where(swap[:, :, None, None], mb[None], ma[None]).sum(1)
    sb = np.where(swap[:, :, None, None], ma[None], mb[None]).sum(1)
    null = scores_from_counts(sa, metric) - scores_from_counts(sb, metric)
    if ca.shape[0] == cb.shape[0] == 1:
        diff_null_ref = diff
    else:  # with seed-mean counts the observed statistic is recomputed on the same footing
        diff_null_ref = float(scores_from_counts(ma.sum(0), metric) - scores_from_counts(mb.sum(0), metric))
    p = (1 + np.sum(np.abs(null) >= abs(diff_null_ref) - 1e-12)) / (n_resamples + 1)
    return Comparison(metric, diff, float(lo), float(hi), float(min(1.0, p)), len(ids))


def holm(p_values, alpha: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """Holm step-down: ``(reject (k,) bool, adjusted p (k,))`` (statsmodels ``multipletests``)."""
    from statsmodels.stats.multitest import multipletests

    p = np.asarray(p_values, float)
    if p.size == 0:
        return np.zeros(0, bool), np.zeros(0)
    reject, adjusted, _, _ = multipletests(p, alpha=alpha, method="holm")
    return reject, adjusted


def mcnemar_test(y_true, pred_a, pred_b) -> float:
    """McNemar's exact test (with continuity correction) on which clips each run gets right:
    the p-value. Valid for one fixed hold-out split; under LOSO it ignores clustering.

    Raises:
        StatsError: misaligned inputs.
    """
    from statsmodels.stats.contingency_tables import mcnemar

    y, a, b = np.asarray(y_true), np.asarray(pred_a), np.asarray(pred_b)
    if not len(y) == len(a) == len(b) or len(y) == 0:
        raise StatsError("McNemar needs the same non-empty set of clips for both runs")
    ra, rb = a == y, b == y
    table = [[np.sum(ra & rb), np.sum(ra & ~rb)], [np.sum(~ra & rb), np.sum(~ra & ~rb)]]
    return float(mcnemar(table, exact=True, correction=True).pvalue)


def wilcoxon_holm(scores, alpha: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """Pairwise two-sided Wilcoxon signed-rank tests between the columns (methods) of ``scores``
    ``(n_blocks, k)`` (rows: datasets or subjects), Holm-adjusted over the ``k(k-1)/2`` pairs.

    Returns:
        ``(adjusted p (k, k), average rank (k,))``; rank 1 is the best (highest score). The diagonal
        is 1.

    Raises:
        StatsError: fewer than 2 methods or fewer than 5 blocks (no two-sided Wilcoxon test can
            reach p < .05 with fewer), or missing scores.
    """
    from scipy.stats import rankdata, wilcoxon

    x = np.asarray(scores, float)
    if x.ndim != 2 or x.shape[1] < 2:
        raise StatsError(f"need a (blocks, methods) table with at least 2 methods, got shape {x.shape}")
    if x.shape[0] < 5:
        raise StatsError(f"{x.shape[0]} block(s): with fewer than 5 datasets (or subjects) a two-sided Wilcoxon "
                         f"test cannot reach p < .05, so no difference could ever be declared")
    if np.isnan(x).any():
        raise StatsError("missing scores: every method needs a score on every block")
    k = x.shape[1]
    pairs = [(i, j) for i in range(k) for j in range(i + 1, k)]
    raw = []
    for i, j in pairs:
        d = x[:, i] - x[:, j]
        raw.append(1.0 if np.allclose(d, 0) else float(wilcoxon(x[:, i], x[:, j], zero_method="wilcox").pvalue))
    _, adj = holm(raw, alpha)
    out = np.ones((k, k))
    for (i, j), p in zip(pairs, adj):
        out[i, j] = out[j, i] = p
    ranks = rankdata(-x, axis=1).mean(axis=0)
    return out, ranks


def pairwise_holm(stacked: list[tuple], n_classes: int, metric: str = "uf1", n_resamples: int = 10_000,
                  stratify: bool = True) -> np.ndarray:
    """Every pair of rows on the same clips compared by :func:`paired_comparison` on the pooled
    ``metric`` (paired subject randomisation test, seed 0), Holm-adjusted over the ``k(k-1)/2``
    pairs: the significance matrix of a critical-difference diagram drawn on the board's own
    statistic (a board's ranked rows; not per-subject ranks, which a majority-class predictor can
    win on subjects that lack a class).

    Args:
        stacked: :func:`stack_runs` of each row (``(y, y_pred (R, N), subjects, strata, ids)``).

    Returns:
        Adjusted p ``(k, k)``, diagonal 1.

    Raises:
        StatsError: fewer than 2 rows, or rows not on the same clips.
    """
    k = len(stacked)
    if k < 2:
        raise StatsError(f"need at least 2 rows to compare, got {k}")
    y, _, subjects, strata, ids = stacked[0]
    layers = strata if stratify and len(set(strata)) > 1 else None
    pairs = [(i, j) for i in range(k) for j in range(i + 1, k)]
    raw = []
    for i, j in pairs:
        _aligned(stacked[i][4], stacked[j][4])
        raw.append(paired_comparison(y, stacked[i][1], stacked[j][1], subjects, n_classes, metric, strata=layers,
                                     n_resamples=n_resamples, seed=0).p_value)
    _, adj = holm(raw)
    out = np.ones((k, k))
    for (i, j), p in zip(pairs, adj):
        out[i, j] = out[j, i] = p
    return out


def bayesian_signed_rank(a, b, rope: float = 0.01, n_samples: int = 50_000, seed: int = 0) -> dict[str, float]:
    """Bayesian signed-rank test of paired scores ``a``, ``b`` ``(n,)`` (e.g. per-subject UF1 of two
    ablation arms), with a region of practical equivalence ``[-rope, rope]`` on ``a - b``.

    The Dirichlet process posterior (prior strength 1 on a pseudo-observation at 0) is sampled
    ``n_samples`` times; each sample weighs the pairwise (Walsh) averages of the differences and
    assigns their mass to left / rope / right (Benavoli et al. 2017, section 4).

    Returns:
        ``{"p_a_better", "p_equivalent", "p_b_better"}`` (sum to 1).

    Raises:
        StatsError: unequal lengths, fewer than 2 pairs, or a negative ROPE.
    """
    a, b = np.asarray(a, float), np.asarray(b, float)
    if a.shape != b.shape or a.ndim != 1 or len(a) < 2:
        raise StatsError(f"need two equally long score vectors with at least 2 pairs, got {a.shape} and {b.shape}")
    if rope < 0:
        raise StatsError(f"rope must be >= 0, got {rope}")
    z = np.concatenate([[0.0], a - b])  # the prior pseudo-observation first
    n = len(z)
    rng = np.random.default_rng(seed)
    alpha = np.concatenate([[1.0], np.ones(n - 1)])
    walsh = (z[:, None] + z[None, :]) / 2
    regions = np.stack([walsh < -rope, np.abs(walsh) <= rope, walsh > rope]).astype(float)  # (3, n, n)
    wins = np.zeros(3)
    for start in range(0, n_samples, 5_000):
        w = rng.dirichlet(alpha, size=min(5_000, n_samples - start))  # (m, n)
        mass = np.einsum("mi,rij,mj->mr", w, regions, w)
        wins += np.bincount(mass.argmax(1), minlength=3)
    probs = wins / n_samples
    return {"p_b_better": float(probs[0]), "p_equivalent": float(probs[1]), "p_a_better": float(probs[2])}


@dataclass(frozen=True)
class Power:
    """:func:`paired_power`'s answer. ``power[n]``: the fraction of simulated studies with ``n``
    subjects whose paired test rejects at ``alpha``; ``interval[n]``: its 95 % Wilson interval
    (simulation error); ``q``: the injected correction rate that gives ``effect`` on the pilot."""

    effect: float
    metric: str
    alpha: float
    n_sim: int
    pilot_subjects: int
    pilot_clips: int
    q: float
    power: dict[int, float]
    interval: dict[int, tuple[float, float]]

    def subjects_for(self, target: float = 0.8) -> int | None:
        """The fewest simulated subjects with power >= ``target`` (``None``: none reached it)."""
        ok = [n for n, p in sorted(self.power.items()) if p >= target]
        return ok[0] if ok else None


def _wilson(k: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return float(max(0.0, centre - half)), float(min(1.0, centre + half))


def paired_power(y_true, pred_1, pred_2, subjects, n_classes: int, effect: float = 0.03,
                 n_subjects=(12, 24, 36, 48, 64, 96), metric: str = "uf1", alpha: float = 0.05,
                 n_sim: int = 400, n_resamples: int = 999, seed: int = 0) -> Power:
    """Power of the board's paired test (:func:`paired_comparison`: per-subject swap randomisation,
    two-sided) to detect a true difference ``effect`` in pooled ``metric`` between two arms, as a
    function of the number of subjects, by simulation from a pilot.

    The pilot is two runs whose true difference is zero, on the same clips: ``pred_1``, ``pred_2``
    ``(N,)``, e.g. two seeds of one configuration. They carry what a simulation needs and a formula
    does not: the subjects' spread in difficulty, their clip counts and class mixes, and how often
    two trainings disagree on a clip. One simulated study:

    1. draws ``n`` subjects with replacement from the pilot's subjects (each draw a new subject);
    2. per drawn subject, a fair coin says which pilot run is arm A and which is arm B (so the
       null is centred whatever the pilot's own chance difference);
    3. injects the effect into arm A: each clip A gets wrong becomes right with probability ``q``,
       where ``q`` is set once (by bisection, common random numbers) so that the expected
       difference on the whole pilot is ``effect``;
    4. runs :func:`paired_comparison` (``n_resamples`` swaps) and records ``p < alpha``.

    Assumptions, stated: one seed per arm (averaging seeds per arm, as boards do, lowers the
    training noise, so this is conservative for several seeds); the effect is a uniform rate of
    corrected errors; subjects of the larger study behave like the pilot's (its models were trained
    on fewer subjects).

    Returns:
        :class:`Power`.

    Raises:
        StatsError: misaligned inputs, fewer than 2 pilot subjects, or an ``effect`` the pilot
            cannot reach (even correcting every error).
    """
    y = np.asarray(y_true)
    p1, p2 = np.asarray(pred_1), np.asarray(pred_2)
    subj = np.asarray(subjects)
    if not (y.shape == p1.shape == p2.shape == subj.shape) or y.ndim != 1:
        raise StatsError(f"need equally long 1-d labels, two pilot runs and subjects; got {y.shape}, {p1.shape}, "
                         f"{p2.shape}, {subj.shape}")
    ids, inv = np.unique(subj, return_inverse=True)
    if len(ids) < 2:
        raise StatsError(f"a power simulation needs a pilot with at least 2 subjects, got {len(ids)}")
    members = [np.flatnonzero(inv == k) for k in range(len(ids))]
    rng = np.random.default_rng(seed)

    def score(pred):
        return float(scores_from_counts(subject_counts(y, pred, subj, n_classes)[0].sum(0), metric))

    def lifted(a, truth, u, q):
        return np.where((a != truth) & (u < q), truth, a)

    draws = rng.random((8, len(y)))  # common random numbers for the calibration of q

    def expected(q):
        return float(np.mean([(score(lifted(p1, y, u, q)) - score(p2) + score(lifted(p2, y, u, q)) - score(p1)) / 2
                              for u in draws]))

    if expected(1.0) < effect:
        raise StatsError(f"the pilot cannot show a {metric} difference of {effect}: correcting every error "
                         f"gives {expected(1.0):.3f}")
    lo, hi = 0.0, 1.0
    for _ in range(30):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if expected(mid) < effect else (lo, mid)
    q = (lo + hi) / 2
    power, interval = {}, {}
    for n in sorted(set(int(v) for v in n_subjects)):
        if n < 2:
            raise StatsError(f"n_subjects must be >= 2, got {n}")
        hits = 0
        for _ in range(n_sim):
            pick = rng.integers(0, len(ids), n)
            idx = np.concatenate([members[k] for k in pick])
            new_subj = np.concatenate([np.full(len(members[k]), j) for j, k in enumerate(pick)])
            flip = np.concatenate([np.full(len(members[k]), rng.random() < 0.5) for k in pick])
            a = np.where(flip, p2[idx], p1[idx])
            b = np.where(flip, p1[idx], p2[idx])
            a = lifted(a, y[idx], rng.random(len(idx)), q)
            c = paired_comparison(y[idx], a, b, new_subj, n_classes, metric, n_resamples=n_resamples,
                                  seed=int(rng.integers(2**31)))
            hits += c.p_value < alpha
        power[n] = hits / n_sim
        interval[n] = _wilson(hits, n_sim)
    return Power(float(effect), metric, float(alpha), int(n_sim), len(ids), len(y), float(q), power, interval)


@dataclass
class RowStatistics:
    """The statistics of one board or ablation row (one configuration, one or more seeds).

    Attributes:
        stacked: :func:`stack_runs` of the row's predictions, or ``None`` when its seeds were
            tested on different clips (then ``intervals`` are over splits).
        intervals: ``"uf1"`` / ``"uar"`` -> :class:`Interval`, or the :class:`StatsError` that
            says why there is none (e.g. one test subject).
        over_splits: the intervals are :func:`split_mean_ci` (seeds on different splits).
    """

    stacked: tuple | None
    intervals: dict[str, Interval | StatsError]
    over_splits: bool


def row_statistics(preds: list, n_classes: int, n_resamples: int = 10_000, stratify: bool = True) -> RowStatistics:
    """The one statistics step of leaderboards and ablations for a row's per-seed predictions
    (tables as :meth:`mer_bench.store.Store.predictions`): 95 % subject-cluster bootstrap intervals
    of UF1 and UAR (seed 0, so boards regenerate byte-identically), stratified by database on a
    composite when ``stratify``; the mean over splits when the seeds' test clips differ."""
    st = stack_runs(preds)
    intervals: dict[str, Interval | StatsError] = {}
    if st is None:
        runs = [(q["y_true"].to_numpy(), q["y_pred"].to_numpy(), subject_key(q)) for q in preds]
        for metric in ("uf1", "uar"):
            try:
                intervals[metric] = split_mean_ci(runs, n_classes, metric, n_resamples=n_resamples)
            except StatsError as exc:
                intervals[metric] = exc
        return RowStatistics(None, intervals, True)
    y, yp, clusters, strata, _ = st
    layers = strata if stratify and len(set(strata)) > 1 else None
    for metric in ("uf1", "uar"):
        try:
            intervals[metric] = cluster_bootstrap_ci(y, yp, clusters, n_classes, metric, strata=layers,
                                                     n_resamples=n_resamples, seed=0)
        except StatsError as exc:
            intervals[metric] = exc
    return RowStatistics(st, intervals, False)


def compare_with_reference(rows: dict[int, RowStatistics], reference: int, n_classes: int,
                           n_resamples: int = 10_000, stratify: bool = True) -> dict[int, Comparison | str]:
    """Every row with predictions on the reference's clips against the reference: a paired
    subject randomisation test on UF1 (:func:`paired_comparison`, seed 0), Holm-adjusted over the
    rows compared (the adjusted p replaces each :class:`Comparison`'s ``p_value``, and
    ``significant`` says whether Holm rejects at .05). A row that
    cannot be compared maps to the reason: ``"other samples"`` or the :class:`StatsError` text."""
    import dataclasses

    y, y_ref, clusters, strata, ids = rows[reference].stacked
    layers = strata if stratify and len(set(strata)) > 1 else None
    out: dict[int, Comparison | str] = {}
    for i, row in rows.items():
        if i == reference or row.stacked is None:
            continue
        _, yp, _, _, other_ids = row.stacked
        if len(other_ids) != len(ids) or not np.array_equal(other_ids, ids):
            out[i] = "other samples"
            continue
        try:
            out[i] = paired_comparison(y, yp, y_ref, clusters, n_classes, "uf1", strata=layers,
                                       n_resamples=n_resamples, seed=0)
        except StatsError as exc:
            out[i] = str(exc)
    tested = [i for i, c in out.items() if isinstance(c, Comparison)]
    if tested:
        reject, adjusted = holm([out[i].p_value for i in tested])
        for i, rej, p in zip(tested, reject, adjusted):
            out[i] = dataclasses.replace(out[i], p_value=float(p), significant=bool(rej))
    return out
