import numpy as np
import pytest
import torch
from torch import nn

from mer_bench import runtime
from mer_bench.stacking import StackingError, fit_classifiers_stacked
from mer_bench.torch_method import hflip
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


def test_without_shuffle_every_epoch_visits_the_clips_in_order():
    # no dropout, no augmentation: with shuffle off the seed only drives the batch order, so two
    # seeds give the same network; with shuffle on they differ (STSTNet's DataLoader has no shuffle)
    x, y = _blobs(40)

    def train(seed, shuffle):
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
        cfg = TrainConfig(epochs=3, batch_size=16, lr=0.05, seed=seed, shuffle=shuffle)
        with runtime.use(device="cpu"):
            return fit_classifier(model, x, y, cfg)[2].weight.detach()

    assert torch.equal(train(1, False), train(2, False))
    assert not torch.equal(train(1, True), train(2, True))
    # in order: the same as training on the clips with the first batch's 16 moved last differs
    order = np.r_[16:40, 0:16]
    torch.manual_seed(0)
    moved = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    with runtime.use(device="cpu"):
        moved = fit_classifier(moved, x[order], y[order], TrainConfig(epochs=3, batch_size=16, lr=0.05, seed=1,
                                                                      shuffle=False))[2].weight.detach()
    assert not torch.equal(moved, train(1, False))


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


