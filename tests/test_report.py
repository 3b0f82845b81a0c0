"""``mer-bench report``: the board and its plots, linked; leaderboard --write keeps the links and
regenerates byte-identically."""

import pytest

from mer_bench.cli import main
from mer_bench.plots import cd_cliques

SMALL = ["--dataset-set", "n_subjects=4", "--dataset-set", "min_clips=6", "--dataset-set", "max_clips=8"]


def test_report_writes_board_and_plots(tmp_path, capsys):
    store = str(tmp_path / "s.sqlite")
    for method in ("chance", "majority", "lbptop-svm"):
        args = ["run", "--method", method, "--protocol", "loso", "--store", store, "--dataset-set", "n_subjects=6"]
        assert main(args + (["--set", "blocks=3"] if method == "lbptop-svm" else [])) == 0
    out = tmp_path / "boards"
    assert main(["report", "--dataset", "synthetic", "--protocol", "loso", "--store", store, "--out", str(out)]) == 0
    md = (out / "synthetic-loso.md").read_text()
    for suffix in ("forest", "confusion", "subjects", "cd"):
        png = out / f"synthetic-loso-{suffix}.png"
        assert png.stat().st_size > 5000 and png.read_bytes()[:4] == b"\x89PNG"
        assert f"(synthetic-loso-{suffix}.png)" in md
    assert "| leader |" in md and "UF1 [95 % CI]" in md
    assert md.index("(synthetic-loso-forest.png)") < md.index("## Ranked")  # the forest plot at the top
    assert "] † |" in md and "fewer than 24 subjects" in md  # 6 subjects: intervals flagged and explained
    capsys.readouterr()
    assert main(["leaderboard", "--dataset", "synthetic", "--protocol", "loso", "--store", store, "--write",
                 "--out", str(out)]) == 0
    assert (out / "synthetic-loso.md").read_text() == md  # byte-identical, plots still linked
    assert main(["report", "--dataset", "synthetic", "--protocol", "holdout", "--store", store, "--out",
                 str(out)]) == 2
    assert "no completed runs" in capsys.readouterr().err


def test_cd_cliques_join_only_pairwise_ties():
    import numpy as np

    p = np.ones((4, 4))
    p[0, 2] = p[2, 0] = p[0, 3] = p[3, 0] = p[1, 3] = p[3, 1] = 0.01
    assert cd_cliques(p, [0, 1, 2, 3]) == [(0, 1), (1, 2), (2, 3)]
    assert cd_cliques(np.full((3, 3), 0.001), [0, 1, 2]) == []


def test_leaderboard_explains_what_it_cannot_test(tmp_path, capsys):
    store = str(tmp_path / "s.sqlite")
    base = ["--store", store, "--dataset-set", "n_subjects=4"]
    assert main(["run", "--method", "chance", "--protocol", "holdout", *base]) == 0  # 1 test subject
    assert main(["run", "--method", "majority", "--protocol", "holdout", "--seed", "1", *base]) == 0
    capsys.readouterr()
    assert main(["leaderboard", "--dataset", "synthetic", "--protocol", "holdout", "--store", store]) == 0
    md = capsys.readouterr().out
    assert "n/a (1 test subject(s))" in md  # no interval from one subject
    # seeds 0 and 1 hold out different subjects: the rows are on different clips, one of them is ranked
    assert "| leader |" in md
    other = _section(md, "Other clips or options (not comparable with the ranked rows)")
    moved = [m for m in ("chance", "majority") if any(f"| {m} |" in line for line in other)]
    assert len(moved) == 1


