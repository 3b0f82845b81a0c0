"""The MEGC 2019 composite: names, label file, loader checks, CDE protocol, log import.

Tests on the real distribution read ``../shared/data/megc2019-composite`` (never copied into the
repository) and skip with the reason when it is absent.
"""

import shutil
from pathlib import Path

import numpy as np
import pytest

from mer_bench.cli import main
from mer_bench.data import DatasetError
from mer_bench.datasets.megc2019 import MEGC2019Flow, canonical_clip, canonical_subject, read_label_file
from mer_bench.importers import import_predictions, read_megc_log
from mer_bench.metrics import run_metrics
from mer_bench.protocol import ProtocolError
from mer_bench.registry import DATASETS, PROTOCOLS
from mer_bench.store import Store

ROOT = Path(__file__).resolve().parents[2] / "shared" / "data" / "megc2019-composite"
needs_data = pytest.mark.skipif(not (ROOT / "combined_3class_gt.csv").is_file(),
                                reason=f"MEGC 2019 composite not found at {ROOT} (licensed data, not in the repo)")
LOG = ROOT / "ststnet_logfile.txt"


@pytest.fixture(scope="module")
def composite():
    return MEGC2019Flow(data_root=str(ROOT))


def _copy_root(tmp_path) -> Path:
    dst = tmp_path / "megc"
    shutil.copytree(ROOT, dst)
    return dst


def test_canonical_names():
    assert canonical_subject("samm", "6") == canonical_subject("samm", "006") == "006"
    assert canonical_subject("smic", "s1") == canonical_subject("smic", "s01") == "s01"
    assert canonical_subject("casme2", "sub01") == canonical_subject("casme2", "1") == "sub01"
    assert canonical_clip("smic", "s1_ne_01") == "s01_ne_01"
    assert canonical_clip("samm", "006_1_2") == "006_1_2"
    with pytest.raises(ValueError, match="unknown database"):
        canonical_subject("mmew", "1")
    with pytest.raises(ValueError, match="cannot read subject"):
        canonical_subject("samm", "sub06")


@pytest.mark.parametrize("line,message", [
    ("casme2,sub01,EP02_01f", "line 2: expected 4 columns"),
    ("casme2,sub01,EP02_01f,7", "line 2: unknown label '7'"),
    ("mmew,sub01,EP02_01f,0", "line 2: unknown database 'mmew'"),
    ("casme2,sub01,EP19_05f,0", "line 2: clip casme2/sub01/EP19_05f is listed twice"),
])
def test_label_file_errors_name_file_and_line(tmp_path, line, message):
    f = tmp_path / "combined_3class_gt.csv"
    f.write_bytes(b"casme2,sub01,EP19_05f,0\r\n" + line.encode() + b"\r\n")
    with pytest.raises(DatasetError, match=message) as err:
        read_label_file(f)
    assert str(f) in str(err.value)


def test_missing_data_root_says_how_to_give_one(monkeypatch, tmp_path):
    monkeypatch.delenv("MER_BENCH_DATA_MEGC2019_FLOW", raising=False)
    monkeypatch.setenv("MER_BENCH_CONFIG", str(tmp_path / "none.toml"))
    with pytest.raises(DatasetError, match="--data-root PATH, \\$MER_BENCH_DATA_MEGC2019_FLOW"):
        MEGC2019Flow().table()
    with pytest.raises(DatasetError, match="not a folder"):
        MEGC2019Flow(data_root=str(tmp_path / "nowhere")).table()


def test_a_broken_config_file_is_named(monkeypatch, tmp_path):
    monkeypatch.delenv("MER_BENCH_DATA_MEGC2019_FLOW", raising=False)
    cfg = tmp_path / "config.toml"
    cfg.write_text("[data_roots\n")
    monkeypatch.setenv("MER_BENCH_CONFIG", str(cfg))
    with pytest.raises(ValueError, match=f"config file {cfg} is not valid TOML"):
        MEGC2019Flow().table()
    cfg.write_text('[data_roots]\n"megc2019-flow" = 3\n')
    with pytest.raises(ValueError, match="must be a string path"):
        MEGC2019Flow().table()


