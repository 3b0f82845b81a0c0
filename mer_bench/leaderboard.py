"""Leaderboards: markdown tables rendered from the results store.

Every number is recomputed from the stored per-sample predictions (pooled UF1/UAR over folds,
:mod:`mer_bench.metrics`), so a leaderboard can always be re-derived. Runs of one configuration
(same ``config_hash``) with several seeds form one row: the mean, and the standard deviation
over seeds when there is more than one. Leaky protocols are flagged in their own column.

Statistics (:mod:`mer_bench.stats`, fixed random seed, so a board regenerates byte-identically):
a 95 % subject-cluster bootstrap interval for UF1 and UAR (B = 10,000; stratified by database on
a composite; seeds on the same samples resample the same subjects), and for every row with
predictions on the leader's samples a paired comparison with the leader (paired subject
randomisation test on UF1), Holm-adjusted over the rows compared. The leader is the best
leak-free row with predictions.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from mer_bench import __version__
from mer_bench.atomic import atomic_write_text
from mer_bench.commands import mer_bench_command
from mer_bench.metrics import run_metrics
from mer_bench.pipeline.plan import NO_EPOCHS
from mer_bench.provenance import clean_commit as _clean_commit
from mer_bench.provenance import cpu_text
from mer_bench.provenance import fact as _fact
from mer_bench.provenance import input_label as _input_label
from mer_bench.provenance import wall_text as _minutes
from mer_bench.store import Store, StoreWarning

__all__ = ["board_name", "leaderboard_rows", "render_markdown", "write_leaderboard", "check_publishable",
           "UnpublishableError", "SUBSET_NAMES", "TABLES", "board_records"]

#: display names of breakdown subsets
SUBSET_NAMES = {"Full": "Full", "smic": "SMIC", "casme2": "CASME II", "samm": "SAMM"}


def _mean_sd(values) -> tuple[float, float | None]:
    """``(mean, sample SD)`` of per-seed scores (SD ``None`` for one seed)."""
    v = np.asarray(values, float)
    return float(v.mean()), (float(v.std(ddof=1)) if len(v) > 1 else None)


def _preset_label(preset) -> str:
    return preset if isinstance(preset, str) and preset else "defaults"  # NULL reads back as NaN


def _text(v) -> str:
    """A stored hyper-parameter as ``--set`` takes it (values went through JSON: tuples are lists)."""
    import json

    return json.dumps(v, separators=(",", ":")) if isinstance(v, (list, tuple, dict)) else str(v)


def _has_epochs(run: pd.Series) -> bool:
    """Whether the run's method trains in epochs, as recorded with the run."""
    stored = _fact(run, "trains_epochs")
    return bool(stored) if stored is not None else _legacy_has_epochs(run["method"])


def _overrides(run: pd.Series) -> list[str]:
    """``key=value`` of the hyper-parameters a measured run set beyond its preset, as recorded with
    the run (so a board rendered from an old store does not change when a method's code does)."""
    stored = _fact(run, "overrides")
    if stored is not None:
        return [f"{k}={_text(v)}" for k, v in stored.items()]
    return _legacy_overrides(run)


def _selection_code(run: pd.Series) -> str:
    code = _fact(run, "selection_code")
    if code is not None:
        return str(code)
    words = {"last epoch": "last", "best epoch on the test subject (LEAKY)": "best-on-test"}
    return words.get(run.get("selection", "last epoch"), "as-published")  # runs made before it was recorded


# -- runs made before store layout 3 recorded these facts: derived from the method's source ----------
def _legacy_has_epochs(method: str) -> bool:
    from mer_bench.registry import METHODS

    try:
        static = METHODS.static_attrs(method) if METHODS.names(method) else None
        if static is not None and "supports_epoch_selection" in static["info"]:
            return bool(static["info"]["supports_epoch_selection"])  # read from source: no torch import
        if static is not None:
            return False  # MethodInfo's default
        return bool(METHODS.get(method).info.supports_epoch_selection)
    except Exception:  # a plugin not installed here
        return True


def _is_placeholder(method: str) -> bool:
    """Whether a registered method declares itself a placeholder (``MethodInfo.placeholder``),
    read from its source where possible (no torch import); ``False`` for names not registered
    here (imported logs, plugins not installed)."""
    from mer_bench.registry import METHODS

    try:
        if not METHODS.names(method):
            return False
        static = METHODS.static_attrs(method)
        if static is not None:
            return bool(static["info"].get("placeholder", False))
        return bool(getattr(METHODS.get(method).info, "placeholder", False))
    except Exception:
        return False


