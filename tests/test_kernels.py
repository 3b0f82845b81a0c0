"""mer-bench's CPU fast paths compute what the plain PyTorch layers compute (mer_bench.kernels):
the fused STSTNet features, the dropout masks, fused Adam; and a run records whether they were on."""

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mer_bench import kernels, runtime
from mer_bench.kernels import stem2d
from mer_bench.kernels.dropout import SameMaskDropout, draws_like_bernoulli, same_mask_dropout
from mer_bench.kernels.stem2d import conv_relu_bn_maxpool, draws_like_rand, stem_dropout_avgpool, why_not_fused


@pytest.fixture(scope="module")
def stem_kernel():
    if kernels.load("stem2d") is None:
        pytest.skip("the stem2d CPU kernel could not be built here (no C++ compiler or ninja)")
    return kernels.load("stem2d")


@pytest.mark.parametrize("p", [0.5, 0.3, 0.1])
@pytest.mark.parametrize("channels_last", [False, True])
def test_same_mask_dropout_draws_nn_dropouts_masks_and_leaves_the_generator_as_it(p, channels_last):
    x = torch.randn(8, 16, 10, 10)
    torch.manual_seed(7)
    want = F.dropout(x, p, True)  # on the contiguous batch
    after_want = torch.rand(5)
    xin = x.contiguous(memory_format=torch.channels_last) if channels_last else x
    torch.manual_seed(7)
    got = SameMaskDropout(p).train()(xin)
    after_got = torch.rand(5)
    assert torch.equal(got, want) and torch.equal(after_got, after_want)
    assert draws_like_bernoulli(p)
    assert torch.equal(SameMaskDropout(p).eval()(x), x)


def test_same_mask_dropout_is_swapped_in_for_training_only_and_restored():
    model = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.5), nn.Dropout(0.0))
    with same_mask_dropout(model) as n:
        assert n == 1 and type(model[1]) is SameMaskDropout and type(model[2]) is nn.Dropout
    assert type(model[1]) is nn.Dropout


def _stem_layers(seed=0, bias=0.0):
    torch.manual_seed(seed)
    conv, bn = nn.Conv2d(3, 16, 3, padding=2), nn.BatchNorm2d(16)
    with torch.no_grad():
        conv.bias.add_(bias)  # bias far from 0: E[r^2] - E[r]^2 cancels in float32 if done naively
        bn.weight.uniform_(-1.0, 2.0)  # negative scales reverse the max-pool's order
        bn.bias.normal_()
    return conv, bn, nn.MaxPool2d(3, 3, 1)


def _grads(x, conv, bn, pool, g, block):
    out = block(x, conv, bn, pool)
    (out * g).sum().backward()
    return [out.detach(), conv.weight.grad, conv.bias.grad, bn.weight.grad, bn.bias.grad, bn.running_mean,
            bn.running_var]


@pytest.mark.parametrize("bias", [0.0, 300.0])
def test_fused_stem_equals_the_plain_layers_up_to_rounding(stem_kernel, bias):
    """Output, every parameter's gradient and the running statistics: the fused kernel's distance
    to the plain layers computed in float64 is within a few times that of the plain float32 layers."""
    x = torch.rand(37, 3, 28, 28) * 255  # STSTNet's raw 0..255 flow values; an odd batch
    conv, bn, pool = _stem_layers(bias=bias)
    g = torch.randn(37, 16, 10, 10)
    assert why_not_fused(x, conv, bn, pool) is None
    plain = lambda x, c, b, p: p(b(torch.relu(c(x))))  # noqa: E731
    exact = _grads(x.double(), copy.deepcopy(conv).double(), copy.deepcopy(bn).double(), pool, g.double(), plain)
    f32 = _grads(x, copy.deepcopy(conv), copy.deepcopy(bn), pool, g, plain)
    bn2 = copy.deepcopy(bn)
    fused = _grads(x, copy.deepcopy(conv), bn2, pool, g, conv_relu_bn_maxpool)
    names = ["output", "conv.weight grad", "conv.bias grad", "bn.weight grad", "bn.bias grad", "running_mean",
             "running_var"]
    for name, e, a, b in zip(names, exact, f32, fused):
        assert b.shape == e.shape, name
        err_plain = float((a.double() - e).abs().max())
        err_fused = float((b.double() - e).abs().max())
        scale = float(e.abs().max()) or 1.0
        assert err_fused <= 4 * err_plain + 1e-6 * scale, (name, err_fused, err_plain, scale)
    assert int(bn2.num_batches_tracked) == 1


