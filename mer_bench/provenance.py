"""Facts recorded with a run, as boards and ablation tables show them: what the method saw, the
commit and whether it was clean, the CPU, the wall time (one place for
:mod:`mer_bench.leaderboard` and :mod:`mer_bench.ablation`)."""

from __future__ import annotations

import pandas as pd

__all__ = ["fact", "clean_commit", "input_label", "wall_text", "cpu_text"]


def fact(run: pd.Series, column: str):
    """A fact recorded with the run (store layout 3), or ``None`` for runs made before."""
    v = run.get(column)
    return None if v is None or (isinstance(v, float) and v != v) else v


def clean_commit(commit) -> bool:
    """Whether the recorded source can be had again: a commit without ``-dirty`` (uncommitted
    changes), or ``release <version>`` (an index release); not ``unknown``."""
    return isinstance(commit, str) and bool(commit) and commit != "unknown" and not commit.endswith("-dirty")


def input_label(run: pd.Series) -> str:
    """What the run's method saw, e.g. ``flow 3x28x28 as 1-frame clip``: as recorded with the run
    (store layout 6); for runs made before, :meth:`mer_bench.method.Method.describe_input` of the
    method's code (which imports it, and torch with a torch method); ``as published`` for an
    imported log."""
    from mer_bench.method import shape_label
    from mer_bench.registry import DATASETS, METHODS

    if run["imported"]:
        return "as published"
    if fact(run, "input") is not None:
        return str(run["input"])
    rep = fact(run, "representation")
    try:
        shape = getattr(DATASETS.get(run["dataset"]), "sample_shapes", {}).get(rep)
    except Exception:  # a dataset plugin not installed here
        shape = None
    try:
        cls = METHODS.get(run["method"])
        return cls.describe_input(run["params"], rep or cls.info.representation, shape)
    except Exception:  # a method plugin not installed here: the recorded representation
        return shape_label(rep, shape) if rep else "not recorded"


def wall_text(seconds) -> str:
    """``12.3 s`` or ``16.1 min`` (``n/a`` when not recorded)."""
    if seconds is None or seconds != seconds:
        return "n/a"
    return f"{seconds:.1f} s" if seconds < 90 else f"{seconds / 60:.1f} min"


def cpu_text(run: pd.Series) -> str:
    """``Intel Xeon (AVX512, native bf16), 2 thread(s), mer-bench CPU kernels on``: the CPU facts
    recorded with a run (store layouts 4 and 5), or ``""`` for runs made before."""
    if fact(run, "cpu") is None:
        return ""
    return (f"{run['cpu']}, {int(run['threads'])} thread(s)"
            + ("" if fact(run, "kernels") is None else f", mer-bench CPU kernels {run['kernels']}"))
