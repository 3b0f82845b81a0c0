import os

import pytest


@pytest.fixture(autouse=True)
def _isolated_paths(tmp_path_factory, monkeypatch):
    """Every test gets its own store and a shared per-session dataset cache."""
    cache = tmp_path_factory.getbasetemp() / "cache"
    monkeypatch.setenv("MER_BENCH_CACHE", str(cache))
    monkeypatch.setenv("MER_BENCH_STORE", str(tmp_path_factory.mktemp("store") / "results.sqlite"))
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    # folds in this process unless a test asks for workers (tests register methods in-process)
    monkeypatch.setenv("MER_BENCH_WORKERS", "1")
    # runs record a clean commit whatever the state of the checkout the tests run in, so boards can
    # be written (publishing refuses -dirty rows; tests of that set the commit themselves)
    import mer_bench.pipeline.runner as runner

    monkeypatch.setattr(runner, "git_commit", lambda: "0123456789ab")
