"""Flow-image methods (STSTNet, Off-ApexNet, timm), flow inputs to MERANet, and epoch selection."""

import numpy as np
import pytest
import torch

from mer_bench.method import ParameterError, resolve_params
from mer_bench.pipeline import run
from mer_bench.registry import METHODS
from mer_bench.store import Store
from mer_bench.torch_method import TorchImageMethod, hflip

SMALL = {"n_subjects": 4, "min_clips": 6, "max_clips": 8, "cache": False}


def _n_params(name, in_channels=3):
    return sum(p.numel() for p in METHODS.get(name)().build_model(in_channels, 3).parameters())


def test_published_parameter_counts():
    assert _n_params("ststnet") == 1683          # STSTNet paper / released code
    assert _n_params("offapexnet", 2) == 807909  # MEB's Off-ApexNet
    assert _n_params("flow-resnet18") == 11178051


def test_ststnet_defaults_are_the_released_settings():
    p = resolve_params(METHODS.get("ststnet"))
    assert (p["lr"], p["batch_size"], p["epochs"], p["schedule"], p["input_scale"]) == (5e-5, 256, 800, "constant",
                                                                                         255.0)
    assert p["shuffle"] is False  # main.py's DataLoader has no shuffle
    from mer_bench.data import Samples
    train = Samples(np.zeros((4, 3, 28, 28), np.float32), np.array([0, 1, 2, 0]), np.array(["a"] * 4),
                    np.array(list("wxyz")), ("n", "p", "s"), "flow")
    assert METHODS.get("ststnet")(**p)._setup_fit(train)[2].shuffle is False
    assert METHODS.get("ststnet")(**{**p, "shuffle": True})._setup_fit(train)[2].shuffle is True
    with pytest.raises(ParameterError, match="'cosine' or 'constant'"):
        resolve_params(METHODS.get("ststnet"), None, {"schedule": "step"})


def test_ststnet_streams_are_one_convolution_with_per_stream_fan_in():
    model = METHODS.get("ststnet")().build_model(3, 3)
    bound = 1 / np.sqrt(27)  # kaiming-uniform(a=sqrt 5) bound of a 3x3x3 stream
    assert model.conv.weight.shape == (16, 3, 3, 3) and float(model.conv.weight.detach().abs().max()) <= bound
    assert model(torch.zeros(2, 3, 28, 28)).shape == (2, 3)
    with pytest.raises(ValueError, match="28, 28"):
        model(torch.zeros(2, 3, 32, 32))


def test_image_methods_refuse_clips_and_pick_channels():
    m = METHODS.get("offapexnet")()
    x = np.random.default_rng(0).random((2, 3, 28, 28), dtype=np.float32)
    assert m._prepare(x).shape == (2, 2, 28, 28)
    with pytest.raises(ValueError, match="expects images"):
        m._prepare(x[:, :, None])


def test_flipping_a_flow_image_mirrors_and_negates_u():
    x = torch.randn(64, 3, 1, 4, 4)
    out = hflip(x, torch.Generator().manual_seed(0), p=1.0, negate_channel=0)
    torch.testing.assert_close(out[:, 0], -x[:, 0].flip(-1))
    torch.testing.assert_close(out[:, 1:], x[:, 1:].flip(-1))
    m = METHODS.get("ststnet")(flip=True)  # raw [0, 255] input: u -> 255 - u
    m.representation_ = "flow"
    xb = torch.rand(256, 3, 28, 28) * 255
    got = TorchImageMethod._augment(m, xb, torch.Generator().manual_seed(1))
    flipped = (got != xb).flatten(1).any(1)
    assert 0 < int(flipped.sum()) < 256
    torch.testing.assert_close(got[flipped, 0], 255 - xb[flipped, 0].flip(-1))


def test_meranet_takes_a_flow_image_as_a_one_frame_clip(tmp_path):
    res = run("meranet", "loso", "synthetic", overrides={"width": 4, "epochs": 1, "batch_size": 16},
              dataset_options=SMALL, store=tmp_path / "s.sqlite")[0]
    assert res.status == "computed"  # synthetic has clips: the clip representation is preferred
    from mer_bench.pipeline import prepare

    assert prepare("meranet", "loso", "synthetic", dataset_options=SMALL).representation == "clip"
    assert prepare("ststnet", "loso", "synthetic", dataset_options=SMALL).representation == "flow"


def test_select_epoch_both_equals_separate_runs_and_is_labelled_leaky(tmp_path):
    store = tmp_path / "s.sqlite"
    over = {"epochs": 6, "batch_size": 32, "lr": 1e-3}
    both = run("ststnet", "loso", "synthetic", overrides=over, dataset_options=SMALL, store=store, selection="both")
    assert [r.spec.selection for r in both] == ["last", "best-on-test"]
    assert [r.spec.leaky for r in both] == [False, True]
    alone = run("ststnet", "loso", "synthetic", overrides=over, dataset_options=SMALL, store=tmp_path / "t.sqlite")
    with Store(store) as a, Store(tmp_path / "t.sqlite") as b:
        pa, pb = a.predictions(both[0].spec.run_id), b.predictions(alone[0].spec.run_id)
        np.testing.assert_array_equal(pa["y_pred"], pb["y_pred"])  # scoring epochs does not change training
        np.testing.assert_allclose(np.stack(pa["proba"]), np.stack(pb["proba"]), atol=1e-6)
        runs = a.runs().set_index("run_id")
        assert runs.loc[both[1].spec.run_id, "leaky"] == 1
        assert "LEAKY" in runs.loc[both[1].spec.run_id, "selection"]
        assert runs.loc[both[0].spec.run_id, "selection"] == "last epoch"
    assert alone[0].spec.run_id == both[0].spec.run_id
    from mer_bench.leaderboard import leaderboard_rows, render_markdown

    with Store(store) as st:
        md = render_markdown(leaderboard_rows(st, "loso", "synthetic"))
    assert "## Leaky rows and their inflation (not ranked)" in md
    assert "| best epoch on the test subject (LEAKY) |" in md
    assert "--select-epoch best-on-test`" in md
    # choosing the epoch on the test subject can only help the per-fold accuracy it maximises
    assert both[1].scores["Full"]["accuracy"] >= both[0].scores["Full"]["accuracy"]


def test_epoch_selection_is_refused_for_methods_without_epochs():
    from mer_bench.pipeline import prepare

    with pytest.raises(ParameterError, match="no epochs to select"):
        prepare("chance", "loso", "synthetic", dataset_options=SMALL, selection="best-on-test")
    with pytest.raises(ParameterError, match="unknown model selection"):
        prepare("ststnet", "loso", "synthetic", dataset_options=SMALL, selection="best")
