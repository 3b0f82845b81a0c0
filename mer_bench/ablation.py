"""Ablations: run a grid of arms and compare them with the statistics of :mod:`mer_bench.stats`.

An arm is a (method, protocol, hyper-parameter overrides) triple; ``--grid KEY=V1,V2`` expands
into the product of its values. The first arm is the reference. For every other arm the table
gives its UF1 and UAR with 95 % subject-cluster bootstrap intervals, and, when both arms were
tested on the same clips, the difference from the reference in pooled UF1 with a paired subject
randomisation p-value (Holm-adjusted over the arms) and the Bayesian signed-rank test over test
subjects (per-subject accuracy, seed mean; ROPE +-0.01) as P(arm better) / P(equivalent) /
P(reference better). Arms on different clips (e.g. different protocols) get intervals only.

Ready presets (``--ablation NAME``): those a method declares beside its network (its class
attribute ``ablations``; MERANet declares the paper's three) and ``leakage`` for any method:

* ``kernel``: spatio-temporal attention kernel 3 / 5 / 7 (paper Fig. 6; reference 5);
* ``shared``: channel attention through a shared CNN vs a shared MLP (paper Fig. 5);
* ``attention``: MERANet vs 3D ResNet-18 (attention on / off);
* ``leakage``: one method under the sample-level hold-out (leaky), the subject hold-out and LOSO.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from mer_bench.atomic import save_figure
from mer_bench.commands import mer_bench_command

__all__ = ["Arm", "leakage_arms", "method_ablations", "DEFAULT_METHOD", "expand_grid", "arms_for", "ablation_table",
           "render_ablation", "plot_ablation", "ablation_provenance", "identical_to_reference"]


@dataclass(frozen=True)
class Arm:
    """One configuration of an ablation."""

    label: str
    method: str
    protocol: str
    overrides: dict[str, Any] = field(default_factory=dict)
    protocol_options: dict[str, Any] = field(default_factory=dict)

    def command(self, dataset: str, preset: str | None, seeds: list[int], shared: dict[str, Any] | None = None,
                dataset_options: dict[str, Any] | None = None, data_root: bool = False) -> str:
        """The ``mer-bench run`` line of this arm, every argument shell-quoted."""
        args = ["run", "--method", self.method, "--protocol", self.protocol, "--dataset", dataset]
        for k, v in self.protocol_options.items():
            args += ["--protocol-set", f"{k}={v}"]
        args += ["--preset", preset] if preset else []
        for k, v in self.overrides.items():
            args += ["--set", f"{k}={v}"]
        for s in seeds:
            args += ["--seed", s]
        for k, v in (shared or {}).items():
            args += ["--set", f"{k}={v}"]
        for k, v in (dataset_options or {}).items():
            args += ["--dataset-set", f"{k}={v}"]
        args += ["--data-root", "DATA_ROOT"] if data_root else []
        return mer_bench_command(*args)


#: the method of ``--ablation leakage`` when no ``--method`` is given: the main job's (README)
DEFAULT_METHOD = "meranet"


def leakage_arms(method: str | None, protocol: str) -> list[Arm]:
    """One method under LOSO (the reference), the subject hold-out and the sample hold-out (leaky)."""
    method = method or DEFAULT_METHOD
    return [Arm("LOSO", method, "loso"), Arm("subject hold-out", method, "holdout"),
            Arm("sample hold-out (LEAKY)", method, "holdout-sample")]


def method_ablations(method: str | None = None) -> dict[str, tuple[str, list]]:
    """Ablation presets that methods declare (their class attribute ``ablations``: name -> arms
    ``(label, method, overrides)``): name -> (declaring method, arms). ``method``: that method's
    only; else every registered method's (a plugin that fails to import is skipped)."""
    from mer_bench.registry import METHODS, PluginLoadError

    out: dict[str, tuple[str, list]] = {}
    for name in [method] if method else METHODS.names():
        try:
            cls = METHODS.get(name)
        except PluginLoadError:
            continue
        for preset, arms in (getattr(cls, "ablations", None) or {}).items():
            out.setdefault(preset, (name, arms))
    return out


def expand_grid(method: str, protocol: str, grid: dict[str, list[Any]]) -> list[Arm]:
    """The product of ``grid`` values as arms (first value of every key first: the reference).

    Raises:
        ValueError: an empty grid or a key without values.
    """
    if not grid or any(not v for v in grid.values()):
        raise ValueError("an ablation grid needs at least one KEY=V1,V2 with values")
    keys = list(grid)
    return [Arm(", ".join(f"{k}={v}" for k, v in zip(keys, values)), method, protocol, dict(zip(keys, values)))
            for values in itertools.product(*(grid[k] for k in keys))]


