"""Lazy, typed registries for methods, protocols and datasets.

Names map to ``"module:object"`` strings and are imported on first use, so importing the CLI
does not import torch. Built-in entries are listed below; third-party plugins come in through
the entry-point groups ``mer_bench.methods``, ``mer_bench.protocols`` and ``mer_bench.datasets``
(``name = "package.module:Object"`` in the plugin's ``pyproject.toml``).

Rules (after lm-evaluation-harness and timm, with the lessons of both):

* a duplicate name is an error: :meth:`Registry.register` raises :class:`DuplicateNameError`,
  and a plugin entry point that reuses a taken name is rejected and reported, never silently
  shadowing a method (in a benchmark, name identity is result identity);
* an unknown name raises :class:`UnknownNameError` with "did you mean" suggestions;
* a plugin that fails to import is reported by :meth:`Registry.broken` and ``mer-bench list``;
  the other entries keep working;
* :meth:`Registry.names` accepts shell wildcards (``"meranet*"``, ``"*3d*"``).
"""

from __future__ import annotations

import difflib
import fnmatch
import functools
import importlib
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

__all__ = ["Registry", "RegistryError", "UnknownNameError", "DuplicateNameError", "PluginLoadError",
           "METHODS", "PROTOCOLS", "DATASETS", "registry_for"]


class RegistryError(Exception):
    """Base class of registry errors."""