@pytest.mark.parametrize("commit", ["0123456789ab-dirty", "unknown"])
def test_publishing_refuses_rows_from_uncommitted_code_unless_allowed_and_then_marks_them(tmp_path, monkeypatch,
                                                                                         capsys, commit):
    import mer_bench.pipeline.runner as runner

    monkeypatch.setattr(runner, "git_commit", lambda: commit)
    store = str(tmp_path / "s.sqlite")
    assert main(["run", "--method", "majority", "--protocol", "loso", "--dataset", "synthetic", "--seed", "0",
                 "--seed", "1", "--store", store, *SMALL]) == 0
    out = tmp_path / "lb"
    args = ["leaderboard", "--dataset", "synthetic", "--protocol", "loso", "--store", store, "--write", "--out",
            str(out)]
    capsys.readouterr()
    assert main(args) == 2
    assert "uncommitted or unknown code" in capsys.readouterr().err and not out.exists()
    assert main(["report", "--dataset", "synthetic", "--protocol", "loso", "--store", store, "--out", str(out)]) == 2
    assert not out.exists()
    assert main([*args, "--allow-dirty"]) == 0
    board = (out / "synthetic-loso.md").read_text()
    assert "**measured with uncommitted or unknown code**" in board and commit in board
    # the row's reproduce command reproduces both seeds
    assert "--seed 0 --seed 1" in board


def _section(md: str, heading: str) -> list[str]:
    """The table lines of the board section ``## heading`` (empty when there is none)."""
    lines = md.splitlines()
    start = next((i for i, line in enumerate(lines) if line == f"## {heading}"), None)
    if start is None:
        return []
    out = []
    for line in lines[start + 1:]:
        if line.startswith("## "):
            break
        if line.startswith("|"):
            out.append(line)
    return out


def test_only_comparable_leak_free_rows_are_ranked_and_the_leader_is_one_of_them(tmp_path, monkeypatch, capsys):
    import numpy as np

    from mer_bench import reported
    from mer_bench.importers import import_predictions
    from mer_bench.leaderboard import leaderboard_rows
    from mer_bench.registry import DATASETS
    from mer_bench.store import Store

    store = str(tmp_path / "s.sqlite")
    base = ["--protocol", "loso", "--store", store, *SMALL]
    assert main(["run", "--method", "chance", *base]) == 0
    assert main(["run", "--method", "majority", "--seed", "0", "--seed", "1", *base]) == 0
    # a leaky run and its leak-free twin (one training); epochs=2 makes it a non-default arm
    assert main(["run", "--method", "ststnet", "--select-epoch", "both", "--set", "epochs=2", "--no-kernels",
                 *base]) == 0
    # a run on other clips: 3 subjects instead of 4
    assert main(["run", "--method", "chance", "--protocol", "loso", "--store", store, "--dataset-set",
                 "n_subjects=3", "--dataset-set", "min_clips=6", "--dataset-set", "max_clips=8"]) == 0
    # published predictions on the same clips, right on every other clip
    ds = DATASETS.get("synthetic")(n_subjects=4, min_clips=6, max_clips=8)
    t = ds.table()
    log = tmp_path / "published.txt"
    text = []
    for subject, g in t.groupby("subject", sort=True):
        text.append(f"synthetic {subject}")
        text += [f"{c} {y} {y if k % 2 else (y + 1) % 3}" for k, (c, y) in enumerate(zip(g["clip"], g["label"]))]
    log.write_text("\n".join(text) + "\n")
    with Store(store) as st:
        import_predictions(st, log, "half-right", ds, "loso")
    # a paper's figure, better than everything measured
    monkeypatch.setitem(reported.REPORTED, ("synthetic", "loso"), [
        {"method": "PaperNet (paper)", "leaky": False, "selection": "last epoch", "source": "Someone et al. 2030",
         "metric": "UF1, UAR", "scores": {"Full": (.99, .98)}}])

    with Store(store, readonly=True) as st:
        rows = leaderboard_rows(st, "loso", "synthetic", n_resamples=200)
    table = {(r["method"], r["leaky"], r["dataset"] and len(r["_clips"]) if isinstance(r["_clips"], frozenset)
              else 0): r["table"] for _, r in rows.iterrows()}
    where = {}
    for (method, leaky, _), t_ in table.items():
        where.setdefault((method, leaky), set()).add(t_)
    assert where[("PaperNet (paper)", "no")] == {"reported"}
    assert where[("ststnet", "**yes**")] == {"inflation"}
    assert where[("ststnet", "no")] == {"other settings"}        # epochs=2: an arm, not the default
    assert where[("chance", "no")] == {"ranked", "other clips"}  # the 3-subject run is on other clips
    assert where[("majority", "no")] == {"ranked"} and where[("half-right", "no")] == {"ranked"}
    ranked = rows[rows["table"] == "ranked"]
    assert list(ranked["rank"]) == ["1", "2", "3"]
    # the input column: what each method saw, as recorded with the run
    assert set(rows.loc[rows["method"] == "ststnet", "input"]) == {"flow 3x28x28"}
    assert set(ranked["input"]) == {"none (labels only)", "as published"}
    assert ranked.iloc[0]["method"] == "half-right" and ranked.iloc[0]["vs leader"] == "leader"
    assert (rows.loc[rows["table"] != "ranked", "rank"] == "").all()  # nothing else is ranked
    assert (rows["vs leader"] == "leader").sum() == 1
    leaky = rows[rows["table"] == "inflation"].iloc[0]
    assert leaky["_twin"] is not None and rows.loc[leaky["_twin"], "method"] == "ststnet"
    assert leaky["_delta"].startswith(("+", "-")) and "[" in leaky["_delta"]  # paired interval
    assert np.isclose(float(leaky["_delta"].split()[0]), leaky["_uf1"] - rows.loc[leaky["_twin"], "_uf1"])

    out = tmp_path / "lb"
    args = ["leaderboard", "--dataset", "synthetic", "--protocol", "loso", "--store", store, "--write", "--out",
            str(out)]
    assert main(args) == 0
    md = (out / "synthetic-loso.md").read_text()
    head, *body = _section(md, "Ranked")
    assert len(head.strip("|").split("|")) <= 12
    names = [line.split("|")[2].strip() for line in body[1:]]
    assert names[0] == "half-right" and sorted(names[1:]) == ["chance", "majority"]
    assert not any("ststnet" in line or "PaperNet" in line for line in body)
    assert any("| ststnet |" in line for line in _section(md, "Leaky rows and their inflation (not ranked)"))
    assert any("PaperNet (paper)" in line for line in _section(md, "Reported in papers (not reproduced)"))
    assert any("| chance |" in line for line in _section(md, "Other clips or options (not comparable with the ranked "
                                                             "rows)"))
    assert any("| ststnet |" in line for line in _section(md, "Other settings (not ranked)"))
    assert "--seed 0 --seed 1" in md  # the majority row's command reproduces both seeds
    capsys.readouterr()
    assert main(args) == 0
    assert (out / "synthetic-loso.md").read_text() == md  # byte-identical


