"""Results and times depend on the CPU: every run records it, boards show it, and bf16 on a CPU
that only emulates it is warned about before training."""

import pytest

from mer_bench import runtime
from mer_bench.cli import main
from mer_bench.pipeline import execute, prepare
from mer_bench.store import Store

SMALL = {"n_subjects": 4, "min_clips": 6, "max_clips": 8}


def test_every_run_records_its_cpu_and_threads_and_the_board_shows_them(tmp_path, capsys):
    import torch

    prep = prepare("majority", "loso", "synthetic", [0], dataset_options=SMALL)
    with Store(tmp_path / "s.sqlite") as store:
        (res,) = execute(prep, store, device="cpu")
        run = store.get_run(res.spec.run_id)
    assert run["cpu"] == runtime.cpu_description() and run["threads"] == torch.get_num_threads()
    assert torch.backends.cpu.get_cpu_capability() in run["cpu"] and "bf16" in run["cpu"]
    assert main(["leaderboard", "--store", str(tmp_path / "s.sqlite")]) == 0
    provenance = capsys.readouterr().out.split("## Provenance")[1]
    assert f"on cpu ({run['cpu']}, {run['threads']} thread(s)" in provenance


@pytest.mark.parametrize("native", [False, True])
def test_bf16_on_a_cpu_without_native_bf16_warns_before_training(tmp_path, capsys, monkeypatch, native):
    monkeypatch.setattr(runtime, "cpu_has_native_bf16", lambda: native)
    assert runtime.bf16_warning("cuda", "bf16") is None and runtime.bf16_warning("cpu", "auto") is None
    args = ["run", "--method", "ststnet", "--set", "precision=bf16", "--set", "epochs=1", "--device", "cpu",
            "--store", str(tmp_path / "s.sqlite"), *sum((["--dataset-set", f"{k}={v}"] for k, v in SMALL.items()), [])]
    assert main(args) == 0
    err = " ".join(capsys.readouterr().err.split())
    assert ("precision=bf16 on this CPU" in err) == (not native)
    if not native:
        assert err.index("precision=bf16 on this CPU") < err.index("seed 0 fold")  # before training starts
