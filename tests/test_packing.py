"""Packed stores (``mer-bench pack`` / ``unpack``): a store without its ground-truth labels that
restores to the same runs, boards and resumable partial runs. Tests on the real composite read
``../shared/data/megc2019-composite`` and skip with the reason when it is absent."""

import hashlib
import lzma
import sqlite3
from pathlib import Path

import pytest

from mer_bench.cli import main
from mer_bench.packing import NO_LABEL, PackError, unpack_store
from mer_bench.store import Store, StoreError

ROOT = Path(__file__).resolve().parents[2] / "shared" / "data" / "megc2019-composite"
needs_data = pytest.mark.skipif(not (ROOT / "combined_3class_gt.csv").is_file(),
                                reason=f"MEGC 2019 composite not found at {ROOT} (licensed data, not in the repo)")
SMALL = ["--dataset-set", "n_subjects=4", "--dataset-set", "min_clips=4", "--dataset-set", "max_clips=6"]


def _board(store, capsys) -> str:
    capsys.readouterr()
    assert main(["leaderboard", "--store", str(store), "--format", "json"]) == 0
    return capsys.readouterr().out


def _rows(path, table):
    with sqlite3.connect(path) as db:
        return sorted(db.execute(f"SELECT * FROM {table}").fetchall(), key=repr)


def _inside(pack) -> Path:
    """The SQLite database inside a packed file (xz-compressed), written beside it."""
    db = Path(pack).with_suffix(".inside.sqlite")
    db.write_bytes(lzma.decompress(Path(pack).read_bytes()))
    return db


def _repack(db, pack) -> None:
    Path(pack).write_bytes(lzma.compress(Path(db).read_bytes()))


