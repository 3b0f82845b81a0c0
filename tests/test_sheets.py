"""Coding-sheet readers on the real sheets (../shared/data/annotations), and fixes kept as data."""

from pathlib import Path

import pandas as pd
import pytest

from mer_bench.data import DatasetError
from mer_bench.datasets.megc2019 import read_label_file
from mer_bench.datasets.readers import read_coding_sheet
from mer_bench.datasets.sheets import apply_fixes, load_fixes, sheet_problems

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
A = DATA / "annotations"
needs_sheets = pytest.mark.skipif(not A.is_dir(), reason=f"coding sheets not found at {A} (licensed data)")


@needs_sheets
@pytest.mark.parametrize("dataset,name,n,subjects,version,fixed", [
    ("casme2", "casme2/CASME2-coding-20140508.xlsx", 255, 26, "2014", []),
    ("casme2", "casme2/CASME2-coding-20190701.xlsx", 255, 26, "2019", ["EP12_01f"]),
    ("samm", "samm/SAMM_Micro_FACS_Codes_v2.xlsx", 159, 29, "v2", ["028_4_1", "032_3_1"]),
    ("samm", "samm/SAMM_micro_only.xlsx", 159, 29, "micro_only", []),
    ("smic", "smic/smic_apex.xlsx", 164, 16, "apex:middle", []),
    ("casme3", "casme3/casme3_table.xlsx", 860, 94, "casme3_table", ["c_5", "e_1812", "e_2327"]),
])
def test_real_sheets(dataset, name, n, subjects, version, fixed):
    t = read_coding_sheet(dataset, A / name)
    assert len(t) == n and t["subject"].nunique() == subjects and t["sheet_version"].iat[0] == version
    assert [f["clip"] for f in t.attrs["fixes"]] == fixed
    problems = sheet_problems(t)
    if dataset == "smic":  # 7 clips have no offset in smic_apex.xlsx
        assert len(problems) == 7 and all("no apex / offset" in p for p in problems)
    else:
        assert problems == []


@needs_sheets
def test_sheet_details():
    c14 = read_coding_sheet("casme2", A / "casme2/CASME2-coding-20140508.xlsx").set_index(["subject", "clip"])
    c19 = read_coding_sheet("casme2", A / "casme2/CASME2-coding-20190701.xlsx").set_index(["subject", "clip"])
    assert c14.loc[("sub01", "EP02_01f"), ["onset", "apex", "offset"]].tolist() == [46, 59, 86]
    assert c19.loc[("sub04", "EP12_01f"), "apex"] == 300  # '/' in 2019, fixed from 2014
    assert c14.loc[("sub24", "EP07_01"), "emotion"] == "sadness"  # relabelled in 2019
    assert c19.loc[("sub24", "EP07_01"), "emotion"] == "surprise"
    samm = read_coding_sheet("samm", A / "samm/SAMM_Micro_FACS_Codes_v2.xlsx").set_index("clip")
    assert samm.loc["032_3_1", "apex"] == 4930 and samm.loc["028_4_1", "apex"] == 1124
    smic = read_coding_sheet("smic", A / "smic/smic_apex.xlsx").set_index("clip")
    r = smic.loc["s20_ne_01"]
    assert r["subject"] == "s20" and r["apex"] == r["onset"] + (r["offset"] - r["onset"]) // 2
    sheet_apex = read_coding_sheet("smic", A / "smic/smic_apex.xlsx", smic_apex="sheet").set_index("clip")
    assert sheet_apex.loc["s20_ne_01", "apex"] == 17581046


@needs_sheets
def test_the_official_composite_joins_the_coding_sheets_one_to_one():
    gt = read_label_file(DATA / "megc2019-composite" / "combined_3class_gt.csv")
    sheets = pd.concat([read_coding_sheet("casme2", A / "casme2/CASME2-coding-20140508.xlsx"),
                        read_coding_sheet("samm", A / "samm/SAMM_micro_only.xlsx"),
                        read_coding_sheet("smic", A / "smic/smic_apex.xlsx")])
    joined = gt.merge(sheets, on=["dataset", "subject", "clip"], how="left", suffixes=("", "_sheet"), indicator=True)
    assert len(joined) == 442 and (joined["_merge"] == "both").all()
    # the MEGC class mapping (MEGC 2019 guideline), checked against the sheets' own emotions
    negative = {"casme2": {"disgust", "repression"}, "samm": {"anger", "contempt", "disgust", "fear", "sadness"},
                "smic": {"negative"}}
    for r in joined.itertuples():
        expected = "negative" if r.emotion_sheet in negative[r.dataset] else \
            {"happiness": "positive"}.get(r.emotion_sheet, r.emotion_sheet)
        assert expected == r.emotion, (r.sample_id, r.emotion_sheet)


