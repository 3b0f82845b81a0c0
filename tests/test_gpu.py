"""GPU paths: skipped (with the reason) on machines without CUDA; run them wherever a GPU is lent."""

import numpy as np
import pytest
import torch

from mer_bench import runtime
from mer_bench.registry import METHODS
from mer_bench.testing import _split

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU on this machine")

TINY_MERANET = {"width": 4, "epochs": 2, "batch_size": 8, "frames": 4, "size": 32, "warmup": 0}


def test_fit_on_the_gpu_preloads_and_matches_the_cpu_closely():
    cls = METHODS.get("meranet")
    train, test = _split(cls)
    with runtime.use(device="cuda"):
        gpu = cls(**TINY_MERANET, precision="fp32").fit(train).predict_proba(test)
    with runtime.use(device="cpu"):
        cpu = cls(**TINY_MERANET, precision="fp32").fit(train).predict_proba(test)
    assert gpu.shape == cpu.shape and np.allclose(gpu.sum(1), 1, atol=1e-5)
    assert np.abs(gpu - cpu).max() < 0.05  # different kernels: floating-point noise, amplified a little


@pytest.mark.parametrize("name,params", [("ststnet", {"epochs": 3, "batch_size": 8}), ("meranet", TINY_MERANET)])
def test_stacked_folds_on_the_gpu_equal_fold_by_fold(name, params):
    from mer_bench.testing import check_stacked_fit_equals_fold_by_fold

    with runtime.use(device="cuda"):
        check_stacked_fit_equals_fold_by_fold(METHODS.get(name), {**params, "precision": "fp32"})


def test_bench_reports_a_fraction_of_the_peak():
    from mer_bench.bench import compare_paths

    res = compare_paths("meranet", preset="fast", steps=2, warmup=1, device="cuda")
    assert res["optimised"]["samples_per_s"] > 0 and res["plain"]["samples_per_s"] > 0
    if res["optimised"]["peak_bf16_tflops"] is not None:
        assert 0 < res["optimised"]["fraction_of_peak"] < 1
