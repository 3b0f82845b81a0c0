"""Leaderboards: markdown tables rendered from the results store.

Every number is recomputed from the stored per-sample predictions (pooled UF1/UAR over folds,
:mod:`mer_bench.metrics`), so a leaderboard can always be re-derived. Runs of one configuration
(same ``config_hash``) with several seeds form one row: the mean, and the standard deviation
over seeds when there is more than one. Leaky protocols are flagged in their own column.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from mer_bench import __version__
from mer_bench.runner import run_metrics
from mer_bench.store import Store

__all__ = ["leaderboard_rows", "render_markdown", "write_leaderboard", "SUBSET_NAMES"]

#: display names of breakdown subsets
SUBSET_NAMES = {"Full": "Full", "smic": "SMIC", "casme2": "CASME II", "samm": "SAMM"}


def _preset_label(preset) -> str:
    return preset if isinstance(preset, str) and preset else "defaults"  # NULL reads back as NaN


def _has_epochs(method: str) -> bool:
    from mer_bench.registry import METHODS

    try:
        return bool(METHODS.get(method).info.supports_epoch_selection)
    except Exception:  # a plugin not installed here
        return True


def _command(run: pd.Series) -> str:
    """The command line that reproduces a stored run (or re-imports an imported one)."""
    from mer_bench.method import resolve_params
    from mer_bench.registry import METHODS

    params = run["params"]
    if run["imported"]:
        leaky = " --leaky" if run["leaky"] else ""
        return (f"mer-bench import --format {params.get('format', 'megc-log')} {params.get('file', 'FILE')} "
                f"--name {run['method']} --dataset {run['dataset']} --protocol {run['protocol']}{leaky}")
    parts = [f"mer-bench run --method {run['method']} --protocol {run['protocol']} --dataset {run['dataset']}"]
    if run["dataset"] != "synthetic":
        parts.append("--data-root DATA_ROOT")
    preset = run["preset"] if isinstance(run["preset"], str) and run["preset"] else None
    if preset:
        parts.append(f"--preset {preset}")
    try:
        base = resolve_params(METHODS.get(run["method"]), preset)
        parts += [f"--set {k}={v}" for k, v in params.items() if base.get(k, object()) != v]
    except Exception:  # a plugin that is not installed here: give every parameter
        parts += [f"--set {k}={v}" for k, v in params.items()]
    for key, value in (run["dataset_options"] or {}).items():
        parts.append(f"--dataset-set {key}={value}")
    for key, value in (run["protocol_options"] or {}).items():
        parts.append(f"--protocol-set {key}={value}")
    if run.get("selection", "last epoch") != "last epoch":
        parts.append("--select-epoch best-on-test")
    if int(run["seed"]) != 0:
        parts.append(f"--seed {int(run['seed'])}")
    return " ".join(parts)


def leaderboard_rows(store: Store, protocol: str | None = None, dataset: str | None = None,
                     reported: bool = True) -> pd.DataFrame:
    """One row per configuration, sorted by UF1 (descending) within dataset and protocol.

    Measured and imported runs come from the store; with ``reported=True``, the figures of
    :mod:`mer_bench.reported` for the same dataset and protocol are added as rows whose
    ``source`` is ``reported``.
    """
    runs = store.runs("complete")
    if protocol:
        runs = runs[runs["protocol"] == protocol]
    if dataset:
        runs = runs[runs["dataset"] == dataset]
    rows = []
    for cfg, group in runs.groupby("config_hash", sort=False):
        per_seed = []
        for _, r in group.iterrows():
            per_seed.append(run_metrics(store.predictions(r["run_id"]), tuple(r["classes"])))
        first = group.iloc[0]
        full = [s["Full"] for s in per_seed]

        def agg(key: str, subset: str = "Full", values=per_seed) -> str:
            v = np.array([s[subset][key] for s in values if subset in s])
            if not len(v):
                return ""
            return f"{v.mean():.4f}" + (f" ± {v.std(ddof=1):.4f}" if len(v) > 1 else "")

        absent = sorted({c for s in full for c in s["absent_classes"]})
        selection = first.get("selection", "last epoch")
        if not first["imported"] and selection == "last epoch" and not _has_epochs(first["method"]):
            selection = "n/a (no training epochs)"
        row = {
            "method": first["method"],
            "source": "imported" if first["imported"] else "measured",
            "dataset": first["dataset"], "protocol": first["protocol"],
            "preset": "" if first["imported"] else _preset_label(first["preset"]),
            "selection": selection,
            "UF1": agg("uf1"), "UAR": agg("uar"), "accuracy": agg("accuracy"),
            "folds": int(first["n_folds"]), "seeds": len(group),
            "leaky": "**yes**" if first["leaky"] else "no",
            "config": cfg, "commit": first["git_commit"] or ("" if first["imported"] else "unknown"),
            "command": _command(first),
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
                       "commit": "", "command": e["source"], "_uf1": uf1, "_note": ""}
                for subset, (su, sr) in e["scores"].items():
                    if subset != "Full":
                        name = SUBSET_NAMES.get(subset, subset)
                        row[f"{name} UF1"], row[f"{name} UAR"] = fmt(su), fmt(sr)
                rows.append(row)
    df = pd.DataFrame(rows)
    if df.empty:
        return df
    return df.sort_values(["dataset", "protocol", "_uf1"], ascending=[True, True, False]).reset_index(drop=True)


def render_markdown(df: pd.DataFrame, title: str = "mer-bench leaderboard") -> str:
    """A markdown document for the rows of :func:`leaderboard_rows`."""
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
        cols = ["method", *varying, "source", "preset", "selection", "UF1", "UAR", *breakdown, "accuracy", "folds",
                "seeds", "leaky", "config", "commit"]
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
        plain = {r["command"]: r for _, r in measured.iterrows() if r["selection"] == "last epoch"}
        pairs = []
        for _, r in measured.iterrows():
            base = r["command"].replace(" --select-epoch best-on-test", "")
            if r["selection"] != "last epoch" and base in plain:
                p = plain[base]
                pairs.append(f"- {r['method']} ({_preset_label(r['preset'])}): UF1 {p['UF1']} -> {r['UF1']} "
                             f"({r['_uf1'] - p['_uf1']:+.4f}), UAR {p['UAR']} -> {r['UAR']}")
        if pairs:
            lines += ["", "Inflation from choosing the epoch on the test subject (same trainings, last epoch -> "
                          "best epoch on the test subject):", "", *pairs]
        notes = [f"- `{r['config']}`: {r['_note']}" for _, r in df.iterrows() if r["_note"]]
        if notes:
            lines += ["", "Notes:", *notes]
    lines += ["", f"_Generated by mer-bench {__version__} from the results store (`mer-bench leaderboard --write`)._",
              ""]
    return "\n".join(lines)


def write_leaderboard(markdown: str, out_dir: str | Path = "leaderboards", name: str = "leaderboard") -> Path:
    """Write ``<out_dir>/<name>.md`` (folder created); returns the path."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-") or "leaderboard"
    path = Path(out_dir) / f"{safe}.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(markdown, encoding="utf-8")
    return path