def test_classes_absent_from_one_database_are_named_on_the_board(tmp_path):
    from mer_bench.leaderboard import leaderboard_rows, render_markdown
    from mer_bench.store import Store

    # a two-database composite log: CASME II has no surprise clip, SAMM has all three classes
    rows = []
    for db, subjects, labels in (("casme2", ("sub01", "sub02"), (0, 1, 0, 1)), ("samm", ("006", "007"), (0, 1, 2, 2))):
        for s_i, subject in enumerate(subjects):
            for k, y in enumerate(labels):
                rows.append((s_i + (0 if db == "casme2" else 2), f"{db}/{subject}", f"{db}/{subject}/c{k}", subject, db,
                             y, (y + k) % 3))
    folds = []
    for f in sorted({r[0] for r in rows}):
        part = [r for r in rows if r[0] == f]
        folds.append((f, part[0][1], len(rows) - len(part), [(r[2], r[3], r[4], r[5], r[6], None) for r in part]))
    meta = {"run_id": "abc-imported", "config_hash": "abc", "method": "somelog", "dataset": "megc2019-flow",
            "protocol": "megc2019-cde", "seed": 0, "preset": None, "params": {"format": "megc-log", "file": "x.txt"},
            "dataset_options": {}, "dataset_fingerprint": "f", "protocol_options": {},
            "classes": ["negative", "positive", "surprise"], "leaky": 0, "imported": 1, "n_folds": len(folds),
            "selection": "as published"}
    with Store(tmp_path / "s.sqlite") as st:
        st.write_imported(meta, folds)
        md = render_markdown(leaderboard_rows(st, "megc2019-cde", "megc2019-flow", reported=False, n_resamples=100))
    note = next(line for line in md.splitlines() if "excluded from the means" in line)
    assert "CASME II: surprise" in note and "SAMM" not in note and "Full" not in note


