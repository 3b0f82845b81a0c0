import json
import os
import subprocess
import sys

import pytest

from mer_bench.cli import main

SMALL = ["--dataset-set", "n_subjects=4", "--dataset-set", "min_clips=6", "--dataset-set", "max_clips=8"]


def _cli(*args, env=None, timeout=300):
    return subprocess.run([sys.executable, "-m", "mer_bench.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})


def test_importing_the_cli_does_not_import_torch():
    code = "import sys, mer_bench.cli; mer_bench.cli.build_parser(); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "False"


def test_help_lists_commands():
    out = _cli("--help")
    assert out.returncode == 0
    for cmd in ("run", "list", "leaderboard"):
        assert cmd in out.stdout


def test_list_with_wildcard(capsys):
    assert main(["list", "methods", "*3d*"]) == 0
    out = capsys.readouterr().out
    assert "resnet3d18" in out and "meranet" not in out
    assert main(["list", "protocols"]) == 0
    assert "LEAKY" in capsys.readouterr().out


def test_run_json_and_leaderboard(tmp_path, capsys):
    store = str(tmp_path / "s.sqlite")
    assert main(["run", "--method", "majority", "--store", store, "--json", *SMALL]) == 0
    result = json.loads(capsys.readouterr().out)
    (r,) = result["results"]
    assert r["method"] == "majority" and r["folds"] == 4 and r["leaky"] is False
    assert 0 <= r["scores"]["Full"]["uf1"] <= 1
    assert main(["run", "--method", "chance", "--protocol", "holdout-sample", "--store", store, *SMALL]) == 0
    out = capsys.readouterr().out
    assert "LEAKY" in out and "UF1" in out
    assert main(["leaderboard", "--store", store, "--write", "--out", str(tmp_path / "lb"),
                 "--dataset", "synthetic"]) == 0
    md = (tmp_path / "lb" / "synthetic.md").read_text()
    assert "| 1 | majority | loso | defaults | none (labels only) | measured |" in md
    leaky = md.split("## Leaky rows and their inflation (not ranked)")[1].split("## ")[0]
    assert "| chance | holdout-sample |" in leaky and "no leak-free twin" in leaky  # the leaky row, not ranked
    assert r["config_hash"] in md


@pytest.mark.parametrize("args,message", [
    (["run", "--method", "meranett"], "did you mean 'meranet'"),
    (["run", "--method", "chance", "--protocol", "losoo"], "unknown protocol"),
    (["run", "--method", "chance", "--dataset", "nope"], "unknown dataset"),
    (["run", "--method", "meranet", "--set", "widht=8"], "did you mean 'width'"),
    (["run", "--method", "meranet", "--set", "epochs=-1"], "epochs must be a positive int"),
    (["run", "--method", "meranet", "--set", "nokey"], "key=value"),
    (["run", "--method", "chance", "--dataset-set", "n_subjects=1"], "at least 2 subjects"),
    (["run", "--method", "chance", "--dataset-set", "colour=3"], "--dataset-set colour: synthetic has no option"),
    (["run", "--method", "chance", "--dataset-set", "n_subjects=four"], "--dataset-set n_subjects must be int"),
    (["run", "--method", "chance", "--dataset-set", "n_subjects=4.7"], "must be int (a whole number), got 4.7"),
    (["run", "--method", "chance", "--dataset-set", "amplitude=nan"], "--dataset-set amplitude=nan: not a finite"),
    (["run", "--method", "meranet", "--set", "lr=1e999"], "--set lr=1e999: not a finite number"),
    (["run", "--method", "chance", "--seed", "99999999999999999999"], "seeds run from 0 to"),
    (["run", "--method", "chance", "--seed", "-1"], "--seed -1: seeds run from 0 to"),
])
def test_bad_input_is_a_clear_error(args, message, capsys):
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "error:" in err and message.lower() in " ".join(err.split()).lower()


def test_unwritable_store_fails_before_training(tmp_path, capsys):
    blocker = tmp_path / "f"
    blocker.write_text("")
    assert main(["run", "--method", "meranet", "--store", str(blocker / "x.sqlite")]) == 2
    assert "cannot write the results store" in capsys.readouterr().err


def test_help_list_and_leaderboard_never_import_torch(tmp_path):
    import subprocess
    import sys

    code = ("import sys\nfrom mer_bench.cli import main\n"
            "for argv in (['list', 'methods'], ['list', 'datasets'], ['list', 'protocols'],\n"
            "             ['leaderboard', '--store', sys.argv[1]]):\n"
            "    main(argv)\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "assert 'torch' not in sys.modules, 'torch was imported'\n")
    store = str(tmp_path / "s.sqlite")
    for method in ("majority", "lbptop-svm"):  # measured runs on the board (made in other processes)
        made = subprocess.run([sys.executable, "-m", "mer_bench.cli", "run", "--method", method, "--store", store,
                               "--dataset-set", "n_subjects=3", "--set" if method == "lbptop-svm" else "--json",
                               *(["blocks=2"] if method == "lbptop-svm" else [])], capture_output=True, text=True)
        assert made.returncode == 0, made.stderr
    res = subprocess.run([sys.executable, "-c", code, store], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert "| majority | synthetic | loso | defaults | none (labels only) | measured |" in res.stdout
    assert "selection: n/a (no training epochs)" in res.stdout
    assert "meranet" in res.stdout and "MERANet-18" in res.stdout  # the summary is read without importing


def test_stack_folds_on_the_command_line(tmp_path, capsys):
    base = ["run", "--protocol", "loso", "--dataset-set", "n_subjects=3", "--store", str(tmp_path / "s.sqlite")]
    assert main([*base, "--method", "lbptop-svm", "--stack-folds", "3"]) == 2
    assert "no network to stack" in capsys.readouterr().err
    assert main([*base, "--method", "ststnet", "--set", "epochs=1", "--set", "batch_size=8", "--stack-folds", "3",
                 "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["results"][0]["status"] == "computed" and out["results"][0]["folds"] == 3