@pytest.mark.parametrize("size", [28, 30])  # 30: an odd pooled size (11), whose last row takes no part
def test_fused_features_with_dropout_and_average_pool_equal_the_layers(stem_kernel, size):
    x = torch.rand(20, 3, size, size) * 255
    conv, bn, pool = _stem_layers(seed=3)
    conv2, bn2 = copy.deepcopy(conv), copy.deepcopy(bn)
    drop, avg = nn.Dropout(0.5).train(), nn.AvgPool2d(2)
    g = torch.randn(20, 16, (size + 2) // 6, (size + 2) // 6)
    torch.manual_seed(11)
    want = avg(drop(pool(bn(torch.relu(conv(x))))))
    (want * g).sum().backward()
    after_want = torch.rand(3)
    torch.manual_seed(11)
    got = stem_dropout_avgpool(x, conv2, bn2, pool, drop, avg)
    (got * g).sum().backward()
    after_got = torch.rand(3)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
    assert torch.equal(after_got, after_want)  # the same dropout draws
    torch.testing.assert_close(conv2.weight.grad, conv.weight.grad, rtol=1e-3,
                               atol=1e-4 * float(conv.weight.grad.abs().max()))
    for a, b in ((bn2.weight.grad, bn.weight.grad), (bn2.bias.grad, bn.bias.grad)):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4 * float(b.abs().max()))


@pytest.mark.parametrize("p", [0.5, 0.3])
def test_the_kernels_own_dropout_draws_are_torch_rands(stem_kernel, p):
    """The stem kernel draws the dropout factors itself (the default generator's Mersenne Twister
    in vectorised blocks): the same numbers as ``torch.rand(float64) < 1 - p`` from any starting
    point of the generator (here mid-block and across several of its 624-word blocks), the same
    generator state after, and the same features and gradients as when they come from torch.rand."""
    assert draws_like_rand(1.0 - p)
    for offset in (0, 5, 311, 700):
        torch.manual_seed(3)
        torch.rand(offset)
        got = stem_kernel.rand_keep(2000, 1.0 - p)
        after_got = torch.rand(4)
        torch.manual_seed(3)
        torch.rand(offset)
        want = (torch.rand(2000, dtype=torch.float64) < 1.0 - p).to(torch.uint8)
        assert torch.equal(got, want) and torch.equal(after_got, torch.rand(4))
    x = torch.rand(9, 3, 30, 30) * 255
    g = torch.randn(9, 16, 5, 5)
    results = []
    for own_draws in (True, False):
        conv, bn, pool = _stem_layers(seed=4)
        with pytest.MonkeyPatch.context() as mp:
            if not own_draws:
                mp.setattr(stem2d, "draws_like_rand", lambda q: False)
            torch.manual_seed(8)
            out = stem_dropout_avgpool(x, conv, bn, pool, nn.Dropout(p).train(), nn.AvgPool2d(2))
            (out * g).sum().backward()
            results.append([out.detach(), conv.weight.grad, bn.weight.grad, torch.rand(3)])
    for a, b in zip(*results):
        assert torch.equal(a, b)


def test_a_zero_batchnorm_scale_pools_the_first_position_as_the_layers_do(stem_kernel):
    """The fused max-pool is taken from each window's largest / smallest activation; a channel
    whose BatchNorm weight is 0 has equal outputs in every window, where ATen takes the first."""
    x = torch.rand(6, 3, 28, 28) * 255
    conv, bn, pool = _stem_layers(seed=5)
    with torch.no_grad():
        bn.weight[[2, 9]] = 0.0
    g = torch.randn(6, 16, 10, 10)
    plain = lambda x, c, b, p: p(b(torch.relu(c(x))))  # noqa: E731
    want = _grads(x, copy.deepcopy(conv), copy.deepcopy(bn), pool, g, plain)
    got = _grads(x, copy.deepcopy(conv), copy.deepcopy(bn), pool, g, conv_relu_bn_maxpool)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4 * float(b.abs().max()))


