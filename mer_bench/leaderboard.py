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
from mer_bench.store import Store, StoreWarning

__all__ = ["board_name", "leaderboard_rows", "render_markdown", "write_leaderboard", "check_publishable",
           "UnpublishableError", "SUBSET_NAMES"]

#: display names of breakdown subsets
SUBSET_NAMES = {"Full": "Full", "smic": "SMIC", "casme2": "CASME II", "samm": "SAMM"}


def _preset_label(preset) -> str:
    return preset if isinstance(preset, str) and preset else "defaults"  # NULL reads back as NaN


def _text(v) -> str:
    """A stored hyper-parameter as ``--set`` takes it (values went through JSON: tuples are lists)."""
    import json

    return json.dumps(v, separators=(",", ":")) if isinstance(v, (list, tuple, dict)) else str(v)


def _fact(run: pd.Series, column: str):
    """A fact recorded with the run (store layout 3), or ``None`` for runs made before."""
    v = run.get(column)
    return None if v is None or (isinstance(v, float) and v != v) else v


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


def _clean_commit(commit) -> bool:
    return isinstance(commit, str) and bool(commit) and commit != "unknown" and not commit.endswith("-dirty")


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
        per_seed = []
        for _, r in group.iterrows():
            per_seed.append(run_metrics(store.predictions(r["run_id"]), tuple(r["classes"])))  # noqa: PERF401
        first = group.iloc[0]
        full = [s["Full"] for s in per_seed]

        def agg(key: str, subset: str = "Full", values=per_seed) -> str:
            v = np.array([s[subset][key] for s in values if subset in s])
            if not len(v):
                return ""
            return f"{v.mean():.4f}" + (f" ± {v.std(ddof=1):.4f}" if len(v) > 1 else "")

        absent = sorted({c for s in full for c in s["absent_classes"]})
        selection = first.get("selection", "last epoch")
        if not first["imported"] and selection == "last epoch" and not _has_epochs(first):
            selection = "n/a (no training epochs)"
        preds = [store.predictions(r["run_id"]) for _, r in group.iterrows()]
        row = {
            "_preds": preds, "_classes": tuple(first["classes"]), "_finished": str(first.get("finished") or ""),
            "_device": str(first.get("device") or ""), "_torch": str(first.get("torch_version") or ""),
            "_cpu": "" if _fact(first, "cpu") is None else f"{first['cpu']}, {int(first['threads'])} thread(s)"
                    + ("" if _fact(first, "kernels") is None else f", mer-bench CPU kernels {first['kernels']}"),
            "method": first["method"],
            "source": "imported" if first["imported"] else "measured",
            "dataset": first["dataset"], "protocol": first["protocol"],
            "preset": "" if first["imported"] else ", ".join([_preset_label(first["preset"]), *_overrides(first)]),
            "selection": selection, "_selection": _selection_code(first),
            "UF1": agg("uf1"), "UAR": agg("uar"), "accuracy": agg("accuracy"),
            "folds": int(first["n_folds"]), "seeds": len(group),
            "leaky": "**yes**" if first["leaky"] else "no",
            "config": cfg, "commit": first["git_commit"] or ("" if first["imported"] else "unknown"),
            "command": _command(first, list(group["seed"])),
            "_unclean": not first["imported"] and not _clean_commit(first["git_commit"]),
            "_uf1": float(np.mean([s["uf1"] for s in full])),
            "_note": f"absent classes excluded: {', '.join(absent)}" if absent else "",
        }
        for subset in [k for k in per_seed[0] if k != "Full"]:
            name = SUBSET_NAMES.get(subset, subset)
            row[f"{name} UF1"] = agg("uf1", subset)
            row[f"{name} UAR"] = agg("uar", subset)
        rows.append(row)
    if reported:
        from mer_bench.reported import REPORTED

        for (ds, proto), entries in REPORTED.items():
            if (dataset and ds != dataset) or (protocol and proto != protocol):
                continue
            for e in entries:
                def fmt(v):
                    return "" if v is None else f"{v:.4f}"

                uf1, uar = e["scores"]["Full"]
                row = {"method": e["method"], "source": "reported", "dataset": ds, "protocol": proto, "preset": "",
                       "selection": e["selection"], "UF1": fmt(uf1), "UAR": fmt(uar), "accuracy": "",
                       "folds": "", "seeds": "", "leaky": "**yes**" if e["leaky"] else "no", "config": "",
                       "commit": "", "command": e["source"], "_uf1": uf1, "_note": "", "_preds": None}
                for subset, (su, sr) in e["scores"].items():
                    if subset != "Full":
                        name = SUBSET_NAMES.get(subset, subset)
                        row[f"{name} UF1"], row[f"{name} UAR"] = fmt(su), fmt(sr)
                rows.append(row)
    df = pd.DataFrame(rows)
    if df.empty:
        return df
    df = df.sort_values(["dataset", "protocol", "_uf1"], ascending=[True, True, False]).reset_index(drop=True)
    return _add_statistics(df, n_resamples)