def _legacy_overrides(run: pd.Series) -> list[str]:
    """The overrides of a run made before they were recorded: its parameters against the method's
    current defaults and presets (every parameter for a plugin that is not installed here)."""
    import json

    from mer_bench.method import resolve_params
    from mer_bench.registry import METHODS

    params = run["params"]
    preset = run["preset"] if isinstance(run["preset"], str) and run["preset"] else None
    static = METHODS.static_params(run["method"]) if METHODS.names(run["method"]) else None
    if static is not None and (preset is None or preset in static[1]):  # no import: torch stays unloaded
        base = {**static[0], **(static[1].get(preset, {}) if preset else {})}
    else:
        try:
            base = resolve_params(METHODS.get(run["method"]), preset)
        except Exception:
            return [f"{k}={_text(v)}" for k, v in params.items()]
    same = {k for k, v in params.items() if k in base and json.dumps(base[k]) == json.dumps(v)}
    return [f"{k}={_text(v)}" for k, v in params.items() if k not in same]


def _command(run: pd.Series, seeds: list[int] | None = None) -> str:
    """The command line that reproduces a stored run (or re-imports an imported one), every
    argument shell-quoted (:func:`mer_bench.commands.mer_bench_command`); with ``seeds``, the
    whole row: one ``--seed`` each (none for seed 0 alone, the default)."""

    params = run["params"]
    if run["imported"]:
        return mer_bench_command("import", "--format", params.get("format", "megc-log"), params.get("file", "FILE"),
                                 "--name", run["method"], "--dataset", run["dataset"], "--protocol", run["protocol"],
                                 *(["--leaky"] if run["leaky"] else []))
    args = ["run", "--method", run["method"], "--protocol", run["protocol"], "--dataset", run["dataset"]]
    if run["dataset"] != "synthetic":
        args += ["--data-root", "DATA_ROOT"]
    preset = run["preset"] if isinstance(run["preset"], str) and run["preset"] else None
    if preset:
        args += ["--preset", preset]
    for kv in _overrides(run):
        args += ["--set", kv]
    for key, value in (run["dataset_options"] or {}).items():
        args += ["--dataset-set", f"{key}={value}"]
    for key, value in (run["protocol_options"] or {}).items():
        args += ["--protocol-set", f"{key}={value}"]
    if _selection_code(run) != "last":
        args += ["--select-epoch", _selection_code(run)]
    seeds = sorted({int(s) for s in seeds}) if seeds else [int(run["seed"])]
    if seeds != [0]:
        for s in seeds:
            args += ["--seed", s]
    return mer_bench_command(*args)


class UnpublishableError(ValueError):
    """A board would publish rows measured with uncommitted (``-dirty``) or unknown code."""


def check_publishable(df: pd.DataFrame, allow_dirty: bool = False) -> None:
    """Refuse to publish measured rows whose commit is ``-dirty`` (the code had uncommitted
    changes) or unknown (e.g. installed from a wheel): nobody could check out the code that made
    them. ``allow_dirty=True`` lets them through; the board then marks them.

    Raises:
        UnpublishableError: naming the rows and the way out.
    """
    if df.empty or allow_dirty or "_unclean" not in df:
        return
    bad = df[df["_unclean"].fillna(False).astype(bool)]
    if len(bad):
        rows = "; ".join(f"{r['method']} ({r['config']}, commit {r['commit'] or 'unknown'})" for _, r in bad.iterrows())
        raise UnpublishableError(f"{len(bad)} row(s) were measured with uncommitted or unknown code: {rows}. Commit "
                                 f"the code and re-run them with --force, or publish with --allow-dirty (the board "
                                 f"then marks them)")


def board_name(dataset: str | None, protocol: str | None) -> str:
    """File name of a published board: ``<protocol>`` when the dataset is the protocol's default,
    else ``<dataset>-<protocol>``."""
    from mer_bench.registry import PROTOCOLS

    default_ds = getattr(PROTOCOLS.get(protocol), "default_dataset", None) if protocol else None
    parts = (protocol,) if dataset and dataset == default_ds else (dataset, protocol)
    return "-".join(x for x in parts if x) or "leaderboard"


