"""Trained models on disk: what ``run --save-models DIR`` and ``mer-bench train`` write and
``mer-bench predict`` reads.

A model file (``.pt``) is one ``torch.save`` of a dict of plain values and tensors, read back
with ``torch.load(path, weights_only=True)`` (no code runs on loading):

* ``format`` (``"mer-bench-model"``), ``version`` (1);
* ``method`` and ``params`` (its resolved hyper-parameters), ``classes`` (names, in label
  order), ``representation`` (what the method was fed, e.g. ``flow``) and ``input`` (e.g. ``flow
  3x28x28 as 1-frame clip``);
* where it was trained: ``dataset``, ``dataset_options``, ``dataset_fingerprint``, ``protocol``,
  ``seed``, ``fold_index`` and ``fold_name`` (``None`` for ``mer-bench train``: every clip),
  ``test_subjects``, ``selection``, ``run_id``; the code: ``package_version``, ``git_commit``,
  ``torch_version``;
* ``state``: :meth:`mer_bench.method.Method.get_state` (a network's ``state_dict`` and the
  learned attributes).

``run --save-models DIR`` writes ``DIR/<run_id>/fold-<k>.pt`` per fold (``k`` three digits) and
``DIR/<run_id>/manifest.json`` (the metadata without the state); ``mer-bench train -o DIR``
writes ``DIR/model.pt`` and ``DIR/manifest.json``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from mer_bench.atomic import atomic_path, atomic_write_text
from mer_bench.method import MethodError

__all__ = ["MODEL_FORMAT", "MODEL_VERSION", "ModelError", "save_model", "load_model", "model_files", "check_model"]

MODEL_FORMAT = "mer-bench-model"
MODEL_VERSION = 1


class ModelError(MethodError):
    """A model file that is missing, unreadable, of another format, or that does not fit the
    data it is applied to (the message says what differs)."""


def save_model(path: str | os.PathLike, state: dict[str, Any], meta: dict[str, Any]) -> Path:
    """Write one model file (atomically) and update the ``manifest.json`` beside it; returns the path."""
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = _plain(meta)
    doc = {"format": MODEL_FORMAT, "version": MODEL_VERSION, **meta, "state": state}
    with atomic_path(path) as tmp:
        torch.save(doc, tmp)
    manifest = path.parent / "manifest.json"
    try:
        entries = json.loads(manifest.read_text()) if manifest.is_file() else {}
    except ValueError:
        entries = {}
    entries[path.name] = {k: v for k, v in meta.items()}
    atomic_write_text(manifest, json.dumps(entries, indent=1, sort_keys=True, default=str) + "\n")
    return path


def _plain(v: Any) -> Any:
    """``v`` with only the types ``weights_only`` loading accepts: dict, list, tuple, str, int,
    float, bool, None (numpy scalars and str subclasses such as ``torch.__version__`` converted)."""
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return type(v)(_plain(x) for x in v) if type(v) in (list, tuple) else list(map(_plain, v))
    if v is None or type(v) in (bool, int, float, str):
        return v
    if hasattr(v, "item"):
        return _plain(v.item())
    if isinstance(v, (str, os.PathLike)):
        return str(v)
    if isinstance(v, (bool, int, float)):
        return type(v).__mro__[1](v) if type(v) not in (bool, int, float) else v
    raise TypeError(f"cannot store {type(v).__name__} {v!r} in a model file")


def model_files(path: str | os.PathLike) -> list[Path]:
    """The model files at ``path``: the file itself, or the ``.pt`` files in a folder (sorted).

    Raises:
        ModelError: nothing there, or a folder without model files.
    """
    path = Path(path).expanduser()
    if path.is_file():
        return [path]
    if path.is_dir():
        found = sorted(path.glob("*.pt"))
        if found:
            return found
        raise ModelError(f"no model files (*.pt) in {path}; give a file written by `mer-bench train` or "
                         f"`mer-bench run --save-models`")
    raise ModelError(f"no model at {path}")


def load_model(path: str | os.PathLike) -> tuple[Any, dict[str, Any]]:
    """``(fitted method, metadata)`` of a model file (see the module docstring).

    Raises:
        ModelError: unreadable, not a mer-bench model, a newer format, or a method that is not
            installed here.
    """
    import torch

    from mer_bench.registry import METHODS, RegistryError

    path = Path(path)
    try:
        doc = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a damaged file, another pickle (refused by weights_only), not a file
        raise ModelError(f"cannot read the model {path}: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}") \
            from None
    if not isinstance(doc, dict) or doc.get("format") != MODEL_FORMAT:
        raise ModelError(f"{path} is not a mer-bench model file")
    if int(doc.get("version", 0)) > MODEL_VERSION:
        raise ModelError(f"{path} was written by a newer mer-bench (model format {doc['version']}); upgrade mer-bench")
    try:
        cls = METHODS.get(doc["method"])
    except RegistryError as exc:
        raise ModelError(f"{path} holds a {doc['method']!r} model, a method not installed here: {exc}") from None
    method = cls(**{**doc["params"], "random_state": 0})
    method.set_state(doc["state"])
    meta = {k: v for k, v in doc.items() if k != "state"}
    return method, meta


def check_model(meta: dict[str, Any], method: str | None = None, representation: str | None = None,
                classes: list[str] | tuple[str, ...] | None = None, where: str = "the data") -> None:
    """Refuse a model that does not fit: another method than asked for, another input
    representation than ``where`` provides, or other classes (names and order).

    Raises:
        ModelError: what differs, with both values.
    """
    if method is not None and meta["method"] != method:
        raise ModelError(f"the model is a {meta['method']!r} model, not {method!r}")
    if representation is not None and meta["representation"] != representation:
        raise ModelError(f"the model was trained on {meta['representation']!r} inputs ({meta.get('input', '')}); "
                         f"{where} gives {representation!r}")
    if classes is not None and list(meta["classes"]) != list(classes):
        raise ModelError(f"the model predicts the classes {list(meta['classes'])}; {where} has {list(classes)} (the "
                         f"same names in the same order are needed)")