class _SmallNet(nn.Module):
    """Conv + BatchNorm (running statistics) + Dropout: every stateful or random part stacking
    must reproduce per fold."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 4, 3, padding=1, bias=False)  # a bias before BN has pure-noise gradients
        self.bn = nn.BatchNorm2d(4)
        self.drop = nn.Dropout(0.5)
        self.fc = nn.Linear(4 * 6 * 6, 3)

    def forward(self, x):
        return self.fc(self.drop(torch.relu(self.bn(self.conv(x)))).flatten(1))


def _fold_sets(sizes=(13, 16, 11)):
    g = np.random.default_rng(0)
    out = []
    for n in sizes:
        y = g.integers(0, 3, n)
        x = g.normal(0, 1, (n, 2, 6, 6)).astype(np.float32)
        x[np.arange(n), 0, 0, y] += 2.0
        out.append((x, y))
    return out


def _flip(xb, gen):
    return hflip(xb, gen)


def _init(seed):
    torch.manual_seed(seed)
    return _SmallNet()


@pytest.mark.parametrize("shuffle", [True, False])
def test_stacked_folds_equal_fold_by_fold_training(shuffle):
    # three folds of different sizes: short last batches (1, 0 and 3 clips at batch 4), hence
    # different step counts and cosine schedules; augmentation, dropout and BatchNorm per fold
    sets = _fold_sets()
    cfgs = [TrainConfig(epochs=4, batch_size=4, lr=1e-2, warmup=3, seed=s, shuffle=shuffle) for s in (7, 8, 9)]
    weights = [np.array([1.0, 2.0, 0.5], np.float32)] * 3
    with runtime.use(device="cpu"):
        alone = [fit_classifier(_init(c.seed), x, y, c, augment=_flip, class_weight=w)
                 for (x, y), c, w in zip(sets, cfgs, weights)]
        stacked = fit_classifiers_stacked([_init(c.seed) for c in cfgs], [x for x, _ in sets], [y for _, y in sets],
                                          cfgs, augments=[_flip] * 3, class_weights=weights)
    for a, b in zip(alone, stacked):
        assert not b.training
        for (name, ta), tb in zip(a.state_dict().items(), b.state_dict().values()):
            torch.testing.assert_close(tb, ta, rtol=1e-5, atol=1e-6, msg=name)
    # the folds really trained differently (different data, seeds and step counts)
    assert not torch.allclose(stacked[0].fc.weight, stacked[1].fc.weight)


def test_stacking_refuses_what_it_cannot_reproduce():
    sets = _fold_sets((8, 8))
    xs, ys = [x for x, _ in sets], [y for _, y in sets]
    cfgs = [TrainConfig(epochs=1, batch_size=4, seed=s) for s in (0, 1)]

    class Noisy(_SmallNet):
        def forward(self, x):  # randomness outside nn.Dropout (as DropPath)
            return super().forward(x + 0.1 * torch.rand_like(x))

    with runtime.use(device="cpu"):
        with pytest.raises(StackingError, match="random numbers"):
            fit_classifiers_stacked([Noisy(), Noisy()], xs, ys, cfgs)
        with pytest.raises(StackingError, match="but the seed"):
            fit_classifiers_stacked([_init(0), _init(1)], xs, ys, [cfgs[0], TrainConfig(epochs=2, batch_size=4)])
        with pytest.raises(StackingError, match="same architecture"):
            fit_classifiers_stacked([_init(0), nn.Sequential(nn.Flatten(), nn.Linear(72, 3))], xs, ys, cfgs)


def test_compiled_training_equals_eager():
    pytest.importorskip("torch._inductor")
    import shutil

    if shutil.which("cc") is None and shutil.which("gcc") is None:
        pytest.skip("torch.compile on CPU needs a C compiler")
    (x, y), = _fold_sets((12,))
    cfg = TrainConfig(epochs=2, batch_size=4, seed=3)
    with runtime.use(device="cpu"):
        eager = fit_classifier(_init(0), x, y, cfg)
    with runtime.use(device="cpu", compile=True):
        compiled = fit_classifier(_init(0), x, y, cfg)
    for (name, ta), tb in zip(eager.state_dict().items(), compiled.state_dict().values()):
        torch.testing.assert_close(tb, ta, rtol=1e-4, atol=1e-5, msg=name)


def test_cpu_allocator_tuning_is_glibc_only_and_can_be_turned_off(monkeypatch):
    import platform
    import sys

    monkeypatch.setattr(runtime, "_ALLOCATOR_TUNED", None)
    monkeypatch.setenv("MER_BENCH_MALLOC", "default")
    assert runtime.tune_cpu_allocator() is False
    monkeypatch.setattr(runtime, "_ALLOCATOR_TUNED", None)
    monkeypatch.delenv("MER_BENCH_MALLOC")
    glibc = sys.platform == "linux" and platform.libc_ver()[0] == "glibc"
    assert runtime.tune_cpu_allocator() is glibc
    assert runtime.tune_cpu_allocator() is glibc  # once per process, then cached


def test_networks_that_ask_for_channels_last_get_it_on_the_cpu_by_default():
    from mer_bench.methods.meranet import MERANet3D

    rng = np.random.default_rng(0)
    x = rng.random((8, 3, 4, 16, 16), dtype=np.float32)
    y = np.arange(8) % 3
    cfg = TrainConfig(epochs=2, batch_size=4, lr=1e-3, seed=2)

    def make(attention=True):
        torch.manual_seed(0)
        return MERANet3D(3, 3, width=4, attention=attention)

    def layout(model):
        w = model.layers[0].conv1.weight  # (4, 4, 3, 3, 3): the two layouts differ
        return "cl3d" if w.is_contiguous(memory_format=torch.channels_last_3d) and not w.is_contiguous() else "contig"

    with runtime.use(device="cpu"):  # channels_last=None: the network's choice
        auto = fit_classifier(make(), x, y, cfg)
        auto_logits = predict_logits(auto, x)
    with runtime.use(device="cpu", channels_last=False):
        plain = fit_classifier(make(), x, y, cfg)
        plain_logits = predict_logits(plain, x)
    assert MERANet3D.cpu_channels_last is True
    assert layout(auto) == "cl3d" and layout(plain) == "contig"
    np.testing.assert_allclose(auto_logits, plain_logits, rtol=1e-3, atol=1e-4)
    # a network that does not ask stays contiguous by default, and is converted when told to
    for wanted, expect in ((None, True), (True, False)):
        torch.manual_seed(0)
        other = nn.Sequential(nn.Conv3d(3, 4, 3, padding=1), nn.AdaptiveAvgPool3d(1), nn.Flatten(), nn.Linear(4, 3))
        with runtime.use(device="cpu", channels_last=wanted):
            fit_classifier(other, x, y, cfg)
        assert other[0].weight.is_contiguous() is expect


def test_rcn_trains_in_channels_last_on_the_cpu_by_default_and_agrees_with_contiguous():
    from mer_bench.methods.rcn import RCNModel

    rng = np.random.default_rng(0)
    x = rng.random((16, 3, 28, 28), dtype=np.float32)
    y = np.arange(16) % 3
    cfg = TrainConfig(epochs=2, batch_size=8, lr=1e-2, seed=2, optimizer="sgd", momentum=0.9)

    def make():
        torch.manual_seed(0)
        return RCNModel(3, 3, featuremaps=8, pool_size=7)

    with runtime.use(device="cpu"):
        auto = fit_classifier(make(), x, y, cfg)
        auto_logits = predict_logits(auto, x)
    with runtime.use(device="cpu", channels_last=False):
        plain = fit_classifier(make(), x, y, cfg)
        plain_logits = predict_logits(plain, x)
    w = auto.layer.rrconv[0].weight  # (8, 8, 3, 3)
    assert w.is_contiguous(memory_format=torch.channels_last) and not w.is_contiguous()
    assert plain.layer.rrconv[0].weight.is_contiguous()
    np.testing.assert_allclose(auto_logits, plain_logits, rtol=1e-4, atol=1e-5)
    assert auto_logits.std(0).max() > 1e-4  # the logits depend on the input