def test_the_block_runs_as_layers_where_the_kernel_does_not_apply(stem_kernel):
    x = torch.rand(4, 3, 28, 28)
    conv, bn, pool = _stem_layers()
    assert why_not_fused(x, conv, bn.eval(), pool) == "not training"
    bn.train()
    assert why_not_fused(x.requires_grad_(), conv, bn, pool) == "the input needs a gradient"
    x = x.detach()
    with runtime.use(kernels=False):
        assert why_not_fused(x, conv, bn, pool) == "kernels turned off"
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert why_not_fused(x, conv, bn, pool) == "autocast"
    assert "max-pool" in why_not_fused(x, conv, bn, nn.MaxPool2d(2))
    assert "convolution" in why_not_fused(x, nn.Conv2d(3, 16, 5, padding=2), bn, pool)


def test_kernels_off_by_environment(monkeypatch):
    monkeypatch.setenv("MER_BENCH_KERNELS", "0")
    assert not kernels.enabled()
    monkeypatch.setenv("MER_BENCH_KERNELS", "1")
    assert kernels.enabled()


def _tiny_ststnet_fit(on: bool):
    from mer_bench.data import Samples
    from mer_bench.registry import METHODS

    rng = np.random.default_rng(0)
    n = 120
    X = rng.random((n, 3, 28, 28), dtype=np.float32)
    y = np.arange(n) % 3
    X[y == 1, 0] += 0.3
    mk = lambda X, y, s: Samples(X=X, y=y, subject=np.full(len(X), s), sample_id=np.arange(len(X)).astype(str),  # noqa: E731
                                 classes=("a", "b", "c"), representation="flow")
    with runtime.use(device="cpu", kernels=on):
        m = METHODS.get("ststnet")(epochs=6, batch_size=32, random_state=1).fit(mk(X, y, "s"))
        test = mk(X[:40], None, "t")
        return m.predict(test), m.predict_proba(test), m.model_.state_dict()


def test_ststnet_fit_with_and_without_the_fast_paths_agrees(stem_kernel):
    pred_on, proba_on, state_on = _tiny_ststnet_fit(True)
    pred_off, proba_off, state_off = _tiny_ststnet_fit(False)
    assert (pred_on == pred_off).all()
    np.testing.assert_allclose(proba_on, proba_off, atol=1e-4)
    for k in state_off:
        torch.testing.assert_close(state_on[k].float(), state_off[k].float(), rtol=1e-3, atol=1e-3)


