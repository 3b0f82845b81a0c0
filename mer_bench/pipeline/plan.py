"""Planning a run: names and options resolved and checked, the run's identity, before any work.

``prepare`` is the one entry point of the CLI and the Python API: it resolves the method,
protocol and dataset (the protocol's own dataset when none is given), hyper-parameters,
options and seeds, checks that the protocol can split the dataset for every seed, and returns
a :class:`Prepared` plan whose :class:`RunSpec` s carry each run's identity
(:func:`config_hash` + seed). Nothing is trained or written here.
"""

from __future__ import annotations

import hashlib
import inspect
import json
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import numpy as np

from mer_bench.data import DatasetError
from mer_bench.method import REPRESENTATIONS, ParameterError, check_options, resolve_params
from mer_bench.protocol import ProtocolError
from mer_bench.registry import DATASETS, METHODS, PROTOCOLS

__all__ = ["RunSpec", "Prepared", "prepare", "config_hash", "check_seeds", "default_dataset", "Selection",
           "SELECTIONS", "MAX_SEED", "NO_EPOCHS", "selection_label"]


class Selection(str, Enum):
    """How the evaluated model of a fold is chosen (stored as its code, ``selection_code``)."""

    #: the fixed last epoch: leak-free, the default
    LAST = "last"
    #: the epoch that scores best on the test subject's clips: LEAKY, for reproducing published practice
    BEST_ON_TEST = "best-on-test"

    @property
    def label(self) -> str:
        """The words boards and the store's ``selection`` column use."""
        return SELECTIONS[self.value]


#: selection code -> words (``prepare(selection="both")``: one training per fold gives both runs,
#: ``last`` and ``best-on-test``, to measure the inflation of test-set epoch selection)
SELECTIONS = {"last": "last epoch", "best-on-test": "best epoch on the test subject (LEAKY)"}
#: the selection of a run whose method has no epochs (a floor, an SVM): what terminal, JSON and board say
NO_EPOCHS = "n/a (no training epochs)"


def selection_label(code: str, trains_epochs: bool = True) -> str:
    """The words for a run's model selection, one label everywhere (the run's table, ``--json``,
    boards): :data:`SELECTIONS` of ``code``, or :data:`NO_EPOCHS` for a last-epoch run of a method
    that does not train in epochs."""
    return NO_EPOCHS if code == "last" and not trains_epochs else SELECTIONS[code]


def default_dataset(protocol: str) -> str:
    """The dataset a protocol runs on when none is named: its ``default_dataset`` (e.g.
    ``megc2019-flow`` for ``megc2019-cde``), else the embedded ``synthetic``."""
    return getattr(PROTOCOLS.get(protocol), "default_dataset", None) or "synthetic"


@dataclass(frozen=True)
class RunSpec:
    """One fully resolved run: what is hashed into its identity."""

    method: str
    dataset: str
    protocol: str
    seed: int
    params: dict[str, Any]
    preset: str | None
    dataset_options: dict[str, Any]
    dataset_fingerprint: str
    protocol_options: dict[str, Any]
    leaky: bool
    selection: str = "last"

    @property
    def config_hash(self) -> str:
        extra = {} if self.selection == "last" else {"selection": self.selection}
        return config_hash(self.method, self.params, self.dataset, self.dataset_options, self.dataset_fingerprint,
                           self.protocol, {**self.protocol_options, **extra})

    @property
    def run_id(self) -> str:
        return f"{self.config_hash}-s{self.seed}"


