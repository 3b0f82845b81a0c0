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
