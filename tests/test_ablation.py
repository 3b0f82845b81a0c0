"""``mer-bench ablate``: grids, presets, the comparison table."""

import pytest

from mer_bench.ablation import arms_for, expand_grid
from mer_bench.cli import main


def test_grid_and_presets_expand_to_arms():
    arms = expand_grid("meranet", "loso", {"kernel_size": [5, 3], "shared": ["cnn", "mlp"]})
    assert [a.label for a in arms] == ["kernel_size=5, shared=cnn", "kernel_size=5, shared=mlp",
                                       "kernel_size=3, shared=cnn", "kernel_size=3, shared=mlp"]
    assert [a.overrides["kernel_size"] for a in arms_for("kernel", None, "loso")] == [5, 3, 7]  # 5: the paper's
    assert [a.method for a in arms_for("attention", None, "loso")] == ["meranet", "resnet3d18"]
    assert [a.protocol for a in arms_for("leakage", "chance", "loso")] == ["loso", "holdout", "holdout-sample"]
    with pytest.raises(ValueError, match="unknown ablation 'depth'"):
        arms_for("depth", None, "loso")


def test_ablate_cli_compares_arms_on_the_same_clips(tmp_path, capsys):
    store = str(tmp_path / "s.sqlite")
    assert main(["ablate", "--method", "lbptop-svm", "--grid", "blocks=2,3", "--store", store,
                 "--dataset-set", "n_subjects=5", "--write", "--out", str(tmp_path), "--name", "abl"]) == 0
    md = (tmp_path / "abl.md").read_text()
    assert "![UF1 per arm](abl.png)" in md and (tmp_path / "abl.png").stat().st_size > 3000
    assert "| blocks=2 | lbptop-svm | loso | clip 3x8x32x32 | 1 |" in md and "| reference |" in md
    assert "- blocks=3: commit 0123456789ab; on cpu" in md and "per seed" in md  # provenance per arm
    row = next(line for line in md.splitlines() if line.startswith("| blocks=3 "))
    assert "p_Holm" in row and row.count(" / ") >= 2
    assert "--set blocks=3 --seed 0 --dataset-set n_subjects=5" in md


def test_ablate_leakage_preset_gives_intervals_only_across_protocols(tmp_path, capsys):
    store = str(tmp_path / "s.sqlite")
    assert main(["ablate", "--ablation", "leakage", "--method", "chance", "--store", store,
                 "--dataset-set", "n_subjects=6"]) == 0
    md = capsys.readouterr().out
    assert md.count("n/a (different test clips: intervals only)") == 2
    assert "sample hold-out (LEAKY)" in md


def test_ablate_needs_a_grid_or_a_preset(capsys):
    assert main(["ablate", "--method", "meranet"]) == 2
    assert "either --ablation NAME or --method M --grid" in capsys.readouterr().err


def test_ablate_write_refuses_arms_from_uncommitted_code_unless_allowed(tmp_path, monkeypatch, capsys):
    import mer_bench.pipeline.runner as runner

    monkeypatch.setattr(runner, "git_commit", lambda: "0123456789ab-dirty")
    store = str(tmp_path / "s.sqlite")
    args = ["ablate", "--ablation", "leakage", "--method", "chance", "--store", store, "--dataset-set",
            "n_subjects=6", "--write", "--out", str(tmp_path / "lb"), "--name", "abl"]
    capsys.readouterr()
    assert main(args) == 2
    assert "uncommitted or unknown code" in capsys.readouterr().err and not (tmp_path / "lb" / "abl.md").exists()
    assert main([*args, "--allow-dirty"]) == 0
    assert "**uncommitted or unknown code**" in (tmp_path / "lb" / "abl.md").read_text()


def test_method_ablations_on_the_embedded_dataset_use_the_powered_configuration(capsys):
    from mer_bench.cli.ablate import ablation_setting
    from mer_bench.datasets.synthetic import ABLATION_CONFIG, ABLATION_PROTOCOL

    protocol, popts, dopts = ablation_setting("kernel", None, None, {}, {}, None)
    assert (protocol, popts, dopts) == (ABLATION_PROTOCOL[0], ABLATION_PROTOCOL[1], ABLATION_CONFIG)
    assert "ablation configuration" in capsys.readouterr().out
    # anything the user names wins: a protocol, a dataset option, another dataset, leakage
    assert ablation_setting("kernel", "loso", None, {}, {}, None) == ("loso", {}, {})
    assert ablation_setting("kernel", None, None, {"n_subjects": 6}, {}, None) == ("loso", {}, {"n_subjects": 6})
    assert ablation_setting("kernel", None, "megc2019-flow", {}, {}, "DATA")[0] == "loso"
    assert ablation_setting("leakage", None, None, {}, {}, None) == ("loso", {}, {})
    arm = arms_for("kernel", None, "subject-kfold", {"k": 3})[1]
    assert "--protocol subject-kfold --dataset synthetic --protocol-set k=3" in arm.command("synthetic", "testbed", [0])


def test_ablation_board_states_its_power(tmp_path, capsys):
    store = str(tmp_path / "s.sqlite")
    assert main(["ablate", "--method", "lbptop-svm", "--grid", "blocks=2,3", "--store", store, "--seed", "0",
                 "--seed", "1", "--dataset-set", "n_subjects=4"]) == 0
    md = capsys.readouterr().out
    assert "Power: the paired test detects a true UF1 difference of 0.03" in md and "(4 subjects" in md


def test_power_cli_simulates_from_two_runs(tmp_path, capsys):
    store = str(tmp_path / "s.sqlite")
    assert main(["run", "--method", "chance", "--seed", "0", "--seed", "1", "--store", store,
                 "--dataset-set", "n_subjects=4", "--json"]) == 0
    import json

    ids = [r["run_id"] for r in json.loads(capsys.readouterr().out)["results"]]
    assert main(["power", *ids, "--store", store, "--subjects", "4,16", "--sims", "40", "--effect", "0.05"]) == 0
    out = capsys.readouterr().out
    assert "| 4 |" in out and "| 16 |" in out and "disagreeing on" in out
    assert main(["power", ids[0], "nope-s0", "--store", store]) == 2
    assert "not a complete run" in capsys.readouterr().err


def test_arms_identical_to_the_reference_are_named_as_exactly_equal():
    import pandas as pd

    from mer_bench.ablation import Arm, identical_to_reference

    def run(pred, p0=0.6):
        return pd.DataFrame({"sample_id": ["b", "a"], "fold_index": [0, 1], "subject": ["s2", "s1"],
                             "dataset": ["d", "d"], "y_true": [0, 1], "y_pred": pred,
                             "proba": [[p0, 1 - p0], [0.3, 0.7]]})

    arms = [Arm("ref", "m", "loso"), Arm("same", "m", "loso"), Arm("other class", "m", "loso"),
            Arm("other proba", "m", "loso")]
    ref = [run([0, 1]), run([1, 1])]
    preds = [ref, [r.iloc[::-1] for r in ref],  # the same rows in another order
             [run([0, 1]), run([0, 1])], [run([0, 1], 0.6000001), run([1, 1])]]
    assert identical_to_reference(arms, preds) == ["same"]