def arms_for(name: str, method: str | None, protocol: str,
             protocol_options: dict[str, Any] | None = None) -> list[Arm]:
    """The arms of preset ablation ``name``: ``leakage`` (any method), or a preset a method
    declares (e.g. MERANet's ``kernel``, ``shared``, ``attention``; ``method`` narrows the search).

    Raises:
        ValueError: an unknown preset name (the message lists the known ones).
    """
    if name == "leakage":
        return leakage_arms(method, protocol)
    declared = method_ablations(method)
    if name not in declared:
        raise ValueError(f"unknown ablation {name!r}; presets: {', '.join(['leakage', *sorted(declared)])}")
    return [Arm(label, m, protocol, dict(overrides), dict(protocol_options or {}))
            for label, m, overrides in declared[name][1]]


def identical_to_reference(arms: list[Arm], predictions: list[list[pd.DataFrame]]) -> list[str]:
    """The labels of the arms (after the first, the reference) whose predictions equal the
    reference's on every clip and seed: the same clips, the same predicted classes and the same
    probabilities, to the last bit. Such settings compute the same function from the same start
    here, so their difference is exactly zero, not an estimate. ``predictions``: per arm, per seed,
    the store's predictions of that run."""
    def same(a: pd.DataFrame, b: pd.DataFrame) -> bool:
        a, b = a.sort_values("sample_id").reset_index(drop=True), b.sort_values("sample_id").reset_index(drop=True)
        return (len(a) == len(b) and a["sample_id"].equals(b["sample_id"]) and a["y_pred"].equals(b["y_pred"])
                and all(list(p) == list(q) for p, q in zip(a["proba"], b["proba"])))

    reference = predictions[0]
    return [arm.label for arm, runs in zip(arms[1:], predictions[1:])
            if len(runs) == len(reference) and all(same(r, q) for r, q in zip(runs, reference))]


def ablation_table(arms: list[Arm], predictions: list[list[pd.DataFrame]], n_classes: int,
                   n_resamples: int = 10_000, rope: float = 0.01) -> pd.DataFrame:
    """The comparison table of :func:`render_ablation`; ``predictions[i]`` holds arm ``i``'s
    per-seed prediction tables (as :meth:`mer_bench.store.Store.predictions`)."""
    from mer_bench import stats

    rows = []
    computed = {i: stats.row_statistics(preds, n_classes, n_resamples, stratify=False)
                for i, preds in enumerate(predictions)}
    for i, (arm, preds) in enumerate(zip(arms, predictions)):
        st = computed[i]
        row = {"arm": arm.label, "method": arm.method, "protocol": arm.protocol, "seeds": len(preds), "_ci": None}
        for metric in ("uf1", "uar"):
            ci = st.intervals[metric]
            if st.over_splits:  # seeds on different test sets (hold-outs drawn per seed): the mean over seeds
                row[metric.upper()] = (f"n/a ({ci})" if isinstance(ci, stats.StatsError) else
                                       f"{ci.estimate:.4f} [{ci.low:.3f}, {ci.high:.3f}]"
                                       + (" †" if ci.few_clusters else "") + " (mean over splits)")
            elif isinstance(ci, stats.StatsError):  # e.g. a hold-out whose test side is one subject
                y, yp, clusters, _, _ = st.stacked
                n_sub = len(set(clusters))
                est = float(stats.scores_from_counts(
                    stats.subject_counts(y, yp[0], clusters, n_classes)[0].sum(0), metric))
                row[metric.upper()] = f"{est:.4f} (no interval: {n_sub} test subject{'s' if n_sub != 1 else ''})"
            else:
                row[metric.upper()] = (f"{ci.estimate:.4f} [{ci.low:.3f}, {ci.high:.3f}]"
                                       + (" †" if ci.few_clusters else ""))
                if metric == "uf1":
                    row["_ci"] = (ci.estimate, ci.low, ci.high)
        same_clips = i == 0 and not st.over_splits
        row["vs reference"] = "reference" if same_clips else "n/a (different test clips: intervals only)"
        rows.append(row)
    stacked = {i: st for i, st in computed.items() if not st.over_splits}
    if 0 in stacked:
        ref_y, ref_pred = stacked[0].stacked[0], stacked[0].stacked[1]
        for i, c in stats.compare_with_reference(stacked, 0, n_classes, n_resamples, stratify=False).items():
            if isinstance(c, str):
                continue  # other clips: intervals only
            y, yp, clusters, _, _ = stacked[i].stacked
            acc_a = pd.Series((yp == y).mean(0)).groupby(clusters).mean()
            acc_r = pd.Series((ref_pred == ref_y).mean(0)).groupby(clusters).mean()
            bayes = stats.bayesian_signed_rank(acc_a.to_numpy(), acc_r.loc[acc_a.index].to_numpy(), rope=rope)
            rows[i]["ΔUF1"] = f"{c.difference:+.4f} [{c.low:+.3f}, {c.high:+.3f}]"
            rows[i]["acc. P(better) / P(equiv.) / P(worse)"] = (
                f"{bayes['p_a_better']:.2f} / {bayes['p_equivalent']:.2f} / {bayes['p_b_better']:.2f}")
            rows[i]["vs reference"] = f"p_Holm {c.p_value:.3g}"
    return pd.DataFrame(rows)