def leaderboard_rows(store: Store, protocol: str | None = None, dataset: str | None = None,
                     reported: bool = True, n_resamples: int = 10_000) -> pd.DataFrame:
    """One row per configuration, sorted by UF1 (descending) within dataset and protocol.

    A stored run that is damaged (a label out of range, unreadable probabilities or JSON) is
    left out with a :class:`~mer_bench.store.StoreWarning` naming it; the other rows render.

    Measured and imported runs come from the store; with ``reported=True``, the figures of
    :mod:`mer_bench.reported` for the same dataset and protocol are added as rows whose
    ``source`` is ``reported``.
    """
    runs = store.runs("complete")
    if protocol:
        runs = runs[runs["protocol"] == protocol]
    if dataset:
        runs = runs[runs["dataset"] == dataset]
    damaged = []
    for _, r in runs.iterrows():
        problem = store.check_predictions(r["run_id"], len(r["classes"]))
        if problem:
            damaged.append(r["run_id"])
            warnings.warn(StoreWarning(f"skipped run {r['run_id']} ({r['method']}, {r['dataset']}/{r['protocol']}) in "
                                       f"{store.path}: {problem}; re-run it with --force"), stacklevel=2)
    runs = runs[~runs["run_id"].isin(damaged)]
    rows = []
    for cfg, group in runs.groupby("config_hash", sort=False):
        preds = [store.predictions(r["run_id"]) for _, r in group.iterrows()]  # read once per run
        per_seed = [run_metrics(q, tuple(r["classes"])) for q, (_, r) in zip(preds, group.iterrows())]
        first = group.iloc[0]
        full = [s["Full"] for s in per_seed]

        def agg(key: str, subset: str = "Full", values=per_seed) -> str:
            v = [s[subset][key] for s in values if subset in s]
            if not v:
                return ""
            mean, sd = _mean_sd(v)
            return f"{mean:.4f}" + (f" ± {sd:.4f}" if sd is not None else "")

        absent = {subset: sorted({c for s in per_seed for c in s.get(subset, {}).get("absent_classes", [])})
                  for subset in per_seed[0]}
        absent = {k: v for k, v in absent.items() if v}
        selection = first.get("selection", "last epoch")
        if not first["imported"] and selection == "last epoch" and not _has_epochs(first):
            selection = NO_EPOCHS
        walls = [float(w) for w in group["wall_time"] if w is not None and w == w] if "wall_time" in group else []
        row = {
            "_preds": preds, "_run_ids": list(group["run_id"]),
            "_classes": tuple(first["classes"]), "_finished": str(first.get("finished") or ""),
            "_device": str(first.get("device") or ""), "_torch": str(first.get("torch_version") or ""),
            "_cpu": cpu_text(first),
            "method": first["method"] + (" (placeholder)" if not first["imported"]
                                         and _is_placeholder(first["method"]) else ""),
            "source": "imported" if first["imported"] else "measured",
            "dataset": first["dataset"], "protocol": first["protocol"],
            "preset": "" if first["imported"] else ", ".join([_preset_label(first["preset"]), *_overrides(first)]),
            "input": _input_label(first),
            "selection": selection, "_selection": _selection_code(first),
            "UF1": agg("uf1"), "UAR": agg("uar"), "accuracy": agg("accuracy"),
            "folds": int(first["n_folds"]), "seeds": len(group), "_seed_list": sorted(int(x) for x in group["seed"]),
            "leaky": "**yes**" if first["leaky"] else "no",
            "config": cfg, "commit": first["git_commit"] or ("" if first["imported"] else "unknown"),
            "command": _command(first, list(group["seed"])),
            "_unclean": not first["imported"] and not _clean_commit(first["git_commit"]),
            "_uf1": float(np.mean([s["uf1"] for s in full])),
            "_scores": {SUBSET_NAMES.get(sub, sub): {k: _mean_sd([s[sub][k] for s in per_seed if sub in s])
                                                     for k in ("uf1", "uar", "accuracy")} for sub in per_seed[0]},
            "_absent": absent,
            "_wall": float(np.mean(walls)) if walls else None,
            "_clips": frozenset(sid for q in preds for sid in q["sample_id"].astype(str)),
            "_options": _options_key(first),
            "_arm": bool(not first["imported"] and _overrides(first)),
            "_preset_name": first["preset"] if isinstance(first["preset"], str) and first["preset"] else None,
        }
        for subset in [k for k in per_seed[0] if k != "Full"]:
            name = SUBSET_NAMES.get(subset, subset)
            row[f"{name} UF1"] = agg("uf1", subset)
            row[f"{name} UAR"] = agg("uar", subset)
        rows.append(row)
    if reported:
        from mer_bench.reported import REPORTED, reported_figures

        for (ds, proto), entries in REPORTED.items():
            if (dataset and ds != dataset) or (protocol and proto != protocol):
                continue
            for e in entries:
                def fmt(v):
                    return "" if v is None else f"{v:.4f}"

                uf1, uar = e.get("scores", {}).get("Full", (None, None))
                row = {"method": e["method"], "source": "reported", "dataset": ds, "protocol": proto, "preset": "",
                       "input": e.get("input", ""), "selection": e["selection"], "UF1": fmt(uf1), "UAR": fmt(uar),
                       "accuracy": "", "folds": "", "seeds": "", "leaky": "**yes**" if e["leaky"] else "no",
                       "config": "", "commit": "", "command": e["source"], "_uf1": -1.0 if uf1 is None else uf1,
                       "_preds": None, "_absent": {}, "_figures": reported_figures(e, SUBSET_NAMES),
                       "_metric": e.get("metric", "UF1, UAR (MEGC 2019 definition)")}
                for subset, (su, sr) in e.get("scores", {}).items():
                    if subset != "Full":
                        name = SUBSET_NAMES.get(subset, subset)
                        row[f"{name} UF1"], row[f"{name} UAR"] = fmt(su), fmt(sr)
                rows.append(row)
    df = pd.DataFrame(rows)
    if df.empty:
        return df
    df = df.sort_values(["dataset", "protocol", "_uf1"], ascending=[True, True, False]).reset_index(drop=True)
    return _add_statistics(df, n_resamples)


