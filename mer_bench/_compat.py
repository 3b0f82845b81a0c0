"""Import-time compatibility fixes for the torch stack.

``ensure_torchvision_importable()`` must run before ``torchvision`` (or ``timm``, which imports
it) is imported. Where torchvision's compiled extension ``_C`` cannot load — the registry build
of torchvision 0.28.0 is a CUDA build, and on the CPU wheel of torch 2.13.0 its ``_C.so`` fails
to load — ``torchvision/_meta_registrations.py`` still calls
``torch.library.register_fake("torchvision::nms")``, which raises
``RuntimeError: operator torchvision::nms does not exist`` and makes ``import torchvision`` and
``import timm`` fail. We then define the schemas of the operators it registers fakes for
(``nms`` and ``qnms``), so that the import succeeds; calling those operators still raises, as it
would without the extension. Where the extension loads, this is a no-op.
"""

from __future__ import annotations

import importlib.util
import sys
import warnings
from pathlib import Path

_SCHEMAS = (
    "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
)
_state: dict[str, object] = {}


def ensure_torchvision_importable() -> str:
    """Make ``import torchvision`` work on builds whose C++ extension cannot load.

    Returns:
        ``"loaded"`` (extension present, nothing done), ``"shimmed"`` (schemas defined),
        ``"absent"`` (torchvision not installed) or ``"imported"`` (torchvision was already
        imported; nothing can be done any more). Idempotent.
    """
    if "status" in _state:
        return _state["status"]  # type: ignore[return-value]
    if "torchvision" in sys.modules:
        status = "imported"
    else:
        spec = importlib.util.find_spec("torchvision")
        if spec is None or spec.origin is None:
            status = "absent"
        else:
            import torch

            status = "loaded" if _extension_loads(Path(spec.origin).parent, torch) else _define_schemas(torch)
    _state["status"] = status
    return status


def _extension_loads(package_dir: Path, torch) -> bool:
    candidates = sorted(package_dir.glob("_C*.so")) + sorted(package_dir.glob("_C*.pyd"))
    for lib in candidates:
        try:
            torch.ops.load_library(str(lib))
            return True
        except (OSError, RuntimeError):
            continue
    return False


def _define_schemas(torch) -> str:
    lib = torch.library.Library("torchvision", "FRAGMENT")
    for schema in _SCHEMAS:
        name = schema.split("(", 1)[0]
        try:
            getattr(torch.ops.torchvision, name)
            continue  # already defined by someone else
        except (AttributeError, RuntimeError):
            pass
        lib.define(schema)
    _state["library"] = lib  # keep the definitions alive
    # torchvision warns that its extension failed to load; we know, and said so above.
    warnings.filterwarnings("ignore", message="Failed to load image Python extension")
    warnings.filterwarnings("ignore", message=r"Failed to load '_C' extension")
    return "shimmed"
