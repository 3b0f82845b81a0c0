import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from mer_bench.registry import (
    DATASETS,
    METHODS,
    PROTOCOLS,
    DuplicateNameError,
    PluginLoadError,
    Registry,
    UnknownNameError,
)


def test_builtins_are_lazy_and_consistent():
    reg = Registry("method", "mer_bench.test-none", {"meranet": "mer_bench.methods.meranet:MERANet"})
    assert reg.names() == ["meranet"]
    cls = reg.get("meranet")
    assert cls.info.name == "meranet"
    for registry in (METHODS, PROTOCOLS, DATASETS):
        for name in registry.names():
            if registry.origin(name) == "built-in":
                obj = registry.get(name)
                assert getattr(obj, "info", obj).name == name


def test_wildcards_duplicates_and_suggestions():
    reg = Registry("method", "mer_bench.test-none", {"alpha-net": "json:dumps", "beta-net": "json:loads"})
    assert reg.names("*-net") == ["alpha-net", "beta-net"]
    assert reg.names("ALPHA*") == ["alpha-net"]
    with pytest.raises(UnknownNameError, match="(?i)did you mean 'alpha-net'"):
        reg.get("alpha-nte")
    with pytest.raises(DuplicateNameError, match="already registered"):
        reg.register("alpha-net", object)
    import json

    assert reg.register("alpha-net", json.dumps) is json.dumps  # the entry's own object: fine
    reg.register("gamma", sorted)
    with pytest.raises(DuplicateNameError):
        reg.register("gamma", min)


def test_broken_entry_is_reported_not_fatal():
    reg = Registry("method", "mer_bench.test-none", {"ok": "json:dumps", "bad": "no_such_module_xyz:thing"})
    with pytest.raises(PluginLoadError, match="no_such_module_xyz"):
        reg.get("bad")
    assert reg.get("ok") is not None
    assert list(reg.broken()) == ["bad"]


PLUGIN = '''
import numpy as np
from mer_bench.method import Method, MethodInfo


class NearestMean(Method):
    """Nearest class mean of the apex frame minus the clip's first frame (a toy third-party method)."""

    info = MethodInfo(name="toy-nearest-mean", citation="a toy plugin", representation="apex",
                      summary="toy third-party plugin")

    def __init__(self, shrink: float = 0.0, random_state: int = 0):
        self.shrink = shrink
        self.random_state = random_state

    def fit(self, train):
        x = train.X.reshape(len(train), -1)
        self.classes_ = np.arange(train.n_classes)
        self.means_ = np.stack([x[train.y == c].mean(0) if (train.y == c).any() else x.mean(0)
                                for c in self.classes_])
        return self

    def predict(self, test):
        x = test.X.reshape(len(test), -1)
        return ((x[:, None] - self.means_[None]) ** 2).sum(-1).argmin(1)
'''

PYPROJECT = '''
[build-system]
requires = ["setuptools"]
build-backend = "setuptools.build_meta"

[project]
name = "mer-bench-toy-plugin"
version = "0.1"

[tool.setuptools]
py-modules = ["mer_bench_toy"]

[project.entry-points."mer_bench.methods"]
toy-nearest-mean = "mer_bench_toy:NearestMean"
toy-broken = "mer_bench_toy_missing:Nothing"
meranet = "mer_bench_toy:NearestMean"
'''


@pytest.mark.slow
def test_third_party_plugin_installed_with_pip_runs_through_the_cli(tmp_path):
    src = tmp_path / "plugin"
    src.mkdir()
    (src / "mer_bench_toy.py").write_text(textwrap.dedent(PLUGIN))
    (src / "pyproject.toml").write_text(textwrap.dedent(PYPROJECT))
    target = tmp_path / "site"
    pip = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                          "--no-index", "--target", str(target), str(src)], capture_output=True, text=True)
    assert pip.returncode == 0, pip.stderr
    env = {**os.environ, "PYTHONPATH": str(target)}

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "mer_bench.cli", *args], capture_output=True, text=True,
                              env=env, timeout=300)

    listed = cli("list", "methods")
    assert listed.returncode == 0, listed.stderr
    assert "toy-nearest-mean" in listed.stdout and "plugin mer-bench-toy-plugin" in " ".join(listed.stdout.split())
    assert "meranet" in listed.stdout  # the built-in survives
    err = " ".join(listed.stderr.split())
    assert "toy-broken" in err and "mer_bench_toy_missing" in err
    assert "duplicate method name 'meranet'" in err

    ran = cli("run", "--method", "toy-nearest-mean", "--protocol", "loso", "--json", "--store",
              str(tmp_path / "s.sqlite"), "--dataset-set", "n_subjects=4")
    assert ran.returncode == 0, ran.stderr
    assert '"method": "toy-nearest-mean"' in ran.stdout

    bad = cli("run", "--method", "toy-broken")
    assert bad.returncode == 2 and "could not be loaded" in bad.stderr


EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "nearest-mean-plugin"


def test_the_example_plugin_passes_the_conformance_suite(monkeypatch):
    monkeypatch.syspath_prepend(str(EXAMPLE))
    from mer_nearest_mean import NearestMean

    from mer_bench.testing import check_method

    check_method(NearestMean)


@pytest.mark.slow
def test_the_example_plugin_installs_and_runs_through_the_cli(tmp_path):
    target = tmp_path / "site"
    pip = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                          "--no-index", "--target", str(target), str(EXAMPLE)], capture_output=True, text=True)
    assert pip.returncode == 0, pip.stderr
    env = {**os.environ, "PYTHONPATH": str(target)}
    listed = subprocess.run([sys.executable, "-m", "mer_bench.cli", "list", "methods", "nearest*"],
                            capture_output=True, text=True, env=env, timeout=300)
    assert "nearest-mean" in listed.stdout and "plugin mer-nearest-mean" in " ".join(listed.stdout.split())
    own = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(EXAMPLE / "tests")],
                         capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path)
    assert own.returncode == 0, own.stdout + own.stderr  # the author's own one-line conformance test