#: the tables of a board, in the order they are rendered
TABLES = ("ranked", "inflation", "other settings", "other clips", "reported")


def _options_key(run: pd.Series) -> str:
    import json

    return (json.dumps(run["dataset_options"] or {}, sort_keys=True) + "|"
            + json.dumps(run["protocol_options"] or {}, sort_keys=True))


def _assign_tables(df: pd.DataFrame) -> None:
    """Column ``table`` (one of :data:`TABLES`), per (dataset, protocol):

    * ``reported``: figures copied from papers (no predictions);
    * ``inflation``: leaky rows (the model chosen on the test subjects), shown beside their
      leak-free twin;
    * ``other clips``: leak-free rows on other clips or other dataset/protocol options than the
      comparable group (the clips and options most rows share; ties: default options, then the
      best row);
    * ``other settings``: rows of the comparable group at non-default hyper-parameters
      (ablation arms, shown on the ablation boards), and a method's further presets: each
      method is ranked once, at the dataset's suggested preset, else its defaults, else the row
      with most seeds;
    * ``ranked``: the rest: leak-free, with predictions on the same clips, each method once.
    """
    from collections import Counter

    from mer_bench.registry import DATASETS, METHODS

    df["table"] = ""
    for (dataset, _), idx in df.groupby(["dataset", "protocol"], sort=False).groups.items():
        idx = list(idx)
        cand = []
        for i in idx:
            if df.at[i, "source"] == "reported":
                df.at[i, "table"] = "reported"
            elif df.at[i, "leaky"] != "no":
                df.at[i, "table"] = "inflation"
            else:
                cand.append(i)
        if not cand:
            continue
        keys = {i: (df.at[i, "_options"], df.at[i, "_clips"]) for i in cand}
        counts = Counter(keys.values())
        first = {k: min(i for i in cand if keys[i] == k) for k in counts}
        ref = max(counts, key=lambda k: (counts[k], k[0] == "{}|{}", -first[k]))
        for i in cand:
            df.at[i, "table"] = ("other clips" if keys[i] != ref else
                                 "other settings" if df.at[i, "_arm"] else "ranked")
        ranked = [i for i in cand if df.at[i, "table"] == "ranked"]
        for method in dict.fromkeys(df.at[i, "method"] for i in ranked):
            rows = [i for i in ranked if df.at[i, "method"] == method]
            if len(rows) < 2:
                continue
            try:  # the preset a run of this method on this dataset gets by default
                suggested = DATASETS.get(dataset).preset_for(METHODS.get(method))
            except Exception:  # an imported name or an unknown dataset
                suggested = None
            keep = min(rows, key=lambda i: (df.at[i, "_preset_name"] != suggested,
                                            df.at[i, "_preset_name"] is not None, -int(df.at[i, "seeds"] or 0), i))
            for i in rows:
                if i != keep:
                    df.at[i, "table"] = "other settings"


def _p_text(p: float) -> str:
    """``.01``, ``<.001``: a p-value as the board's short form writes it."""
    return "<.001" if p < 0.001 else f"{p:.2g}".lstrip("0") if p < 1 else "1"