def test_fused_adam_matches_the_plain_update():
    from mer_bench.trainer import TrainConfig, make_optimizer

    torch.manual_seed(0)
    a = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3))
    b = copy.deepcopy(a)
    opt_a = make_optimizer(a.parameters(), TrainConfig(lr=1e-2, weight_decay=1e-3), "cpu")
    with runtime.use(kernels=False):
        opt_b = make_optimizer(b.parameters(), TrainConfig(lr=1e-2, weight_decay=1e-3), "cpu")
    assert opt_a.defaults["fused"] and not opt_b.defaults["fused"]
    x, y = torch.randn(16, 6), torch.randint(0, 3, (16,))
    for _ in range(20):
        for m, o in ((a, opt_a), (b, opt_b)):
            o.zero_grad()
            F.cross_entropy(m(x), y).backward()
            o.step()
    for pa, pb in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(pa, pb, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("on", [True, False])
def test_a_run_records_whether_the_fast_paths_were_on(tmp_path, on):
    from mer_bench.pipeline import execute, prepare
    from mer_bench.store import Store

    prep = prepare("majority", "loso", "synthetic", [0],
                   dataset_options={"n_subjects": 4, "min_clips": 6, "max_clips": 8})
    with Store(tmp_path / "s.sqlite") as store:
        (res,) = execute(prep, store, device="cpu", kernels=on)
        assert store.get_run(res.spec.run_id)["kernels"] == ("on" if on else "off")


def test_worker_processes_get_the_trainers_run_time_settings():
    from mer_bench.pipeline.executors import _runtime_settings

    assert _runtime_settings({"channels_last": True, "kernels": False}) == {
        "channels_last": True, "cudnn_benchmark": False, "compile": False, "kernels": False}


@pytest.mark.parametrize("shape,k,pad", [((3, 2, 8, 12, 12), 5, 2), ((2, 2, 4, 9, 9), 3, 1), ((2, 3, 6, 8, 8), 7, 3),
                                         ((2, 2, 5, 8, 8), 3, 0)])
def test_conv3d_as_a_banded_conv2d_equals_conv3d(shape, k, pad):
    from mer_bench.kernels.conv3d import conv3d_as_conv2d

    torch.manual_seed(0)
    x = torch.randn(*shape, dtype=torch.float64, requires_grad=True)
    w = torch.randn(2, shape[1], k, k, k, dtype=torch.float64, requires_grad=True)
    b = torch.randn(2, dtype=torch.float64, requires_grad=True)
    want = F.conv3d(x, w, b, padding=pad)
    got = conv3d_as_conv2d(x, w, b, pad)
    assert got.shape == want.shape
    torch.testing.assert_close(got, want)
    g = torch.randn_like(want)
    for a, c in zip(torch.autograd.grad(want, (x, w, b), g), torch.autograd.grad(got, (x, w, b), g)):
        torch.testing.assert_close(c, a)


def test_meranet_attention_with_and_without_the_fast_path_agrees():
    from mer_bench.methods.meranet import SpatioTemporalAttention3d

    torch.manual_seed(0)
    sta = SpatioTemporalAttention3d(5)
    x = torch.randn(2, 8, 6, 10, 10)
    with runtime.use(kernels=False):
        plain = sta(x)
    torch.testing.assert_close(sta(x), plain, rtol=1e-5, atol=1e-6)


@pytest.fixture(scope="module")
def attention_kernel():
    if kernels.load("attention3d") is None:
        pytest.skip("the attention3d CPU kernel could not be built here (no C++ compiler or ninja)")
    return kernels.load("attention3d")


def _attention_pair(shape, shared, k=5):
    from mer_bench.methods.meranet import ChannelAttention3d, SpatioTemporalAttention3d

    torch.manual_seed(0)
    ca, sta = ChannelAttention3d(shape[1], 4, shared), SpatioTemporalAttention3d(k)
    with torch.no_grad():
        for p in list(ca.parameters()) + list(sta.parameters()):
            p.normal_(0, 0.5)  # attention maps well inside (0, 1), so both paths' gradients are large
    x = (torch.randn(shape) * 2 + 0.3).contiguous(memory_format=torch.channels_last_3d).requires_grad_()
    return ca, sta, x


@pytest.mark.parametrize("shape,shared,k", [((4, 16, 8, 16, 16), "cnn", 5), ((3, 32, 4, 8, 8), "mlp", 3),
                                            ((2, 8, 1, 14, 14), "cnn", 7), ((2, 64, 1, 2, 2), "cnn", 5)])
def test_fused_meranet_attention_equals_the_plain_modules(attention_kernel, shape, shared, k):
    """MERANet's channel then spatio-temporal attention through mer_bench.kernels.attention3d: the
    output and the gradients of the input and of every attention parameter equal those of the plain
    modules (``--no-kernels``) up to float32 rounding, in the input's channels_last_3d layout."""
    from mer_bench.kernels.attention3d import channel_spatial_attention, why_not_fused

    ca, sta, x = _attention_pair(shape, shared, k)
    assert why_not_fused(x, ca, sta) is None
    params = [x] + list(ca.parameters()) + list(sta.parameters())
    g = torch.randn(shape)
    with runtime.use(kernels=False):
        plain = sta(ca(x))
        plain_grads = torch.autograd.grad(plain, params, g)
    fused = channel_spatial_attention(x, ca.from_descriptors, sta.from_descriptors)
    assert fused.shape == plain.shape and fused.is_contiguous(memory_format=torch.channels_last_3d)
    fused_grads = torch.autograd.grad(fused, params, g)
    torch.testing.assert_close(fused, plain, rtol=1e-5, atol=1e-6)
    for want, got in zip(plain_grads, fused_grads):
        scale = want.abs().max().item()
        assert scale > 1e-3  # a gradient that is zero everywhere would make the comparison empty
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5 * scale)


