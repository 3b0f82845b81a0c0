"""``mer-bench profile``: parameter and FLOP counts against known figures, and throughput fields."""

import json

import pytest

from mer_bench.cli import main


def _profile(capsys, *args):
    assert main(["profile", *args, "--json", "--seconds", "0"]) == 0
    return json.loads(capsys.readouterr().out)


def test_profile_ststnet_counts_and_throughput(capsys):
    res = _profile(capsys, "--method", "ststnet", "--batch-size", "8")
    assert res["parameters"] == 1_683 and res["input_shape"] == [3, 28, 28]  # the released STSTNet
    # three 3x3 convs (3->3, 3->5, 3->8) at 30x30 (pad 2) + the 400->3 linear layer, 2 FLOPs per MAC
    assert res["gflops_per_sample"] == pytest.approx((2 * 27 * 16 * 30 * 30 + 2 * 400 * 3) / 1e9, rel=1e-6)
    assert res["train_samples_per_s"] > 0 and res["infer_samples_per_s"] > 0 and res["device"] == "cpu"


@pytest.mark.slow
def test_profile_resnet3d18_equals_the_paper_parameter_count(capsys):
    res = _profile(capsys, "--method", "resnet3d18", "--batch-size", "1")
    assert res["parameters"] == res["paper"]["parameters"] == 33_167_811  # torchvision r3d_18, 3 classes
    assert res["gflops_per_sample"] == pytest.approx(81.39, abs=0.01)  # torchvision r3d_18 at 3 x 16 x 112 x 112
    assert res["model_input_shape"] == [3, 16, 112, 112]


def test_profile_without_a_network_and_bad_input(capsys):
    res = _profile(capsys, "--method", "lbptop-svm")
    assert res["parameters"] is None and res["features_per_s"] > 0
    assert main(["profile", "--method", "meranett"]) == 2
    assert "Did you mean 'meranet'" in capsys.readouterr().err
    assert main(["profile", "--method", "ststnet", "--batch-size", "0"]) == 2


def test_bench_compares_the_plain_and_optimised_paths(capsys):
    assert main(["bench", "--method", "ststnet", "--steps", "1", "--warmup", "0", "--batch-size", "4", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["plain"]["path"] == "plain" and res["optimised"]["path"] == "optimised"
    assert res["speedup"] == pytest.approx(res["optimised"]["samples_per_s"] / res["plain"]["samples_per_s"])
    assert res["plain"]["fraction_of_peak"] is None  # no data-sheet peak on a CPU
    peak = res["measured_peak_tflops"]  # measured in the same run instead
    assert peak["fp32"] > 0 and res["plain"]["precision"] == "fp32"
    for path in ("plain", "optimised"):
        r = res[path]
        ref = peak[r["precision"]]
        assert r["fraction_of_measured_peak"] == pytest.approx(r["tflops_achieved"] / ref)
    # bf16 only where it is native and measured faster than fp32: never slower by choice
    assert (res["optimised"]["precision"] == "bf16") == (peak.get("bf16", 0) > peak["fp32"])
    assert main(["bench", "--method", "chance"]) == 2
    assert "no network" in capsys.readouterr().err


def test_bench_on_a_cpu_without_native_bf16_keeps_the_optimised_path_in_fp32(capsys, monkeypatch):
    from mer_bench import runtime

    monkeypatch.setattr(runtime, "cpu_has_native_bf16", lambda: False)
    assert main(["bench", "--method", "ststnet", "--steps", "1", "--warmup", "0", "--batch-size", "4"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "no native bf16); the optimised path ran in fp32" in out and "fp32 matmul peak measured here" in out