@needs_data
def test_data_root_from_environment_and_config_file(monkeypatch, tmp_path):
    monkeypatch.setenv("MER_BENCH_DATA_MEGC2019_FLOW", str(ROOT))
    assert len(MEGC2019Flow().table()) == 442
    monkeypatch.delenv("MER_BENCH_DATA_MEGC2019_FLOW")
    cfg = tmp_path / "config.toml"
    cfg.write_text(f'[data_roots]\n"megc2019-flow" = "{ROOT}"\n')
    monkeypatch.setenv("MER_BENCH_CONFIG", str(cfg))
    assert len(MEGC2019Flow().table()) == 442


@needs_data
def test_composite_composition_and_images(composite):
    t = composite.table()
    assert len(t) == 442 and t["sample_id"].is_unique
    assert t.groupby("dataset")["subject"].nunique().to_dict() == {"smic": 16, "casme2": 24, "samm": 28}
    assert t["emotion"].value_counts().to_dict() == {"negative": 250, "positive": 109, "surprise": 83}
    assert list(t["dataset"].iloc[[0, 145, 309]]) == ["casme2", "smic", "samm"]  # the official order
    assert "samm/006/006_1_2" in set(t["sample_id"]) and "smic/s01/s01_ne_01" in set(t["sample_id"])
    x = composite.load("flow", np.arange(len(t)))
    assert x.shape == (442, 3, 28, 28) and x.dtype == np.float32
    assert x.min() == 0.0 and x.max() == 1.0
    # channel means of the distributed PNGs : u, v, strain = R, G, B
    np.testing.assert_allclose(x.mean(axis=(0, 2, 3)) * 255, [126.0, 135.4, 25.5], atol=0.1)


@needs_data
def test_missing_and_renamed_images_are_named(tmp_path):
    root = _copy_root(tmp_path)
    (root / "flow" / "006_006_1_2 .png").unlink()
    (root / "flow" / "sub01_EP02_01f .png").rename(root / "flow" / "sub01_EP02_01x .png")
    with pytest.raises(DatasetError) as err:
        MEGC2019Flow(data_root=str(root)).table()
    msg = str(err.value)
    assert "2 missing image(s): 'sub01_EP02_01f .png', '006_006_1_2 .png'" in msg
    assert "; 1 image(s) not in the label file: 'sub01_EP02_01x .png'" in msg


@needs_data
def test_a_label_file_that_is_not_the_composite_is_refused(tmp_path):
    root = _copy_root(tmp_path)
    gt = root / "combined_3class_gt.csv"
    lines = gt.read_bytes().splitlines(keepends=True)
    gt.write_bytes(b"".join(lines[:-1]))
    with pytest.raises(DatasetError, match="441 clips instead of 442"):
        MEGC2019Flow(data_root=str(root)).table()


@needs_data
def test_cde_protocol_folds(composite):
    folds = PROTOCOLS.get("megc2019-cde")().folds(composite.table())
    assert len(folds) == 68
    assert folds[0].name == "casme2/sub01" and folds[-1].name == "samm/037"
    sizes = sorted(len(f.test) for f in folds)
    assert sizes[-1] == 39 and sum(sizes) == 442
    assert all(len(np.intersect1d(f.train, f.test)) == 0 for f in folds)


def test_cde_protocol_refuses_other_datasets():
    table = DATASETS.get("synthetic")(n_subjects=4, min_clips=6, max_clips=8, cache=False).table()
    with pytest.raises(ProtocolError, match="covers smic, casme2, samm only"):
        PROTOCOLS.get("megc2019-cde")().folds(table)
    table = table.assign(dataset="casme2", emotion="happiness")
    with pytest.raises(ProtocolError, match="MEGC class set"):
        PROTOCOLS.get("megc2019-cde")().folds(table)


