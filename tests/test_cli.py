import json
import os
import subprocess
import sys
from pathlib import Path

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


# -- the CLI's rough edges (issue: results that travel) ---------------------------------------------
@pytest.mark.parametrize("args,message", [
    (["run", "--method", "chance", "--set", "foo=1"], "valid: none (it takes no hyper-parameters)"),
    (["leaderboard", "--store", "/nonexistent/typo.sqlite"], "no results store at /nonexistent/typo.sqlite"),
    (["report", "--dataset", "synthetic", "--protocol", "loso", "--store", "/nonexistent/typo.sqlite"],
     "no results store"),
    (["export", "--dataset", "synthetic", "--store", "/nonexistent/typo.sqlite"], "no results store"),
])
def test_edge_errors(args, message, capsys):
    assert main(args) == 2
    assert message in " ".join(capsys.readouterr().err.split())


def test_a_misspelt_dataset_on_leaderboard_gets_a_suggestion(tmp_path, capsys):
    store = str(tmp_path / "s.sqlite")
    assert main(["run", "--method", "majority", "--store", store, *SMALL, "--json"]) == 0
    capsys.readouterr()
    for flag, typo, right in (("--dataset", "synthetc", "synthetic"), ("--protocol", "losoo", "loso")):
        assert main(["leaderboard", "--store", store, flag, typo]) == 2
        assert f"Did you mean '{right}'" in capsys.readouterr().err


def test_filter_help_texts_and_data_subcommand_help():
    for cmd in ("leaderboard", "report", "export"):
        text = " ".join(_cli(cmd, "--help").stdout.split())
        for flag in ("--dataset", "--store"):
            after = text.split(flag, 2)[-1][:80]
            assert len(after.split()) > 2, f"{cmd} {flag} has no help: {after!r}"
    check = _cli("data", "check", "--help").stdout
    assert "report every problem" in check.lower() or "every problem at once" in check
    assert "usage: mer-bench data check" in check
    stats = _cli("data", "stats", "--help").stdout
    assert "usage: mer-bench data stats" in stats and "class scheme" in stats


def test_run_output_fits_80_columns_with_one_selection_label_and_a_readable_header(tmp_path):
    store = str(tmp_path / "s.sqlite")
    env = {**os.environ, "COLUMNS": "80"}
    out = subprocess.run([sys.executable, "-m", "mer_bench.cli", "run", "--method", "chance", "--store", store,
                          *SMALL], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    assert max(len(line) for line in out.stdout.splitlines()) <= 80
    assert "selection: n/a (no training epochs)" in out.stdout and "n/a (no\n" not in out.stdout
    assert "no hyper-parameters" in out.stderr and "params {}" not in out.stderr
    # a floor's own run gets no "run the floor" hint
    assert "chance level: UAR 0.3333." in out.stdout and "for the empirical floor" not in out.stdout
    js = subprocess.run([sys.executable, "-m", "mer_bench.cli", "run", "--method", "chance", "--store", store,
                         *SMALL, "--json"], capture_output=True, text=True)
    assert json.loads(js.stdout)["results"][0]["selection"] == "n/a (no training epochs)"
    assert main(["leaderboard", "--store", store, "--format", "json"]) == 0


def test_the_floor_hint_keeps_the_runs_dataset_options(tmp_path, capsys):
    from mer_bench.cli.run import floor_hint, params_text
    from mer_bench.pipeline import RunResult, prepare

    (spec,) = prepare("ststnet", "loso", dataset_options={"n_subjects": 3, "amplitude": 0.5}, seeds=[2]).specs
    res = RunResult(spec, "computed", 3, 1.0, {"Full": {"per_class": [{}, {}, {}]}})
    hint = floor_hint([res], {"n_subjects": 3, "amplitude": 0.5, "data_root": "/data/x"})
    assert ("mer-bench run --method chance --protocol loso --dataset synthetic --dataset-set amplitude=0.5 "
            "--data-root /data/x --dataset-set n_subjects=3 --seed 2") in hint
    assert params_text({}) == "no hyper-parameters" and params_text({"lr": 0.1, "shared": "mlp"}) == \
        "params lr=0.1, shared=mlp"


def test_the_progress_bar_has_an_eta(tmp_path):
    out = subprocess.run([sys.executable, "-m", "mer_bench.cli", "run", "--method", "majority", "--store",
                          str(tmp_path / "s.sqlite"), *SMALL], capture_output=True, text=True)
    assert out.returncode == 0 and "ETA " in out.stderr


def test_packaging_metadata():
    from mer_bench.data_roots import tomllib  # tomllib, or tomli on Python 3.10

    meta = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())["project"]
    assert meta["license"] == "MIT" and meta["license-files"] == ["LICENSE"]
    assert (Path(__file__).resolve().parents[1] / "LICENSE").read_text().startswith("MIT License")
    assert any(c.startswith("Programming Language :: Python :: 3.10") for c in meta["classifiers"])
    # Python 3.10 has no tomllib: the tomli package stands in there
    assert "tomli>=1.1; python_version < '3.11'" in meta["dependencies"]
    assert meta["requires-python"] == ">=3.10"


