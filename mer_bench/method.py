"""The method contract (scikit-learn style) and hyper-parameter handling.

Every method is a class with

* ``info``: a :class:`MethodInfo` (name, citation, input representation, CPU practicality);
* ``__init__(**hyper_parameters)`` that only stores its keyword arguments (no logic, no
  validation; ``self._store_params(locals())`` does it in one line), so
  :meth:`Method.get_params` / :func:`clone` work by introspection;
* ``fit(train: Samples) -> self``, which sets learned state in attributes ending in ``_``
  (at least ``classes_``);
* ``predict(test: Samples) -> (N,) int`` labels in ``0..n_classes-1``;
* optionally ``predict_proba(test) -> (N, n_classes)`` float, rows summing to 1;
* optionally ``presets``: named hyper-parameter sets (``"paper"``, ``"fast"``).

``mer_bench.testing.check_method`` runs the conformance checks every method must pass.
"""

from __future__ import annotations

import ast
import inspect
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from mer_bench.registry import METHODS

__all__ = ["MethodInfo", "Method", "register_method", "clone", "resolve_params", "parse_overrides",
           "ParameterError", "REPRESENTATIONS"]

#: Input representations a method can ask for, and the array shape a dataset hands it.
REPRESENTATIONS = {
    "clip": "(N, C, T, H, W) float32 frames, onset..offset around the apex",
    "apex": "(N, C, H, W) float32 apex frame",
    "flow": "(N, C, H, W) float32 optical-flow image (onset -> apex)",
    "dynamic": "(N, C, H, W) float32 dynamic image of the clip (approximate rank pooling; LEARNet's input)",
    "mesti": "(N, 3, H, W) float32 micro-expression spatio-temporal image (mer-bench's mesti-v1; MEGANet's input)",
    "features": "(N, D) float32 hand-crafted features",
    "none": "(N, 0) no input: the method uses only the number of samples (floors such as chance)",
}


class ParameterError(ValueError):
    """A hyper-parameter override names an unknown key or has an invalid value."""


@dataclass(frozen=True)
class MethodInfo:
    """Metadata every method declares.

    Attributes:
        name: registry name.
        citation: the paper the method follows.
        representation: the preferred input, one of :data:`REPRESENTATIONS`.
        accepts: further representations the method can take, in order of preference (the
            runner picks the first the dataset provides; e.g. MERANet takes a flow image as a
            one-frame clip).
        supports_epoch_selection: ``fit`` accepts ``select_on=`` (labelled samples used to keep
            the best epoch). Only the runner's explicitly *leaky* option uses it.
        practical_on_cpu: whether a full LOSO on the embedded dataset is practical without a GPU.
        summary: one line for ``mer-bench list methods``.
    """

    name: str
    citation: str
    representation: str
    practical_on_cpu: bool = True
    summary: str = ""
    accepts: tuple[str, ...] = ()
    supports_epoch_selection: bool = False

    def __post_init__(self) -> None:
        for rep in (self.representation, *self.accepts):
            if rep not in REPRESENTATIONS:
                raise ValueError(f"representation must be one of {sorted(REPRESENTATIONS)}, got {rep!r}")

    def choose_representation(self, provided: tuple[str, ...] | list[str]) -> str | None:
        """The first of ``representation, *accepts`` in ``provided`` (``"none"`` always works);
        ``None`` when the dataset provides none of them."""
        if self.representation == "none":
            return "none"
        return next((r for r in (self.representation, *self.accepts) if r in provided), None)


class Method:
    """Base class of mer-bench methods; see the module docstring for the contract."""

    info: ClassVar[MethodInfo]
    presets: ClassVar[dict[str, dict[str, Any]]] = {}

    @classmethod
    def param_names(cls) -> list[str]:
        """Names of the constructor's keyword arguments (the hyper-parameters)."""
        sig = inspect.signature(cls.__init__)
        return [p.name for p in sig.parameters.values()
                if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]

    @classmethod
    def default_params(cls) -> dict[str, Any]:
        """Constructor defaults."""
        sig = inspect.signature(cls.__init__)
        return {n: sig.parameters[n].default for n in cls.param_names()}

    def _store_params(self, values: dict[str, Any]) -> None:
        """Store every constructor argument unchanged: ``self._store_params(locals())`` as the
        whole body of ``__init__`` (the same as one ``self.name = name`` line per argument)."""
        for name in self.param_names():
            setattr(self, name, values[name])

    def get_params(self) -> dict[str, Any]:
        """Current hyper-parameters (scikit-learn ``get_params(deep=False)``)."""
        return {n: getattr(self, n) for n in self.param_names()}

    def set_params(self, **params: Any) -> Method:
        """Set hyper-parameters; returns self.

        Raises:
            ParameterError: an unknown name.
        """
        valid = self.param_names()
        for key, value in params.items():
            if key not in valid:
                raise ParameterError(f"{type(self).__name__} has no hyper-parameter {key!r}; valid: {', '.join(valid)}")
            setattr(self, key, value)
        return self

    @classmethod
    def check_params(cls, params: dict[str, Any]) -> None:
        """Validate resolved hyper-parameter values before any work starts.

        Subclasses raise :class:`ParameterError` naming the key and the accepted values.
        """

    def fit(self, train):  # pragma: no cover - interface
        raise NotImplementedError

    def predict(self, test) -> np.ndarray:  # pragma: no cover - interface
        raise NotImplementedError

    def __repr__(self) -> str:
        changed = {k: v for k, v in self.get_params().items() if self.default_params().get(k, object()) != v}
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in changed.items())})"


