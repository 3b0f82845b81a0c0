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
import math
import os
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from mer_bench.registry import METHODS

__all__ = ["MethodInfo", "Method", "register_method", "clone", "resolve_params", "check_saves_models",
           "parse_overrides",
           "ParameterError", "MethodError", "check_outputs", "check_options", "PROBA_SUM_TOL", "REPRESENTATIONS",
           "shape_label"]

#: Input representations a method can ask for, and the array shape a dataset hands it.
REPRESENTATIONS = {
    "clip": "(N, C, T, H, W) float32 frames, onset..offset around the apex",
    "apex": "(N, C, H, W) float32 apex frame",
    "flow": "(N, C, H, W) float32 optical-flow image (onset -> apex)",
    "dynamic": "(N, C, H, W) float32 dynamic image of the clip (approximate rank pooling; LEARNet's input)",
    "mesti": "(N, 3, H, W) float32 micro-expression spatio-temporal image (mer-bench's mesti-v1; MEGANet's input)",
    "regions": "(N, 3, 28, 28) float32 four 14x14 crops of the flow image around facial landmarks (eyes, mouth "
               "corners), tiled 2x2 (HTNet's input; mer_bench.preprocess.htnet_regions)",
    "features": "(N, D) float32 hand-crafted features",
    "none": "(N, 0) no input: the method uses only the number of samples (floors such as chance)",
}


def shape_label(representation: str, shape: tuple[int, ...] | None) -> str:
    """``"flow 3x28x28"``: a representation and its per-sample shape (``None``: the name alone)."""
    name = {"dynamic": "dynamic image", "mesti": "MESTI image", "none": "none (labels only)",
            "regions": "flow landmark regions"}.get(representation, representation)
    return name if not shape or representation == "none" else f"{name} {'x'.join(str(int(d)) for d in shape)}"


class ParameterError(ValueError):
    """A hyper-parameter override names an unknown key or has an invalid value."""


class MethodError(RuntimeError):
    """A method raised in ``fit`` / ``predict``, or returned output that breaks the contract
    (the message names the method, where it came from, the fold and what was wrong)."""


#: how far a row of ``predict_proba`` may sum from 1: float32 softmax rows are within ~1e-6 of 1,
#: and the store rounds each probability to 6 decimals (at most n_classes * 5e-7 more), so 1e-4
#: accepts every normalised output and refuses unnormalised scores (logits, counts)
PROBA_SUM_TOL = 1e-4