def _add_statistics(df: pd.DataFrame, n_resamples: int) -> pd.DataFrame:
    """Rank, intervals and the comparison with the leader, per (dataset, protocol)."""
    from mer_bench import stats

    df = df.copy()
    for col in ("rank", "UF1 95% CI", "UAR 95% CI", "vs leader"):
        df[col] = ""
    df["_few"] = False
    for _, idx in df.groupby(["dataset", "protocol"], sort=False).groups.items():
        idx = list(idx)
        rows: dict[int, stats.RowStatistics] = {}
        for rank, i in enumerate(idx, start=1):
            df.at[i, "rank"] = str(rank)
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
            if row.over_splits:
                df.at[i, "vs leader"] = "n/a (seeds on different splits)"
                continue
            rows[i] = row
        honest = [i for i in idx if i in rows and df.at[i, "leaky"] == "no"]
        leader = honest[0] if honest else next((i for i in idx if i in rows), None)
        if leader is None:
            continue
        df.at[leader, "vs leader"] = "leader"
        for i, c in stats.compare_with_reference(rows, leader, len(df.at[leader, "_classes"]), n_resamples).items():
            if isinstance(c, str):
                df.at[i, "vs leader"] = f"n/a ({c})"
                continue
            verdict = ("above leader" if c.difference > 0 else "below leader") if c.significant else "tied with leader"
            df.at[i, "vs leader"] = f"{verdict} (ΔUF1 {c.difference:+.3f}, p_Holm {c.p_value:.3g})"
    return df


