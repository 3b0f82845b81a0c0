"""Frame-folder loaders on fake trees in the official layouts (generated frames, never real faces),
and ``mer-bench data check``."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mer_bench.cli import main
from mer_bench.datasets.casme import CASME2
from mer_bench.datasets.frames import frame_number, list_frames
from mer_bench.datasets.samm import SAMM

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "annotations"


def _casme2_sheet(path: Path, rows) -> Path:
    df = pd.DataFrame(rows, columns=["Subject", "Filename", "OnsetFrame", "ApexFrame", "OffsetFrame", "Action Units",
                                     "Estimated Emotion"])
    df["Subject"] = df["Subject"].astype(str)
    df.to_excel(path, index=False)
    return path


def _frames(folder: Path, numbers, name=lambda n: f"img{n}.jpg"):
    folder.mkdir(parents=True, exist_ok=True)
    for n in numbers:
        (folder / name(n)).write_bytes(b"\xff\xd8fake")


@pytest.fixture
def casme2_tree(tmp_path):
    root = tmp_path / "CASME2"
    root.mkdir()
    _casme2_sheet(root / "CASME2-coding-20140508.xlsx", [
        ["01", "EP02_01f", 46, 59, 86, "12", "happiness"],
        ["01", "EP03_02", 131, 139, 161, "18", "others"],
        ["02", "EP01_11f", 10, 30, 20, "4", "disgust"],      # apex outside, offset before apex
        ["03", "EP05_01", 1, 2, 3, "4", "contempt"],         # not a CASME II label
    ])
    _frames(root / "CASME2_RAW_selected" / "sub01" / "EP02_01f", range(46, 87))
    _frames(root / "CASME2_RAW_selected" / "sub01" / "EP03_02", [n for n in range(131, 162) if n != 140])
    (root / "CASME2_RAW_selected" / "sub01" / "EP03_02" / "img141.jpg").write_bytes(b"")
    return root


def test_frame_numbers_sort_numerically(tmp_path):
    assert frame_number("reg_img46.jpg") == 46 and frame_number("006_05562.jpg") == 5562
    _frames(tmp_path, [9, 10, 100])
    assert [n for n, _ in list_frames(tmp_path)] == [9, 10, 100]


def test_casme2_check_reports_every_problem(casme2_tree):
    ds = CASME2(data_root=str(casme2_tree))
    problems = ds.check()
    assert any("sub01/EP03_02: 1 frame(s) between onset 131 and offset 161 missing" in p and "(140)" in p
               for p in problems)
    assert any("sub01/EP03_02: frame img141.jpg is empty" in p for p in problems)
    assert any("sub02/EP01_11f: clip folder" in p and "is missing" in p for p in problems)
    assert not any("EP02_01f" in p for p in problems)
    assert "sub03/EP05_01: unknown emotion label 'contempt'" in problems
    t = ds.table()
    assert list(t["sample_id"]) == ["casme2/sub01/EP02_01f", "casme2/sub01/EP03_02", "casme2/sub02/EP01_11f"]
    assert t["n_frames"].tolist() == [41, 31, 11] and (t["fps"] == 200).all()  # contempt: no class


def test_data_check_cli_exit_status(casme2_tree, tmp_path, capsys):
    assert main(["data", "check", "--dataset", "casme2", "--data-root", str(casme2_tree)]) == 1
    out = capsys.readouterr().out
    assert "problem(s) in casme2" in out and "EP03_02" in out
    good = tmp_path / "good"
    good.mkdir()
    _casme2_sheet(good / "CASME2-coding-20140508.xlsx", [["01", "EP02_01f", 46, 59, 86, "12", "happiness"]])
    _frames(good / "CASME2_RAW_selected" / "sub01" / "EP02_01f", range(46, 87))
    assert main(["data", "check", "--dataset", "casme2", "--data-root", str(good)]) == 0
    assert "no problems" in capsys.readouterr().out
    assert main(["data", "check", "--dataset", "casme2", "--data-root", str(tmp_path / "none")]) == 1
    assert "not a folder" in capsys.readouterr().out


@pytest.mark.skipif(not (DATA / "samm" / "SAMM_micro_only.xlsx").is_file(), reason=f"SAMM sheet not found in {DATA}")
def test_samm_real_sheet_with_a_fake_tree(tmp_path):
    ds = SAMM(data_root=str(tmp_path), sheet=str(DATA / "samm" / "SAMM_micro_only.xlsx"))
    sheet = ds.sheet_table()
    first = sheet.iloc[0]
    _frames(tmp_path / "SAMM" / first["subject"] / first["clip"], range(int(first["onset"]), int(first["offset"]) + 1),
            name=lambda n: f"{first['subject']}_{n:05d}.jpg")
    problems = ds.check()
    assert len(problems) == 158 and all("is missing" in p for p in problems)  # every other clip folder


def _image_frames(folder: Path, numbers, shift_at=None):
    """Textured 64x64 frames; from ``shift_at`` on, the texture moves 2 px to the right."""
    import cv2

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    base = cv2.GaussianBlur(rng.integers(0, 255, (64, 64), dtype=np.uint8), (7, 7), 2)
    for n in numbers:
        img = np.roll(base, 2, axis=1) if shift_at is not None and n >= shift_at else base
        cv2.imwrite(str(folder / f"img{n}.png"), np.dstack([img] * 3))


def test_preprocessed_representations_are_cached(tmp_path, monkeypatch):
    pytest.importorskip("cv2")
    monkeypatch.setenv("MER_BENCH_CACHE", str(tmp_path / "cache"))
    root = tmp_path / "CASME2"
    root.mkdir()
    _casme2_sheet(root / "CASME2-coding-20140508.xlsx", [
        ["01", "EP02_01f", 10, 14, 18, "12", "happiness"],
        ["02", "EP03_02", 20, 22, 25, "18", "others"],
        ["02", "EP04_01", 20, 22, 25, "9", "sadness"],  # not in the 5-class scheme
    ])
    _image_frames(root / "CASME2_RAW_selected" / "sub01" / "EP02_01f", range(10, 19), shift_at=13)
    _image_frames(root / "CASME2_RAW_selected" / "sub02" / "EP03_02", range(20, 26))
    ds = CASME2(data_root=str(root), face_crop=True, frames=8, size=32)
    t = ds.table()
    assert list(t["clip"]) == ["EP02_01f", "EP03_02"] and list(t["label"]) == [0, 4]
    assert ds.classes == ("happiness", "surprise", "disgust", "repression", "others")
    flow = ds.load("flow", np.arange(2))
    assert flow.shape == (2, 3, 28, 28) and flow.dtype == np.float32 and 0 <= flow.min() and flow.max() <= 1
    assert ds.no_face_ == ["casme2/sub01/EP02_01f", "casme2/sub02/EP03_02"]  # no face in a texture
    clip = ds.load("clip", np.arange(2))
    assert clip.shape == (2, 3, 8, 32, 32)
    assert ds.load("apex", np.arange(1)).shape == (1, 3, 32, 32)
    dyn = ds.load("dynamic", np.arange(2))
    assert dyn.shape == (2, 3, 32, 32) and dyn[1].max() == 0  # the second clip does not move
    files = sorted((tmp_path / "cache" / "casme2").glob("*.npy"))
    assert len(files) == 7
    again = CASME2(data_root=str(root), face_crop=True, frames=8, size=32)  # a second run reads the cache
    np.testing.assert_array_equal(again.load("flow", np.arange(2)), flow)
    assert again.no_face_ == []  # nothing was recomputed
    other = CASME2(data_root=str(root), face_crop=True, frames=8, size=32, flow_method="farneback")
    assert other.fingerprint() != ds.fingerprint()
    with pytest.raises(Exception, match="unknown class scheme"):
        CASME2(data_root=str(root), classes="7class")


def test_a_raw_dataset_runs_through_the_runner(tmp_path, monkeypatch):
    pytest.importorskip("cv2")
    from mer_bench.pipeline import run

    monkeypatch.setenv("MER_BENCH_CACHE", str(tmp_path / "cache"))
    root = tmp_path / "CASME2"
    root.mkdir()
    _casme2_sheet(root / "CASME2-coding-20140508.xlsx", [
        ["01", "EP02_01f", 10, 14, 18, "12", "happiness"], ["01", "EP02_02", 10, 14, 18, "4", "disgust"],
        ["02", "EP03_02", 20, 22, 25, "18", "others"], ["02", "EP03_03", 20, 22, 25, "12", "happiness"],
    ])
    for sub, clip, rng in [("sub01", "EP02_01f", range(10, 19)), ("sub01", "EP02_02", range(10, 19)),
                           ("sub02", "EP03_02", range(20, 26)), ("sub02", "EP03_03", range(20, 26))]:
        _image_frames(root / "CASME2_RAW_selected" / sub / clip, rng, shift_at=rng.start + 2)
    (res,) = run("ststnet", "loso", "casme2", overrides={"epochs": 2}, store=tmp_path / "s.sqlite",
                 dataset_options={"data_root": str(root), "face_crop": False})
    assert res.n_folds == 2 and res.scores["Full"]["n"] == 4


@pytest.mark.skipif(not (DATA / "smic" / "smic_apex.xlsx").is_file(), reason=f"SMIC sheet not found in {DATA}")
def test_smic_hs_layout_uses_unpadded_folders_and_the_class_folder(tmp_path):
    from mer_bench.datasets.smic import SMICHS

    ds = SMICHS(data_root=str(tmp_path), sheet=str(DATA / "smic" / "smic_apex.xlsx"))
    row = ds.table().set_index("clip").loc["s03_ne_22"]
    assert row["frame_dir"] == str(tmp_path / "HS" / "s3" / "micro" / "negative" / "s3_ne_22")
    assert row["sample_id"] == "smic/s03/s03_ne_22" and ds.classes == ("negative", "positive", "surprise")
    _frames(Path(row["frame_dir"]), range(int(row["onset"]), int(row["offset"]) + 1), name=lambda n: f"image{n}.bmp")
    problems = ds.check()
    assert not any("s03_ne_22" in p for p in problems) and any("s20_ne_01: clip folder" in p for p in problems)


def test_check_then_run_meranet_casme2_5class_loso_on_a_generated_tree(tmp_path, monkeypatch, capsys):
    pytest.importorskip("cv2")
    monkeypatch.setenv("MER_BENCH_CACHE", str(tmp_path / "cache"))
    root = tmp_path / "CASME2"
    root.mkdir()
    emotions = ["happiness", "surprise", "disgust", "repression", "others", "sadness"]
    rows, n = [], 0
    for s in (1, 2, 3):
        for e in emotions:
            n += 1
            rows.append([f"{s:02d}", f"EP{n:02d}_01", 10, 13, 17, "4", e])
            _image_frames(root / "CASME2_RAW_selected" / f"sub{s:02d}" / f"EP{n:02d}_01", range(10, 18),
                          shift_at=12)
    _casme2_sheet(root / "CASME2-coding-20140508.xlsx", rows)
    assert main(["data", "check", "--dataset", "casme2", "--data-root", str(root)]) == 0
    capsys.readouterr()
    assert main(["run", "--method", "meranet", "--protocol", "casme2-5class-loso", "--data-root", str(root),
                 "--store", str(tmp_path / "s.sqlite"), "--set", "width=4", "--set", "epochs=1",
                 "--dataset-set", "frames=4", "--dataset-set", "size=32", "--dataset-set", "face_crop=False",
                 "--json"]) == 0
    import json

    res = json.loads(capsys.readouterr().out)["results"][0]
    assert res["dataset"] == "casme2" and res["folds"] == 3 and res["scores"]["Full"]["n"] == 15  # sadness left out


def test_protocols_fix_the_class_scheme(tmp_path):
    from mer_bench.pipeline import prepare
    from mer_bench.protocol import ProtocolError

    with pytest.raises(ProtocolError, match="needs a dataset with class schemes"):
        prepare("chance", "casme2-5class-loso", "synthetic")
    with pytest.raises(ProtocolError, match="uses the '5class' classes, not 'megc3'"):
        prepare("chance", "casme2-5class-loso", "casme2", dataset_options={"data_root": str(tmp_path),
                                                                           "classes": "megc3"})


def test_smic_vis_reads_its_clip_list_from_the_tree(tmp_path, capsys):
    from mer_bench.datasets.smic import SMICVIS

    def bmp(n):
        return f"image{n}.bmp"

    _frames(tmp_path / "VIS" / "s1" / "micro" / "negative" / "s1_ne_01", range(100, 110), name=bmp)
    _frames(tmp_path / "VIS" / "s2" / "micro" / "surprise" / "s2_sur_01", range(5, 9), name=bmp)
    ds = SMICVIS(data_root=str(tmp_path))
    t = ds.table()
    assert list(t["sample_id"]) == ["smic/s01/s01_ne_01", "smic/s02/s02_sur_01"] and list(t["label"]) == [0, 2]
    assert t[["onset", "apex", "offset"]].values.tolist() == [[100, 104, 109], [5, 6, 8]] and (t["fps"] == 25).all()
    assert ds.check() == []
    assert main(["data", "check", "--dataset", "smic-nir", "--data-root", str(tmp_path)]) == 1
    assert "no smic_apex.xlsx and no clips under" in capsys.readouterr().out


def test_megc2019_cde_runs_from_raw_trees_with_the_official_list(tmp_path, monkeypatch):
    pytest.importorskip("cv2")
    from mer_bench.datasets.composite import MEGC2019Raw
    from mer_bench.pipeline import run

    monkeypatch.setenv("MER_BENCH_CACHE", str(tmp_path / "cache"))
    root = tmp_path / "megc"
    (root / "CASME2").mkdir(parents=True)
    _casme2_sheet(root / "CASME2" / "CASME2-coding-20140508.xlsx", [
        ["01", "EP02_01f", 10, 13, 17, "12", "happiness"], ["02", "EP03_02", 10, 13, 17, "4", "disgust"],
        ["02", "EP09_05f", 10, 13, 17, "4", "disgust"],  # a rule would take it; the official list does not
    ])
    for sub, clip in [("sub01", "EP02_01f"), ("sub02", "EP03_02"), ("sub02", "EP09_05f")]:
        _image_frames(root / "CASME2" / "CASME2_RAW_selected" / sub / clip, range(10, 18), shift_at=12)
    samm = pd.DataFrame([["006", "006_1_2", 1, 20, 23, 27, 8, "Micro - 1/2", "4", "Anger", "3", ""],
                         ["007", "007_3_1", 1, 20, 23, 27, 8, "Micro - 1/2", "12", "Happiness", "1", ""]],
                        columns=["Subject", "Filename", "Inducement Code", "Onset Frame", "Apex Frame", "Offset Frame",
                                 "Duration", "Micro", "Action Units", "Estimated Emotion", "Objective Classes",
                                 "Notes"])
    (root / "SAMM").mkdir()
    samm.to_excel(root / "SAMM" / "SAMM_micro_only.xlsx", index=False)
    for sub, clip in [("006", "006_1_2"), ("007", "007_3_1")]:
        _image_frames(root / "SAMM" / "SAMM" / sub / clip, range(20, 28), shift_at=22)
    for sub, emo, clip in [("s1", "surprise", "s1_sur_01"), ("s2", "negative", "s2_ne_01")]:
        _image_frames(root / "SMIC" / "HS" / sub / "micro" / emo / clip, range(100, 106), shift_at=103)
    (root / "combined_3class_gt.csv").write_bytes(
        b"casme2,sub01,EP02_01f,1\r\ncasme2,sub02,EP03_02,0\r\nsmic,s01,s01_sur_01,2\r\nsmic,s02,s02_ne_01,0\r\n"
        b"samm,6,006_1_2,0\r\nsamm,7,007_3_1,1\r\n")
    ds = MEGC2019Raw(data_root=str(root), face_crop=False)
    t = ds.table()
    assert len(t) == 6 and list(t["dataset"]) == ["casme2", "casme2", "smic", "smic", "samm", "samm"]
    assert ds.load("flow", np.arange(6)).shape == (6, 3, 28, 28)
    (res,) = run("ststnet", "megc2019-cde", "megc2019-raw", overrides={"epochs": 1}, store=tmp_path / "s.sqlite",
                 dataset_options={"data_root": str(root), "face_crop": False})
    assert list(res.scores) == ["Full", "smic", "casme2", "samm"] and res.n_folds == 6
    (root / "combined_3class_gt.csv").write_bytes(b"casme2,sub01,EP02_01f,1\r\ncasme2,sub03,EP01_01,0\r\n")
    with pytest.raises(Exception, match="1 clip\\(s\\) of the official list are not in the member sheets/trees: "
                                        "casme2/sub03/EP01_01"):
        MEGC2019Raw(data_root=str(root)).table()


def test_failed_or_interrupted_preprocessing_corrupts_nothing(tmp_path, monkeypatch):
    """A clip that fails mid-run keeps the clips finished before it; a damaged cache file is
    recomputed, never loaded; no temporary file is left under a cache name."""
    pytest.importorskip("cv2")
    monkeypatch.setenv("MER_BENCH_CACHE", str(tmp_path / "cache"))
    root = tmp_path / "CASME2"
    root.mkdir()
    _casme2_sheet(root / "CASME2-coding-20140508.xlsx", [
        ["01", "EP02_01f", 10, 14, 18, "12", "happiness"],
        ["02", "EP03_02", 20, 22, 25, "18", "others"],
    ])
    _image_frames(root / "CASME2_RAW_selected" / "sub01" / "EP02_01f", range(10, 19), shift_at=13)
    bad = root / "CASME2_RAW_selected" / "sub02" / "EP03_02"
    _image_frames(bad, range(20, 26))
    (bad / "img23.jpg").write_bytes(b"not a jpeg")  # an unreadable frame in the second clip
    ds = CASME2(data_root=str(root), face_crop=False)
    with pytest.raises(Exception, match="cannot read frame .*img23.jpg"):
        ds.load("flow", np.arange(2))
    cache = tmp_path / "cache" / "casme2"
    kept = sorted(cache.iterdir())
    assert [f.suffix for f in kept] == [".npy"]  # the first clip survived; no partial file
    first = np.load(kept[0])
    kept[0].write_bytes(kept[0].read_bytes()[:40])  # a damaged cache file (e.g. a full disk)
    again = CASME2(data_root=str(root), face_crop=False)
    np.testing.assert_array_equal(again.load("flow", [0])[0], first)  # recomputed, not loaded
    np.testing.assert_array_equal(np.load(kept[0]), first)  # and replaced
