"""Single-dataset protocols of the literature, on the raw datasets.

* ``casme2-5class-loso`` / ``samm-5class-loso``: LOSO over CASME II (happiness, surprise, disgust,
  repression, others; 246 clips with the 2014 sheet, 249 with 2019: the sheet version is part of
  the dataset's fingerprint and options) or SAMM (anger, happiness, contempt, surprise, other;
  136 clips from 27 subjects).
* ``meranet3-holdout`` / ``meranet3-holdout-paper``: the MERANet paper's 3-class subsets (CASME II
  disgust/happiness/surprise, SAMM anger/happiness/other, CASME disgust/repression/tense,
  CAS(ME)^2 happiness/anger/disgust) with its hold-out fraction per dataset (25 % for CASME and
  CASME II, 20 % for CAS(ME)^2; 20 % for SAMM, which the paper does not state). ``-paper`` splits
  samples as the paper did (subjects shared: **leaky**); the other is subject-independent.
"""

from __future__ import annotations

from typing import Any, ClassVar

import pandas as pd

from mer_bench.protocol import Fold, ProtocolError
from mer_bench.protocols.holdout import SampleHoldout, SubjectHoldout
from mer_bench.protocols.loso import LOSO

__all__ = ["CASME2FiveClassLOSO", "SAMMFiveClassLOSO", "MERANet3Holdout", "MERANet3HoldoutPaper"]


class _DatasetLOSO(LOSO):
    dataset: ClassVar[str]
    class_scheme: ClassVar[str | None] = "5class"

    def folds(self, table: pd.DataFrame, seed: int = 0) -> list[Fold]:
        other = sorted(set(table["dataset"].astype(str)) - {self.dataset})
        if other:
            raise ProtocolError(f"{self.name} is a {self.dataset} protocol; the dataset has {other} clips")
        return super().folds(table, seed)


class CASME2FiveClassLOSO(_DatasetLOSO):
    """CASME II 5-class LOSO (the CASME II paper's protocol; SKD-TSTSAN's label order)."""

    name: ClassVar[str] = "casme2-5class-loso"
    summary: ClassVar[str] = "CASME II, 5 classes (happiness, surprise, disgust, repression, others), LOSO"
    default_dataset: ClassVar[str | None] = "casme2"
    dataset: ClassVar[str] = "casme2"


class SAMMFiveClassLOSO(_DatasetLOSO):
    """SAMM 5-class LOSO (anger, happiness, contempt, surprise, other)."""

    name: ClassVar[str] = "samm-5class-loso"
    summary: ClassVar[str] = "SAMM, 5 classes (anger, happiness, contempt, surprise, other), LOSO"
    default_dataset: ClassVar[str | None] = "samm"
    dataset: ClassVar[str] = "samm"


#: the MERANet paper's test fraction per dataset (SAMM: not stated; 0.2 assumed)
MERANET_TEST_SIZE = {"casme": 0.25, "casme2": 0.25, "casme2-cropped": 0.25, "casme^2": 0.2, "samm": 0.2}


class _MERANet3:
    class_scheme: ClassVar[str | None] = "meranet3"

    def __init__(self, test_size: float | None = None) -> None:
        self.test_size = test_size

    def options(self) -> dict[str, Any]:
        return {"test_size": self.test_size}

    def _fraction(self, table: pd.DataFrame) -> float:
        if self.test_size is not None:
            return self.test_size
        dbs = sorted(set(table["dataset"].astype(str)))
        if len(dbs) != 1 or dbs[0] not in MERANET_TEST_SIZE:
            raise ProtocolError(f"{self.name}: no paper test fraction for {dbs}; give --protocol-set test_size=F")
        return MERANET_TEST_SIZE[dbs[0]]


class MERANet3Holdout(_MERANet3, SubjectHoldout):
    """The MERANet 3-class subset, subject-independent hold-out (stratified; the seed picks it)."""

    name: ClassVar[str] = "meranet3-holdout"
    summary: ClassVar[str] = "MERANet paper's 3-class subsets, subject-independent hold-out (25 % / 20 %)"


class MERANet3HoldoutPaper(_MERANet3, SampleHoldout):
    """The MERANet 3-class subset split as the paper did: sample-level. **Leaky**."""

    name: ClassVar[str] = "meranet3-holdout-paper"
    summary: ClassVar[str] = "MERANet paper's 3-class subsets and sample-level split, as published (subjects shared)"