def _add_statistics(df: pd.DataFrame, n_resamples: int) -> pd.DataFrame:
    """Tables (:func:`_assign_tables`), intervals of every row with predictions, and, per
    (dataset, protocol), the rank and comparison with the leader of the *ranked* rows only (the
    leader: the best ranked row), and each leaky row's paired difference from its twin."""
    from mer_bench import stats

    df = df.copy()
    _assign_tables(df)
    for col in ("rank", "UF1 95% CI", "UAR 95% CI", "vs leader", "_vs", "_delta"):
        df[col] = ""
    for col in ("_twin", "_uf1_ci", "_uar_ci", "_cmp"):  # row labels, (low, high) pairs...; None where absent
        df[col] = pd.Series([None] * len(df), index=df.index, dtype=object)
    df["_few"] = False
    row_stats: dict[int, stats.RowStatistics] = {}
    for i in df.index:
        preds = df.at[i, "_preds"]
        if not isinstance(preds, list):
            df.at[i, "vs leader"] = "n/a (no predictions)"
            continue
        row = stats.row_statistics(preds, len(df.at[i, "_classes"]), n_resamples)
        for metric, col in (("uf1", "UF1 95% CI"), ("uar", "UAR 95% CI")):
            ci = row.intervals[metric]
            if row.over_splits:  # seeds on different test sets: an interval of the mean over the splits
                df.at[i, col] = ("n/a (a split with 1 test subject)" if isinstance(ci, stats.StatsError) else
                                 f"[{ci.low:.3f}, {ci.high:.3f}] (over splits)" + (" †" if ci.few_clusters else ""))
            elif isinstance(ci, stats.StatsError):  # e.g. a hold-out whose test side is one subject
                df.at[i, col] = f"n/a ({len(set(row.stacked[2]))} test subject(s))"
            else:
                df.at[i, col] = f"[{ci.low:.3f}, {ci.high:.3f}]" + (" †" if ci.few_clusters else "")
                df.at[i, "_few"] = df.at[i, "_few"] or ci.few_clusters
            if not isinstance(ci, stats.StatsError):
                df.at[i, f"_{metric}_ci"] = (ci.low, ci.high)
        if row.over_splits:
            df.at[i, "vs leader"] = "n/a (seeds on different splits)"
        else:
            row_stats[i] = row
    for _, idx in df.groupby(["dataset", "protocol"], sort=False).groups.items():
        ranked = [i for i in idx if df.at[i, "table"] == "ranked"]
        for rank, i in enumerate(ranked, start=1):
            df.at[i, "rank"] = str(rank)
        comparable = {i: row_stats[i] for i in ranked if i in row_stats}
        leader = next(iter(comparable), None)
        if leader is not None:
            df.at[leader, "vs leader"] = df.at[leader, "_vs"] = "leader"
            n_classes = len(df.at[leader, "_classes"])
            for i, c in stats.compare_with_reference(comparable, leader, n_classes, n_resamples).items():
                if isinstance(c, str):
                    df.at[i, "vs leader"] = df.at[i, "_vs"] = f"n/a ({c})"
                    continue
                df.at[i, "_cmp"] = (c.difference, c.p_value, bool(c.significant))
                verdict = (("above leader" if c.difference > 0 else "below leader") if c.significant
                           else "tied with leader")
                df.at[i, "vs leader"] = f"{verdict} (ΔUF1 {c.difference:+.3f}, p_Holm {c.p_value:.3g})"
                df.at[i, "_vs"] = (f"{c.difference:+.2f}, p {_p_text(c.p_value)}".replace("-", "−")
                                   if c.significant else "tied")
        plain = {df.at[i, "command"]: i for i in idx if df.at[i, "source"] == "measured" and df.at[i, "leaky"] == "no"}
        for i in idx:
            if df.at[i, "table"] != "inflation":
                continue
            base = df.at[i, "command"].replace(f" --select-epoch {df.at[i, '_selection']}", "")
            twin = plain.get(base) if df.at[i, "source"] == "measured" else None
            if twin is None:
                df.at[i, "_delta"] = "n/a (no leak-free twin on this board)"
                continue
            df.at[i, "_twin"] = twin
            a, b = row_stats.get(i), row_stats.get(twin)
            if a is None or b is None or not np.array_equal(a.stacked[4], b.stacked[4]):
                df.at[i, "_delta"] = f"{df.at[i, '_uf1'] - df.at[twin, '_uf1']:+.4f}"
                continue
            y, yp, clusters, strata, _ = a.stacked
            layers = strata if len(set(strata)) > 1 else None
            try:
                c = stats.paired_comparison(y, yp, b.stacked[1], clusters, len(df.at[i, "_classes"]), "uf1",
                                            strata=layers, n_resamples=n_resamples, seed=0)
                df.at[i, "_delta"] = f"{c.difference:+.4f} [{c.low:+.3f}, {c.high:+.3f}]"
            except stats.StatsError as exc:
                df.at[i, "_delta"] = f"{df.at[i, '_uf1'] - df.at[twin, '_uf1']:+.4f} (no interval: {exc})"
    return df


