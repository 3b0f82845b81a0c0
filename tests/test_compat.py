import subprocess
import sys


def test_timm_and_torchvision_import_after_compat():
    code = ("from mer_bench._compat import ensure_torchvision_importable as e; s = e(); "
            "import timm, torchvision; m = timm.create_model('resnet18', num_classes=3, pretrained=False); "
            "print(s, type(m).__name__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    status, name = out.stdout.split()
    assert status in ("loaded", "shimmed")
    assert name == "ResNet"


def test_compat_is_idempotent():
    from mer_bench._compat import ensure_torchvision_importable

    assert ensure_torchvision_importable() == ensure_torchvision_importable()
