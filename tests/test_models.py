"""Trained models (--save-models, train, predict), learning curves and smoke runs (--folds)."""

import json
from pathlib import Path

import numpy as np
import pytest

from mer_bench import results
from mer_bench.cli import main
from mer_bench.models import ModelError, check_model, load_model
from mer_bench.store import Store

ROOT = Path(__file__).resolve().parents[2] / "shared" / "data" / "megc2019-composite"
needs_data = pytest.mark.skipif(not (ROOT / "combined_3class_gt.csv").is_file(),
                                reason=f"MEGC 2019 composite not found at {ROOT} (licensed data, not in the repo)")
SMALL = ["--dataset-set", "n_subjects=3"]
FAST = ["--set", "epochs=2", "--set", "batch_size=16"]


def _predict_json(capsys, *args) -> list[dict]:
    capsys.readouterr()
    assert main(["predict", *args, "--format", "json"]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.slow
@pytest.mark.parametrize("method", ["ststnet", "meranet", "majority"])
def test_saved_fold_models_give_the_stored_predictions(tmp_path, capsys, method):
    store, models = tmp_path / "s.sqlite", tmp_path / "models"
    extra = (["--set", "epochs=1", "--set", "batch_size=64", "--set", "frames=4", "--set", "size=16"]
             if method == "meranet" else FAST)
    assert main(["run", "--method", method, *SMALL, *(extra if method != "majority" else []), "--store", str(store),
                 "--save-models", str(models), "--json"]) == 0
    run_id = json.loads(capsys.readouterr().out)["results"][0]["run_id"]
    files = sorted((models / run_id).glob("fold-*.pt"))
    assert [f.name for f in files] == ["fold-000.pt", "fold-001.pt", "fold-002.pt"]
    manifest = json.loads((models / run_id / "manifest.json").read_text())
    assert manifest["fold-001.pt"]["test_subjects"] == ["s02"] and manifest["fold-001.pt"]["run_id"] == run_id
    stored = results.predictions(run_id, store).set_index("sample_id")
    got = _predict_json(capsys, "--model", str(models / run_id))
    assert len(got) == len(stored)  # each fold's model on its held-out subject: the whole run again
    for rec in got:
        row = stored.loc[rec["sample_id"]]
        assert rec["pred"] == row["pred"] and rec["true"] == row["true"]
        for c in ("negative", "positive", "surprise"):
            assert rec[f"p_{c}"] == pytest.approx(row[f"p_{c}"], abs=1e-6)


def test_a_method_that_cannot_save_is_refused_before_training(tmp_path, capsys):
    assert main(["run", "--method", "lbptop-svm", *SMALL, "--store", str(tmp_path / "s.sqlite"), "--save-models",
                 str(tmp_path / "m")]) == 2
    assert "cannot save trained models" in capsys.readouterr().err
    assert not (tmp_path / "m").exists()
    assert Store(tmp_path / "s.sqlite", readonly=True).runs(None).empty


@pytest.mark.slow
def test_train_then_predict_on_the_synthetic_dataset_and_on_frames(tmp_path, capsys):
    out = tmp_path / "model"
    assert main(["train", "--method", "ststnet", *SMALL, *FAST, "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert "saved" in text and "training loss" in text
    method, meta = load_model(out / "model.pt")
    assert meta["fold_index"] is None and meta["classes"] == ["negative", "positive", "surprise"]
    assert meta["representation"] == "flow" and meta["n_train"] == 48
    got = _predict_json(capsys, "--model", str(out / "model.pt"))
    assert len(got) == 48 and all(abs(sum(r[f"p_{c}"] for c in meta["classes"]) - 1) < 1e-4 for r in got)
    assert main(["predict", "--model", str(out / "model.pt")]) == 0
    assert "training clips" in capsys.readouterr().out  # said to be no evaluation
    assert main(["predict", "--model", str(out / "model.pt"), "--subjects", "held-out"]) == 2
    assert "no held-out subjects" in capsys.readouterr().err
    # a folder of frames through the raw loaders' preprocessing, and a .npy of the representation
    import cv2

    frames = tmp_path / "clip"
    frames.mkdir()
    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (96, 96, 3), dtype=np.uint8)
    for i in range(5):
        cv2.imwrite(str(frames / f"img{10 + i}.jpg"), np.roll(base, i, axis=1))
    arr = tmp_path / "flow.npy"
    np.save(arr, np.full((3, 28, 28), 0.5, np.float32))
    got = _predict_json(capsys, "--model", str(out / "model.pt"), "--clip", str(frames), "--apex", "12",
                        "--clip", str(arr))
    assert [r["sample_id"] for r in got] == [str(frames), str(arr)] and all(r["true"] is None for r in got)
    assert main(["predict", "--model", str(out / "model.pt"), "--clip", str(frames), "--preprocess",
                 "flow_method=tvl1", "--preprocess", "face_crop=false"]) == 0
    assert "frames 10..14 (5), apex 12, face not cropped, tvl1 flow" in " ".join(capsys.readouterr().out.split())
    assert main(["predict", "--model", str(out / "model.pt"), "--clip", str(tmp_path / "nothing")]) == 2
    assert "no frames" in capsys.readouterr().err


def test_a_model_that_does_not_fit_the_data_is_refused(tmp_path, capsys):
    meta = {"method": "ststnet", "representation": "flow", "classes": ["negative", "positive", "surprise"],
            "input": "flow 3x28x28"}
    with pytest.raises(ModelError, match="not 'meranet'"):
        check_model(meta, method="meranet")
    with pytest.raises(ModelError, match="trained on 'flow' inputs"):
        check_model(meta, representation="clip")
    with pytest.raises(ModelError, match="same names in the same order"):
        check_model(meta, classes=("positive", "negative", "surprise"))
    bad = tmp_path / "x.pt"
    bad.write_bytes(b"not a model")
    assert main(["predict", "--model", str(bad)]) == 2
    assert "cannot read the model" in capsys.readouterr().err
    import torch

    torch.save({"format": "something else"}, bad)
    assert main(["predict", "--model", str(bad)]) == 2
    assert "not a mer-bench model" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["predict", "--model", str(empty)]) == 2
    assert "no model files" in capsys.readouterr().err


@needs_data
@pytest.mark.slow
def test_train_and_predict_on_the_composite_flows(tmp_path, capsys):
    store, models = tmp_path / "s.sqlite", tmp_path / "models"
    base = ["--dataset", "megc2019-flow", "--data-root", str(ROOT)]
    assert main(["run", "--method", "ststnet", "--protocol", "megc2019-cde", *base, "--set", "epochs=1",
                 "--folds", "2", "--save-models", str(models), "--store", str(store), "--json"]) == 0
    run_id = json.loads(capsys.readouterr().out)["results"][0]["run_id"]
    stored = results.predictions(run_id, store).set_index("sample_id")
    got = _predict_json(capsys, "--model", str(models / run_id), "--data-root", str(ROOT))
    assert len(got) == len(stored) > 0
    assert all(r["pred"] == stored.loc[r["sample_id"], "pred"] for r in got)
    out = tmp_path / "trained"
    assert main(["train", "--method", "ststnet", *base, "--set", "epochs=1", "-o", str(out)]) == 0
    capsys.readouterr()
    got = _predict_json(capsys, "--model", str(out / "model.pt"), "--data-root", str(ROOT))
    assert len(got) == 442 and {r["true"] for r in got} == {"negative", "positive", "surprise"}


def test_training_stores_learning_curves_and_report_draws_them(tmp_path, capsys):
    store = tmp_path / "s.sqlite"
    assert main(["run", "--method", "ststnet", *SMALL, "--set", "epochs=3", "--set", "batch_size=16", "--store",
                 str(store), "--json"]) == 0
    run_id = json.loads(capsys.readouterr().out)["results"][0]["run_id"]
    assert main(["run", "--method", "chance", *SMALL, "--store", str(store), "--json"]) == 0
    with Store(store, readonly=True) as st:
        curves = st.curves(run_id)
        chance_id = st.runs().query("method == 'chance'")["run_id"].iat[0]
        assert st.curves(chance_id).empty  # no epochs, no curve
    assert sorted(curves["fold_index"].unique()) == [0, 1, 2] and list(curves["epoch"].unique()) == [1, 2, 3]
    assert curves["loss"].gt(0).all() and curves["accuracy"].between(0, 1).all()
    out = tmp_path / "boards"
    assert main(["report", "--dataset", "synthetic", "--protocol", "loso", "--store", str(store), "--out",
                 str(out)]) == 0
    png = out / "synthetic-loso-curves.png"
    assert png.is_file() and png.stat().st_size > 10_000
    assert "synthetic-loso-curves.png" in (out / "synthetic-loso.md").read_text()


def test_learning_curves_of_stacked_folds_match_fold_by_fold(tmp_path):
    from mer_bench.data import Samples
    from mer_bench.methods.ststnet import STSTNet
    from mer_bench.torch_method import TorchClipMethod

    rng = np.random.default_rng(0)
    trains = [Samples(rng.random((20, 3, 28, 28), dtype=np.float32), rng.integers(0, 3, 20), np.array(["a"] * 20),
                      np.array([str(i) for i in range(20)]), ("x", "y", "z"), "flow") for _ in range(2)]
    one = [STSTNet(epochs=3, batch_size=8, random_state=k).fit(t) for k, t in enumerate(trains)]
    stacked = TorchClipMethod.fit_stacked([STSTNet(epochs=3, batch_size=8, random_state=k) for k in range(2)], trains)
    for a, b in zip(one, stacked):
        assert [e for e, _, _ in a.training_curve_] == [1, 2, 3]
        np.testing.assert_allclose([c[1] for c in a.training_curve_], [c[1] for c in b.training_curve_], rtol=1e-4)
        assert [c[2] for c in a.training_curve_] == pytest.approx([c[2] for c in b.training_curve_], abs=0.06)


def test_folds_k_makes_a_partial_run_never_on_a_board_and_resumable(tmp_path, capsys):
    store = str(tmp_path / "s.sqlite")
    base = ["run", "--method", "majority", *SMALL, "--store", store]
    assert main([*base, "--folds", "1"]) == 0
    out = capsys.readouterr().out
    assert "PARTIAL smoke run, 1 of 3 folds" in out and "never shown on a board" in out
    with Store(store, readonly=True) as st:
        run = st.runs(None).iloc[0]
        assert run["status"] == "partial" and st.completed_folds(run["run_id"]) == {0}
    assert main(["leaderboard", "--store", store, "--format", "json"]) == 0
    assert [r for r in json.loads(capsys.readouterr().out) if r["source"] != "reported"] == []
    assert main([*base, "--json"]) == 0  # without --folds: resumes the two missing folds
    res = json.loads(capsys.readouterr().out)["results"][0]
    assert res["status"] == "resumed" and res["folds"] == 3
    assert main([*base, "--folds", "0"]) == 2
    assert "--folds must be" in capsys.readouterr().err
    assert main([*base, "--folds", "1", "--force"]) == 2
    assert "cannot replace" in capsys.readouterr().err