def board_records(df: pd.DataFrame) -> list[dict]:
    """The rows of :func:`leaderboard_rows` in machine-readable form (``leaderboard --format
    json|csv``): numbers as numbers, booleans as booleans, intervals as two fields, ``None`` where
    a value does not exist (a reported row has no interval, an unranked row no rank).

    Fields: ``table`` (one of :data:`TABLES`), ``rank``, ``method``, ``dataset``, ``protocol``,
    ``source``, ``preset``, ``input``, ``selection``, ``leaky``, ``seeds``, ``uf1``, ``uf1_sd``,
    ``uf1_low``, ``uf1_high``, the same for ``uar``, ``accuracy``, ``vs_leader`` (``leader``,
    ``tied``, ``above``, ``below`` or ``None``), ``delta_uf1_vs_leader``, ``p_holm_vs_leader``,
    ``per_database`` (``{name: {"uf1", "uar"}}`` of a composite), ``figures`` (a reported row's
    text), ``config``, ``commit``, ``command`` (measured and imported rows), ``citation`` (reported rows),
    ``fold_time_s`` (per seed, summed over folds). Ordered by table as :data:`TABLES`, then as the
    board.
    """
    out = []
    for _, r in df.iterrows():
        scores = r.get("_scores") if isinstance(r.get("_scores"), dict) else None
        rec: dict = {"table": r["table"], "rank": int(r["rank"]) if r["rank"] else None, "method": r["method"],
                     "dataset": r["dataset"], "protocol": r["protocol"], "source": r["source"],
                     "preset": r["preset"] or None, "input": r.get("input") or None, "selection": r["selection"],
                     "leaky": r["leaky"] != "no", "seeds": int(r["seeds"]) if r["seeds"] != "" else None}
        for metric in ("uf1", "uar"):
            if scores is not None:
                rec[metric], rec[f"{metric}_sd"] = scores["Full"][metric]
            else:  # a reported row: the published figure
                text = r["UF1" if metric == "uf1" else "UAR"]
                rec[metric], rec[f"{metric}_sd"] = (float(text) if text else None), None
            ci = r.get(f"_{metric}_ci")
            rec[f"{metric}_low"], rec[f"{metric}_high"] = (float(ci[0]), float(ci[1])) if ci else (None, None)
        rec["accuracy"] = scores["Full"]["accuracy"][0] if scores is not None else None
        cmp_ = r.get("_cmp")
        rec["vs_leader"] = ("leader" if r["_vs"] == "leader" else None if cmp_ is None else
                            ("above" if cmp_[0] > 0 else "below") if cmp_[2] else "tied")
        rec["delta_uf1_vs_leader"], rec["p_holm_vs_leader"] = ((float(cmp_[0]), float(cmp_[1])) if cmp_
                                                               else (None, None))
        rec["per_database"] = ({k: {"uf1": v["uf1"][0], "uar": v["uar"][0]} for k, v in scores.items() if k != "Full"}
                               if scores is not None else {})
        rec["figures"] = r.get("_figures") if r["source"] == "reported" else None
        rec["config"] = r["config"] or None
        rec["commit"] = r["commit"] or None
        rec["command"] = None if r["source"] == "reported" else r["command"]
        rec["citation"] = r["command"] if r["source"] == "reported" else None
        wall = r.get("_wall")
        rec["fold_time_s"] = None if wall is None or wall != wall else float(wall)
        out.append(rec)
    return sorted(out, key=lambda rec: TABLES.index(rec["table"]))  # stable: the board's order within a table


def _cell(r: pd.Series, metric: str) -> str:
    """``0.7191 ± 0.0120 [0.660, 0.774]``: the mean (± seed SD) and its interval."""
    ci = r.get(f"{metric} 95% CI")
    return f"{r[metric]} {ci}".strip() if isinstance(ci, str) else str(r[metric])


def _md_table(cols: list[str], rows: list[list]) -> list[str]:
    out = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    out += ["| " + " | ".join("" if v is None or (isinstance(v, float) and v != v) else str(v) for v in row) + " |"
            for row in rows]
    return out