@needs_data
def test_ststnet_log_gives_the_published_uf1_and_the_true_uar(composite, tmp_path):
    with Store(tmp_path / "s.sqlite") as store:
        res = import_predictions(store, LOG, "ststnet-published", composite, "megc2019-cde")
        scores = run_metrics(store.predictions(res.run_id), composite.classes)
        run = store.runs().iloc[0]
    assert res.n_samples == 442 and res.n_folds == 68 and run["imported"] == 1 and run["leaky"] == 0
    expected = {"Full": (.7353, .7186), "smic": (.6801, .6703), "casme2": (.8382, .8190), "samm": (.6588, .6415)}
    assert list(scores) == ["Full", "smic", "casme2", "samm"]
    for subset, (uf1, uar) in expected.items():
        assert round(scores[subset]["uf1"], 4) == uf1, subset
        assert round(scores[subset]["uar"], 4) == uar, subset
    # STSTNet's published "UAR" .7605 is macro-precision, not recall
    assert round(scores["Full"]["macro_precision"], 4) == .7605 and round(scores["Full"]["uar"], 4) != .7605
    assert scores["Full"]["confusion"] == [[219, 22, 9], [40, 62, 7], [21, 3, 59]]


def _bad_log(tmp_path, edit) -> Path:
    lines = LOG.read_text().splitlines()
    while not lines[-1].strip():
        lines.pop()
    f = tmp_path / "bad_log.txt"
    f.write_text("\n".join(edit(lines)) + "\n")
    return f


@needs_data
@pytest.mark.parametrize("edit,message", [
    (lambda ls: ls[:-2], "covers 441 of the dataset.s 442 clips \\(truncated\\?\\); missing: samm/037/037_3_2"),
    (lambda ls: ls[:-1] + ["037_3_2 0"], "line 510: '037_3_2 0' has 2 fields; a prediction line needs 3"),
    (lambda ls: ls[:1] + ["EP02_01f 2 1"] + ls[2:], "line 2: ground truth 2 \\(surprise\\) differs"),
    (lambda ls: ls[:1] + ["EP99_01f 1 1"] + ls[2:], "line 2: clip casme2/sub01/EP99_01f is not in the dataset"),
    (lambda ls: ls[:1] + ["EP02_01f 1 5"] + ls[2:], "line 2: prediction 5 is not a class index"),
    (lambda ls: ls[:1] + ["EP02_01f 1 1 0.9"] + ls[2:], "line 2: expected '<db> <subject>' or '<clip> <ground"),
    (lambda ls: ls + ["samm 038"], "line 511: fold 'samm 038' has no prediction lines"),
])
def test_bad_logs_name_the_line_and_leave_the_store_untouched(composite, tmp_path, edit, message):
    path = tmp_path / "s.sqlite"
    with Store(path) as store:
        first = import_predictions(store, LOG, "ststnet-published", composite, "megc2019-cde")
        with pytest.raises(DatasetError, match=message):
            import_predictions(store, _bad_log(tmp_path, edit), "other", composite, "megc2019-cde")
        runs = store.runs(None)
        assert list(runs["run_id"]) == [first.run_id] and len(store.predictions(first.run_id)) == 442


@needs_data
def test_import_names_and_reimport(composite, tmp_path):
    with Store(tmp_path / "s.sqlite") as store:
        with pytest.raises(ValueError, match="registered method"):
            import_predictions(store, LOG, "ststnet", composite, "megc2019-cde")
        a = import_predictions(store, LOG, "ststnet-published", composite, "megc2019-cde")
        assert import_predictions(store, LOG, "ststnet-published", composite, "megc2019-cde").status == "cached"
        other = _bad_log(tmp_path, lambda ls: ls[:1] + ["EP02_01f 1 0"] + ls[2:])
        with pytest.raises(ValueError, match="already imported"):
            import_predictions(store, other, "ststnet-published", composite, "megc2019-cde")
        b = import_predictions(store, other, "ststnet-published", composite, "megc2019-cde", force=True)
        assert b.run_id != a.run_id and list(store.runs()["run_id"]) == [b.run_id]


