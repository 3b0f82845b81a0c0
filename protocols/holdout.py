"""Single train/test hold-out splits.

* ``holdout`` — subject-independent: whole subjects go to train or test, the split stratified
  by class as far as subject groups allow (scikit-learn ``StratifiedGroupKFold``), seeded. Not
  leaky. Use several ``--seed`` values: one clip is worth several accuracy points on these sizes.
* ``subject-kfold`` — subject-independent K-fold cross-validation (``StratifiedGroupKFold``, K
  folds of whole subjects, stratified by class as far as subject groups allow, the partition
  seeded): every clip is tested once, as under LOSO, at K trainings instead of one per subject.
  The embedded dataset's ablation configuration uses it (many subjects; LOSO's cost grows with
  the square of the subject count). Subjects of one fold share a trained model, so their errors
  are not independent; the boards' subject-level intervals and tests treat them as independent,
  which is an approximation (LOSO gives each subject its own model).
* ``holdout-sample`` — the sample-level stratified split of the MERANet paper (section 4.3:
  75 % / 25 %), as written: **leaky**, since the same subject appears in train and test, which
  inflates results (``../shared/seeds/meranet-paper.txt``). Offered only to reproduce such
  papers; results carry the leaky label.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedGroupKFold, train_test_split

from mer_bench.data import subject_key
from mer_bench.protocol import Fold, Protocol, ProtocolError

__all__ = ["SubjectHoldout", "SubjectKFold", "SampleHoldout"]


def _check_fraction(test_size: float) -> None:
    if not 0 < test_size < 1:
        raise ProtocolError(f"test_size must be in (0, 1), got {test_size}")


class _Holdout(Protocol):
    def __init__(self, test_size: float = 0.25) -> None:
        self.test_size = test_size

    def options(self) -> dict[str, Any]:
        return {"test_size": self.test_size}

    def _fraction(self, table: pd.DataFrame) -> float:
        """The test fraction for ``table`` (subclasses may derive it from the dataset)."""
        return self.test_size


class SubjectHoldout(_Holdout):
    """Subject-disjoint, class-stratified hold-out of about ``test_size`` of the clips.

    Args:
        test_size: fraction of clips in the test side, in (0, 1): the data are split into
            ``round(1 / test_size)`` stratified subject-disjoint folds and the seed picks one.

    Raises (from :meth:`folds`):
        ProtocolError: fewer than 2 subjects, or an invalid ``test_size``.
    """

    name: ClassVar[str] = "holdout"
    summary: ClassVar[str] = "one subject-disjoint, class-stratified train/test split chosen by the seed"
    def folds(self, table: pd.DataFrame, seed: int = 0) -> list[Fold]:
        test_size = self._fraction(table)
        _check_fraction(test_size)
        groups = subject_key(table)
        n_groups = len(set(groups))
        if n_groups < 2:
            raise ProtocolError(f"a subject-independent hold-out needs at least 2 subjects; the dataset has {n_groups}")
        k = min(max(2, round(1 / test_size)), n_groups)
        y = table["label"].to_numpy()
        splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
        splits = list(splitter.split(np.zeros(len(y)), y, groups))
        # StratifiedGroupKFold's shuffle only breaks ties, so the seed also picks the test fold
        train, test = splits[int(np.random.default_rng(seed).integers(len(splits)))]
        return [Fold(f"holdout-seed{seed}", np.sort(train), np.sort(test))]


class SubjectKFold(Protocol):
    """Subject-independent, class-stratified K-fold cross-validation; see the module docstring.

    Args:
        k: number of folds, >= 2 (at most the number of subjects).

    Raises (from :meth:`folds`):
        ProtocolError: ``k < 2`` or more folds than subjects.
    """

    name: ClassVar[str] = "subject-kfold"
    summary: ClassVar[str] = "K folds of whole subjects (class-stratified, seeded); every clip tested once"

    def __init__(self, k: int = 6) -> None:
        self.k = k

    def options(self) -> dict[str, Any]:
        return {"k": self.k}

    def folds(self, table: pd.DataFrame, seed: int = 0) -> list[Fold]:
        if not isinstance(self.k, int) or self.k < 2:
            raise ProtocolError(f"subject-kfold needs k >= 2 folds, got {self.k!r}")
        groups = subject_key(table)
        n_groups = len(set(groups))
        if self.k > n_groups:
            raise ProtocolError(f"subject-kfold with k={self.k} needs at least {self.k} subjects; "
                                f"the dataset has {n_groups}")
        y = table["label"].to_numpy()
        # StratifiedGroupKFold's shuffle only breaks ties; permuting the subjects first makes the
        # seed choose the partition
        order = {g: i for i, g in enumerate(np.random.default_rng(seed).permutation(sorted(set(groups))))}
        codes = np.array([order[g] for g in groups])
        splitter = StratifiedGroupKFold(n_splits=self.k, shuffle=True, random_state=seed)
        return [Fold(f"fold{i + 1}", np.sort(train), np.sort(test))
                for i, (train, test) in enumerate(splitter.split(np.zeros(len(y)), y, codes))]


class SampleHoldout(_Holdout):
    """Sample-level stratified hold-out (MERANet paper 4.3). **Leaky**: subjects are shared.

    Args:
        test_size: fraction of clips in the test side, in (0, 1) (paper: 0.25).

    Raises (from :meth:`folds`):
        ProtocolError: an invalid ``test_size`` or a class too small to stratify.
    """

    name: ClassVar[str] = "holdout-sample"
    summary: ClassVar[str] = "sample-level stratified split of the MERANet paper (subjects shared)"
    leaky: ClassVar[bool] = True
    def folds(self, table: pd.DataFrame, seed: int = 0) -> list[Fold]:
        test_size = self._fraction(table)
        _check_fraction(test_size)
        idx = np.arange(len(table))
        try:
            train, test = train_test_split(idx, test_size=test_size, random_state=seed,
                                           stratify=table["label"].to_numpy())
        except ValueError as exc:
            raise ProtocolError(f"cannot stratify a sample-level hold-out: {exc}") from None
        return [Fold(f"holdout-sample-seed{seed}", np.sort(train), np.sort(test))]