def render_markdown(df: pd.DataFrame, title: str = "mer-bench leaderboard",
                    plots: list[tuple[str, str]] | None = None) -> str:
    """A markdown document for the rows of :func:`leaderboard_rows`, one section per table of
    :data:`TABLES` that has rows, then per-database scores, notes, plots, statistics and
    provenance. ``plots``: ``(caption, file)`` images beside the markdown (``mer-bench report``)
    to link; a forest plot (its file name ends in ``-forest.png``) is linked at the top."""
    plots = list(plots or [])
    forest = [(c, f) for c, f in plots if f.endswith("-forest.png")]
    lines = [f"# {title}", ""]
    lines += [f"![{cap}]({fn})" for cap, fn in forest] + ([""] if forest else [])
    lines += ["**Ranked** rows are leak-free (the model is fixed before the test subject is seen) and have per-sample "
              "predictions on the same clips, so they are compared with each other: UF1 and UAR pooled over all folds "
              "(MEGC 2019 definition: per-class TP/FP/FN summed over folds, then averaged over classes; UAR is mean "
              "per-class recall, never macro-precision), with 95 % intervals; several seeds: mean ± sample standard "
              "deviation. **measured**: run by mer-bench (provenance below reproduces each row, every seed); "
              "**imported**: published per-sample predictions re-scored here. Leaky runs, runs at other settings or "
              "on other clips, and figures reported in papers are in their own tables below, never ranked.", ""]
    if df.empty:
        lines.append("_No completed runs match._")
        lines += ["", f"_Generated by mer-bench {__version__} from the results store (`mer-bench leaderboard "
                      f"--write`)._", ""]
        return "\n".join(lines)
    varying = [c for c in ("dataset", "protocol") if df[c].nunique() > 1]  # constant ones are in the title
    breakdown = [c for c in df.columns if c.endswith((" UF1", " UAR"))]
    by = {t: df[df["table"] == t] for t in TABLES}

    ranked = by["ranked"]
    lines += ["## Ranked", ""]
    if ranked.empty:
        lines.append("_No leak-free run with predictions._")
    else:
        cols = ["rank", "method", *varying, "preset", "input", "source", "UF1 [95 % CI]", "UAR [95 % CI]",
                "vs leader", "seeds", "config"]
        lines += _md_table(cols, [[r["rank"], r["method"], *[r[c] for c in varying], r["preset"] or "",
                                   r["input"], r["source"], _cell(r, "UF1"), _cell(r, "UAR"), r["_vs"],
                                   r["seeds"], f"`{r['config']}`"] for _, r in ranked.iterrows()])
        lines += ["", "*vs leader*: paired subject randomisation test on UF1 against the leader (the best ranked "
                      "row), Holm-adjusted over the ranked rows; `tied` means no significant difference at .05 (not "
                      "equality), otherwise ΔUF1 and the adjusted p."]
        if breakdown:
            lines += ["", "## Per database", "",
                      "The ranked rows' pooled predictions restricted to each database of the composite.", ""]
            lines += _md_table(["rank", "method", *varying, *breakdown, "accuracy"],
                               [[r["rank"], r["method"], *[r[c] for c in varying], *[r.get(c, "") for c in breakdown],
                                 r["accuracy"]] for _, r in ranked.iterrows()])

    infl = by["inflation"]
    if len(infl):
        lines += ["", "## Leaky rows and their inflation (not ranked)", "",
                  "Runs whose model saw the test subjects: chosen on them (e.g. the best epoch on the test subject) or "
                  "trained on them (a leaky protocol). Each stands beside its leak-free twin where the board has one "
                  "(the same trainings: `--select-epoch both` scores every epoch on the test subject and keeps both "
                  "the last and the best); ΔUF1 is leaky minus leak-free, with a paired 95 % subject-bootstrap "
                  "interval.", ""]
        rows = []
        for _, r in infl.iterrows():
            t = df.loc[r["_twin"]] if r["_twin"] is not None else None
            rows.append([r["method"], *[r[c] for c in varying], r["preset"] or r["source"], r["selection"], r["seeds"],
                         "" if t is None else _cell(t, "UF1"), _cell(r, "UF1"), r["_delta"],
                         "" if t is None else f"{t['UAR']} -> {r['UAR']}", f"`{r['config']}`"])
        lines += _md_table(["method", *varying, "settings", "selection", "seeds", "UF1 leak-free", "UF1 leaky",
                            "ΔUF1 [95 % CI]",
                            "UAR leak-free -> leaky", "config"], rows)

    for table, heading, text in (
            ("other settings", "Other settings (not ranked)",
             "A method at non-default hyper-parameters (an ablation arm, e.g. `kernel_size=3`: see the ablation "
             "boards) or at a further preset. The ranked table shows each method once."),
            ("other clips", "Other clips or options (not comparable with the ranked rows)",
             "Rows on other clips, or with other dataset or protocol options, than the ranked rows: their scores "
             "are not on the same test set.")):
        part = by[table]
        if len(part):
            lines += ["", f"## {heading}", "", text, ""]
            lines += _md_table(["method", *varying, "preset", "input", "source", "UF1 [95 % CI]", "UAR [95 % CI]",
                                "clips", "seeds", "config"],
                               [[r["method"], *[r[c] for c in varying], r["preset"], r["input"], r["source"],
                                 _cell(r, "UF1"), _cell(r, "UAR"), len(r["_clips"]), r["seeds"], f"`{r['config']}`"]
                                for _, r in part.iterrows()])

    rep = by["reported"]
    if len(rep):
        lines += ["", "## Reported in papers (not reproduced)", "",
                  "Copied from the papers: no predictions, so neither ranked nor tested. Read the metric and the model "
                  "selection before comparing (accuracy is not UF1; a model chosen on the test subjects is leaky).", ""]
        lines += _md_table(["method", *varying, "figures", "metric", "model selection", "source"],
                           [[r["method"], *[r[c] for c in varying], r["_figures"], r["_metric"], r["selection"],
                             r["command"]] for _, r in rep.iterrows()])

    notes = []
    for _, r in df.iterrows():
        if r["table"] == "reported" or not r["_absent"]:
            continue
        where = "; ".join(f"{SUBSET_NAMES.get(k, k)}: {', '.join(v)}" for k, v in r["_absent"].items())
        notes.append(f"- {r['method']} (`{r['config']}`): classes without a true sample are excluded from the "
                     f"means ({where})")
    if "_unclean" in df and df["_unclean"].fillna(False).astype(bool).any():
        unclean = df[df["_unclean"].fillna(False).astype(bool)]
        which = ", ".join(f"{r['method']} (`{r['config']}`, {r['commit'] or 'unknown'})" for _, r in unclean.iterrows())
        notes.append("- **measured with uncommitted or unknown code** (published with --allow-dirty; the commit "
                     f"cannot reproduce them exactly): {which}")
    single = df[(df["source"] == "measured") & (df["seeds"] == 1) & (df["table"] != "reported")
                & ~df["selection"].astype(str).str.startswith("n/a")]
    if len(single):
        names = ", ".join(sorted(set(single["method"])))
        notes.append(f"- one seed ({names}): the interval covers the sampling of subjects, not training randomness; "
                     f"there is no seed standard deviation")
    if df["_few"].any():
        notes.append(f"- †: interval from fewer than {FEW} subjects; cluster bootstraps under-cover with few clusters, "
                     f"read it as optimistic")
    if notes:
        lines += ["", "## Notes", "", *notes]
    rest = [(c, f) for c, f in plots if (c, f) not in forest]
    if rest:
        lines += ["", "## Plots", ""] + [f"![{cap}]({fn})" for cap, fn in rest]
    lines += ["", "## Statistics", "",
              "Intervals are 95 % subject-cluster bootstrap percentile intervals (B = 10,000, subjects resampled with "
              "replacement, stratified by database on a composite, the metric pooled again; several seeds: the same "
              "subjects resampled for every seed, the seed mean pooled). Scores exclude a class that has no true "
              "sample from the means and say so under Notes (per database too).", "",
              *_provenance(df)]
    lines += ["", f"_Generated by mer-bench {__version__} from the results store (`mer-bench leaderboard --write`)._",
              ""]
    return "\n".join(lines)


