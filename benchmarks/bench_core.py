"""Benchmarks (pytest-benchmark): ``tox -e bench`` or ``pytest benchmarks --benchmark-only``.

Compare numbers as ratios measured in one run; the machines are shared and noisy.
"""

import numpy as np
import pytest

from mer_bench.metrics import pooled_scores


def test_pooled_scores_100k(benchmark):
    rng = np.random.default_rng(0)
    y, p = rng.integers(0, 5, 100_000), rng.integers(0, 5, 100_000)
    benchmark(pooled_scores, y, p, 5)


def test_synthetic_generation(benchmark):
    from mer_bench.datasets.synthetic import SyntheticMER

    benchmark.pedantic(lambda: SyntheticMER(seed=0, n_subjects=2, cache=False).table(), rounds=3)


@pytest.mark.parametrize("attention", [False, True], ids=["resnet3d18", "meranet"])
def test_train_step_fast_preset(benchmark, attention):
    """One optimiser step of the ``fast`` preset network on a batch of 16 synthetic clips."""
    import torch

    from mer_bench.methods.meranet import MERANet3D

    torch.manual_seed(0)
    model = MERANet3D(3, 3, width=16, attention=attention)
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    x, y = torch.randn(16, 3, 8, 32, 32), torch.randint(0, 3, (16,))

    def step():
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()

    benchmark.pedantic(step, rounds=5, warmup_rounds=1)


@pytest.mark.parametrize("path", ["plain", "optimised"])
def test_meranet_paper_size_train_step(benchmark, path):
    """One training step of MERANet at the paper's size (3x16x112x112, batch 8): plain fp32 eager
    against bf16 + channels_last_3d (+ cudnn.benchmark on a GPU); compare the two rows' means.
    The same comparison with FLOP/s: ``mer-bench bench``."""
    from mer_bench.bench import train_step

    step, info = train_step("meranet", path)
    benchmark.extra_info.update({k: str(v) for k, v in info.items()})
    benchmark.pedantic(step, rounds=3, warmup_rounds=1)


@pytest.mark.parametrize("path", ["fold-by-fold", "stacked"])
def test_ststnet_eight_folds_training(benchmark, path):
    """Eight STSTNet folds (64 samples, 2 epochs, batch 8) trained one by one against stacked
    with torch.func (``mer-bench bench --method ststnet --stack-folds 8`` prints the ratio)."""
    from mer_bench.bench import stacking_run

    benchmark.pedantic(lambda: stacking_run("ststnet", path, folds=8, batch_size=8, device="cpu"), rounds=3,
                       warmup_rounds=1)
