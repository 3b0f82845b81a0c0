"""Folds trained in local worker processes (--workers): the same run, the same predictions as the
one-process loop at the same thread count per fold, every fold written by the driver."""

import numpy as np
import pytest
import torch

from mer_bench.cli import main
from mer_bench.method import ParameterError
from mer_bench.pipeline import execute, prepare
from mer_bench.pipeline.runner import choose_workers
from mer_bench.store import Store

SMALL = {"n_subjects": 4, "min_clips": 6, "max_clips": 8}
TINY = {"epochs": 2, "batch_size": 8}


@pytest.mark.slow
def test_workers_give_the_one_process_predictions_at_the_same_thread_count(tmp_path):
    prep = prepare("ststnet", "loso", "synthetic", [0], TINY, dataset_options=SMALL)
    with Store(tmp_path / "w.sqlite") as store:
        (par,) = execute(prep, store, device="cpu", workers=2)
        assert store.get_run(par.spec.run_id)["threads"] == max(1, len(__import__("os").sched_getaffinity(0)) // 2)
        threads = store.get_run(par.spec.run_id)["threads"]
        a = store.predictions(par.spec.run_id)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with Store(tmp_path / "one.sqlite") as store:
            (one,) = execute(prep, store, device="cpu", workers=1)
            b = store.predictions(one.spec.run_id)
    finally:
        torch.set_num_threads(before)
    assert par.spec.run_id == one.spec.run_id and par.status == one.status == "computed"
    assert a["sample_id"].tolist() == b["sample_id"].tolist()
    np.testing.assert_array_equal(np.stack(a["proba"]), np.stack(b["proba"]))


@pytest.mark.slow
def test_a_fold_failing_in_a_worker_is_reported_and_the_others_are_stored(tmp_path, capsys):
    # lr so large that training diverges on every fold: each worker's error comes back, and a run
    # without a stored fold leaves no row
    args = ["run", "--method", "ststnet", "--set", "lr=1e30", "--set", "epochs=1", "--workers", "2",
            "--store", str(tmp_path / "s.sqlite"), *sum((["--dataset-set", f"{k}={v}"] for k, v in SMALL.items()), [])]
    assert main(args) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "4 fold(s) failed in worker processes" in err and "NaN or infinite probabilities" in err
    assert "method 'ststnet'" in err and "Traceback" not in err
    with Store(tmp_path / "s.sqlite") as store:
        assert store.runs(None).empty


def test_workers_that_cannot_apply_fail_before_training(tmp_path):
    prep = prepare("ststnet", "loso", "synthetic", [0], TINY, dataset_options=SMALL)
    with Store(tmp_path / "s.sqlite") as store:
        for kw, message in [({"workers": 0}, "whole number >= 1"), ({"workers": "many"}, "whole number"),
                            ({"workers": 2, "stack_folds": 2}, "choose one"),
                            ({"workers": 2, "executor": "ray"}, "Ray executor has its own")]:
            with pytest.raises(ParameterError, match=message):
                execute(prep, store, device="cpu", **kw)
        assert store.runs(None).empty


def test_auto_workers_are_for_networks_on_the_cpu():
    from mer_bench.registry import METHODS

    net, floor = METHODS.get("ststnet"), METHODS.get("chance")
    cores = len(__import__("os").sched_getaffinity(0))
    assert choose_workers("auto", floor, "cpu", "local", 1, 12) == (1, torch.get_num_threads())
    assert choose_workers("auto", net, "cuda", "local", 1, 12)[0] == 1
    assert choose_workers("auto", net, "cpu", "local", 2, 12)[0] == 1  # stacking instead
    expected = min(cores, 12) if cores >= 2 else 1
    assert choose_workers("auto", net, "cpu", "local", 1, 12)[0] == expected
    assert choose_workers(4, net, "cpu", "local", 1, 3) == (3, max(1, cores // 3))  # never more than folds