def test_placeholder_methods_are_named_so_on_every_board_row():
    from mer_bench.leaderboard import _is_placeholder
    from mer_bench.registry import METHODS

    assert _is_placeholder("meganet") and METHODS.get("meganet").info.placeholder
    assert not _is_placeholder("meranet") and not _is_placeholder("ststnet-published")


def test_the_cd_diagram_tests_every_pair_of_ranked_rows_on_pooled_uf1():
    import numpy as np

    from mer_bench import stats

    rng = np.random.default_rng(0)
    n, subjects = 120, np.repeat([f"s{i}" for i in range(12)], 10)
    y = rng.integers(0, 3, n)
    good = np.where(rng.random(n) < 0.8, y, (y + 1) % 3)
    ids = np.array([f"c{i}" for i in range(n)])
    strata = np.array(["d"] * n)

    def st(pred):
        return (y, np.asarray(pred)[None], subjects, strata, ids)

    p = stats.pairwise_holm([st(good), st(good), st(np.zeros(n, int))], 3, n_resamples=500)
    assert p.shape == (3, 3) and np.allclose(np.diag(p), 1)
    assert p[0, 1] == 1.0  # identical predictions: never separated
    assert p[0, 2] < 0.05 and p[1, 2] < 0.05  # 80 % right vs a majority-class predictor
    with pytest.raises(stats.StatsError, match="not on the same samples"):
        stats.pairwise_holm([st(good), (y, good[None], subjects, strata, ids[::-1])], 3, n_resamples=100)


def test_leaderboard_json_and_csv_give_numbers_as_numbers(tmp_path, capsys):
    import io
    import json

    import pandas as pd

    store = str(tmp_path / "s.sqlite")
    assert main(["run", "--method", "chance", "--seed", "0", "--seed", "1", "--protocol", "loso", "--store", store,
                 *SMALL]) == 0
    assert main(["run", "--method", "majority", "--protocol", "loso", "--store", store, *SMALL]) == 0
    capsys.readouterr()
    base = ["leaderboard", "--dataset", "synthetic", "--protocol", "loso", "--store", store]
    assert main([*base, "--format", "json"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert [r["rank"] for r in records] == [1, 2] and {r["table"] for r in records} == {"ranked"}
    chance = next(r for r in records if r["method"] == "chance")
    assert isinstance(chance["uf1"], float) and isinstance(chance["uf1_sd"], float) and chance["seeds"] == 2
    assert chance["uf1_low"] <= chance["uf1"] <= chance["uf1_high"] and chance["leaky"] is False
    assert {r["vs_leader"] for r in records} <= {"leader", "tied", "above", "below"}
    assert main([*base, "--format", "csv"]) == 0
    table = pd.read_csv(io.StringIO(capsys.readouterr().out))
    assert len(table) == 2 and table["uf1"].dtype == float and "uf1_high" in table
    assert main([*base, "--format", "json", "--write"]) == 2


def test_leaderboard_suggests_a_name_when_a_misspelt_dataset_matches_nothing(tmp_path, capsys):
    store = str(tmp_path / "s.sqlite")
    assert main(["run", "--method", "majority", "--protocol", "loso", "--store", store, *SMALL]) == 0
    capsys.readouterr()
    assert main(["leaderboard", "--dataset", "synthetc", "--store", store]) == 2
    assert "Did you mean 'synthetic'" in capsys.readouterr().err
    assert main(["leaderboard", "--dataset", "synthetic", "--protocol", "holdout", "--store", store]) == 0
    assert "No completed runs match" in capsys.readouterr().out  # known names, no runs: not an error
