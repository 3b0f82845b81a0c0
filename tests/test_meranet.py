import pytest
import torch

from mer_bench.methods.meranet import ChannelAttention3d, MERANet3D, SpatioTemporalAttention3d


def _count(m):
    return sum(p.numel() for p in m.parameters())


def test_parameter_counts_match_the_paper_baseline():
    torch.manual_seed(0)
    assert _count(MERANet3D(3, 3, 64, attention=False)) == 33_167_811  # paper's 3D ResNet, = r3d_18
    assert _count(MERANet3D(3, 3, 64, attention=True)) == 33_258_899  # +91,088 (docstring explains vs paper)


def test_equals_torchvision_r3d18_count():
    from mer_bench._compat import ensure_torchvision_importable

    ensure_torchvision_importable()
    from torchvision.models.video import r3d_18

    assert _count(MERANet3D(3, 3, 64, attention=False)) == _count(r3d_18(num_classes=3))


@pytest.mark.parametrize("k,extra", [(3, 89_520), (5, 91_088), (7, 94_576)])
def test_attention_kernel_ablation_counts(k, extra):
    base = _count(MERANet3D(3, 3, 64, attention=False))
    assert _count(MERANet3D(3, 3, 64, attention=True, kernel_size=k)) - base == extra


def test_shared_mlp_and_cnn_have_equal_size_and_map():
    cnn, mlp = ChannelAttention3d(64, 16, "cnn"), ChannelAttention3d(64, 16, "mlp")
    assert _count(cnn) == _count(mlp)
    with torch.no_grad():
        mlp.shared[1].weight.copy_(cnn.shared[0].weight.flatten(1))
        mlp.shared[1].bias.copy_(cnn.shared[0].bias)
        mlp.shared[3].weight.copy_(cnn.shared[2].weight.flatten(1))
        mlp.shared[3].bias.copy_(cnn.shared[2].bias)
    x = torch.randn(2, 64, 3, 5, 5)
    assert torch.allclose(cnn(x), mlp(x), atol=1e-6)


def test_attention_maps_are_probabilities_and_shapes():
    x = torch.randn(2, 32, 4, 6, 6)
    a_ch = ChannelAttention3d(32).attention(x)
    a_st = SpatioTemporalAttention3d(5).attention(x)
    assert a_ch.shape == (2, 32, 1, 1, 1) and a_st.shape == (2, 1, 4, 6, 6)
    for a in (a_ch, a_st):
        assert a.min() >= 0 and a.max() <= 1


@pytest.mark.parametrize("shape", [(2, 3, 8, 32, 32), (2, 3, 1, 28, 28)])
def test_forward_shapes(shape):
    m = MERANet3D(3, 3, width=8).eval()
    assert m(torch.randn(*shape)).shape == (2, 3)


def test_bad_inputs():
    with pytest.raises(ValueError, match="odd"):
        SpatioTemporalAttention3d(4)
    with pytest.raises(ValueError, match="cnn"):
        ChannelAttention3d(8, shared="transformer")
    with pytest.raises(ValueError, match="N, C, T, H, W"):
        MERANet3D(3, 3, 8)(torch.randn(2, 3, 32, 32))