def config_hash(method: str, params: dict, dataset: str, dataset_options: dict, fingerprint: str,
                protocol: str, protocol_options: dict) -> str:
    """12 hex digits identifying a configuration (everything but the seed and the device)."""
    blob = json.dumps({"method": method, "params": params, "dataset": dataset, "dataset_options": dataset_options,
                       "fingerprint": fingerprint, "protocol": protocol, "protocol_options": protocol_options},
                      sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


@dataclass
class Prepared:
    """A checked run plan: the objects it needs and the resolved specs."""

    method_cls: type
    dataset: Any
    protocol: Any
    specs: list[RunSpec]
    representation: str = "none"
    #: constructor arguments of the dataset and protocol (what a remote worker needs to rebuild them)
    dataset_kwargs: dict[str, Any] = field(default_factory=dict)
    protocol_kwargs: dict[str, Any] = field(default_factory=dict)
    #: seed -> the protocol's folds (computed once, when the plan is checked)
    folds: dict[int, list] = field(default_factory=dict)


def prepare(method: str, protocol: str = "loso", dataset: str | None = None, seeds: list[int] | None = None,
            overrides: dict[str, Any] | None = None, preset: str | None = None,
            dataset_options: dict[str, Any] | None = None,
            protocol_options: dict[str, Any] | None = None, selection: str = "last") -> Prepared:
    """Resolve names and hyper-parameters and check that the run can start.

    Args:
        dataset: a registered dataset; ``None``: :func:`default_dataset` of the protocol.
        selection: a key of :data:`SELECTIONS`. ``"best-on-test"`` hands each fold's *labelled*
            test samples to the method to keep its best epoch: the run is marked leaky.

    Raises:
        UnknownNameError, PluginLoadError: a bad method/protocol/dataset name or plugin.
        ParameterError: an invalid override or preset.
        DatasetError, ProtocolError: the dataset cannot feed the method or the protocol.
    """
    method_cls = METHODS.get(method)
    seeds = check_seeds(seeds)
    dataset = dataset or default_dataset(protocol)
    protocol_cls = PROTOCOLS.get(protocol)
    protocol_obj = protocol_cls(**check_options(protocol_cls, protocol_options, "--protocol-set"))
    dataset_cls = DATASETS.get(dataset)
    dataset_options = check_options(dataset_cls, dataset_options, "--dataset-set")
    scheme = getattr(protocol_obj, "class_scheme", None)
    if scheme is not None:  # the protocol fixes the class scheme of datasets that have one
        # an __init__ may pass **kwargs to its base: look along the class hierarchy
        if not any("classes" in inspect.signature(c.__init__).parameters
                   for c in dataset_cls.__mro__ if "__init__" in vars(c)):
            raise ProtocolError(f"protocol {protocol!r} needs a dataset with class schemes (raw datasets such as "
                                f"casme2, samm); {dataset!r} has none")
        if dataset_options.setdefault("classes", scheme) != scheme:
            raise ProtocolError(f"protocol {protocol!r} uses the {scheme!r} classes, not "
                                f"{dataset_options['classes']!r}")
    dataset_obj = dataset_cls(**dataset_options)
    if selection not in (*SELECTIONS, "both"):
        raise ParameterError(f"unknown model selection {selection!r}; choose {' or '.join(SELECTIONS)}")
    if selection != "last" and not method_cls.info.supports_epoch_selection:
        raise ParameterError(f"method {method!r} has no epochs to select; --select-epoch {selection} does not apply")
    info = method_cls.info
    rep = info.choose_representation(dataset_obj.representations)
    if rep is None:
        wanted = " or ".join(repr(r) for r in (info.representation, *info.accepts))
        wanted_set = {info.representation, *info.accepts}
        able = []
        for name in DATASETS.names():
            try:
                if wanted_set & set(getattr(DATASETS.get(name), "representations", ())):
                    able.append(name)
            except Exception:  # a broken plugin must not hide the real error
                continue
        raise DatasetError(
            f"method {method!r} needs the {wanted} representation ({REPRESENTATIONS[info.representation]}), which "
            f"dataset {dataset!r} does not provide (it provides {', '.join(dataset_obj.representations)}). Datasets "
            f"that compute it: {', '.join(able) or 'none installed'} (raw frame datasets preprocess it from the frames "
            f"and cache it; e.g. --dataset megc2019-raw for the composite's clips)")
    if preset is None:
        preset = dataset_obj.preset_for(method_cls)
    params = resolve_params(method_cls, preset, overrides)
    table = dataset_obj.table()
    folds = {seed: protocol_obj.folds(table, seed) for seed in seeds}  # protocol feasibility before any training
    selections = ["last", "best-on-test"] if selection == "both" else [selection]
    # the data as this representation sees it (e.g. the composite's landmarks enter only "regions" runs)
    fingerprint = dataset_obj.fingerprint_for(rep) if hasattr(dataset_obj, "fingerprint_for") \
        else dataset_obj.fingerprint()
    specs = [RunSpec(method, dataset, protocol, seed, params, preset, dataset_obj.options(), fingerprint,
                     protocol_obj.options(), bool(protocol_obj.leaky) or sel != "last", sel)
             for seed in seeds for sel in selections]
    return Prepared(method_cls, dataset_obj, protocol_obj, specs, rep, dict(dataset_options),
                    dict(protocol_options or {}), folds)


#: the largest run seed: fold seeds ``seed * 1000 + fold_index`` must fit the 32-bit seeds that
#: numpy's ``RandomState`` and scikit-learn take (``2**32 - 1``), for up to 1000 folds
MAX_SEED = (2**32 - 1 - 999) // 1000


def check_seeds(seeds: list[int] | None) -> list[int]:
    """The run seeds, duplicates dropped (``[0]`` when none).

    Raises:
        ParameterError: a seed that is not an integer in ``0..MAX_SEED``.
    """
    out = []
    for seed in seeds or [0]:
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
            raise ParameterError(f"--seed must be a whole number, got {seed!r}")
        if not 0 <= seed <= MAX_SEED:
            raise ParameterError(f"--seed {seed}: seeds run from 0 to {MAX_SEED} (each fold is seeded with "
                                 f"seed * 1000 + fold, which must fit a 32-bit seed)")
        out.append(int(seed))
    return list(dict.fromkeys(out))
