"""LEARNet, Micro-Attention, MEGANet (placeholder) and MicroExpSTCNN: their networks as their sources
define them, their inputs, and a LOSO run of each on the embedded dataset through the CLI."""

import pytest
import torch

from mer_bench.cli import main
from mer_bench.data import DatasetError
from mer_bench.pipeline import prepare
from mer_bench.registry import METHODS


def _params(model):
    return sum(p.numel() for p in model.parameters())


def test_microexpstcnn_matches_the_released_keras_network():
    from mer_bench.methods.microexpstcnn import MicroExpSTCNNModel

    model = MicroExpSTCNNModel((1, 18, 64, 64), 3)
    # Conv3D(32, 3x3x15): 32*(15*3*3)+32; pool 3 -> 32 x 1 x 20 x 20 = 12,800 -> Dense 128 -> Dense 3
    assert model.conv.kernel_size == (15, 3, 3)
    assert _params(model) == 4_352 + 12_800 * 128 + 128 + 128 * 3 + 3
    assert model(torch.zeros(2, 1, 18, 64, 64)).shape == (2, 3)
    with pytest.raises(ValueError, match="at least 3 frames"):
        MicroExpSTCNNModel((1, 2, 64, 64), 3)


def test_learnet_branches_accrete_and_keep_the_keras_widths():
    from mer_bench.methods.learnet import LEARNetModel

    model = LEARNetModel(3, 5, size=(112, 112))
    assert [m[0].out_channels for m in model.branches[0]] == [16, 32, 64]
    assert [m[0].kernel_size for m in model.branches[0]] == [(1, 1), (3, 3), (5, 5)]
    assert set(model.accretion) == {"1", "3"}  # branches 2 and 4 receive the accretion
    # ... after the 1x1 and 3x3 convolutions only, as LEARNet_Model.py adds them
    assert [bn.num_features for bn in model.accretion["1"]] == [16, 32]
    assert [bn.num_features for bn in LEARNetModel(3, 5, accretion_depths=3).accretion["3"]] == [16, 32, 64]
    with torch.no_grad():  # branch 1's 5x5 output no longer reaches branch 2
        x = torch.rand(2, 3, 112, 112)
        feats = {}
        model.eval()
        model.bn.register_forward_hook(lambda m, inp, out: feats.setdefault("cat", inp[0].clone()))
        model(x)
        model.branches[0][2][0].weight.zero_()
        feats_before = feats.pop("cat")
        model(x)
        assert torch.equal(feats["cat"][:, 64:128], feats_before[:, 64:128])   # branch 2 unchanged
        assert not torch.equal(feats["cat"][:, :64], feats_before[:, :64])     # branch 1 changed
    assert model.fc.in_features == 256 * 4 * 4  # five stride-2 convolutions: 112 -> 4
    assert model.eval()(torch.zeros(2, 3, 112, 112)).shape == (2, 5)


def test_micro_attention_units_sit_after_every_resnet_stage():
    from mer_bench.method import ParameterError
    from mer_bench.methods.micro_attention import MicroAttentionUnit, micro_attention_resnet

    model = micro_attention_resnet("resnet18", 1, 5)
    units = [m for m in model.modules() if isinstance(m, MicroAttentionUnit)]
    assert len(units) == 4 and model(torch.zeros(1, 1, 64, 64)).shape == (1, 5)
    unit = MicroAttentionUnit(8).eval()
    x = torch.rand(2, 8, 9, 7)
    y = unit(x)
    assert y.shape == x.shape and torch.all(y >= x) and torch.all(y <= 2 * x)  # x * (1 + mask), mask in (0, 1)
    with pytest.raises(ParameterError, match="not a ResNet"):
        micro_attention_resnet("vit_tiny_patch16_224", 1, 5)


def test_gradient_attention_responds_to_edges_only():
    from mer_bench.methods.meganet import GradientAttention

    att = GradientAttention()
    flat = torch.ones(1, 3, 16, 16)
    edge = flat.clone()
    edge[..., 8:] = 2.0
    torch.nn.init.zeros_(att.conv.bias)
    torch.nn.init.constant_(att.conv.weight, 1.0)
    a, b = att(flat) / flat, att(edge) / edge
    assert torch.allclose(a[..., 4:12, 4:12], torch.full_like(a[..., 4:12, 4:12], 1.5))  # sigmoid(0) = .5
    assert b[0, 0, 8, 8] > 1.9  # strong gradient: gate near 2


def test_meganet_declares_its_gaps_and_takes_other_images():
    info = METHODS.get("meganet").info
    assert "PLACEHOLDER" in info.summary and "named choices" in info.citation
    assert info.choose_representation(("apex", "flow")) == "apex"


def test_methods_name_what_they_need_and_where_to_get_it():
    with pytest.raises(DatasetError, match=r"needs the 'dynamic' representation.*Datasets that compute it: .*casme2"):
        prepare("learnet", "loso", dataset="megc2019-flow", dataset_options={"data_root": "/nonexistent"})


@pytest.mark.slow
@pytest.mark.parametrize("method,sets", [
    ("lbptop-svm", ["blocks=3"]),
    ("learnet", ["epochs=2", "size=32"]),
    ("micro-attention", ["epochs=2", "size=32", "backbone=resnet10t"]),
    ("meganet", ["epochs=2", "size=32", "backbone=resnet10t"]),
    ("microexpstcnn", ["epochs=2", "size=16"]),
])
def test_each_new_method_runs_loso_on_the_embedded_dataset(method, sets, tmp_path, capsys):
    args = ["run", "--method", method, "--protocol", "loso", "--store", str(tmp_path / "s.sqlite"), "--json",
            "--dataset-set", "n_subjects=4", "--dataset-set", "min_clips=6", "--dataset-set", "max_clips=8"]
    for s in sets:
        args += ["--set", s]
    assert main(args) == 0
    import json

    run = json.loads(capsys.readouterr().out)["results"][0]
    assert run["method"] == method and run["folds"] == 4 and run["status"] == "computed"
    full = run["scores"]["Full"]
    assert 0 <= full["uf1"] <= 1 and full["n"] > 20
