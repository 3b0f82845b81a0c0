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
    for suffix in ("confusion", "subjects", "cd"):
        png = out / f"synthetic-loso-{suffix}.png"
        assert png.stat().st_size > 5000 and png.read_bytes()[:4] == b"\x89PNG"
        assert f"(synthetic-loso-{suffix}.png)" in md
    assert "| leader |" in md and "UF1 95% CI" in md
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
    assert "n/a (other samples)" in md and "| leader |" in md  # seeds 0 and 1 hold out different subjects


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
