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
          "mer_bench.datasets.megc2019", "mer_bench.preprocess"}


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
    store = tmp_path / "mer_bench" / "store.py"
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
