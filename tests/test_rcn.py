"""RCN (Xia et al., IEEE TIP 2020): the released network's structure and settings."""

import numpy as np
import pytest
import torch

from mer_bench.method import ParameterError, resolve_params
from mer_bench.methods.rcn import RCN, RCNModel, class_attention
from mer_bench.registry import METHODS


def _count(model) -> int:
    return sum(p.numel() for p in model.parameters())


def test_parameter_counts_follow_the_released_layers():
    # RCN-A, F=64, P=7, 3 classes: stem 3*64*25+64 + BN 128; 1x1 64*64+64 + BN 128; shared 3x3 64*64*9+64 + BN 128;
    # classifier 7*7*64*3+3
    assert _count(RCNModel(3, 3, 64, 7, "a")) == 4864 + 128 + 4160 + 128 + 36928 + 128 + 9411 == 55747
    # RCN-S adds DenseBlock's unused conv3 (as released): one more 3x3 conv + BN
    assert _count(RCNModel(3, 3, 64, 7, "s")) == 55747 + 36928 + 128
    assert RCNModel(3, 3, 64, 7, "w")(torch.rand(2, 3, 28, 28)).shape == (2, 3)


def test_the_attention_is_the_released_per_class_map():
    torch.manual_seed(0)
    feats, weight = torch.rand(2, 4, 3, 3), torch.randn(3, 4 * 3 * 3)
    got = class_attention(feats, weight)
    want = []
    for k in range(3):  # SpatialAttentionBlock_P, class by class
        cam = (weight[k].reshape(4, 3, 3) * feats).mean(dim=1, keepdim=True)
        cam = cam - torch.min(torch.min(cam, 3, True)[0], 2, True)[0]
        cam = cam / torch.max(torch.max(cam, 3, True)[0], 2, True)[0]
        want.append(cam)
    torch.testing.assert_close(got, torch.cat(want, dim=1).mean(dim=1, keepdim=True))
    assert got.shape == (2, 1, 3, 3) and float(got.min()) >= 0 and float(got.max()) <= 1


def test_defaults_are_the_released_training_script():
    p = resolve_params(RCN)
    assert (p["variant"], p["featuremaps"], p["pool_size"], p["epochs"], p["batch_size"]) == ("a", 64, 7, 100, 64)
    assert (p["optimizer"], p["lr"], p["momentum"], p["schedule"], p["shuffle"]) == ("sgd", 5e-4, 0.9, "constant", True)
    assert p["input_scale"] == 1.0 and not p["standardise"] and not p["flip"]
    with pytest.raises(ParameterError, match="variant must be one of a, s, w"):
        resolve_params(RCN, overrides={"variant": "p"})
    info = METHODS.get("rcn").info
    assert "Xia" in info.citation and info.supports_epoch_selection and info.representation == "flow"


def test_it_learns_a_separable_flow_problem():
    from mer_bench.data import Samples

    rng = np.random.default_rng(0)
    y = np.repeat([0, 1, 2], 24)
    X = rng.random((72, 3, 28, 28), dtype=np.float32) * 0.2
    for k in range(3):  # a bright patch per class
        X[y == k, k, 4 + 8 * k: 10 + 8 * k, 4:10] += 0.8
    s = Samples(X, y, np.array(["a"] * 72), np.array([str(i) for i in range(72)]), ("x", "y", "z"), "flow")
    m = RCN(featuremaps=16, epochs=30, lr=5e-3, random_state=0).fit(s)
    assert (m.predict(s.without_labels()) == y).mean() > 0.9
