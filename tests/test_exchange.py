"""Results that travel: the predictions format (export, import, schema), the Python API, machine-
readable boards. Tests on the real composite read ``../shared/data/megc2019-composite`` and skip
with the reason when it is absent."""

import json
import re
from pathlib import Path

import pytest

from mer_bench import exchange, results
from mer_bench.cli import main
from mer_bench.store import Store

ROOT = Path(__file__).resolve().parents[2] / "shared" / "data" / "megc2019-composite"
needs_data = pytest.mark.skipif(not (ROOT / "combined_3class_gt.csv").is_file(),
                                reason=f"MEGC 2019 composite not found at {ROOT} (licensed data, not in the repo)")
SMALL = ["--dataset-set", "n_subjects=3"]


def _board(store, capsys, *filters) -> list[dict]:
    capsys.readouterr()
    assert main(["leaderboard", "--store", str(store), "--format", "json", *filters]) == 0
    return json.loads(capsys.readouterr().out)


@needs_data
def test_published_composite_ststnet_round_trips_to_the_identical_row(tmp_path, capsys):
    a, b, c = (tmp_path / f"{x}.sqlite" for x in "abc")
    assert main(["import", str(ROOT / "ststnet_logfile.txt"), "--name", "ststnet-published", "--data-root",
                 str(ROOT), "--store", str(a)]) == 0
    out_json, out_csv = tmp_path / "ststnet.json", tmp_path / "ststnet.csv"
    assert main(["export", "--dataset", "megc2019-flow", "--store", str(a), "-o", str(out_json)]) == 0
    assert main(["export", "--dataset", "megc2019-flow", "--store", str(a), "-o", str(out_csv)]) == 0
    doc = json.loads(out_json.read_text())
    exchange.validate(doc)  # the documented schema
    import jsonschema

    jsonschema.validate(doc, exchange.schema())
    run = doc["runs"][0]
    assert run["method"] == "ststnet-published" and len(run["predictions"]) == 442 and run["imported"] is True
    assert {p["y_true"] for p in run["predictions"]} == {"negative", "positive", "surprise"}
    for store, path in ((b, out_json), (c, out_csv)):
        assert main(["import", "--format", "predictions", str(path), "--data-root", str(ROOT), "--store",
                     str(store)]) == 0
    rows = [_board(s, capsys, "--dataset", "megc2019-flow") for s in (a, b, c)]
    assert rows[0] == rows[1] == rows[2]
    lead = next(r for r in rows[0] if r["method"] == "ststnet-published")
    assert lead["table"] == "ranked" and abs(lead["uf1"] - 0.7353) < 1e-4 and isinstance(lead["uf1_low"], float)
    # importing the same file again is recognised, not duplicated
    assert main(["import", "--format", "predictions", str(out_json), "--data-root", str(ROOT), "--store",
                 str(b)]) == 0
    assert "already imported" in capsys.readouterr().out


def _run_and_export(tmp_path, method="ststnet", extra=("--set", "epochs=1", "--set", "batch_size=16")):
    store = tmp_path / "a.sqlite"
    assert main(["run", "--method", method, *SMALL, *extra, "--store", str(store), "--json"]) == 0
    out = tmp_path / "run.json"
    assert main(["export", "--dataset", "synthetic", "--method", method, "--store", str(store), "-o", str(out)]) == 0
    return store, out


def test_a_measured_run_round_trips_under_its_own_name_with_identical_scores(tmp_path, capsys):
    store, out = _run_and_export(tmp_path)
    doc = json.loads(out.read_text())
    run = doc["runs"][0]
    assert run["selection"] == "last epoch" and run["leaky"] is False and run["imported"] is False
    assert run["provenance"]["git_commit"] == "0123456789ab" and isinstance(run["provenance"]["threads"], int)
    assert all(len(p["proba"]) == 3 for p in run["predictions"])
    other = tmp_path / "b.sqlite"
    # a registered method's name is never given to predictions made elsewhere
    assert main(["import", "--format", "predictions", str(out), "--store", str(other)]) == 2
    assert "registered method" in capsys.readouterr().err
    assert main(["import", "--format", "predictions", str(out), "--store", str(other), "--name", "ststnet-lab"]) == 0
    a = {r["method"]: r for r in _board(store, capsys)}["ststnet"]
    b = {r["method"]: r for r in _board(other, capsys)}["ststnet-lab"]
    assert b["source"] == "imported"
    for key in ("uf1", "uf1_low", "uf1_high", "uar", "uar_low", "uar_high", "accuracy", "per_database"):
        assert a[key] == b[key], key
    # the probabilities travel too
    pa = results.predictions(results.runs(store)["run_id"].iat[0], store)
    pb = results.predictions(results.runs(other)["run_id"].iat[0], other)
    assert (pa["p_negative"].to_numpy() == pb["p_negative"].to_numpy()).all()


