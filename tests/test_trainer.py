import numpy as np
import pytest
import torch
from torch import nn

from mer_bench import runtime
from mer_bench.trainer import TrainConfig, autocast_dtype, fit_classifier, lr_factor, predict_logits


def test_schedule_warmup_then_cosine_to_zero():
    total, warm = 100, 10
    f = [lr_factor(s, total, warm) for s in range(total)]
    assert f[0] == pytest.approx(0.1, rel=0.05)
    assert np.argmax(f) == warm - 1
    assert all(a >= b for a, b in zip(f[warm:], f[warm + 1:]))
    assert lr_factor(total, total, warm) == pytest.approx(0.0, abs=1e-12)
    assert TrainConfig(warmup="untuned").warmup_steps() == 2000


def _blobs(n=64, seed=0):
    g = np.random.default_rng(seed)
    y = g.integers(0, 3, n)
    x = g.normal(0, 0.3, (n, 4)).astype(np.float32)
    x[np.arange(n), y] += 2.0
    return x, y


def test_trainer_learns_tiny_problem_and_is_seeded():
    x, y = _blobs()
    cfg = TrainConfig(epochs=30, batch_size=16, lr=0.05, seed=1)

    def make():
        torch.manual_seed(0)
        return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))

    with runtime.use(device="cpu"):
        a = predict_logits(fit_classifier(make(), x, y, cfg), x)
        b = predict_logits(fit_classifier(make(), x, y, cfg), x)
    assert (a.argmax(1) == y).mean() > 0.9
    assert np.array_equal(a, b)


def test_trainer_reports_progress_and_rejects_bad_settings():
    x, y = _blobs(16)
    seen = []
    with runtime.use(device="cpu", progress=lambda d, i, n: seen.append((i, n))):
        fit_classifier(nn.Linear(4, 3), x, y, TrainConfig(epochs=3, batch_size=8))
    assert seen == [(1, 3), (2, 3), (3, 3)]
    with pytest.raises(ValueError):
        fit_classifier(nn.Linear(4, 3), x, y, TrainConfig(epochs=0))
    with pytest.raises(ValueError, match="empty"):
        fit_classifier(nn.Linear(4, 3), x[:0], y[:0], TrainConfig())


def test_diverging_loss_is_a_clear_error():
    x, y = _blobs(16)
    x[0, 0] = np.nan
    with runtime.use(device="cpu"), pytest.raises(FloatingPointError, match="loss became"):
        fit_classifier(nn.Linear(4, 3), x, y, TrainConfig(epochs=1, batch_size=16))


def test_device_and_precision_resolution():
    assert runtime.resolve_device("cpu") == "cpu"
    assert runtime.resolve_device("auto") in ("cpu", "cuda")
    assert autocast_dtype("cpu", "auto") is None
    assert autocast_dtype("cpu", "fp32") is None
    with pytest.raises(ValueError, match="precision"):
        autocast_dtype("cpu", "fp16")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA"):
            runtime.resolve_device("cuda")
