"""The benchmark scripts run end to end at tiny settings (their figures are not checked: no timed
assertions). A script that drifted from the run path it times (as ``bench_ststnet_loso.py`` did
when fold results became :class:`mer_bench.pipeline.folds.FoldResult`) fails here, not in a user's
hands. The STSTNet benchmark reads ``../shared/data/megc2019-composite`` and skips without it."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ROOT = REPO.parent / "shared" / "data" / "megc2019-composite"


@pytest.mark.slow
def test_the_ststnet_loso_benchmark_runs_and_reports_both_paths_and_the_peak():
    if not (ROOT / "flow").is_dir():
        pytest.skip(f"the MEGC 2019 composite is not at {ROOT}")
    env = dict(os.environ, MER_BENCH_WORKERS="1")
    out = subprocess.run([sys.executable, str(REPO / "benchmarks" / "bench_ststnet_loso.py"), "--data-root", str(ROOT),
                          "--folds", "1", "--epochs", "1", "--workers", "1"],
                         capture_output=True, text=True, env=env, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    for line in ("mer-bench :", "reference :", "speed-up  :", "% of peak", "fp32 matmul peak measured here"):
        assert line in out.stdout, out.stdout


def test_the_composite_board_script_runs_commands_the_cli_accepts(tmp_path):
    """``benchmarks/composite_board.sh`` with ``MER_BENCH=echo``: every part prints commands that
    mer-bench's own parser accepts, with the store and data root passed through; an unknown part
    is refused."""
    import shlex
    import shutil

    from mer_bench.cli import build_parser

    if shutil.which("bash") is None:
        pytest.skip("no bash here")
    script = REPO / "benchmarks" / "composite_board.sh"
    packs = tmp_path / "stores"
    packs.mkdir()
    for name in ("floors.pack", "rcn.pack"):
        (packs / name).write_bytes(b"")
    env = {**os.environ, "MER_BENCH": "echo", "PACKS": str(packs)}
    out = subprocess.run(["bash", str(script), "S.sqlite", "DATA"], capture_output=True, text=True,
                         env=env, check=True).stdout
    commands = [shlex.split(line) for line in out.splitlines() if not line.startswith("==")]
    parts = [line.split()[1] for line in out.splitlines() if line.startswith("==")]
    assert parts == ["unpack", "floors", "board", "rcn", "ablations", "report", "ablation-boards", "pack"]
    # unpack 2 (one a file), floors 2, board 4, rcn 1, ablations 2, report 1, ablation boards 2, pack 7
    assert len(commands) == 21
    parser = build_parser()
    for argv in commands:
        args = parser.parse_args(argv)
        assert args.store == "S.sqlite"
        assert getattr(args, "data_root", "DATA") == "DATA"
    assert [c[:2] for c in commands[:2]] == [["unpack", str(packs / f)] for f in ("floors.pack", "rcn.pack")]
    written = [c[-1] for c in commands if c[0] == "pack"]
    groups = ("floors", "meranet", "resnet3d18", "ststnet", "ststnet-best-on-test", "rcn", "rcn-best-on-test")
    assert written == [str(packs / f"{g}.pack") for g in groups]
    for p in packs.iterdir():  # no packed store yet: unpack says so and runs nothing
        p.unlink()
    out = subprocess.run(["bash", str(script), "S.sqlite", "DATA", "unpack"], capture_output=True, text=True,
                         env=env, check=True).stdout
    assert out.splitlines()[1] == f"no packed store in {packs}: starting from STORE as it is"
    bad = subprocess.run(["bash", str(script), "S.sqlite", "DATA", "boards"], capture_output=True, text=True,
                         env={**os.environ, "MER_BENCH": "echo"})
    assert bad.returncode == 2 and "unknown part 'boards'" in bad.stderr


def test_the_synthetic_design_script_runs_on_development_seeds_only():
    """``benchmarks/synthetic_design.sh`` prints commands the CLI accepts, all on the development
    seed given, and refuses the publication seed 0."""
    import shlex
    import shutil

    from mer_bench.cli import build_parser

    if shutil.which("bash") is None:
        pytest.skip("no bash here")
    script = REPO / "benchmarks" / "synthetic_design.sh"
    env = {**os.environ, "MER_BENCH": "echo"}
    out = subprocess.run(["bash", str(script), "1", "D.sqlite", "--dataset-set", "amplitude=0.8"],
                         capture_output=True, text=True, env=env, check=True).stdout
    commands = [shlex.split(line) for line in out.splitlines() if not line.startswith("==")]
    assert [c[0] for c in commands] == ["run"] * 5 + ["leaderboard", "saliency"]
    parser = build_parser()
    for argv in commands:
        args = parser.parse_args(argv)
        if argv[0] != "leaderboard":
            assert args.dataset_overrides == ["seed=1", "amplitude=0.8"]
    bad = subprocess.run(["bash", str(script), "0"], capture_output=True, text=True, env=env)
    assert bad.returncode == 2 and "publication seed" in bad.stderr
