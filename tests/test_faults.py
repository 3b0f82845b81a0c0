"""The fault suite: bad input, crashes, full disks, concurrent runs, damaged stores, broken plugins.

Each test reproduces one defect that lost data or stored wrong results (it failed before the
fix) and checks the behaviour mer-bench guarantees (README, "What mer-bench guarantees").
Run it alone with ``python -m pytest -m faults``.
"""

import hashlib
import json
import os
import shlex
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import fault_methods  # noqa: F401  (registers the fault-toy method)
import numpy as np
import pandas as pd
import pytest

from mer_bench.cli import main
from mer_bench.leaderboard import leaderboard_rows, write_leaderboard
from mer_bench.method import MethodError, ParameterError
from mer_bench.pipeline import execute, pending_id, prepare
from mer_bench.store import APPLICATION_ID, SCHEMA_VERSION, Store, StoreBusyError, StoreError, StoreWarning

pytestmark = pytest.mark.faults

TESTS = Path(__file__).resolve().parent
SMALL = {"n_subjects": 4, "min_clips": 6, "max_clips": 8}
SMALL_ARGS = ["--dataset-set", "n_subjects=4", "--dataset-set", "min_clips=6", "--dataset-set", "max_clips=8"]
#: runs the CLI in a child process with the fault-toy method registered
CHILD = (f"import sys; sys.path.insert(0, {str(TESTS)!r}); import fault_methods; from mer_bench.cli import main; "
         "sys.exit(main(sys.argv[1:]))")