def test_fixes_are_data_with_reasons_and_fail_loudly_on_an_unknown_value():
    fixes = load_fixes()
    assert fixes and all(f["reason"] and f["source"] for f in fixes)
    table = pd.DataFrame({"dataset": ["samm"] * 2, "subject": ["028", "032"], "clip": ["028_4_1", "032_3_1"],
                          "onset": [1000, 4896], "apex": [1143, 1931], "offset": [1134, 5000], "sheet": "x.xlsx"})
    with pytest.raises(DatasetError, match="expects apex '1930' .* but the sheet has '1931'"):
        apply_fixes(table, "samm")
    table.loc[1, "apex"] = 4930  # already corrected: left alone
    out = apply_fixes(table, "samm")
    assert out["apex"].tolist() == [1124, 4930] and [f["clip"] for f in out.attrs["fixes"]] == ["028_4_1"]


def test_unknown_dataset_and_missing_sheet(tmp_path):
    with pytest.raises(DatasetError, match="no coding-sheet reader"):
        read_coding_sheet("mmew", tmp_path / "x.xlsx")
    with pytest.raises(DatasetError, match="not found"):
        read_coding_sheet("samm", tmp_path / "x.xlsx")


@needs_sheets
def test_casme3_keys_include_the_onset_and_the_fixes_apply():
    t = read_coding_sheet("casme3", A / "casme3/casme3_table.xlsx").set_index(["subject", "clip"])
    assert t.loc[("spNO.214", "c_5"), "offset"] == 34 and t.loc[("spNO.40", "e_1812"), "offset"] == 1845
    assert t.loc[("spNO.1", "b_166"), ["onset", "apex", "offset"]].tolist() == [166, 175, 179]
    assert set(t["emotion"]) == {"disgust", "surprise", "others", "fear", "anger", "sad", "happy"}  # 'Others' folded


@needs_sheets
def test_data_stats_agrees_with_the_published_counts(capsys, monkeypatch):
    from mer_bench.cli import main

    monkeypatch.setenv("COLUMNS", "200")  # rich wraps tables to the terminal width

    def stats(dataset, sheet):
        assert main(["data", "stats", "--dataset", dataset, "--data-root", str(A),
                     "--dataset-set", f"sheet={A / sheet}"]) == 0
        return capsys.readouterr().out

    out = stats("casme2", "casme2/CASME2-coding-20140508.xlsx")  # 246 = 99/63/32/27/25 on the 2014 sheet
    assert "5class   │ 246   │ 26" in out and "happiness 32, surprise 25, disgust 63, repression 27, others 99" in out
    out = stats("casme2", "casme2/CASME2-coding-20190701.xlsx")  # MERANet's 63/32/28 = 123 match 2019
    assert "meranet3 │ 123" in out
    out = stats("samm", "samm/SAMM_micro_only.xlsx")  # 136 clips / 27 subjects; MERANet 109 / 24
    assert "5class   │ 136   │ 27" in out and "meranet3 │ 109   │ 24" in out
    assert "megc3    │ 133   │ 28       │ negative 92, positive 26, surprise 15" in out


def test_bad_sheets_name_file_row_and_column(tmp_path):
    from mer_bench.datasets.casme import read_casme2_sheet
    from mer_bench.datasets.samm import read_samm_sheet

    f = tmp_path / "CASME2-coding-x.xlsx"
    pd.DataFrame({"Subject": ["01"], "Filename": ["EP02_01f"], "OnsetFrame": ["46"], "ApexFrame": ["fifty"],
                  "OffsetFrame": ["86"], "Action Units": ["12"],
                  "Estimated Emotion": ["happiness"]}).to_excel(f, index=False)
    with pytest.raises(DatasetError, match=r"CASME2-coding-x.xlsx, sheet row 2: ApexFrame is 'fifty', not a frame"):
        read_casme2_sheet(f)
    g = tmp_path / "missing.xlsx"
    pd.DataFrame({"Subject": ["01"], "Filename": ["EP02_01f"]}).to_excel(g, index=False)
    with pytest.raises(DatasetError, match=r"missing.xlsx: header \(sheet row 1\) lacks columns \['OnsetFrame'"):
        read_casme2_sheet(g)
    with pytest.raises(DatasetError, match="no header row with 'Subject'"):
        read_samm_sheet(_headerless(tmp_path))


def _headerless(tmp_path):
    h = tmp_path / "headerless.xlsx"
    pd.DataFrame({"a": ["x"], "b": ["y"]}).to_excel(h, index=False, header=False)
    return h


@needs_sheets
def test_a_sheet_of_another_dataset_is_refused():
    from mer_bench.datasets.casme import read_casme2_sheet
    from mer_bench.datasets.samm import read_samm_sheet

    with pytest.raises(DatasetError, match="lacks columns"):
        read_casme2_sheet(A / "samm/SAMM_micro_only.xlsx")
    with pytest.raises(DatasetError, match="no header row with 'Subject'"):
        read_samm_sheet(A / "smic/smic_apex.xlsx")
