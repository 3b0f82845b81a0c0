"""Frame-folder loaders on fake trees in the official layouts (generated frames, never real faces),
and ``mer-bench data check``."""

from pathlib import Path

import pandas as pd
import pytest

from mer_bench.cli import main
from mer_bench.datasets.frames import CASME2, SAMM, frame_number, list_frames

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
    t = ds.table()
    assert list(t["sample_id"]) == ["casme2/sub01/EP02_01f", "casme2/sub01/EP03_02", "casme2/sub02/EP01_11f"]
    assert t["n_frames"].tolist() == [41, 31, 11] and (t["fps"] == 200).all()


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