def _child(args, env=None, **kw):
    return subprocess.Popen([sys.executable, "-c", CHILD, *args], env={**os.environ, **(env or {})},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def _run_toy(store_path, fault="none", force=False):
    prep = prepare("fault-toy", "loso", "synthetic", [0], {"fault": fault}, dataset_options=SMALL)
    with Store(store_path) as store:
        return prep, execute(prep, store, device="cpu", force=force)


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _with_file_size_limit(code: str, limit: int) -> subprocess.CompletedProcess:
    """Run ``code`` in a child whose files cannot grow past ``limit`` bytes (RLIMIT_FSIZE, SIGXFSZ
    ignored): a write past it fails with EFBIG, as a full disk fails a write part-way."""
    pre = (f"import resource, signal; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
           f"resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit}))\n")
    return subprocess.run([sys.executable, "-c", pre + textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=120)


@pytest.fixture
def small_disk(tmp_path):
    """A 1 MiB tmpfs (a real full disk: ENOSPC); skipped where it cannot be mounted."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    if sys.platform != "linux" or os.geteuid() != 0:
        pytest.skip("a tmpfs for the disk-full test needs root on Linux; the RLIMIT_FSIZE tests cover the rest")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)], capture_output=True)
    if done.returncode:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.decode().strip()}); the RLIMIT_FSIZE tests cover it")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def _fill(folder: Path, leave: int = 0) -> Path:
    """Fill the file system of ``folder`` up to ``leave`` free bytes."""
    filler = folder / "filler"
    with open(filler, "wb") as f:
        while True:
            free = os.statvfs(folder).f_bavail * os.statvfs(folder).f_frsize
            if free <= leave:
                break
            try:
                f.write(b"\0" * min(65536, free - leave))
                f.flush()
            except OSError:
                break
    return filler


# -- 1. atomic publishing ------------------------------------------------------------------------
def test_a_board_written_onto_a_full_disk_leaves_the_old_board_whole(small_disk):
    old = write_leaderboard("# old board\n" + "row\n" * 100, small_disk, "board")
    before = old.read_bytes()
    _fill(small_disk, leave=2048)
    with pytest.raises(OSError):
        write_leaderboard("# new board\n" + "a much longer row\n" * 20_000, small_disk, "board")
    assert old.read_bytes() == before
    assert sorted(p.name for p in small_disk.iterdir()) == ["board.md", "filler"]  # no temporary file left


def test_a_board_cut_off_by_a_write_error_leaves_the_old_board_whole(tmp_path):
    old = write_leaderboard("# old board\n", tmp_path, "board")
    done = _with_file_size_limit(f"""
        from mer_bench.leaderboard import write_leaderboard
        write_leaderboard("# new board\\n" + "x" * 100_000, {str(tmp_path)!r}, "board")
    """, limit=4096)
    assert done.returncode != 0 and "File too large" in done.stderr
    assert old.read_text() == "# old board\n"
    assert [p.name for p in tmp_path.iterdir()] == ["board.md"]


def test_a_leaderboard_into_an_unwritable_place_is_a_clear_error(tmp_path, capsys):
    store = tmp_path / "s.sqlite"
    _run_toy(store)
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    assert main(["leaderboard", "--store", str(store), "--write", "--out", str(blocker)]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "error:" in err and str(blocker) in err and "Traceback" not in err


# -- 2. --force keeps the old run until the new one is complete -----------------------------------
def test_kill_9_during_force_keeps_the_completed_run_and_force_resumes(tmp_path):
    store = tmp_path / "s.sqlite"
    _, (first,) = _run_toy(store)
    run_id = first.spec.run_id
    with Store(store) as st:
        before = st.predictions(run_id)
    child = _child(["run", "--method", "fault-toy", "--store", str(store), "--force", *SMALL_ARGS],
                   env={"FAULT_TOY_SLEEP": "1.5"})
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with sqlite3.connect(store, timeout=30) as db:
            n = db.execute("SELECT COUNT(*) FROM folds WHERE run_id = ?", (pending_id(run_id),)).fetchone()[0]
        if n >= 1:
            break
        time.sleep(0.1)
    assert n >= 1, child.communicate()[1]
    child.send_signal(signal.SIGKILL)
    child.communicate()
    with Store(store) as st:
        assert st.get_run(run_id)["status"] == "complete"
        pd.testing.assert_frame_equal(st.predictions(run_id), before)  # the old run is whole
        assert st.get_run(pending_id(run_id))["status"] == "running"
    again = _child(["run", "--method", "fault-toy", "--store", str(store), "--force", "--json", *SMALL_ARGS])
    out, err = again.communicate(timeout=120)
    assert again.returncode == 0, err
    assert json.loads(out)["results"][0]["status"] == "resumed"  # the interrupted --force goes on
    with Store(store) as st:
        assert st.get_run(pending_id(run_id)) is None and st.get_run(run_id)["status"] == "complete"
        assert st.completed_folds(run_id) == {0, 1, 2, 3}
        pd.testing.assert_frame_equal(st.predictions(run_id), before)


# -- 3. a store protects itself ----------------------------------------------------------------
def test_another_programs_sqlite_file_is_refused_untouched(tmp_path):
    path = tmp_path / "other.sqlite"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE runs (id INTEGER PRIMARY KEY, name TEXT)")
        db.execute("INSERT INTO runs (name) VALUES ('not ours')")
    before = _digest(path)
    for readonly in (False, True):
        with pytest.raises(StoreError, match="not a mer-bench results store"):
            Store(path, readonly=readonly)
    assert _digest(path) == before
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA application_id = 1234")
    marked = _digest(path)
    with pytest.raises(StoreError, match="application id 0x4d2"):
        Store(path)
    assert _digest(path) == marked


def test_a_store_from_a_newer_mer_bench_is_refused_and_a_text_file_is_not_a_store(tmp_path):
    path = tmp_path / "new.sqlite"
    Store(path).close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    before = _digest(path)
    with pytest.raises(StoreError, match="newer mer-bench"):
        Store(path)
    assert _digest(path) == before
    text = tmp_path / "notes.sqlite"
    text.write_text("these are my notes, not a database\n" * 200)
    with pytest.raises(StoreError, match="notes.sqlite"):
        Store(text)
    assert text.read_text().startswith("these are my notes")


def test_a_first_layout_store_is_upgraded_and_keeps_its_runs(tmp_path):
    path = tmp_path / "old.sqlite"
    _run_toy(path)
    with sqlite3.connect(path) as db:  # make it look like a store of the first layout: no id, no version
        db.execute("PRAGMA application_id = 0")
        db.execute("PRAGMA user_version = 0")
    with Store(path) as st:
        assert len(st.runs()) == 1
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_a_damaged_store_is_named_by_read_commands(tmp_path, capsys):
    path = tmp_path / "s.sqlite"
    for seed in range(3):
        prep = prepare("fault-toy", "loso", "synthetic", [seed], dataset_options=SMALL)
        with Store(path) as st:
            execute(prep, st, device="cpu")
    data = bytearray(path.read_bytes())
    page = 4096
    for start in range(2 * page, len(data), page):  # garbage over every page but the first two
        data[start + 8:start + page] = os.urandom(page - 8)
    path.write_bytes(bytes(data))
    assert main(["leaderboard", "--store", str(path)]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert str(path) in err and ("damaged" in err or "malformed" in err) and "Traceback" not in err


def test_a_missing_store_is_a_clear_error_for_read_commands(tmp_path, capsys):
    assert main(["leaderboard", "--store", str(tmp_path / "none.sqlite")]) == 2
    assert "no results store at" in capsys.readouterr().err
    assert not (tmp_path / "none.sqlite").exists()


# -- 4. every method output is checked ----------------------------------------------------------
@pytest.mark.parametrize("fault,message", [
    ("short", r"predict returned shape \(\d+,\) for \d+ test clips"),
    ("float", "non-integer labels"),
    ("range", r"labels \[99\] outside 0..2"),
    ("nan", "NaN or infinite probabilities"),
    ("unnormalised", "rows must sum to 1"),
    ("fit-raises", "fit raised RuntimeError: boom in fit"),
])
def test_a_method_that_breaks_the_contract_fails_its_fold_and_stores_nothing(tmp_path, fault, message):
    with pytest.raises(MethodError, match=message) as info:
        _run_toy(tmp_path / "s.sqlite", fault=fault)
    assert "method 'fault-toy'" in str(info.value) and "fold 0" in str(info.value)
    with Store(tmp_path / "s.sqlite") as st:
        assert st.runs(None).empty  # no fold, and no 'running' row left behind


def test_the_cli_names_the_plugin_whose_fit_raised(tmp_path, capsys):
    assert main(["run", "--method", "fault-toy", "--set", "fault=fit-raises", "--store", str(tmp_path / "s.sqlite"),
                 *SMALL_ARGS]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "method 'fault-toy'" in err and "boom in fit" in err and "Traceback" not in err


def test_grayscale_and_16_bit_flow_images_are_refused_by_name(tmp_path, capsys):
    from PIL import Image

    from mer_bench.datasets.megc2019 import LABEL_FILE, MEGC2019Flow

    real = Path(__file__).resolve().parents[2] / "shared" / "data" / "megc2019-composite"
    if not (real / LABEL_FILE).is_file():
        pytest.skip(f"the MEGC 2019 composite is not at {real} (licensed data, read in place)")
    for mode, kind in (("L", "8-bit grayscale"), ("I;16", "16-bit grayscale")):
        root = tmp_path / mode.replace(";", "")
        flow = root / "flow"
        flow.mkdir(parents=True)
        (root / LABEL_FILE).write_bytes((real / LABEL_FILE).read_bytes())
        for f in sorted((real / "flow").glob("*.png")):
            (flow / f.name).symlink_to(f)
        victim = sorted(flow.glob("*.png"))[0]
        victim.unlink()
        Image.new(mode, (28, 28)).save(victim)
        with pytest.raises(Exception, match=f"{victim.name}: flow image is {kind}"):
            MEGC2019Flow(data_root=str(root)).load("flow", [0, 1])
        assert main(["data", "check", "--dataset", "megc2019-flow", "--data-root", str(root)]) == 1
        assert kind in capsys.readouterr().out


def test_a_16_bit_rgb_flow_image_is_detected(tmp_path):
    import struct
    import zlib

    from PIL import Image

    from mer_bench.datasets.megc2019 import _sixteen_bit

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    raw = b"".join(b"\x00" + b"\x12\x34" * 3 * 28 for _ in range(28))
    path = tmp_path / "rgb16.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 28, 28, 16, 2, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
    with Image.open(path) as im:
        assert im.mode == "RGB" and _sixteen_bit(im)  # Pillow calls it RGB; the flow loader does not
    Image.new("RGB", (28, 28)).save(tmp_path / "rgb8.png")
    with Image.open(tmp_path / "rgb8.png") as im:
        assert not _sixteen_bit(im)


# -- 6, 14, 17. options are checked before any row is written -----------------------------------
@pytest.mark.parametrize("args,message", [
    (["--set", "fault=none", "--seed", "-1"], "--seed -1"),
    (["--seed", "99999999999999999999"], "seeds run from 0"),
    (["--dataset-set", "amplitude=nan"], "not a finite number"),
    (["--dataset-set", "amplitude=-inf"], "not a finite number"),
    (["--dataset-set", "n_subjects=4.7"], "must be int"),
    (["--dataset-set", "n_subjects=four"], "--dataset-set n_subjects must be int"),
    (["--protocol-set", "nope=1"], "--protocol-set nope"),
    (["--ray-cpus", "0"], "--ray-cpus must be > 0"),
])
def test_bad_options_fail_before_any_row_is_written(tmp_path, capsys, args, message):
    store = tmp_path / "s.sqlite"
    assert main(["run", "--method", "fault-toy", "--store", str(store), *args]) == 2
    assert message in " ".join(capsys.readouterr().err.split())
    with Store(store) as st:
        assert st.runs(None).empty


def test_non_finite_hyper_parameters_are_refused():
    for value in ("1e999", "-1e999", "nan", "inf", "[0.1, 1e999]"):
        with pytest.raises(ParameterError, match="not a finite number"):
            prepare("ststnet", "loso", "synthetic", overrides=__import__("mer_bench.method").method.parse_overrides(
                [f"lr={value}"]), dataset_options=SMALL)


# -- 7. one bad row does not block every board --------------------------------------------------
def test_a_damaged_run_is_skipped_with_a_warning_naming_it(tmp_path):
    store = tmp_path / "s.sqlite"
    runs = []
    for seed in (0, 1, 2):
        prep = prepare("fault-toy", "loso", "synthetic", [seed], dataset_options=SMALL)
        with Store(store) as st:
            runs += [r.spec.run_id for r in execute(prep, st, device="cpu")]
    chance = prepare("chance", "loso", "synthetic", [0], dataset_options=SMALL)
    with Store(store) as st:
        (good,) = execute(chance, st, device="cpu")
    with sqlite3.connect(store) as db:
        db.execute("UPDATE predictions SET y_pred = 7 WHERE run_id = ? AND rowid = (SELECT MIN(rowid) FROM "
                   "predictions WHERE run_id = ?)", (runs[1], runs[1]))
        db.execute("UPDATE runs SET params = '{not json' WHERE run_id = ?", (runs[2],))
    with Store(store, readonly=True) as st, pytest.warns(StoreWarning) as caught:
        rows = leaderboard_rows(st, "loso", "synthetic", n_resamples=200)
    text = " ".join(str(w.message) for w in caught)
    assert runs[1] in text and "label outside 0..2" in text and runs[2] in text and "not valid JSON" in text
    assert set(rows["method"]) == {"fault-toy", "chance"}
    assert rows.set_index("method").at["fault-toy", "seeds"] == 1  # the intact seed still counts
    assert good.spec.config_hash in set(rows["config"])


# -- 8. reproduce commands are shell-safe ------------------------------------------------------
def test_reproduce_commands_are_quoted_and_import_names_are_restricted(tmp_path, capsys):
    from mer_bench.leaderboard import _command

    run = pd.Series({"imported": 0, "method": "fault-toy", "protocol": "loso", "dataset": "synthetic",
                     "preset": None, "params": {"fault": "pub; touch x"}, "seed": 0, "selection": "last epoch",
                     "dataset_options": {"note": "$(touch y)"}, "protocol_options": {}, "leaky": 0})
    line = _command(run)
    words = shlex.split(line)
    assert "fault=pub; touch x" in words and "note=$(touch y)" in words  # each one word, never run
    subprocess.run(["sh", "-c", f"cd {shlex.quote(str(tmp_path))} && echo {line}"], check=True, capture_output=True)
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()
    log = tmp_path / "log.txt"
    log.write_text("casme2 sub01\nEP01 0 0\n")
    assert main(["import", str(log), "--name", "pub; touch x", "--store", str(tmp_path / "s.sqlite")]) == 2
    assert "--name 'pub; touch x'" in capsys.readouterr().err


# -- 9, 10. concurrent runs and a locked store -------------------------------------------------
def test_two_identical_runs_at_once_the_second_refuses_at_start(tmp_path, capsys):
    store = tmp_path / "s.sqlite"
    first = _child(["run", "--method", "fault-toy", "--store", str(store), "--json", *SMALL_ARGS],
                   env={"FAULT_TOY_SLEEP": "1.5"})
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if store.exists():
            with sqlite3.connect(store, timeout=30) as db:
                if db.execute("SELECT COUNT(*) FROM runs WHERE lease_owner IS NOT NULL").fetchone()[0]:
                    break
        time.sleep(0.05)
    assert main(["run", "--method", "fault-toy", "--store", str(store), *SMALL_ARGS]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "is being computed by another process" in err and "nothing was started" in err
    out, err = first.communicate(timeout=120)
    assert first.returncode == 0, err
    assert main(["run", "--method", "fault-toy", "--store", str(store), "--json", *SMALL_ARGS]) == 0
    assert json.loads(capsys.readouterr().out)["results"][0]["status"] == "cached"


def test_a_lease_of_a_dead_process_is_taken_over(tmp_path):
    store = tmp_path / "s.sqlite"
    prep = prepare("fault-toy", "loso", "synthetic", [0], dataset_options=SMALL)
    spec = prep.specs[0]
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    with Store(store) as st:
        st.start_run({"run_id": spec.run_id, "config_hash": spec.config_hash, "method": spec.method,
                      "dataset": spec.dataset, "protocol": spec.protocol, "seed": 0, "params": {},
                      "dataset_options": {}, "dataset_fingerprint": "x", "protocol_options": {}, "classes": [],
                      "n_folds": 4})
        other = Store(store)
        other.acquire(spec.run_id)
        with pytest.raises(StoreBusyError):
            st.acquire(spec.run_id)  # a live holder (another Store of this process)
        other.close()  # releases
        st.acquire(spec.run_id)
        st.release(spec.run_id)
        with sqlite3.connect(store) as db:  # a holder on this host whose process is gone
            db.execute("UPDATE runs SET lease_owner = ?, lease_until = ? WHERE run_id = ?",
                       (f"{os.uname().nodename}:{dead.stdout.strip()}:0", time.time() + 60, spec.run_id))
        st.acquire(spec.run_id)
    with Store(store) as st:
        (res,) = execute(prep, st, device="cpu")
        assert res.status == "computed"


def test_a_store_locked_longer_than_sqlites_timeout_is_waited_for(tmp_path, capsys):
    store = tmp_path / "s.sqlite"
    with Store(store) as st:
        st._db.execute("PRAGMA busy_timeout = 200")  # SQLite alone would give up after 0.2 s
        locker = sqlite3.connect(store, isolation_level=None, check_same_thread=False)
        locker.execute("BEGIN EXCLUSIVE")
        threading.Timer(1.5, locker.execute, args=("COMMIT",)).start()
        t0 = time.monotonic()
        st.start_run({"run_id": "r-s0", "config_hash": "r", "method": "m", "dataset": "d", "protocol": "p",
                      "seed": 0, "params": {}, "dataset_options": {}, "dataset_fingerprint": "x",
                      "protocol_options": {}, "classes": ["a"], "n_folds": 1})
        assert time.monotonic() - t0 >= 1.0 and st.get_run("r-s0") is not None
        locker.close()
    assert "is locked by another process; waiting" in capsys.readouterr().err


def test_a_full_disk_mid_fold_reports_the_disk_and_keeps_earlier_folds(small_disk):
    store = small_disk / "s.sqlite"
    rows = [(f"synthetic/s01/c{i}", "s01", "synthetic", 0, 0, [0.5, 0.5]) for i in range(3)]
    with Store(store) as st:
        st.start_run({"run_id": "r-s0", "config_hash": "r", "method": "m", "dataset": "d", "protocol": "p",
                      "seed": 0, "params": {}, "dataset_options": {}, "dataset_fingerprint": "x",
                      "protocol_options": {}, "classes": ["a", "b"], "n_folds": 2})
        st.write_fold("r-s0", 0, "s01", 10, 1.0, "cpu", rows)
        filler = _fill(small_disk)
        big = [(f"synthetic/s02/c{i}", "s02", "synthetic", 0, 0, [0.5, 0.5] * 50) for i in range(20_000)]
        with pytest.raises(StoreError) as info:
            st.write_fold("r-s0", 1, "s02", 10, 1.0, "cpu", big)
        assert "full" in str(info.value) and "cannot rollback" not in str(info.value)
        filler.unlink()
        assert st.completed_folds("r-s0") == {0} and len(st.predictions("r-s0")) == 3


def test_a_write_error_mid_fold_is_reported_not_hidden(tmp_path):
    store = tmp_path / "s.sqlite"
    with Store(store) as st:
        st.start_run({"run_id": "r-s0", "config_hash": "r", "method": "m", "dataset": "d", "protocol": "p",
                      "seed": 0, "params": {}, "dataset_options": {}, "dataset_fingerprint": "x",
                      "protocol_options": {}, "classes": ["a", "b"], "n_folds": 2})
        st.write_fold("r-s0", 0, "s01", 10, 1.0, "cpu", [("synthetic/s01/c0", "s01", "synthetic", 0, 0, None)])
    done = _with_file_size_limit(f"""
        from mer_bench.store import Store, StoreError
        st = Store({str(store)!r})
        big = [(f"synthetic/s02/c{{i}}", "s02", "synthetic", 0, 0, [0.5, 0.5] * 50) for i in range(20_000)]
        try:
            st.write_fold("r-s0", 1, "s02", 10, 1.0, "cpu", big)
        except StoreError as exc:
            print("STORE-ERROR", exc)
    """, limit=store.stat().st_size + 65536)
    assert "STORE-ERROR" in done.stdout, done.stderr
    assert "cannot rollback" not in done.stdout and str(store) in done.stdout
    with Store(store) as st:
        assert st.completed_folds("r-s0") == {0} and len(st.predictions("r-s0")) == 1


# -- 12, 13, 16, 19, 20. data and caches ---------------------------------------------------------
def test_an_unreadable_data_folder_is_a_message_naming_the_path(tmp_path, capsys, monkeypatch):
    from mer_bench.datasets import megc2019

    root = tmp_path / "composite"
    (root / "flow").mkdir(parents=True)
    (root / megc2019.LABEL_FILE).write_text("casme2,sub01,EP01,0\n")
    if os.geteuid() != 0:  # a real permission error
        (root / "flow").chmod(0)
    else:  # root reads everything: raise what the OS would
        def denied(self, *a, **k):
            raise PermissionError(13, "Permission denied", str(root / "flow"))

        monkeypatch.setattr(megc2019.MEGC2019Flow, "table", denied)
    try:
        assert main(["run", "--method", "ststnet", "--protocol", "megc2019-cde", "--data-root", str(root),
                     "--store", str(tmp_path / "s.sqlite")]) == 2
    finally:
        (root / "flow").chmod(0o755)
    err = " ".join(capsys.readouterr().err.split())
    assert f"{root / 'flow'}: Permission denied" in err and "Traceback" not in err


def test_a_plot_that_fails_to_save_leaves_the_old_png(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from mer_bench.atomic import save_figure

    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1])
    path = save_figure(fig, tmp_path / "plot.png")
    before = path.read_bytes()

    def broken(target, **kw):
        Path(target).write_bytes(b"\x89PNG partial")
        raise OSError(28, "No space left on device")

    fig.savefig = broken
    with pytest.raises(OSError):
        save_figure(fig, path)
    plt.close(fig)
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["plot.png"]


def _sheet(path: Path, rows) -> Path:
    df = pd.DataFrame(rows, columns=["Subject", "Filename", "OnsetFrame", "ApexFrame", "OffsetFrame",
                                     "Action Units", "Estimated Emotion"])
    df.to_excel(path, index=False)
    return path


def test_a_coding_sheet_without_rows_or_with_a_bad_subject_names_file_and_row(tmp_path):
    from mer_bench.data import DatasetError
    from mer_bench.datasets.casme import read_casme2_sheet

    empty = _sheet(tmp_path / "empty.xlsx", [])
    with pytest.raises(DatasetError, match="empty.xlsx: the coding sheet has a header but no clip rows"):
        read_casme2_sheet(empty)
    bad = _sheet(tmp_path / "bad.xlsx", [["01", "EP02_01f", 46, 59, 86, "12", "happiness"],
                                         ["x1", "EP03_02", 131, 139, 161, "18", "others"]])
    with pytest.raises(DatasetError, match=r"bad.xlsx, sheet row 3: Subject is 'x1', not a subject number"):
        read_casme2_sheet(bad)


def test_a_failed_cache_write_leaves_no_temporary_file(tmp_path, monkeypatch):
    from mer_bench.datasets import synthetic

    cache = tmp_path / "cache"
    monkeypatch.setenv("MER_BENCH_CACHE", str(cache))

    def full_disk(f, **arrays):
        f.write(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(synthetic.np, "savez", full_disk)
    for _ in range(3):
        synthetic.SyntheticMER(**SMALL).table()
    assert list(cache.iterdir()) == []


def test_the_synthetic_cache_is_read_back(tmp_path, monkeypatch):
    from mer_bench.datasets import synthetic

    monkeypatch.setenv("MER_BENCH_CACHE", str(tmp_path / "cache"))
    first = synthetic.SyntheticMER(**SMALL)
    table, clips = first.table(), first.load("clip", np.arange(5))

    def no_generation(self):
        raise AssertionError("regenerated although the cache holds the dataset")

    monkeypatch.setattr(synthetic.SyntheticMER, "_generate", no_generation)
    again = synthetic.SyntheticMER(**SMALL)
    pd.testing.assert_frame_equal(again.table(), table)
    np.testing.assert_array_equal(again.load("clip", np.arange(5)), clips)


def test_a_data_root_one_level_off_gets_one_message_saying_where(tmp_path, capsys):
    from mer_bench.datasets.casme import CASME2

    release = tmp_path / "CASME2"
    inner = release / "CASME2_RAW_selected"
    inner.mkdir(parents=True)
    sheet = _sheet(release / "CASME2-coding-20140508.xlsx",
                   [[f"{s:02d}", f"EP0{c}_01", 1, 2, 3, "12", "happiness"] for s in (1, 2, 3) for c in (1, 2)])
    for s in (1, 2, 3):
        for c in (1, 2):
            folder = inner / f"sub{s:02d}" / f"EP0{c}_01"
            folder.mkdir(parents=True)
            for n in (1, 2, 3):
                (folder / f"img{n}.jpg").write_bytes(b"\xff\xd8fake")
    problems = CASME2(data_root=str(inner), sheet=str(sheet)).check()
    assert len(problems) == 1 and f"give --data-root {release}" in problems[0]
    assert main(["data", "check", "--dataset", "casme2", "--data-root", str(inner)]) in (1, 2)
    out = " ".join(capsys.readouterr().out.split()) + " ".join(capsys.readouterr().err.split())
    assert f"--data-root {release}" in out  # the sheet is one level up: said so
    above = tmp_path
    problems = CASME2(data_root=str(above), sheet=str(sheet)).check()
    assert len(problems) == 1 and f"give --data-root {release}" in problems[0]


# -- 18. two plugins under one name --------------------------------------------------------------
def test_two_plugins_declaring_one_name_are_both_refused(monkeypatch):
    from mer_bench import registry

    eps = [SimpleNamespace(name="twin", value="pkg_a:Method", dist=SimpleNamespace(name="plugin-a")),
           SimpleNamespace(name="twin", value="pkg_b:Method", dist=SimpleNamespace(name="plugin-b")),
           SimpleNamespace(name="single", value="pkg_c:Method", dist=SimpleNamespace(name="plugin-c"))]
    monkeypatch.setattr(registry.metadata, "entry_points", lambda group: eps)
    reg = registry.Registry("method", "mer_bench.test_twins", {})
    assert "twin" not in reg.names() and "single" in reg.names()
    with pytest.raises(registry.UnknownNameError, match="plugin-a .*plugin-b"):
        reg.get("twin")
    assert "declared by several plugins" in reg.broken(load=False)["twin"]