def _digest(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@pytest.fixture
def packed(tmp_path):
    """A store with two complete runs and one partial run (2 of 4 folds), and its packed copy."""
    store = tmp_path / "a.sqlite"
    for method in ("chance", "majority"):
        assert main(["run", "--method", method, *SMALL, "--seed", "0", "--seed", "1", "--store", str(store)]) == 0
    assert main(["run", "--method", "lbptop-svm", *SMALL, "--folds", "2", "--store", str(store)]) == 0
    pack = tmp_path / "a.pack"
    assert main(["pack", "--store", str(store), "-o", str(pack)]) == 0
    return store, pack


def test_a_packed_store_has_no_labels_and_is_never_read_as_a_store(packed):
    store, pack = packed
    assert pack.read_bytes()[:6] == b"\xfd7zXZ\x00"  # an xz stream
    labels = {row[0] for row in sqlite3.connect(_inside(pack)).execute("SELECT DISTINCT y_true FROM predictions")}
    assert labels == {NO_LABEL}
    assert {row[0] for row in sqlite3.connect(store).execute("SELECT DISTINCT y_true FROM predictions")} != {NO_LABEL}
    before = _digest(pack)
    with pytest.raises(StoreError, match="packed mer-bench store.*mer-bench unpack"):
        Store(pack, readonly=True)
    with pytest.raises(StoreError, match="packed"):
        Store(pack)  # not even for writing: nothing is changed
    assert _digest(pack) == before
    inside = _inside(pack)
    with pytest.raises(StoreError, match="packed mer-bench store.*mer-bench unpack"):
        Store(inside)  # decompressed by hand, it is still refused


def test_a_pack_is_the_same_bytes_from_whichever_store_holds_the_runs(packed, tmp_path, capsys):
    store, pack = packed
    other = tmp_path / "other.sqlite"  # the same runs, added in another order
    assert main(["unpack", str(pack), "--store", str(other)]) == 0
    with sqlite3.connect(other) as db:
        rows = db.execute("SELECT * FROM predictions ORDER BY sample_id DESC").fetchall()
        db.execute("DELETE FROM predictions")
        db.executemany(f"INSERT INTO predictions VALUES ({', '.join('?' * len(rows[0]))})", rows)
    again = tmp_path / "again.pack"
    assert main(["pack", "--store", str(other), "-o", str(again)]) == 0
    assert again.read_bytes() == pack.read_bytes()


def test_a_pack_written_before_compression_still_unpacks(packed, tmp_path, capsys):
    store, pack = packed
    legacy = tmp_path / "legacy.pack"
    legacy.write_bytes(lzma.decompress(pack.read_bytes()))  # packs were the SQLite file itself
    out = tmp_path / "b.sqlite"
    assert main(["unpack", str(legacy), "--store", str(out)]) == 0
    assert _rows(out, "predictions") == _rows(store, "predictions")


def test_unpacking_restores_the_same_runs_and_boards(packed, tmp_path, capsys):
    store, pack = packed
    out = tmp_path / "b.sqlite"
    assert main(["unpack", str(pack), "--store", str(out)]) == 0
    for table in ("folds", "predictions", "curves"):
        assert _rows(out, table) == _rows(store, table)
    assert _rows(out, "runs") == _rows(store, "runs")  # no lease was left in the original
    assert _board(out, capsys) == _board(store, capsys)
    # a second unpack adds nothing and changes nothing
    assert main(["unpack", str(pack), "--store", str(out)]) == 0
    assert "0 added, 5 already there" in capsys.readouterr().err
    assert _rows(out, "predictions") == _rows(store, "predictions")


def test_an_unpacked_partial_run_resumes_where_it_stopped(packed, tmp_path, capsys):
    _, pack = packed
    out = tmp_path / "b.sqlite"
    assert main(["unpack", str(pack), "--store", str(out)]) == 0
    with Store(out) as s:
        partial = s.runs(None)
        partial = partial[partial["method"] == "lbptop-svm"].iloc[0]
        assert partial["status"] != "complete" and s.completed_folds(partial["run_id"]) == {0, 1}
        kept = s.folds(partial["run_id"])["completed"].tolist()
    assert main(["run", "--method", "lbptop-svm", *SMALL, "--store", str(out)]) == 0
    with Store(out) as s:
        run = s.get_run(partial["run_id"])
        assert run["status"] == "complete" and s.completed_folds(partial["run_id"]) == {0, 1, 2, 3}
        assert s.folds(partial["run_id"])["completed"].tolist()[:2] == kept  # the carried folds were not redone


def test_unpacking_against_other_data_is_a_clear_error_that_adds_nothing(packed, tmp_path):
    _, pack = packed
    bad = tmp_path / "bad.pack"
    inside = _inside(pack)
    with sqlite3.connect(inside) as db:
        run_id = db.execute("SELECT run_id FROM runs WHERE method = 'majority' ORDER BY run_id").fetchone()[0]
        db.execute("UPDATE runs SET dataset_fingerprint = 'feedfacefeed' WHERE run_id = ?", (run_id,))
    _repack(inside, bad)
    out = tmp_path / "b.sqlite"
    from mer_bench.registry import DATASETS

    def dataset_for(name, options):
        return DATASETS.get(name)(**options)

    with pytest.raises(PackError, match=f"run {run_id} \\(majority on synthetic\\): made on other data"):
        unpack_store(bad, out, dataset_for)
    assert Store(out).runs(None).empty  # nothing was added
    inside = _inside(pack)
    with sqlite3.connect(inside) as db:
        db.execute("UPDATE predictions SET sample_id = 'synthetic/s99/s99_01' WHERE rowid = "
                   "(SELECT MIN(rowid) FROM predictions)")
    _repack(inside, bad)
    with pytest.raises(PackError, match="predicts clip 'synthetic/s99/s99_01', which the data here does not have"):
        unpack_store(bad, out, dataset_for)
    assert Store(out).runs(None).empty
    with pytest.raises(PackError, match="not a packed mer-bench store"):
        unpack_store(tmp_path / "a.sqlite", out, dataset_for)  # an ordinary store
    bad.write_bytes(pack.read_bytes()[: len(pack.read_bytes()) // 2])  # cut short in the carrying
    with pytest.raises(PackError, match="not a packed mer-bench store \\(damaged compression"):
        unpack_store(bad, out, dataset_for)
    assert Store(out).runs(None).empty
    with pytest.raises(PackError, match="no packed store"):
        unpack_store(tmp_path / "missing.pack", out, dataset_for)
    assert not list(tmp_path.glob(".*.unpack.tmp"))  # no work file left behind


@needs_data
def test_a_composite_store_travels_without_the_licensed_labels(tmp_path, capsys):
    store, pack, out = tmp_path / "a.sqlite", tmp_path / "a.pack", tmp_path / "b.sqlite"
    common = ["--protocol", "megc2019-cde", "--data-root", str(ROOT)]
    assert main(["run", "--method", "majority", *common, "--store", str(store)]) == 0
    assert main(["import", str(ROOT / "ststnet_logfile.txt"), "--name", "ststnet-published", "--data-root",
                 str(ROOT), "--store", str(store)]) == 0
    assert main(["pack", "--store", str(store), "-o", str(pack)]) == 0
    inside = sqlite3.connect(_inside(pack))
    assert {r[0] for r in inside.execute("SELECT DISTINCT y_true FROM predictions")} == {NO_LABEL}
    capsys.readouterr()
    assert main(["unpack", str(pack), "--store", str(out), "--data-root", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err
    assert "cannot build its dataset here" in err and "nowhere" in err
    assert main(["unpack", str(pack), "--store", str(out), "--data-root", str(ROOT)]) == 0
    assert _rows(out, "predictions") == _rows(store, "predictions")
    assert _board(out, capsys) == _board(store, capsys)


def test_a_pack_of_some_runs_holds_those_runs_only(packed, tmp_path, capsys):
    store, _ = packed
    part = tmp_path / "floors.pack"
    assert main(["pack", "--store", str(store), "--method", "chance", "--method", "majority", "-o", str(part)]) == 0
    out = tmp_path / "b.sqlite"
    assert main(["unpack", str(part), "--store", str(out)]) == 0
    with Store(out) as s:
        runs = s.runs(None)
    assert sorted(runs["method"]) == ["chance", "chance", "majority", "majority"]
    kept = set(runs["run_id"])
    assert {r[0] for r in _rows(out, "predictions")} == kept
    assert [r for r in _rows(store, "predictions") if r[0] in kept] == _rows(out, "predictions")
    capsys.readouterr()
    assert main(["pack", "--store", str(store), "--method", "nope", "-o", str(tmp_path / "x.pack")]) == 2
    assert "no run in" in capsys.readouterr().err and not (tmp_path / "x.pack").exists()
    assert main(["pack", "--store", str(store), "abc-s0", "-o", str(tmp_path / "x.pack")]) == 2
    assert "no run abc-s0" in capsys.readouterr().err


def test_a_run_and_its_best_on_test_twin_pack_into_two_files(tmp_path):
    store = tmp_path / "a.sqlite"
    assert main(["run", "--method", "ststnet", *SMALL, "--set", "epochs=2", "--select-epoch", "both",
                 "--store", str(store)]) == 0
    for selection in ("last", "best-on-test"):
        part, out = tmp_path / f"{selection}.pack", tmp_path / f"{selection}.sqlite"
        assert main(["pack", "--store", str(store), "--method", "ststnet", "--select-epoch", selection,
                     "-o", str(part)]) == 0
        assert main(["unpack", str(part), "--store", str(out)]) == 0
        runs = Store(out).runs(None)
        assert len(runs) == 1 and runs["selection_code"].iloc[0] == selection
        assert bool(runs["leaky"].iloc[0]) == (selection == "best-on-test")
