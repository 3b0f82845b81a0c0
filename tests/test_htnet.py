"""HTNet (Wang et al., Neurocomputing 2024): the released network, its landmark regions, and the
composite's landmarks file. Tests on the real composite read ``../shared/data/megc2019-composite``
and skip with the reason when it is absent."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from mer_bench.cli import main
from mer_bench.methods.htnet import HTNetModel
from mer_bench.preprocess import HTNET_FALLBACK_LANDMARKS, clamp_landmarks, htnet_regions

ROOT = Path(__file__).resolve().parents[2] / "shared" / "data" / "megc2019-composite"
needs_data = pytest.mark.skipif(not (ROOT / "htnet_landmarks.csv").is_file(),
                                reason=f"MEGC 2019 composite not found at {ROOT} (licensed data, not in the repo)")
TINY = ["--set", "dim=8", "--set", "block_repeats=1", "--set", "epochs=1"]


def test_the_released_network_has_its_parameter_count():
    model = HTNetModel(3)  # HTNet(image_size=28, patch_size=7, dim=256, heads=3, num_hierarchies=3, (2, 2, 10))
    assert sum(p.numel() for p in model.parameters()) == 139_582_982
    assert [len(t.layers) for t, _ in model.layers] == [2, 2, 10]


def test_profile_builds_it_at_the_composite_size():
    from mer_bench.methods.htnet import HTNet
    from mer_bench.model_profile import _natural_input

    assert _natural_input(HTNet()) == (3, 28, 28)  # so `mer-bench profile --method htnet` counts 139,582,982


def test_regions_index_rows_with_x_as_released():
    img = np.arange(28 * 28, dtype=np.float32).reshape(1, 1, 28, 28)
    points = np.array([[[7, 10], [21, 10], [14, 14], [9, 20], [20, 21]]])  # (x, y)
    out = htnet_regions(img, points)
    assert out.shape == (1, 1, 28, 28)
    # top-left: the left eye's crop = rows x-7..x+6, columns y-7..y+6
    np.testing.assert_array_equal(out[0, 0, :14, :14], img[0, 0, 0:14, 3:17])
    np.testing.assert_array_equal(out[0, 0, :14, 14:], img[0, 0, 14:28, 3:17])   # right eye
    np.testing.assert_array_equal(out[0, 0, 14:, :14], img[0, 0, 2:16, 13:27])   # left mouth corner
    np.testing.assert_array_equal(out[0, 0, 14:, 14:], img[0, 0, 13:27, 14:28])  # right mouth corner
    fixed = clamp_landmarks(HTNET_FALLBACK_LANDMARKS)
    assert fixed.tolist() == [[9, 11], [21, 10], [15, 17], [10, 21], [20, 21]]
    with pytest.raises(ValueError, match=r"\[7, 21\]"):
        htnet_regions(img, np.zeros((1, 5, 2), int))


def _root_with(tmp_path, edit=None) -> Path:
    dst = tmp_path / "megc"
    dst.mkdir()
    for name in ("combined_3class_gt.csv", "flow"):
        (dst / name).symlink_to(ROOT / name)
    text = (ROOT / "htnet_landmarks.csv").read_text()
    (dst / "htnet_landmarks.csv").write_text(edit(text) if edit else text)
    return dst


@needs_data
@pytest.mark.parametrize("edit, message", [
    (lambda t: "\n".join(t.splitlines()[:-1]) + "\n", "has no landmarks for 1 clip(s)"),
    (lambda t: t.replace(t.splitlines()[5], ",".join(t.splitlines()[5].split(",")[:4] + ["40"] +
                                                     t.splitlines()[5].split(",")[5:])), "line 6: coordinate 40"),
    (lambda t: t.replace(t.splitlines()[3], t.splitlines()[3] + ",9"), "line 4: 15 fields"),
    (lambda t: t.replace(t.splitlines()[2], ",".join(t.splitlines()[2].split(",")[:5] + ["x"] +
                                                     t.splitlines()[2].split(",")[6:])), "line 3:"),
    (lambda t: t.replace("left_eye_x", "leye_x"), "line 1: header"),
])
def test_a_bad_landmarks_file_is_a_clear_error_before_training(tmp_path, capsys, edit, message):
    root = _root_with(tmp_path, edit)
    assert main(["run", "--method", "htnet", "--protocol", "megc2019-cde", "--data-root", str(root), *TINY,
                 "--store", str(tmp_path / "s.sqlite")]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert message in err and "htnet_landmarks.csv" in err
    from mer_bench.store import Store

    assert Store(tmp_path / "s.sqlite", readonly=True).runs(None).empty  # nothing trained, nothing stored


@needs_data
@pytest.mark.slow
def test_a_tiny_htnet_on_the_composite_with_and_without_the_landmarks_file(tmp_path, capsys):
    store = str(tmp_path / "s.sqlite")
    with_file = _root_with(tmp_path)
    without = tmp_path / "nofile"
    without.mkdir()
    for name in ("combined_3class_gt.csv", "flow"):
        (without / name).symlink_to(ROOT / name)
    ids = []
    for root in (with_file, without):
        assert main(["run", "--method", "htnet", "--protocol", "megc2019-cde", "--data-root", str(root), *TINY,
                     "--store", store, "--json"]) == 0
        res = json.loads(capsys.readouterr().out)["results"][0]
        assert res["status"] == "computed" and res["folds"] == 68
        ids.append(res["run_id"])
    assert ids[0] != ids[1]  # the landmarks are part of the run's identity
    from mer_bench import results

    runs = results.runs(store).set_index("run_id")
    assert runs.loc[ids[0], "input"].endswith("(landmarks: htnet_landmarks.csv)")
    assert runs.loc[ids[1], "input"].endswith("(landmarks: fixed)")
    # an STSTNet run on the flow images keeps the identity it had before landmarks existed
    from mer_bench.pipeline import prepare

    spec = prepare("ststnet", "megc2019-cde", dataset_options={"data_root": str(with_file)}).specs[0]
    assert spec.dataset_fingerprint == "6b0fbf246d371e2c" and spec.dataset_options == {}
    shutil.rmtree(tmp_path / "megc")
