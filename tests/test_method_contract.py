import pytest

from mer_bench.method import ParameterError, parse_overrides, resolve_params
from mer_bench.registry import METHODS
from mer_bench.testing import method_checks

#: small settings so that every deep method runs its checks in seconds
TINY = {
    "meranet": {"width": 4, "epochs": 1, "batch_size": 8, "lr": 1e-3, "warmup": 0},
    "resnet3d18": {"width": 4, "epochs": 1, "batch_size": 8, "lr": 1e-3, "warmup": 0},
    "ststnet": {"epochs": 3},
    "offapexnet": {"epochs": 2},
    "flow-resnet18": {"backbone": "resnet10t", "epochs": 1, "batch_size": 16},
    "lbptop-svm": {"blocks": 3},
    "learnet": {"epochs": 1, "size": 32},
    "micro-attention": {"backbone": "resnet10t", "epochs": 1, "size": 32, "batch_size": 16},
    "meganet": {"backbone": "resnet10t", "epochs": 1, "size": 32, "batch_size": 16},
    "microexpstcnn": {"epochs": 1, "size": 16},
    "rcn": {"epochs": 2, "featuremaps": 8, "batch_size": 16},
    "htnet": {"dim": 8, "block_repeats": 1, "epochs": 2, "batch_size": 16},
}
BUILTIN = [n for n in METHODS.names() if METHODS.origin(n) == "built-in"]
CASES = [(name, check, thunk) for name in BUILTIN
         for check, thunk in method_checks(METHODS.get(name), TINY.get(name, {}))]


@pytest.mark.parametrize("name,check,thunk", CASES, ids=[f"{n}-{c}" for n, c, _ in CASES])
def test_conformance(name, check, thunk):
    thunk()


def test_every_builtin_has_a_tiny_setting_or_is_cheap():
    for name in BUILTIN:
        cls = METHODS.get(name)
        assert name in TINY or cls.info.representation == "none", f"add {name} to TINY"


def test_parse_overrides_types():
    got = parse_overrides(["lr=1e-3", "epochs=5", "shared=mlp", "frames=None", "flip=false"])
    assert got == {"lr": 1e-3, "epochs": 5, "shared": "mlp", "frames": None, "flip": False}
    with pytest.raises(ParameterError, match="key=value"):
        parse_overrides(["lr"])


def test_resolve_params_presets_and_errors():
    cls = METHODS.get("meranet")
    paper = resolve_params(cls)
    assert paper["width"] == 64 and paper["lr"] == 0.1 and paper["epochs"] == 100 and paper["batch_size"] == 8
    fast = resolve_params(cls, "fast", {"epochs": 3, "lr": 1})
    assert fast["width"] == 16 and fast["epochs"] == 3 and fast["lr"] == 1.0
    with pytest.raises(ParameterError, match="did you mean 'epochs'"):
        resolve_params(cls, None, {"epoch": 3})
    with pytest.raises(ParameterError, match="valid: width"):
        resolve_params(cls, None, {"nope": 3})
    with pytest.raises(ParameterError, match="epochs must be int"):
        resolve_params(cls, None, {"epochs": "many"})
    with pytest.raises(ParameterError, match="'cnn' or 'mlp'"):
        resolve_params(cls, None, {"shared": "gru"})
    with pytest.raises(ParameterError, match="odd"):
        resolve_params(cls, None, {"kernel_size": 4})
    with pytest.raises(ParameterError, match="no preset"):
        resolve_params(cls, "turbo")
    with pytest.raises(ParameterError, match="--seed"):
        resolve_params(cls, None, {"random_state": 3})