def test_fused_attention_gives_a_maximums_gradient_to_its_first_occurrence(attention_kernel):
    """The declared difference: under exact ties the whole gradient of a maximum goes to its first
    position (``amax`` splits it); values are the same."""
    from mer_bench.kernels.attention3d import _PositionStats

    x = torch.ones(1, 5, 3, requires_grad=True)  # (N, P, C): all five positions tie
    avg, mx = _PositionStats.apply(x)
    torch.testing.assert_close(mx, x.detach().amax(1))
    torch.testing.assert_close(avg, x.detach().mean(1))
    (gx,) = torch.autograd.grad(mx.sum(), x)
    assert gx[0, 0].tolist() == [1.0, 1.0, 1.0] and gx[0, 1:].abs().sum() == 0


def test_the_attention_runs_as_modules_where_the_kernel_does_not_apply(attention_kernel):
    from mer_bench.kernels.attention3d import why_not_fused

    ca, sta, x = _attention_pair((2, 8, 4, 6, 6), "cnn")
    assert why_not_fused(x, ca, sta) is None
    assert why_not_fused(x.detach().contiguous(), ca, sta) == "not in channels_last_3d"
    assert why_not_fused(x.double(), ca, sta).startswith("not a float32")
    handle = sta.register_forward_hook(lambda *a: None)  # e.g. Grad-CAM on the attention module
    assert why_not_fused(x, ca, sta) == "a module carries hooks"
    handle.remove()
    with runtime.use(kernels=False):
        assert why_not_fused(x, ca, sta) == "kernels turned off"


def _tiny_meranet_fit(on: bool, seed: int = 1, epochs: int = 3):
    from mer_bench.data import Samples
    from mer_bench.registry import METHODS

    rng = np.random.default_rng(0)
    n = 48
    X = rng.normal(size=(n, 3, 4, 16, 16)).astype(np.float32)
    y = np.arange(n) % 3
    X[y == 1, :, 1:3, 4:8, 4:8] += 1.5  # something to learn
    X[y == 2, :, 2:4, 8:12, 8:12] -= 1.5
    mk = lambda X, y, s: Samples(X=X, y=y, subject=np.full(len(X), s), sample_id=np.arange(len(X)).astype(str),  # noqa: E731
                                 classes=("a", "b", "c"), representation="clip")
    with runtime.use(device="cpu", kernels=on):
        m = METHODS.get("meranet")(width=8, epochs=epochs, batch_size=8, lr=3e-3, warmup=4,
                                   random_state=seed).fit(mk(X, y, "s"))
        test = mk(X[:24], None, "t")
        return m.predict(test), m.predict_proba(test)


def test_meranet_fit_with_and_without_the_fast_paths_agrees(attention_kernel):
    """A whole (tiny) MERANet training in channels_last_3d with the fused attention, the batched
    channel-attention sub-network and the other fast paths, against the plain layers. After one
    epoch the two differ by rounding only; over more steps Adam's normalised updates amplify
    rounding (near-zero gradients change sign), so after three epochs the difference is held
    against what a real change makes, another seed: on an AVX2 EPYC 3e-4 against 0.42."""
    pred_on, proba_on = _tiny_meranet_fit(True, epochs=1)
    pred_off, proba_off = _tiny_meranet_fit(False, epochs=1)
    assert (pred_on == pred_off).all()
    np.testing.assert_allclose(proba_on, proba_off, atol=1e-5)
    proba_on, proba_off = _tiny_meranet_fit(True)[1], _tiny_meranet_fit(False)[1]
    other_seed = _tiny_meranet_fit(True, seed=2)[1]
    assert np.abs(proba_on - proba_off).max() < 0.02 * np.abs(proba_on - other_seed).max()
    assert proba_on.std(0).max() > 1e-3  # the predictions depend on the input