def register_method(name: str):
    """Class decorator: register a :class:`Method` subclass under ``name``.

    The name must equal ``cls.info.name``.

    Raises:
        DuplicateNameError: the name is taken by another object.
        ValueError: ``info.name`` differs from ``name``.
    """

    def wrap(cls):
        info = getattr(cls, "info", None)
        if info is None or info.name != name:
            raise ValueError(f"{cls.__qualname__}.info.name must be {name!r}")
        return METHODS.register(name, cls)

    return wrap


def clone(method: Method, **overrides: Any) -> Method:
    """A new unfitted method with the same hyper-parameters (plus ``overrides``)."""
    params = method.get_params()
    params.update(overrides)
    return type(method)(**params)


def parse_overrides(items: list[str] | None) -> dict[str, Any]:
    """Parse ``["key=value", ...]`` from ``--set``; values are Python literals or plain strings.

    ``lr=1e-3`` -> float, ``epochs=5`` -> int, ``shared=mlp`` -> ``"mlp"``, ``frames=None`` -> None.

    Raises:
        ParameterError: an item without ``=`` or with an empty key.
    """
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ParameterError(f"--set expects key=value, got {item!r}")
        raw = raw.strip()
        try:
            value = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            value = {"true": True, "false": False, "none": None}.get(raw.lower(), raw)
        out[key] = value
    return out


def _coerce(cls: type[Method], key: str, value: Any, default: Any) -> Any:
    """Check ``value`` against the type of ``default`` (and annotations), converting ints to floats."""
    ann = inspect.signature(cls.__init__).parameters[key].annotation
    ann_text = ann if isinstance(ann, str) else getattr(ann, "__name__", str(ann))
    allowed = {t.strip() for t in str(ann_text).split("|")} if ann_text else set()
    if value is None:
        if default is None or "None" in allowed:
            return None
        raise ParameterError(f"{key} cannot be None")
    types = {"int": int, "float": float, "str": str, "bool": bool}
    wanted = [types[a] for a in allowed if a in types] or ([type(default)] if default is not None else [])
    if not wanted:
        return value
    if bool in wanted and isinstance(value, bool):
        return value
    if isinstance(value, bool) and bool not in wanted:
        raise ParameterError(f"{key} must be {' or '.join(t.__name__ for t in wanted)}, got {value!r}")
    if float in wanted and isinstance(value, int):
        return float(value) if int not in wanted else value
    if any(isinstance(value, t) for t in wanted):
        return value
    raise ParameterError(f"{key} must be {' or '.join(t.__name__ for t in wanted)}, got {value!r}")


def resolve_params(cls: type[Method], preset: str | None = None,
                   overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Hyper-parameters of a run: constructor defaults <- preset <- overrides.

    Raises:
        ParameterError: an unknown preset, an unknown key (the message lists the valid ones) or a
            value of the wrong type.
    """
    params = cls.default_params()
    if preset is not None:
        if preset not in cls.presets:
            have = ", ".join(sorted(cls.presets)) or "none"
            raise ParameterError(f"{cls.info.name} has no preset {preset!r}; presets: {have}")
        params.update(cls.presets[preset])
    valid = [n for n in cls.param_names() if n != "random_state"]
    for key, value in (overrides or {}).items():
        if key == "random_state":
            raise ParameterError("random_state is set by the runner from --seed (and the fold); use --seed")
        if key not in valid:
            import difflib

            close = difflib.get_close_matches(key, valid, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ParameterError(f"{cls.info.name} has no hyper-parameter {key!r}{hint}; valid: {', '.join(valid)}")
        params[key] = _coerce(cls, key, value, cls.default_params()[key])
    params.pop("random_state", None)
    cls.check_params(params)
    return params