def test_data_roots_reads_its_config_with_tomli_on_python_3_10(monkeypatch, tmp_path):
    import importlib
    import types

    import mer_bench.data_roots as data_roots

    tomllib = data_roots.tomllib

    fake = types.ModuleType("tomli")
    fake.loads, fake.TOMLDecodeError = tomllib.loads, tomllib.TOMLDecodeError
    monkeypatch.setitem(sys.modules, "tomli", fake)
    monkeypatch.setitem(sys.modules, "tomllib", None)  # import tomllib fails, as on 3.10
    monkeypatch.setattr(sys, "version_info", (3, 10, 14, "final", 0))
    try:
        reloaded = importlib.reload(data_roots)
        assert reloaded.tomllib is fake
        cfg = tmp_path / "config.toml"
        cfg.write_text('[data_roots]\ncasme2 = "/data/casme2"\n')
        monkeypatch.setenv("MER_BENCH_CONFIG", str(cfg))
        monkeypatch.delenv("MER_BENCH_DATA_CASME2", raising=False)
        path, source = reloaded.resolve_data_root("casme2", None)
        assert str(path) == "/data/casme2" and "[data_roots]" in source
    finally:
        monkeypatch.undo()
        importlib.reload(data_roots)


def test_the_source_is_recorded_outside_a_checkout(monkeypatch, tmp_path):
    from importlib import metadata

    import mer_bench.pipeline.runner as runner

    here = Path(runner.__file__).resolve().parents[1]  # .../mer_bench

    class Dist:
        version = "0.1.0"

        def __init__(self, direct):
            self.direct = direct

        def locate_file(self, name):
            return here.parent / name  # the running copy: mer_bench/ is its package folder

        def read_text(self, name):
            return self.direct

    for direct, site, expected in ((None, True, "release 0.1.0"), (None, False, "unknown"),
                                   ('{"dir_info": {}}', False, "unknown"),
                                   ('{"url": "git+https://x/y", "vcs_info": {"vcs": "git", "commit_id": '
                                    '"0123456789abcdef0123"}}', False, "0123456789ab"),
                                   ('{"url": "file:///src", "dir_info": {}}', True, "unknown")):
        monkeypatch.setattr(metadata, "distribution", lambda name, d=direct: Dist(d))
        parts = ("site-packages",) if site else ()
        monkeypatch.setattr(runner, "__file__", str(here.joinpath(*parts, "mer_bench", "pipeline", "runner.py"))
                            if site else runner.__file__)
        if site:  # the distribution must be the running copy
            monkeypatch.setattr(Dist, "locate_file", lambda self, name: here / "site-packages" / name)
        assert runner.installed_source() == expected, (direct, site)
        monkeypatch.undo()


def test_a_run_prints_its_chance_floor_on_the_same_folds(tmp_path, capsys):
    store = str(tmp_path / "s.sqlite")
    base = ["--store", store, "--dataset-set", "n_subjects=4", "--seed", "0", "--seed", "2"]
    assert main(["run", "--method", "lbptop-svm", *base]) == 0
    out = capsys.readouterr().out
    floors = [line for line in out.splitlines() if line.rstrip().endswith("chance floor │")]
    assert len(floors) == 2 and "the chance floor rows are what" in out
    assert main(["run", "--method", "chance", *base, "--json"]) == 0
    import json

    stored = json.loads(capsys.readouterr().out)["results"]
    for line, res in zip(floors, stored):  # the row is the stored chance run, to the printed digits
        cells = [c.strip() for c in line.split("│") if c.strip()]
        assert cells[0] == str(res["seed"]) and cells[2] == f"{res['scores']['Full']['uf1']:.4f}"