@pytest.mark.parametrize("conv_kwargs", [
    dict(kernel_size=(3, 7, 7), stride=(1, 2, 2), padding=(1, 3, 3), bias=False),  # MERANet's stem
    dict(kernel_size=3, stride=2, padding=1),                                      # a block's first conv
    dict(kernel_size=1, stride=2),                                                 # a downsample
    dict(kernel_size=5, padding=(4, 2, 2), dilation=(2, 1, 1), groups=2),          # tap 2, grouped
])
@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_a_one_frame_conv3d_with_its_one_tap_equals_conv3d(conv_kwargs, channels_last, dtype):
    from mer_bench.kernels.conv3d import SingleFrameConv3d

    torch.manual_seed(0)
    conv = nn.Conv3d(4, 6, **conv_kwargs).to(dtype)
    fast = copy.deepcopy(conv)
    fast.__class__ = SingleFrameConv3d
    x = torch.randn(3, 4, 1, 11, 10, dtype=dtype)
    if channels_last:
        x, conv, fast = (t.to(memory_format=torch.channels_last_3d) for t in (x, conv, fast))
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    want, got = conv(xa), fast(xb)
    assert got.shape == want.shape
    torch.testing.assert_close(got, want)  # float32: the default tolerances, rounding only
    for fmt in (torch.channels_last_3d, torch.contiguous_format):  # the layout the plain layer gives
        assert got.is_contiguous(memory_format=fmt) == want.is_contiguous(memory_format=fmt)
    g = torch.randn_like(want)
    (want * g).sum().backward()
    (got * g).sum().backward()
    torch.testing.assert_close(xb.grad, xa.grad)
    for a, b in zip(conv.parameters(), fast.parameters()):
        torch.testing.assert_close(b.grad, a.grad)
    tap = conv.padding[0] // conv.dilation[0]
    off = [j for j in range(conv.kernel_size[0]) if j != tap]
    assert all((fast.weight.grad[:, :, j] == 0).all() for j in off)  # the padding's taps: exactly zero


def test_the_one_frame_path_applies_only_to_one_frame_in_one_frame_out():
    from mer_bench.kernels.conv3d import single_frame_tap

    assert single_frame_tap(nn.Conv3d(2, 2, 3, padding=1), 1) == 1
    assert single_frame_tap(nn.Conv3d(2, 2, 3, padding=1), 2) is None        # two frames
    assert single_frame_tap(nn.Conv3d(2, 2, 3, padding=2), 1) is None        # three output frames
    assert single_frame_tap(nn.Conv3d(2, 2, 3, padding=1, padding_mode="replicate"), 1) is None
    assert single_frame_tap(nn.Conv3d(2, 2, 3, padding="same"), 1) is None
    assert single_frame_tap(nn.Conv3d(2, 2, 3, padding=(1, 0, 0), dilation=(2, 1, 1)), 1) is None  # no tap meets it


def test_meranet_on_one_frame_clips_trains_through_the_one_frame_path_and_agrees(attention_kernel, monkeypatch):
    """The composite feeds MERANet flow images as one-frame clips: a tiny fit on such input with
    the fast paths (its convolutions as 2D ones) agrees with the plain layers after one epoch, and
    the one-frame path is really taken."""
    from mer_bench.data import Samples
    from mer_bench.kernels import conv3d
    from mer_bench.registry import METHODS

    calls = []
    real = conv3d.SingleFrameConv3d.forward
    monkeypatch.setattr(conv3d.SingleFrameConv3d, "forward", lambda self, x: calls.append(x.shape[2]) or real(self, x))
    rng = np.random.default_rng(0)
    X = rng.normal(size=(48, 3, 16, 16)).astype(np.float32)
    y = np.arange(48) % 3
    X[y == 1, :, 4:8, 4:8] += 1.5
    mk = lambda X, y: Samples(X=X, y=y, subject=np.full(len(X), "s"), sample_id=np.arange(len(X)).astype(str),  # noqa: E731
                              classes=("a", "b", "c"), representation="flow")
    out = {}
    for on in (True, False):
        with runtime.use(device="cpu", kernels=on):
            m = METHODS.get("meranet")(width=8, epochs=1, batch_size=8, lr=3e-3, warmup=4, random_state=1).fit(mk(X, y))
            out[on] = m.predict_proba(mk(X[:24], None))
        if on:
            assert calls and set(calls) == {1}
            calls.clear()
    assert not calls  # kernels off: nn.Conv3d itself
    np.testing.assert_allclose(out[True], out[False], atol=1e-5)
    assert out[True].std(0).max() > 1e-3