FEW = 24


def _provenance(df: pd.DataFrame) -> list[str]:
    """The provenance section: per row its command (every seed), commit, device and CPU, and fold
    time per seed (the run's recorded ``wall_time``: its folds' times summed, so with parallel
    workers the elapsed time is shorter); then the versions that rendered the board."""
    import platform

    import scipy
    import statsmodels

    def uniq(col):
        return sorted({str(v) for v in df.get(col, pd.Series(dtype=str)).dropna() if str(v) and str(v) != "nan"})

    finished = uniq("_finished")
    lines = ["## Provenance", ""]
    for _, r in df.iterrows():
        if r["source"] == "reported":
            lines.append(f"- {r['method']} (reported): {r['command']}")
            continue
        facts = [r["table"], f"selection: {r['selection']}"]
        if r["source"] == "measured":
            facts += [f"commit {r['commit'] or 'unknown'}",
                      "on " + (r["_device"] or "n/a") + (f" ({r['_cpu']})" if r.get("_cpu") else ""),
                      f"seeds {', '.join(map(str, r['_seed_list']))}",
                      f"fold time {_minutes(r['_wall'])} per seed (the folds' times summed; parallel workers "
                      f"finish sooner)"]
        settings = f" ({r['preset']})" if r["preset"] else ""
        lines.append(f"- {r['method']}{settings} `{r['config']}`: {'; '.join(facts)}: `{r['command']}`")
    lines += ["",
              f"- torch {', '.join(uniq('_torch')) or 'n/a'}; rendered with mer-bench {__version__}, numpy "
              f"{np.__version__}, pandas {pd.__version__}, scipy {scipy.__version__}, statsmodels "
              f"{statsmodels.__version__}, Python {platform.python_version()}",
              f"- newest run finished: {finished[-1] if finished else 'n/a'}",
              "- `DATA_ROOT` is the dataset folder; results' last bits and times depend on the CPU's instruction set "
              "and thread count"]
    return lines


def write_leaderboard(markdown: str, out_dir: str | Path = "leaderboards", name: str = "leaderboard") -> Path:
    """Write ``<out_dir>/<name>.md`` (folder created) atomically: the old board survives any
    failure (:mod:`mer_bench.atomic`); returns the path.

    Raises:
        OSError: the folder cannot be created or written (the old board is unchanged).
    """
    safe = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-") or "leaderboard"
    path = Path(out_dir) / f"{safe}.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write_text(path, markdown)  # a failed write leaves the published board as it was