class UnknownNameError(RegistryError, KeyError):
    """An unknown name was asked for; the message lists close matches."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class DuplicateNameError(RegistryError):
    """A name was registered twice."""


class PluginLoadError(RegistryError):
    """A registered ``module:object`` target could not be imported."""


class _Entry:
    __slots__ = ("target", "obj", "origin", "error")

    def __init__(self, target: str | None, obj: Any = None, origin: str = "built-in") -> None:
        self.target = target
        self.obj = obj
        self.origin = origin
        self.error: str | None = None


@functools.lru_cache(maxsize=64)
def _module_classes(module_name: str) -> dict[str, Any] | None:
    """Top-level class definitions (``ast.ClassDef``) of a module's source, parsed once, without
    importing the module; ``None`` when its source cannot be found."""
    import ast
    import importlib.util

    try:
        spec = importlib.util.find_spec(module_name)
        tree = ast.parse(Path(spec.origin).read_text(encoding="utf-8"))
    except Exception:  # a missing parent package, a namespace package, no source...
        return None
    return {n.name: n for n in tree.body if isinstance(n, ast.ClassDef)}


def _target_of(obj: Any) -> str:
    return f"{obj.__module__}:{obj.__qualname__}"


class Registry:
    """A name -> object table whose objects are imported lazily.

    Args:
        kind: what is registered (``"method"``), used in messages.
        group: the entry-point group of third-party plugins.
        builtins: name -> ``"module:object"`` for the built-in entries.
    """

    def __init__(self, kind: str, group: str, builtins: dict[str, str]) -> None:
        self.kind = kind
        self.group = group
        self._entries: dict[str, _Entry] = {name: _Entry(target) for name, target in builtins.items()}
        self._rejected: dict[str, str] = {}
        self._plugins_loaded = False

    # -- registration ---------------------------------------------------------------------------
    def register(self, name: str, obj: Any, origin: str = "decorator") -> Any:
        """Register ``obj`` under ``name``; returns ``obj``.

        Re-registering the object a lazy built-in entry points to (which happens when that
        module is imported) fills in the entry; anything else under a taken name raises.

        Raises:
            DuplicateNameError: the name is taken by another object.
        """
        entry = self._entries.get(name)
        if entry is not None:
            same = entry.obj is obj or (entry.obj is None and entry.target == _target_of(obj))
            if not same:
                taken = entry.target or _target_of(entry.obj)
                raise DuplicateNameError(
                    f"{self.kind} name {name!r} is already registered ({taken}, {entry.origin}); "
                    f"cannot register {_target_of(obj)} under the same name")
            entry.obj = obj
            return obj
        self._entries[name] = _Entry(_target_of(obj), obj, origin)
        return obj

    def decorator(self, name: str) -> Callable[[Any], Any]:
        """``@registry.decorator("name")`` registers the decorated class or factory."""

        def wrap(obj: Any) -> Any:
            return self.register(name, obj)

        return wrap

    # -- discovery ------------------------------------------------------------------------------
    def _load_plugins(self) -> None:
        if self._plugins_loaded:
            return
        self._plugins_loaded = True
        try:
            eps = metadata.entry_points(group=self.group)
        except Exception as exc:  # pragma: no cover - broken metadata on the machine
            self._rejected[f"<{self.group}>"] = f"could not read entry points: {exc}"
            return
        claims: dict[str, list[tuple[str, str]]] = {}  # name -> (distribution, target) of each plugin entry
        for ep in eps:
            dist = getattr(getattr(ep, "dist", None), "name", "?")
            if ep.name in self._entries:
                taken = self._entries[ep.name]
                if ep.value == taken.target and taken.origin == "built-in":
                    continue  # our own distribution declaring a built-in entry
                key = ep.name if ep.name not in self._rejected else f"{ep.name} ({dist})"
                self._rejected[key] = (f"duplicate {self.kind} name {ep.name!r} from plugin {dist} "
                                       f"({ep.value}); already registered by {taken.origin} "
                                       f"({taken.target}). The plugin entry is ignored.")
                continue
            claims.setdefault(ep.name, [])
            if (dist, ep.value) not in claims[ep.name]:  # one distribution seen twice on sys.path counts once
                claims[ep.name].append((dist, ep.value))
        for name, who in claims.items():
            if len(who) == 1:
                self._entries[name] = _Entry(who[0][1], origin=f"plugin {who[0][0]}")
                continue
            # which one would win depends on the order of sys.path: the same name could run different
            # code on different machines, so neither is used
            self._rejected[name] = (f"{self.kind} name {name!r} is declared by several plugins: "
                                    f"{'; '.join(f'{d} ({t})' for d, t in who)}. Neither is used: uninstall one, "
                                    f"or ask its authors to rename it.")

    def _all(self) -> dict[str, _Entry]:
        self._load_plugins()
        return self._entries

    def names(self, pattern: str | None = None) -> list[str]:
        """Sorted registered names, optionally filtered by a shell wildcard (case-insensitive)."""
        names = sorted(self._all())
        if pattern:
            names = [n for n in names if fnmatch.fnmatch(n.lower(), pattern.lower())]
        return names

    def origin(self, name: str) -> str:
        """Where an entry came from: ``"built-in"``, ``"plugin <dist>"`` or ``"decorator"``."""
        return self._entry(name).origin

    def target(self, name: str) -> str:
        """The ``module:object`` string of an entry."""
        entry = self._entry(name)
        return entry.target or _target_of(entry.obj)

    def __contains__(self, name: object) -> bool:
        return name in self._all()

    def _entry(self, name: str) -> _Entry:
        entries = self._all()
        if name not in entries:
            if name in self._rejected:
                raise UnknownNameError(self._rejected[name])
            close = difflib.get_close_matches(name, list(entries), n=3, cutoff=0.5)
            hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
            raise UnknownNameError(
                f"unknown {self.kind} {name!r}.{hint} Available: {', '.join(sorted(entries)) or 'none'}. "
                f"See `mer-bench list {self.kind}s`.")
        return entries[name]

    def get(self, name: str) -> Any:
        """The registered object (imported on first use).

        Raises:
            UnknownNameError: no such name (with suggestions).
            PluginLoadError: the entry's module or object could not be imported.
        """
        entry = self._entry(name)
        if entry.obj is None:
            if entry.error is not None:
                raise PluginLoadError(entry.error)
            module_name, _, attr = entry.target.partition(":")
            try:
                obj = importlib.import_module(module_name)
                for part in attr.split(".") if attr else []:
                    obj = getattr(obj, part)
            except Exception as exc:
                entry.error = (f"{self.kind} {name!r} ({entry.origin}) could not be loaded from "
                               f"{entry.target}: {type(exc).__name__}: {exc}")
                raise PluginLoadError(entry.error) from exc
            entry.obj = obj
        return entry.obj

    def static_attrs(self, name: str, attrs: tuple[str, ...] = ("info",)) -> dict[str, Any] | None:
        """Class attributes of an entry read from its source without importing it (so listing
        methods does not import torch): literal assignments ``attr = <literal>`` or
        ``attr = SomeInfo(key=<literal>, ...)`` (then a dict of the keywords) in the class body.
        ``None`` when the entry is loaded already, its source cannot be found, or an attribute is
        not a literal there (the caller then imports the entry).
        """
        import ast

        entry = self._entry(name)
        if entry.obj is not None or entry.target is None:
            return None
        classes = _module_classes(entry.target.partition(":")[0])
        cls = classes.get(entry.target.partition(":")[2]) if classes else None
        if cls is None:
            return None
        out: dict[str, Any] = {}
        for node in cls.body:
            target = node.target if isinstance(node, ast.AnnAssign) else (
                node.targets[0] if isinstance(node, ast.Assign) and len(node.targets) == 1 else None)
            if not isinstance(target, ast.Name) or target.id not in attrs or node.value is None:
                continue
            if isinstance(node.value, ast.Call):  # keywords that are not literals are left out
                kw = {}
                for k in node.value.keywords:
                    try:
                        kw[k.arg] = ast.literal_eval(k.value)
                    except (ValueError, TypeError, SyntaxError):
                        continue
                out[target.id] = kw
            else:
                try:
                    out[target.id] = ast.literal_eval(node.value)
                except (ValueError, TypeError, SyntaxError):
                    return None
        return out if all(a in out for a in attrs) else None

    def static_params(self, name: str) -> tuple[dict[str, Any], dict[str, dict[str, Any]]] | None:
        """``(constructor defaults, presets)`` of a class entry read from its source without importing
        it (see :meth:`static_attrs`); ``None`` when they are not plain literals in its own class
        body (e.g. an inherited ``__init__``), so the caller imports the entry instead."""
        import ast

        entry = self._entry(name)
        if entry.target is None:
            return None
        module_name, _, attr = entry.target.partition(":")
        classes = _module_classes(module_name)
        if classes is None:
            return None

        def lit(node, depth=0):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "dict" \
                    and not node.args:
                return {k.arg: lit(k.value, depth) for k in node.keywords}
            if isinstance(node, ast.Dict):
                return {lit(k, depth): lit(v, depth) for k, v in zip(node.keys, node.values)}
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and depth < 2 \
                    and node.value.id in classes:  # e.g. presets = MERANet.presets
                return class_attr(classes[node.value.id], node.attr, depth + 1)
            return ast.literal_eval(node)

        def class_attr(cls, key, depth=0):
            for node in cls.body:
                target = node.target if isinstance(node, ast.AnnAssign) else (
                    node.targets[0] if isinstance(node, ast.Assign) and len(node.targets) == 1 else None)
                if isinstance(target, ast.Name) and target.id == key and node.value is not None:
                    return lit(node.value, depth)
            raise KeyError(key)

        cls = classes.get(attr)
        init = next((n for n in cls.body if isinstance(n, ast.FunctionDef) and n.name == "__init__"), None) \
            if cls is not None else None
        if init is None:
            return None
        try:
            args = init.args.args[1:]
            defaults = dict(zip([a.arg for a in args[len(args) - len(init.args.defaults):]],
                                [lit(d) for d in init.args.defaults]))
            defaults.update({a.arg: lit(d) for a, d in zip(init.args.kwonlyargs, init.args.kw_defaults)
                             if d is not None})
            try:
                presets = class_attr(cls, "presets")
            except KeyError:
                presets = {}
        except (ValueError, TypeError, SyntaxError, KeyError, RecursionError):
            return None
        return defaults, presets

    def broken(self, load: bool = True) -> dict[str, str]:
        """Entries that cannot be used: rejected duplicates, and (``load=True``) import failures."""
        out = dict(self._rejected)
        if load:
            for name in self.names():
                try:
                    self.get(name)
                except PluginLoadError as exc:
                    out[name] = str(exc)
        return out


_BUILTIN_METHODS = {
    "meranet": "mer_bench.methods.meranet:MERANet",
    "resnet3d18": "mer_bench.methods.meranet:ResNet3D18",
    "chance": "mer_bench.methods.baselines:Chance",
    "majority": "mer_bench.methods.baselines:Majority",
    "ststnet": "mer_bench.methods.ststnet:STSTNet",
    "offapexnet": "mer_bench.methods.offapexnet:OffApexNet",
    "flow-resnet18": "mer_bench.methods.timm_flow:FlowTimm",
    "lbptop-svm": "mer_bench.methods.lbptop:LBPTOPSVM",
    "learnet": "mer_bench.methods.learnet:LEARNet",
    "micro-attention": "mer_bench.methods.micro_attention:MicroAttention",
    "meganet": "mer_bench.methods.meganet:MEGANet",
    "microexpstcnn": "mer_bench.methods.microexpstcnn:MicroExpSTCNN",
    "rcn": "mer_bench.methods.rcn:RCN",
    "htnet": "mer_bench.methods.htnet:HTNet",
}
_BUILTIN_PROTOCOLS = {
    "loso": "mer_bench.protocols.loso:LOSO",
    "holdout": "mer_bench.protocols.holdout:SubjectHoldout",
    "holdout-sample": "mer_bench.protocols.holdout:SampleHoldout",
    "subject-kfold": "mer_bench.protocols.holdout:SubjectKFold",
    "megc2019-cde": "mer_bench.protocols.megc2019:MEGC2019CDE",
    "casme2-5class-loso": "mer_bench.protocols.single:CASME2FiveClassLOSO",
    "samm-5class-loso": "mer_bench.protocols.single:SAMMFiveClassLOSO",
    "meranet3-holdout": "mer_bench.protocols.single:MERANet3Holdout",
    "meranet3-holdout-paper": "mer_bench.protocols.single:MERANet3HoldoutPaper",
    "lodo": "mer_bench.protocols.lodo:LODO",
}
_BUILTIN_DATASETS = {
    "synthetic": "mer_bench.datasets.synthetic:SyntheticMER",
    "megc2019-flow": "mer_bench.datasets.megc2019:MEGC2019Flow",
    "casme": "mer_bench.datasets.casme:CASME",
    "casme2": "mer_bench.datasets.casme:CASME2",
    "casme2-cropped": "mer_bench.datasets.casme:CASME2Cropped",
    "casme^2": "mer_bench.datasets.casme:CASMESq",
    "samm": "mer_bench.datasets.samm:SAMM",
    "smic-hs": "mer_bench.datasets.smic:SMICHS",
    "smic-vis": "mer_bench.datasets.smic:SMICVIS",
    "smic-nir": "mer_bench.datasets.smic:SMICNIR",
    "casme3-a": "mer_bench.datasets.casme3:CASME3A",
    "megc2019-raw": "mer_bench.datasets.composite:MEGC2019Raw",
}

METHODS = Registry("method", "mer_bench.methods", _BUILTIN_METHODS)
PROTOCOLS = Registry("protocol", "mer_bench.protocols", _BUILTIN_PROTOCOLS)
DATASETS = Registry("dataset", "mer_bench.datasets", _BUILTIN_DATASETS)


def registry_for(kind: str) -> Registry:
    """The registry of ``"methods"``, ``"protocols"`` or ``"datasets"`` (singular accepted).

    Raises:
        UnknownNameError: any other kind.
    """
    table = {"method": METHODS, "protocol": PROTOCOLS, "dataset": DATASETS}
    key = kind.rstrip("s")
    if key not in table:
        raise UnknownNameError(f"unknown registry {kind!r}; choose methods, protocols or datasets")
    return table[key]