def check_outputs(y_pred: Any, proba: Any, n_test: int, n_classes: int, where: str) -> tuple[np.ndarray, Any]:
    """Check what a fitted method returned for ``n_test`` test clips; returns ``(labels, proba)``
    with labels as ``(n_test,)`` int64 and ``proba`` as ``(n_test, n_classes)`` float64 or ``None``.

    The contract (module docstring): ``predict`` gives one integer label in ``0..n_classes-1`` per
    test clip (integral floats are accepted, ``1.7`` is not); ``predict_proba``, where present,
    gives finite, non-negative rows that sum to 1 within :data:`PROBA_SUM_TOL`.

    Raises:
        MethodError: the first violation, prefixed with ``where`` (method and fold).
    """
    y = np.asarray(y_pred)
    if y.ndim != 1 or len(y) != n_test:
        raise MethodError(f"{where}: predict returned shape {tuple(y.shape)} for {n_test} test clips; expected "
                          f"({n_test},)")
    if y.dtype == bool or not (np.issubdtype(y.dtype, np.integer) or np.issubdtype(y.dtype, np.floating)):
        raise MethodError(f"{where}: predict returned {y.dtype} labels; expected integers 0..{n_classes - 1}")
    if np.issubdtype(y.dtype, np.floating):
        if not np.all(np.isfinite(y)) or np.any(y != np.round(y)):
            bad = y[~np.isfinite(y) | (y != np.round(y))][:3]
            raise MethodError(f"{where}: predict returned non-integer labels (e.g. {', '.join(map(str, bad))}); "
                              f"expected integers 0..{n_classes - 1}")
    out = y.astype(np.int64)
    if len(out) and (out.min() < 0 or out.max() >= n_classes):
        bad = sorted({int(v) for v in out if not 0 <= v < n_classes})[:5]
        raise MethodError(f"{where}: predict returned labels {bad} outside 0..{n_classes - 1}")
    if proba is None:
        return out, None
    p = np.asarray(proba, dtype=np.float64) if not isinstance(proba, np.ndarray) else proba.astype(np.float64)
    if p.shape != (n_test, n_classes):
        raise MethodError(f"{where}: predict_proba returned shape {tuple(p.shape)}; expected ({n_test}, {n_classes})")
    if not np.all(np.isfinite(p)):
        raise MethodError(f"{where}: predict_proba returned {int((~np.isfinite(p)).any(axis=1).sum())} row(s) with "
                          f"NaN or infinite probabilities (did training diverge? try a lower lr)")
    if np.any(p < 0):
        raise MethodError(f"{where}: predict_proba returned negative probabilities (min {p.min():.3g})")
    sums = p.sum(axis=1)
    off = np.abs(sums - 1) > PROBA_SUM_TOL
    if np.any(off):
        raise MethodError(f"{where}: predict_proba rows must sum to 1 (within {PROBA_SUM_TOL:g}); "
                          f"{int(off.sum())} row(s) do not (e.g. {sums[off][0]:.6g})")
    return out, p


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
        paper_size: ``(parameters, GFLOPs, source)`` as the method's paper publishes them, which
            ``mer-bench profile`` shows beside its own count; ``None`` when the paper gives none.
        placeholder: the method is built from an abstract, not a paper's full description or
            code; every board row names it ``<name> (placeholder)``.
    """

    name: str
    citation: str
    representation: str
    practical_on_cpu: bool = True
    summary: str = ""
    accepts: tuple[str, ...] = ()
    supports_epoch_selection: bool = False
    paper_size: tuple[int, float, str] | None = None
    placeholder: bool = False

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
    def describe_input(cls, params: dict[str, Any], representation: str, shape: tuple[int, ...] | None) -> str:
        """What the method sees, for a board's *input* column, e.g. ``"flow 3x28x28"``.

        Args:
            params: the run's resolved hyper-parameters.
            representation: the representation the run used (a key of :data:`REPRESENTATIONS`).
            shape: the dataset's per-sample shape of it (``Dataset.sample_shapes``), or ``None``
                where it is not fixed.

        The default names the representation and shape unchanged; methods that resize, select
        channels or turn images into clips say so (:class:`mer_bench.torch_method.TorchClipMethod`).
        """
        return shape_label(representation, shape)

    @classmethod
    def check_params(cls, params: dict[str, Any]) -> None:
        """Validate resolved hyper-parameter values before any work starts.

        Subclasses raise :class:`ParameterError` naming the key and the accepted values.
        """

    #: whether :meth:`get_state` can save a fitted model (``--save-models``, ``mer-bench train``); a
    #: string: it cannot, and why (refused before any training)
    saves_models: ClassVar[bool | str] = True
    #: learned attributes :meth:`get_state` leaves out (caches, not needed to predict)
    transient_state: ClassVar[tuple[str, ...]] = ()

    def get_state(self) -> dict[str, Any]:
        """The fitted state, for ``--save-models`` and ``mer-bench train``: every learned
        attribute (name ending in ``_``) as ``{"arrays": {name: torch tensor}, "values": {name:
        int / float / str / bool / None / list}}``, which ``torch.load(..., weights_only=True)``
        reads back without running code (:mod:`mer_bench.models`).

        Raises:
            MethodError: not fitted, or a learned attribute of another type (e.g. a scikit-learn
                estimator: it cannot be stored safely); methods with such state override this.
        """
        import torch

        learned = {k: v for k, v in vars(self).items() if k.endswith("_") and not k.startswith("_")
                   and k not in self.transient_state}
        if "classes_" not in learned:
            raise MethodError(f"{self.info.name} is not fitted; nothing to save")
        arrays, values = {}, {}
        for key, v in learned.items():
            if isinstance(v, np.ndarray) and v.dtype != object:
                arrays[key] = torch.from_numpy(np.ascontiguousarray(v))
            elif isinstance(v, np.generic):
                values[key] = v.item()
            elif v is None or isinstance(v, (bool, int, float, str)) or (
                    isinstance(v, (list, tuple)) and all(isinstance(x, (bool, int, float, str)) for x in v)):
                values[key] = list(v) if isinstance(v, tuple) else v
            else:
                raise MethodError(f"{self.info.name} cannot save its fitted model: {key} is a {type(v).__name__}, "
                                  f"which cannot be stored as tensors and plain values (the method would need its own "
                                  f"get_state/set_state)")
        return {"arrays": arrays, "values": values, "tuples": [k for k, v in learned.items() if isinstance(v, tuple)]}

    def set_state(self, state: dict[str, Any]) -> Method:
        """Restore what :meth:`get_state` returned (on an instance built with the run's
        hyper-parameters); returns self."""
        for key, t in state.get("arrays", {}).items():
            setattr(self, key, t.numpy())
        tuples = set(state.get("tuples", ()))
        for key, v in state.get("values", {}).items():
            setattr(self, key, tuple(v) if key in tuples else v)
        return self

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


_NON_FINITE = {"nan", "+nan", "-nan", "inf", "+inf", "-inf", "infinity", "+infinity", "-infinity"}


def _finite(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, str):
        return value.strip().lower() not in _NON_FINITE
    if isinstance(value, (list, tuple)):
        return all(_finite(v) for v in value)
    if isinstance(value, dict):
        return all(_finite(v) for v in value.values())
    return True


def parse_overrides(items: list[str] | None, flag: str = "--set") -> dict[str, Any]:
    """Parse ``["key=value", ...]`` from ``--set`` (or ``flag``); values are Python literals or plain strings.

    ``lr=1e-3`` -> float, ``epochs=5`` -> int, ``shared=mlp`` -> ``"mlp"``, ``frames=None`` -> None.

    Raises:
        ParameterError: an item without ``=`` or with an empty key, or a value that is not a
            finite number where it is one (``1e999``, ``nan``, ``inf``): no option of mer-bench takes
            those, and they turn every score into NaN.
    """
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ParameterError(f"{flag} expects key=value, got {item!r}")
        raw = raw.strip()
        try:
            value = ast.literal_eval(raw)
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            value = {"true": True, "false": False, "none": None}.get(raw.lower(), raw)
        if not _finite(value):
            raise ParameterError(f"{flag} {key}={raw}: not a finite number")
        out[key] = value
    return out


def _wanted_types(annotation: Any, default: Any) -> tuple[list[type], bool]:
    """The plain types an annotation (or, without one, the default) allows, and whether None is allowed."""
    ann_text = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", str(annotation))
    if annotation is inspect.Parameter.empty:
        ann_text = ""
    allowed = {t.strip() for t in str(ann_text).split("|")} if ann_text else set()
    types = {"int": int, "float": float, "str": str, "bool": bool}
    wanted = [types[a] for a in allowed if a in types]
    if not wanted and default is not None and default is not inspect.Parameter.empty:
        wanted = [type(default)]
    return wanted, "None" in allowed or default is None


def _check_type(label: str, value: Any, annotation: Any, default: Any, convert: bool) -> Any:
    """``value`` if it fits the annotation (or the default's type), else :class:`ParameterError`.
    ``convert``: turn ints into floats where only float is allowed (hyper-parameters; dataset and
    protocol options keep their value, since it is hashed into the run's identity)."""
    wanted, none_ok = _wanted_types(annotation, default)
    if value is None:
        if none_ok:
            return None
        raise ParameterError(f"{label} cannot be None")
    if not wanted:
        return value
    names = " or ".join(t.__name__ for t in wanted)
    if isinstance(value, bool):
        if bool in wanted:
            return value
        raise ParameterError(f"{label} must be {names}, got {value!r}")
    if float in wanted and isinstance(value, int):
        return float(value) if convert and int not in wanted else value
    if str in wanted and isinstance(value, os.PathLike):
        return value
    if any(isinstance(value, t) for t in wanted):
        return value
    hint = " (a whole number)" if int in wanted and isinstance(value, float) else ""
    raise ParameterError(f"{label} must be {names}{hint}, got {value!r}")


def _coerce(cls: type[Method], key: str, value: Any, default: Any) -> Any:
    """Check ``value`` against the type of ``default`` (and annotations), converting ints to floats."""
    ann = inspect.signature(cls.__init__).parameters[key].annotation
    return _check_type(key, value, ann, default, convert=True)


def check_options(cls: type, options: dict[str, Any] | None, flag: str) -> dict[str, Any]:
    """Check dataset or protocol ``options`` against the keyword arguments of ``cls``'s constructor
    (along its base classes where an ``__init__`` passes ``**kwargs`` on); returns them unchanged.

    Args:
        flag: the command-line option that gives them (``--dataset-set``), for the messages.

    Raises:
        ParameterError: an unknown key (with the valid ones and a "did you mean"), or a value of
            the wrong type, e.g. ``n_subjects=four`` or ``n_subjects=4.7`` for an integer option.
    """
    params: dict[str, inspect.Parameter] = {}
    for klass in cls.__mro__:
        init = vars(klass).get("__init__")
        if init is None or klass is object:
            continue
        sig = inspect.signature(init)
        for p in sig.parameters.values():
            if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                params.setdefault(p.name, p)
        if not any(p.kind == p.VAR_KEYWORD for p in sig.parameters.values()):
            break
    name = getattr(cls, "name", cls.__name__)
    for key, value in (options or {}).items():
        if key not in params:
            import difflib

            close = difflib.get_close_matches(key, list(params), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ParameterError(f"{flag} {key}: {name} has no option {key!r}{hint}; valid: "
                                 f"{', '.join(params) or 'none'}")
        _check_type(f"{flag} {key}", value, params[key].annotation, params[key].default, convert=False)
    return dict(options or {})


def check_saves_models(cls: type[Method]) -> None:
    """Raise :class:`ParameterError` when ``cls`` cannot save fitted models (its ``saves_models``)."""
    why = getattr(cls, "saves_models", True)
    if why is not True:
        raise ParameterError(f"method {cls.info.name!r} cannot save trained models"
                             + (f": {why}" if isinstance(why, str) else ""))


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
            raise ParameterError(f"{cls.info.name} has no hyper-parameter {key!r}{hint}; valid: "
                                 f"{', '.join(valid) or 'none (it takes no hyper-parameters)'}")
        params[key] = _coerce(cls, key, value, cls.default_params()[key])
    params.pop("random_state", None)
    cls.check_params(params)
    return params