def test_read_megc_log_rejects_a_prediction_before_any_header(tmp_path):
    f = tmp_path / "log.txt"
    f.write_text("EP02_01f 1 1\n")
    with pytest.raises(DatasetError, match="line 1: prediction line before the first"):
        read_megc_log(f)


@needs_data
def test_cli_import_and_leaderboard(tmp_path, capsys):
    store = str(tmp_path / "s.sqlite")
    assert main(["import", str(LOG), "--name", "ststnet-published", "--data-root", str(ROOT), "--store", store]) == 0
    out = capsys.readouterr().out
    assert "UF1 0.7353  UAR 0.7186" in out and "CASME II  UF1 0.8382" in out
    assert main(["import", str(LOG), "--name", "ststnet", "--data-root", str(ROOT), "--store", store]) == 2
    assert main(["leaderboard", "--dataset", "megc2019-flow", "--protocol", "megc2019-cde", "--store", store]) == 0
    md = capsys.readouterr().out
    row = next(line for line in md.splitlines() if "| ststnet-published |" in line and "| imported |" in line)
    assert "| 0.7353 [0.67" in row and "| 0.7186 [0.65" in row and "| leader |" in row  # the STSTNet log re-scored
    assert "| as published |" in row  # the input column of an imported log
    per_db = next(line for line in md.split("## Per database")[1].splitlines() if "| ststnet-published |" in line)
    assert "| 0.6801 | 0.6703 |" in per_db
    reported = md.split("## Reported in papers (not reproduced)")[1]
    assert "| HTNet | UF1 .8603, UAR .8475" in reported and "LEAKY" in reported  # a figure, with its selection
    assert "HTNet" not in md.split("## Ranked")[1].split("## Per database")[0]  # never ranked
    assert main(["leaderboard", "--dataset", "megc2019-flow", "--protocol", "megc2019-cde", "--store", store]) == 0
    assert capsys.readouterr().out == md  # statistics are seeded: the board regenerates byte-identically


@needs_data
def test_cli_run_on_the_composite_prints_the_breakdown(tmp_path, capsys):
    store = str(tmp_path / "s.sqlite")
    # --protocol megc2019-cde implies --dataset megc2019-flow
    assert main(["run", "--method", "majority", "--protocol", "megc2019-cde", "--data-root", str(ROOT),
                 "--store", store]) == 0
    out = capsys.readouterr().out
    rows = {line.split("│")[2].strip(): line for line in out.splitlines() if line.count("│") > 5}  # seed, subset, ...
    assert set(rows) >= {"Full", "SMIC", "CASME II", "SAMM"}
    # all-negative on the composite: UF1 .2408, UAR .3333, accuracy .5656
    assert "0.2408" in rows["Full"] and "0.3333" in rows["Full"] and "0.5656" in rows["Full"]


@needs_data
@pytest.mark.slow
def test_cli_meranet_on_the_composite(tmp_path, capsys):
    store = str(tmp_path / "s.sqlite")
    assert main(["run", "--method", "meranet", "--protocol", "megc2019-cde", "--data-root", str(ROOT), "--store", store,
                 "--set", "width=4", "--set", "epochs=1", "--set", "batch_size=64", "--json"]) == 0
    res = __import__("json").loads(capsys.readouterr().out)["results"][0]
    assert res["dataset"] == "megc2019-flow" and res["folds"] == 68 and res["preset"] == "fast"
    assert list(res["scores"]) == ["Full", "smic", "casme2", "samm"]
    assert sum(res["scores"][k]["n"] for k in ("smic", "casme2", "samm")) == res["scores"]["Full"]["n"] == 442
