"""CASME (I) and CAS(ME)^2 loaders on fabricated sheets and fake trees in their official layouts
(their sheets are not in the data bundle; the layouts follow MEB's loaders), plus the
official cropped CASME II release."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mer_bench.cli import main
from mer_bench.data import DatasetError
from mer_bench.datasets.casme import CASME, CASME2Cropped, CASMESq, read_casme_sheet, read_casme_sq_sheet
from mer_bench.protocols.single import MERANet3Holdout, MERANet3HoldoutPaper
from mer_bench.registry import DATASETS


def _png_frames(folder: Path, numbers, name, seed=0):
    import cv2

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 255, (48, 40, 3), dtype=np.uint8)
    for k, n in enumerate(numbers):
        cv2.imwrite(str(folder / name(n)), np.roll(base, k, axis=1))


def _casme_sheet(path: Path, rows) -> Path:
    df = pd.DataFrame(rows, columns=["Subject", "Filename", "OnsetF", "ApexF1", "ApexF2", "OffsetF", "AU", "Emotion"])
    df.insert(2, "", "")  # the sheet's blank columns
    df.to_excel(path, index=False)
    return path


@pytest.fixture
def casme_tree(tmp_path):
    root = tmp_path / "CASME"
    rows = []
    for s in range(1, 5):
        for k, emo in enumerate(["disgust", "repression", "tense", "surprise"]):
            clip = f"EP0{k + 1}_{s}"
            rows.append([s, clip, 10, 14 if k else None, None, 20, "4+7", emo.capitalize() if k == 0 else emo])
            _png_frames(root / "CASME_raw_selected" / f"sub{s:02d}" / clip, range(10, 21),
                        lambda n, c=clip: f"{c}-{n}.jpg", seed=s * 10 + k)
    _casme_sheet(root / "casme.xlsx", rows)
    return root


def test_casme_reads_its_sheet_and_layout(casme_tree):
    t = read_casme_sheet(casme_tree / "casme.xlsx")
    assert list(t["subject"].unique()) == ["sub01", "sub02", "sub03", "sub04"]
    assert t.loc[0, "emotion"] == "disgust"  # lower-cased
    # a blank ApexF1 becomes the middle frame, and the clip is listed
    assert t.loc[0, "apex"] == 15 and "sub01/EP01_1" in t.attrs["apex_filled"]
    assert t.loc[1, "apex"] == 14
    ds = CASME(data_root=str(casme_tree), classes="meranet3", face_crop=False)
    assert ds.check() == []
    table = ds.table()
    assert len(table) == 12 and ds.classes == ("disgust", "repression", "tense")
    assert table["fps"].iat[0] == 60 and table["frame_dir"].iat[0].endswith("CASME_raw_selected/sub01/EP01_1")
    clip = ds.load("clip", [0])
    assert clip.shape == (1, 3, 16, 112, 112)
    assert len(CASME(data_root=str(casme_tree)).table()) == 16  # 8class keeps surprise
    timed = CASME(data_root=str(casme_tree), classes="meranet3", face_crop=False, clip_rule="tim", frames=8)
    assert timed.load("clip", [0]).shape == (1, 3, 8, 112, 112)
    assert timed.options()["clip_rule"] == "tim" and timed.fingerprint() != ds.fingerprint()
    with pytest.raises(DatasetError, match="unknown clip_rule 'centre'"):
        CASME(data_root=str(casme_tree), clip_rule="centre")


def test_casme_sheet_errors_name_file_row_and_column(tmp_path):
    path = _casme_sheet(tmp_path / "casme.xlsx", [[1, "EP01_5", "ten", 14, None, 20, "4", "disgust"]])
    with pytest.raises(DatasetError, match=r"casme.xlsx, sheet row 2: OnsetF is 'ten'"):
        read_casme_sheet(path)
    pd.DataFrame({"Subject": [1], "Filename": ["EP01_5"]}).to_excel(tmp_path / "bad.xlsx", index=False)
    with pytest.raises(DatasetError, match="lacks columns.*OnsetF"):
        read_casme_sheet(tmp_path / "bad.xlsx")


def _casme_sq_workbook(path: Path, data: list[list], rule1=None, rule2=None, header=False) -> Path:
    rule1 = rule1 if rule1 is not None else [[15, "s15", 1], [16, "s16", 2], [19, "s19", 3]]
    rule2 = rule2 if rule2 is not None else [[101, "disgust1"], [401, "anger1"], [502, "happy2"]]
    cols = ["participant", "clip", "onset", "apex", "offset", "aus", "emotion", "type", "self"]
    with pd.ExcelWriter(path) as w:
        pd.DataFrame(data, columns=cols).to_excel(w, sheet_name="CASFEcode_final", index=False, header=header)
        pd.DataFrame(rule1).to_excel(w, sheet_name="naming rule1", index=False, header=False)
        pd.DataFrame(rule2).to_excel(w, sheet_name="naming rule2", index=False, header=False)
    return path


@pytest.fixture
def casme_sq_tree(tmp_path):
    root = tmp_path / "CASME_sq"
    data = []
    videos = {"disgust1": "0101disgustingteeth", "anger1": "0401girlcrashing", "happy2": "0502funnyerhuan"}
    for p, folder in ((1, 15), (2, 16), (3, 19)):
        for stim, emo in (("disgust1", "negative"), ("anger1", "negative"), ("happy2", "positive")):
            data.append([p, f"{stim}_1", 100, 104, 108, "4", emo, "micro-expression", stim[:-1]])
            data.append([p, f"{stim}_2", 300, 320, 360, "12", emo, "macro-expression", stim[:-1]])
            _png_frames(root / "rawpic" / f"s{folder}" / f"{folder}_{videos[stim]}", range(95, 112),
                        lambda n: f"img{n}.jpg", seed=p)
    _casme_sq_workbook(root / "CAS(ME)^2code_final.xlsx", data)
    return root


def test_casme_sq_maps_naming_rules_and_keeps_micro_expressions(casme_sq_tree):
    t = read_casme_sq_sheet(casme_sq_tree / "CAS(ME)^2code_final.xlsx")
    assert len(t) == 9 and set(t["expression_type"]) == {"micro-expression"}
    r = t.iloc[1]
    assert (r["subject"], r["clip"], r["video"], r["stimulus"]) == ("s15", "anger1_1", "15_0401", "anger")
    assert len(read_casme_sq_sheet(casme_sq_tree / "CAS(ME)^2code_final.xlsx", expressions="all")) == 18
    ds = DATASETS.get("casme^2")(data_root=str(casme_sq_tree), classes="meranet3", face_crop=False)
    assert isinstance(ds, CASMESq) and ds.check() == []
    table = ds.table()
    assert ds.classes == ("happiness", "anger", "disgust")
    assert table["label"].tolist() == [2, 1, 0] * 3  # from the eliciting video, not the estimated emotion
    assert table["frame_dir"].iat[1].endswith("rawpic/s15/15_0401girlcrashing")
    assert ds.load("apex", [0, 1]).shape == (2, 3, 112, 112)
    four = CASMESq(data_root=str(casme_sq_tree)).table()
    assert sorted(set(four["emotion"])) == ["negative", "positive"]


def test_casme_sq_header_row_is_tolerated_and_errors_name_the_row(casme_sq_tree, tmp_path):
    data = [[1, "anger1_1", 100, 104, 108, "4", "negative", "micro-expression", "anger"]]
    with_header = _casme_sq_workbook(tmp_path / "h.xlsx", data, header=True)
    assert read_casme_sq_sheet(with_header)["clip"].tolist() == ["anger1_1"]
    bad = _casme_sq_workbook(tmp_path / "b.xlsx", data + [[9, "anger1_2", 1, 2, 3, "", "negative", "micro", "a"]])
    with pytest.raises(DatasetError, match=r"b.xlsx, sheet 'CASFEcode_final' row 2: participant '9' is not in"):
        read_casme_sq_sheet(bad)
    unknown = _casme_sq_workbook(tmp_path / "u.xlsx", [[1, "sad3_1", 1, 2, 3, "", "negative", "micro", "a"]])
    with pytest.raises(DatasetError, match=r"stimulus 'sad3'"):
        read_casme_sq_sheet(unknown)
    nonnum = _casme_sq_workbook(tmp_path / "n.xlsx", data + [[1, "anger1_2", 1, "x", 3, "", "negative", "micro", "a"]])
    with pytest.raises(DatasetError, match=r"sheet row 2: apex \(column D\) is 'x'"):
        read_casme_sq_sheet(nonnum)
    # another dataset's workbook: no naming-rule sheets
    pd.DataFrame({"Subject": [1]}).to_excel(tmp_path / "other.xlsx", index=False)
    with pytest.raises(DatasetError, match="not a CAS\\(ME\\)\\^2 workbook"):
        read_casme_sq_sheet(tmp_path / "other.xlsx")


def test_meranet3_holdouts_use_the_paper_fractions_on_casme_and_casme_sq(casme_tree, casme_sq_tree):
    casme = CASME(data_root=str(casme_tree), classes="meranet3").table()
    sq = CASMESq(data_root=str(casme_sq_tree), classes="meranet3").table()
    paper = MERANet3HoldoutPaper()
    assert len(paper.folds(casme)[0].test) == 3  # 25 % of 12
    assert paper._fraction(casme) == 0.25 and paper._fraction(sq) == 0.2  # 75/25 and 80/20 (paper 4.3)
    with pytest.raises(Exception, match="test_size = 2 should be greater or equal to the number of classes = 3"):
        paper.folds(sq)  # 20 % of 9 clips cannot hold all 3 classes: said plainly
    fold = MERANet3Holdout().folds(casme, seed=1)[0]
    assert not set(casme["subject"].iloc[fold.train]) & set(casme["subject"].iloc[fold.test])


def test_casme2_cropped_release_layout(tmp_path):
    root = tmp_path / "CASME2"
    pd.DataFrame([["01", "EP02_01f", 46, 50, 56, "12", "happiness"]],
                 columns=["Subject", "Filename", "OnsetFrame", "ApexFrame", "OffsetFrame", "Action Units",
                          "Estimated Emotion"]).to_excel(root.mkdir() or root / "CASME2-coding-20140508.xlsx",
                                                         index=False)
    _png_frames(root / "Cropped" / "sub01" / "EP02_01f", range(46, 57), lambda n: f"reg_img{n}.jpg")
    ds = DATASETS.get("casme2-cropped")(data_root=str(root))
    assert isinstance(ds, CASME2Cropped) and ds.options()["layout"] == "cropped" and not ds.face_crop
    assert ds.check() == [] and ds.load("flow", [0]).shape == (1, 3, 28, 28)


def test_data_stats_cli_on_casme_sq(casme_sq_tree, capsys):
    assert main(["data", "stats", "--dataset", "casme^2", "--data-root", str(casme_sq_tree),
                 "--dataset-set", "classes=meranet3"]) == 0
    out = capsys.readouterr().out
    assert "anger" in out and "happiness" in out
