"""The protocol contract: a protocol turns a dataset table into folds.

A protocol class has ``name``, ``leaky`` (``True`` when subjects can appear in both train and
test of one fold: results are labelled leaky everywhere), constructor options only, and
``folds(table, seed) -> list[Fold]``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd

__all__ = ["Fold", "Protocol", "ProtocolError"]


class ProtocolError(ValueError):
    """A protocol cannot split the given dataset (too few subjects, too few clips...)."""


@dataclass(frozen=True)
class Fold:
    """One train/test split. ``train`` and ``test`` are row positions into the dataset table."""

    name: str
    train: np.ndarray
    test: np.ndarray


class Protocol:
    """Base class; see the module docstring."""

    name: ClassVar[str]
    #: one line for ``mer-bench list protocols``
    summary: ClassVar[str] = ""
    leaky: ClassVar[bool] = False
    #: the dataset ``mer-bench run --protocol NAME`` uses when ``--dataset`` is not given
    #: (``None``: the embedded synthetic dataset)
    default_dataset: ClassVar[str | None] = None
    #: the class scheme the protocol needs (the ``classes`` option of raw datasets), or ``None``
    class_scheme: ClassVar[str | None] = None

    def options(self) -> dict[str, Any]:
        """Constructor options, recorded with every run."""
        return {}

    def folds(self, table: pd.DataFrame, seed: int = 0) -> list[Fold]:  # pragma: no cover - interface
        raise NotImplementedError