def test_csv_export_reads_back_with_pandas_and_as_the_same_document(tmp_path):
    import pandas as pd

    store, out = _run_and_export(tmp_path, "majority", ())
    doc = json.loads(out.read_text())
    csv = tmp_path / "run.csv"
    exchange.write_file(doc, csv)
    table = pd.read_csv(csv, comment="#")
    assert list(table.columns[:7]) == ["run", "sample_id", "subject", "database", "fold_index", "y_true", "y_pred"]
    assert len(table) == len(doc["runs"][0]["predictions"])
    back = exchange.read_file(csv)
    assert [p["y_pred"] for p in back["runs"][0]["predictions"]] == [p["y_pred"] for p in doc["runs"][0]["predictions"]]


@pytest.mark.parametrize("edit, message", [
    (lambda d: d["runs"][0]["predictions"][0].update(y_pred="joy"), "not one of the run's classes"),
    (lambda d: d["runs"][0]["predictions"].pop(), "covers"),
    (lambda d: d["runs"][0]["predictions"][0].update(y_true="positive" if d["runs"][0]["predictions"][0]["y_true"]
                                                     != "positive" else "negative"), "ground truth"),
    (lambda d: d["runs"][0].update(classes=["a", "b", "c"]), "not one of the run's classes"),
    (lambda d: d.update(version=2), "version"),
    (lambda d: d["runs"][0].pop("leaky"), "'leaky' is a required property"),
    (lambda d: d["runs"][0]["predictions"][0].update(proba=[0.5, 0.2]), "probabilities"),
    (lambda d: d["runs"][0]["predictions"].append(dict(d["runs"][0]["predictions"][0])), "appears twice"),
    (lambda d: d["runs"][0].update(dataset_fingerprint="feedbeef"), "another version"),
])
def test_a_bad_predictions_file_is_refused_with_its_place_and_stores_nothing(tmp_path, capsys, edit, message):
    store, out = _run_and_export(tmp_path, "majority", ())
    doc = json.loads(out.read_text())
    edit(doc)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(doc))
    other = tmp_path / "b.sqlite"
    assert main(["import", "--format", "predictions", str(bad), "--store", str(other), "--name", "x-lab"]) == 2
    assert message in capsys.readouterr().err
    assert not other.exists() or results.runs(other).empty


def test_export_needs_runs_and_names_unknown_ones(tmp_path, capsys):
    store, _ = _run_and_export(tmp_path, "majority", ())
    assert main(["export", "--store", str(store)]) == 2
    assert "name the runs" in capsys.readouterr().err
    assert main(["export", "nosuchrun-s0", "--store", str(store)]) == 2
    assert "no run 'nosuchrun-s0'" in capsys.readouterr().err
    assert main(["export", "--dataset", "synthetc", "--store", str(store)]) == 2
    assert "Did you mean 'synthetic'" in capsys.readouterr().err
    assert main(["export", "--schema"]) == 0
    assert json.loads(capsys.readouterr().out)["$id"] == "mer-bench-predictions-v1"


def test_leaderboard_json_has_numbers_and_booleans(tmp_path, capsys):
    store, _ = _run_and_export(tmp_path, "majority", ())
    rec = _board(store, capsys)[0]
    assert isinstance(rec["uf1"], float) and isinstance(rec["leaky"], bool) and isinstance(rec["uf1_low"], float)


def test_the_readme_python_api_example_runs(tmp_path, monkeypatch):
    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    block = re.search(r"<!-- results-api-example -->\s*```python\n(.*?)```", text, re.S)
    assert block, "README lost its Python API example"
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(compile(block.group(1), "README.md", "exec"), scope)
    assert 0 <= scope["uf1"] <= 1 and scope["ci"].low <= scope["uf1"] <= scope["ci"].high
    assert list(scope["preds"].attrs["classes"]) == ["negative", "positive", "surprise"]
    assert {"true", "pred", "p_negative"} <= set(scope["preds"].columns)
    assert scope["board"]["uf1"].dtype.kind == "f"
    # the API's interval is the board's
    row = scope["board"][scope["board"]["method"] == "majority"].iloc[0]
    assert (row["uf1_low"], row["uf1_high"]) == (scope["ci"].low, scope["ci"].high)


def test_results_api_refuses_a_missing_store(tmp_path):
    from mer_bench.store import StoreError

    with pytest.raises(StoreError, match="no results store"):
        results.runs(tmp_path / "typo.sqlite")
    with Store(tmp_path / "s.sqlite") as st, pytest.raises(KeyError, match="no run"):
        results.predictions("nope-s0", st)