def render_markdown(df: pd.DataFrame, title: str = "mer-bench leaderboard",
                    plots: list[tuple[str, str]] | None = None) -> str:
    """A markdown document for the rows of :func:`leaderboard_rows`; ``plots``: ``(caption, file)``
    images beside the markdown (``mer-bench report``) to link."""
    lines = [f"# {title}", "",
             "UF1 and UAR are pooled over all folds (MEGC 2019 definition: per-class TP/FP/FN summed over folds, "
             "then averaged over classes); UAR is mean per-class recall, never macro-precision. Per-database columns "
             "restrict the pooled predictions to that database. Several seeds: mean ± sample standard deviation.", "",
             "Source: **measured** rows were run by mer-bench (the command reproduces them; `DATA_ROOT` is the "
             "dataset folder); **imported** rows are published per-sample predictions re-scored here; **reported** "
             "rows copy a paper's figures and are not reproduced. Selection: how the evaluated model was chosen. "
             "`last epoch` is leak-free; any choice made on the test subjects is marked **leaky** and inflates "
             "the scores.", ""]
    if df.empty:
        lines.append("_No completed runs match._")
    else:
        breakdown = [c for c in df.columns if c.endswith((" UF1", " UAR"))]
        varying = [c for c in ("dataset", "protocol") if df[c].nunique() > 1]  # constant ones are in the title
        cols = ["rank", "method", *varying, "source", "preset", "selection", "UF1", "UF1 95% CI", "UAR",
                "UAR 95% CI", "vs leader", *breakdown, "accuracy", "folds", "seeds", "leaky", "config", "commit"]
        lines.append("| " + " | ".join(cols) + " |")
        lines.append("|" + "|".join("---" for _ in cols) + "|")
        for _, r in df.iterrows():
            lines.append("| " + " | ".join("" if pd.isna(r.get(c)) else str(r.get(c)) for c in cols) + " |")
        lines += ["", "Reproduce:", ""]
        for _, r in df.iterrows():
            if r["source"] == "reported":
                lines.append(f"- {r['method']} (reported): {r['command']}")
            else:
                lines.append(f"- {r['method']} (`{r['config']}`): `{r['command']}`")
        measured = df[df["source"] == "measured"]
        plain = {r["command"]: r for _, r in measured.iterrows() if r["_selection"] == "last"}
        pairs = []
        for _, r in measured.iterrows():
            base = r["command"].replace(f" --select-epoch {r['_selection']}", "")
            if r["_selection"] != "last" and base in plain:
                p = plain[base]
                pairs.append(f"- {r['method']} ({_preset_label(r['preset'])}): UF1 {p['UF1']} -> {r['UF1']} "
                             f"({r['_uf1'] - p['_uf1']:+.4f}), UAR {p['UAR']} -> {r['UAR']}")
        if pairs:
            lines += ["", "Inflation from choosing the epoch on the test subject (same trainings, last epoch -> "
                          "best epoch on the test subject):", "", *pairs]
        notes = [f"- `{r['config']}`: {r['_note']}" for _, r in df.iterrows() if r["_note"]]
        if "_unclean" in df and df["_unclean"].fillna(False).astype(bool).any():
            unclean = df[df["_unclean"].fillna(False).astype(bool)]
            which = ", ".join(f"{r['method']} (`{r['config']}`, {r['commit'] or 'unknown'})"
                              for _, r in unclean.iterrows())
            notes.append("- **measured with uncommitted or unknown code** (published with --allow-dirty; the "
                         f"commit cannot reproduce them exactly): {which}")
        single = df[(df["source"] == "measured") & (df["seeds"] == 1)
                    & ~df["selection"].astype(str).str.startswith("n/a")]
        if len(single):
            names = ", ".join(sorted(set(single["method"])))
            notes.append(f"- one seed ({names}): the interval covers the sampling of subjects, not training "
                         f"randomness; there is no seed standard deviation")
        if df["_few"].any():
            notes.append(f"- †: interval from fewer than {FEW} subjects; cluster bootstraps under-cover with few "
                         f"clusters, read it as optimistic")
        if notes:
            lines += ["", "Notes:", *notes]
        if plots:
            lines += ["", "Plots:", ""] + [f"![{cap}]({fn})" for cap, fn in plots]
        lines += ["", "Statistics: intervals are 95 % subject-cluster bootstrap percentile intervals (B = 10,000, "
                      "subjects resampled with replacement, stratified by database on a composite, the metric pooled "
                      "again; several seeds: the same subjects for every seed, the seed mean). *vs leader*: paired "
                      "subject randomisation test on UF1 against the best leak-free row with predictions on the same "
                      "clips, Holm-adjusted over the rows compared; *tied* means no significant difference at .05, "
                      "not equality. Reported rows have no predictions and are not tested.", "",
                  *_provenance(df)]
    lines += ["", f"_Generated by mer-bench {__version__} from the results store (`mer-bench leaderboard --write`)._",
              ""]
    return "\n".join(lines)


FEW = 24


def _provenance(df: pd.DataFrame) -> list[str]:
    import platform

    import scipy
    import statsmodels

    def uniq(col):
        return sorted({str(v) for v in df.get(col, pd.Series(dtype=str)).dropna() if str(v) and str(v) != "nan"})

    finished = uniq("_finished")
    cpus = [c for c in uniq("_cpu") if c]  # recorded since store layout 4; older runs have none
    return ["Provenance:", "",
            f"- commits: {', '.join(c for c in uniq('commit') if c) or 'n/a'}",
            f"- measured on: {', '.join(uniq('_device')) or 'n/a'}; torch {', '.join(uniq('_torch')) or 'n/a'}",
            *([f"- CPUs (results' last bits and times depend on them): {'; '.join(cpus)}"] if cpus else []),
            f"- rendered with mer-bench {__version__}, numpy {np.__version__}, pandas {pd.__version__}, scipy "
            f"{scipy.__version__}, statsmodels {statsmodels.__version__}, Python {platform.python_version()}",
            f"- newest run finished: {finished[-1] if finished else 'n/a'}"]


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
