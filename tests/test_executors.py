"""``--executor ray``: a tiny LOSO through a local Ray with 2 CPUs gives the local executor's
predictions; failures are clear and lose no completed fold."""

import numpy as np
import pytest

from mer_bench.cli import main
from mer_bench.pipeline import execute, prepare
from mer_bench.pipeline.executors import ExecutorError, FoldWriter, run_folds_on_ray
from mer_bench.store import Store

ray = pytest.importorskip("ray", reason="Ray not installed (pip install 'mer-bench[ray]')")


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.mark.slow
@pytest.mark.parametrize("method,overrides", [("lbptop-svm", {"blocks": 3}), ("chance", {})])
def test_ray_gives_the_local_predictions(local_ray, tmp_path, method, overrides):
    opts = {"n_subjects": 4, "min_clips": 6, "max_clips": 8}
    preds = {}
    for executor in ("local", "ray"):
        prep = prepare(method, "loso", "synthetic", [0], overrides, dataset_options=opts)
        with Store(tmp_path / f"{executor}.sqlite") as store:
            res = execute(prep, store, device="cpu", executor=executor)
            preds[executor] = store.predictions(res[0].spec.run_id)
            assert res[0].status == "computed" and res[0].n_folds == 4
            assert res[0].device == ("cpu" if executor == "local" else "ray:cpu")
    assert preds["local"]["sample_id"].tolist() == preds["ray"]["sample_id"].tolist()
    np.testing.assert_array_equal(preds["local"]["y_pred"], preds["ray"]["y_pred"])


@pytest.mark.slow
def test_a_plugin_missing_on_the_workers_is_reported_and_nothing_is_lost(local_ray, tmp_path):
    from mer_bench.methods.baselines import Majority
    from mer_bench.registry import METHODS

    class OnlyHere(Majority):  # registered in this process only: workers cannot import it
        pass

    METHODS.register("only-here", OnlyHere)
    try:
        prep = prepare("only-here", "loso", "synthetic", [0], dataset_options={"n_subjects": 3})
        with Store(tmp_path / "s.sqlite") as store:
            expected = r"(?s)3 fold\(s\) failed on Ray workers.*only-here.*install the same packages"
            with pytest.raises(ExecutorError, match=expected):
                execute(prep, store, device="cpu", executor="ray")
            run_id = prep.specs[0].run_id
            # no fold was stored, so no "running" row is left behind either
            assert store.get_run(run_id) is None and store.completed_folds(run_id) == set()
            done = execute(prep, store, device="cpu")  # the same run resumes locally
            assert done[0].status == "computed" and store.completed_folds(run_id) == {0, 1, 2}
    finally:
        METHODS._entries.pop("only-here", None)


def _dying_fold_task(payload):
    """A fold task whose worker process dies (``os._exit``, as an OOM kill) on fold 1 while the
    file ``payload["die_file"]`` holds a positive count, which each death decrements."""
    import os
    from pathlib import Path

    from mer_bench.pipeline import executors

    f = Path(payload["die_file"])
    if payload["fold_index"] == 1 and int(f.read_text()) > 0:
        f.write_text(str(int(f.read_text()) - 1))
        os._exit(1)
    return executors._fold_task(payload)  # on the worker: the real task (the patch is the driver's)


@pytest.mark.slow
@pytest.mark.parametrize("deaths,retries", [(1, 2), (3, 1)], ids=["retried", "reported"])
def test_a_dying_worker_is_retried_or_reported_and_nothing_is_lost(local_ray, tmp_path, monkeypatch, deaths, retries):
    import sys

    from mer_bench.pipeline import executors

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import this test module
    die_file = tmp_path / "deaths"
    die_file.write_text(str(deaths))
    monkeypatch.setattr(executors, "_fold_task",
                        lambda payload: _dying_fold_task({**payload, "die_file": str(die_file)}))
    prep = prepare("chance", "loso", "synthetic", [0], dataset_options={"n_subjects": 3})
    run_id = prep.specs[0].run_id
    with Store(tmp_path / "s.sqlite") as store:
        if deaths <= retries:
            (res,) = execute(prep, store, device="cpu", executor="ray", ray_options={"max_retries": retries})
            assert res.status == "computed" and int(die_file.read_text()) == 0
        else:
            expected = r"(?s)1 fold\(s\) failed.*the 2 others are stored.*fold 1 .*WorkerCrashed.*--ray-retries"
            with pytest.raises(ExecutorError, match=expected):
                execute(prep, store, device="cpu", executor="ray", ray_options={"max_retries": retries})
            assert store.completed_folds(run_id) == {0, 2}
            (res,) = execute(prep, store, device="cpu")  # resumes with the missing fold only
            assert res.status == "resumed"
        assert store.completed_folds(run_id) == {0, 1, 2}
        preds = store.predictions(run_id)
        assert preds["sample_id"].is_unique and len(preds) == len(prep.dataset.table())  # no duplicate, no loss


def test_unreachable_cluster_and_missing_gpu_are_clear_errors(tmp_path, capsys):
    args = ["run", "--method", "chance", "--store", str(tmp_path / "s.sqlite"), "--dataset-set", "n_subjects=3",
            "--executor", "ray"]
    assert main(args + ["--ray-address", "127.0.0.1:1"]) == 2
    assert "unreachable" in capsys.readouterr().err
    assert main(args + ["--ray-runtime-env", "{not json"]) == 2
    assert "--ray-runtime-env must be a JSON object" in capsys.readouterr().err
    prep = prepare("chance", "loso", "synthetic", [0], dataset_options={"n_subjects": 3})
    if not ray.is_initialized():
        ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    try:
        with Store(tmp_path / "g.sqlite") as store, pytest.raises(ExecutorError, match="Ray cluster has 0"):
            run_folds_on_ray(prep, 0, [], FoldWriter(store, {}, 3), "cuda", {"num_gpus": 1})
    finally:
        ray.shutdown()


def test_runtime_env_is_a_json_object_or_a_json_file(tmp_path):
    from mer_bench.pipeline.executors import _runtime_env

    f = tmp_path / "env.json"
    f.write_text('{"pip": ["my-mer-plugin"], "env_vars": {"OMP_NUM_THREADS": "1"}}')
    assert _runtime_env(str(f)) == {"pip": ["my-mer-plugin"], "env_vars": {"OMP_NUM_THREADS": "1"}}
    assert _runtime_env('{"pip": []}') == {"pip": []}
    assert _runtime_env(None) is None
    for bad in ('["a list"]', str(tmp_path / "missing.json")):
        with pytest.raises(ExecutorError, match="--ray-runtime-env"):
            _runtime_env(bad)
