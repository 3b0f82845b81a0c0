"""The architecture as a checked contract: imports run one way (import-linter, configured in
pyproject.toml), plugins use only the public contract, and the CLI and the Python API plan alike."""

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT = [sys.executable, "-c", "import sys; from importlinter.cli import lint_imports_command; "
                              "sys.exit(lint_imports_command())", "--no-cache"]
#: what a built-in method or protocol may import from mer-bench: the public contract
PUBLIC = {"mer_bench.method", "mer_bench.torch_method", "mer_bench.data", "mer_bench.protocol", "mer_bench.registry",
          "mer_bench.testing", "mer_bench._compat", "mer_bench.trainer", "mer_bench.runtime",
          "mer_bench.datasets.megc2019", "mer_bench.preprocess", "mer_bench.kernels.stem2d",
          "mer_bench.kernels.dropout", "mer_bench.kernels", "mer_bench.kernels.conv3d", "mer_bench.kernels.attention3d"}


def _lint(cwd: Path, pythonpath: Path) -> subprocess.CompletedProcess:
    pytest.importorskip("importlinter")
    return subprocess.run([*LINT, "--config", str(cwd / "pyproject.toml")], cwd=cwd, capture_output=True, text=True,
                          env={"PYTHONPATH": str(pythonpath), "PATH": "/usr/bin:/bin"}, timeout=120)


def test_the_import_contracts_hold():
    done = _lint(ROOT, ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


def test_a_back_import_breaks_the_contract(tmp_path):
    shutil.copytree(ROOT / "mer_bench", tmp_path / "mer_bench", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    store = tmp_path / "mer_bench" / "store" / "__init__.py"
    store.write_text(store.read_text().replace("import pandas as pd\n", "import pandas as pd\n\nfrom mer_bench "
                                                                        "import leaderboard  # a back-import\n", 1))
    done = _lint(tmp_path, tmp_path)
    assert done.returncode != 0
    assert "mer_bench.store is not allowed to import mer_bench.leaderboard" in " ".join(done.stdout.split())


def _imports(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
    return out


@pytest.mark.parametrize("folder", ["methods", "protocols"])
def test_built_in_plugins_import_only_the_public_contract(folder):
    for path in sorted((ROOT / folder).glob("*.py")):
        ours = {m for m in _imports(path) if m.startswith("mer_bench")}
        own = {m for m in ours if m.startswith(f"mer_bench.{folder}.")}
        assert ours - own <= PUBLIC, f"{path.name} imports {sorted(ours - own - PUBLIC)}"


def test_the_python_api_and_the_cli_pick_the_same_default_dataset(tmp_path, capsys):
    import json

    from mer_bench.cli import main
    from mer_bench.pipeline import prepare
    from mer_bench.pipeline.plan import default_dataset

    assert default_dataset("megc2019-cde") == "megc2019-flow" and default_dataset("loso") == "synthetic"
    with pytest.raises(Exception, match="megc2019-flow"):  # the composite's dataset, not synthetic
        prepare("ststnet", "megc2019-cde", dataset_options={"data_root": str(tmp_path / "nowhere")})
    assert main(["run", "--method", "ststnet", "--protocol", "megc2019-cde", "--data-root", str(tmp_path / "nowhere"),
                 "--store", str(tmp_path / "s.sqlite")]) == 2
    assert "megc2019-flow" in capsys.readouterr().err
    prep = prepare("majority", "loso", dataset_options={"n_subjects": 4})
    assert prep.specs[0].dataset == "synthetic"
    assert main(["run", "--method", "majority", "--dataset-set", "n_subjects=4", "--json",
                 "--store", str(tmp_path / "s.sqlite")]) == 0
    assert json.loads(capsys.readouterr().out)["results"][0]["run_id"] == prep.specs[0].run_id


TOY = '''
import numpy as np
from mer_bench.method import Method, MethodInfo
from mer_bench.registry import METHODS


class BoardToy(Method):
    info = MethodInfo(name="board-toy", citation="a test double", representation="none", summary="test double")

    def __init__(self, shrink: float = {default}, random_state: int = 0):
        self._store_params(locals())

    def fit(self, train):
        self.classes_ = np.arange(train.n_classes)
        return self

    def predict(self, test):
        return np.zeros(len(test), dtype=np.int64)


METHODS.register("board-toy", BoardToy)
'''


def test_a_board_does_not_change_when_a_methods_code_does(tmp_path):
    """Boards read the facts recorded with each run (overrides beyond the preset, epochs,
    selection), not the method's current code: changing the plugin's default after the run leaves
    the board as it was. A run without the recorded facts (an old store) still renders, from the
    code, and then does change."""
    import sqlite3

    plugin = tmp_path / "board_toy.py"
    store = tmp_path / "s.sqlite"
    script = (f"import sys; sys.path.insert(0, {str(tmp_path)!r}); import board_toy; from mer_bench.cli import main; "
              "sys.exit(main(sys.argv[1:]))")

    def cli(*args):
        done = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        return done.stdout

    def board():
        out = cli("leaderboard", "--store", str(store), "--dataset", "synthetic", "--protocol", "loso")
        return "\n".join(line for line in out.splitlines() if "board-toy" in line)

    plugin.write_text(TOY.format(default="0.0"))
    cli("run", "--method", "board-toy", "--set", "shrink=0.5", "--dataset-set", "n_subjects=4", "--store", str(store))
    before = board()
    assert "defaults, shrink=0.5" in before and "--set shrink=0.5" in before
    plugin.write_text(TOY.format(default="0.5"))  # the method's default changes after the run
    assert board() == before
    with sqlite3.connect(store) as db:  # a run made before the facts were recorded
        db.execute("UPDATE runs SET overrides = NULL, trains_epochs = NULL, selection_code = NULL")
    legacy = board()
    assert "board-toy" in legacy and "shrink=0.5" not in legacy