def plot_ablation(table: pd.DataFrame, title: str, path) -> None:
    """The ablation curve: pooled UF1 of every arm with its 95 % interval, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [(r["arm"], *r["_ci"]) for _, r in table.iterrows() if r.get("_ci")]
    fig, ax = plt.subplots(figsize=(max(3.0, 1.4 * len(rows) + 1), 3.2))
    for k, (_label, est, lo, hi) in enumerate(rows):
        ax.errorbar(k, est, yerr=[[est - lo], [hi - est]], fmt="o", color="C0" if k else "C3", capsize=4)
    ax.plot(range(len(rows)), [r[1] for r in rows], color="0.6", lw=0.8, zorder=0)
    ax.set_xticks(range(len(rows)), [r[0] for r in rows], rotation=15, fontsize=7)
    ax.set_ylabel("UF1 (95 % subject-bootstrap CI)")
    ax.set_title(title, fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)


def ablation_provenance(store, arms: list[Arm], run_ids: list[list[str]]) -> list[dict[str, Any]]:
    """Per arm, from the store: ``arm``, ``input`` (what the method saw), ``commit``,
    ``unclean`` (a ``-dirty`` or unknown commit: refused by ``ablate --write`` unless
    ``--allow-dirty``), ``device``, ``cpu`` and ``wall`` (mean seconds per seed), as boards
    give them (:mod:`mer_bench.leaderboard`)."""
    from mer_bench.provenance import clean_commit, cpu_text, input_label

    runs = store.runs("complete").set_index("run_id", drop=False)
    out = []
    for arm, ids in zip(arms, run_ids):
        part = runs.loc[[i for i in ids if i in runs.index]]
        first = part.iloc[0]
        commits = sorted({str(c) for c in part["git_commit"].fillna("unknown")})
        walls = [float(w) for w in part["wall_time"] if w is not None and w == w]
        out.append({"arm": arm.label, "input": input_label(first), "commit": ", ".join(commits),
                    "unclean": not all(clean_commit(c) for c in commits), "device": str(first.get("device") or ""),
                    "cpu": cpu_text(first), "wall": sum(walls) / len(walls) if walls else None})
    return out


def render_ablation(table: pd.DataFrame, title: str, commands: list[str], note: str = "",
                    figure: str | None = None, provenance: list[dict[str, Any]] | None = None) -> str:
    """Markdown for an ablation table, with the commands that reproduce its arms (every seed) and,
    given :func:`ablation_provenance`, each arm's commit, device, CPU and wall time per seed."""
    cols = [c for c in ("arm", "method", "protocol", "input", "seeds", "UF1", "UAR", "ΔUF1", "vs reference",
                        "acc. P(better) / P(equiv.) / P(worse)") if c in table.columns]
    lines = [f"# {title}", "", note, "",
             "UF1 / UAR: pooled over folds, seed mean, 95 % subject-cluster bootstrap interval (B = 10,000; † fewer "
             "than 24 subjects). ΔUF1: arm minus reference with its paired subject-bootstrap interval; p_Holm: paired "
             "subject randomisation test, Holm-adjusted over the arms. *acc.*: Bayesian signed-rank over test "
             "subjects on per-subject **accuracy** (not UF1: most subjects lack some class), ROPE ±0.01 (Benavoli et "
             "al., JMLR 2017): P(arm better) / P(practically equivalent) / P(reference better). The two views can "
             "disagree in sign when an arm trades minority-class recall for accuracy.", "",
             "| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for _, r in table.iterrows():
        lines.append("| " + " | ".join("" if pd.isna(r.get(c)) else str(r.get(c)) for c in cols) + " |")
    if (table["seeds"] == 1).any():
        lines += ["", "Arms with one seed: the intervals reflect the sampling of subjects only, not training "
                      "randomness; run several --seed values to include it."]
    if figure:
        lines += ["", f"![UF1 per arm]({figure})"]
    lines += ["", "Reproduce (each arm; `mer-bench ablate` runs them all):", "", *[f"- `{c}`" for c in commands]]
    if provenance:
        from mer_bench.provenance import wall_text

        lines += ["", "Provenance:", ""]
        for p in provenance:
            mark = " (**uncommitted or unknown code**, published with --allow-dirty)" if p["unclean"] else ""
            lines.append(f"- {p['arm']}: commit {p['commit']}{mark}; on {p['device'] or 'n/a'}"
                         + (f" ({p['cpu']})" if p["cpu"] else "")
                         + f"; fold time {wall_text(p['wall'])} per seed (summed over folds)")
    lines.append("")
    return "\n".join(lines)
