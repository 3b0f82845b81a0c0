"""Reference floors: ``chance`` (stratified random guessing) and ``majority``.

Every leaderboard shows them, so a reader sees what a method that learned nothing scores.
On the MEGC 2019 composite, all-negative gives accuracy .5656, UF1 .2408 and UAR .3333
(counted on ``combined_3class_gt.csv``); under pooled metrics chance's expected UAR is 1/C.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from mer_bench.data import Samples
from mer_bench.method import Method, MethodInfo, register_method

__all__ = ["Chance", "Majority"]


def _priors(train: Samples) -> np.ndarray:
    if train.y is None:
        raise ValueError("fit needs labelled samples")
    counts = np.bincount(train.y, minlength=train.n_classes).astype(float)
    return counts / counts.sum()


@register_method("chance")
class Chance(Method):
    """Predicts a random class drawn from the training class frequencies.

    Any input representation works (only ``len(test)`` is used). Learned state: ``classes_``,
    ``priors_`` ``(n_classes,)``. Seeded by ``random_state``.
    """

    info: ClassVar[MethodInfo] = MethodInfo(
        name="chance", citation="stratified random guessing (floor)", representation="none",
        summary="random labels drawn from the training class frequencies (a floor)")

    def __init__(self, random_state: int = 0) -> None:
        self.random_state = random_state

    def fit(self, train: Samples) -> Chance:
        self.priors_ = _priors(train)
        self.classes_ = np.arange(train.n_classes)
        return self

    def predict_proba(self, test: Samples) -> np.ndarray:
        """The training priors for every sample, ``(N, n_classes)``."""
        return np.tile(self.priors_, (len(test), 1))

    def predict(self, test: Samples) -> np.ndarray:
        rng = np.random.default_rng(self.random_state)
        return rng.choice(len(self.priors_), size=len(test), p=self.priors_).astype(np.int64)


@register_method("majority")
class Majority(Method):
    """Always predicts the most frequent training class. Learned state: ``classes_``, ``priors_``."""

    info: ClassVar[MethodInfo] = MethodInfo(
        name="majority", citation="majority class (floor)", representation="none",
        summary="always the most frequent training class (a floor)")

    def __init__(self, random_state: int = 0) -> None:
        self.random_state = random_state

    def fit(self, train: Samples) -> Majority:
        self.priors_ = _priors(train)
        self.classes_ = np.arange(train.n_classes)
        return self

    def predict_proba(self, test: Samples) -> np.ndarray:
        proba = np.zeros((len(test), len(self.priors_)))
        proba[:, int(np.argmax(self.priors_))] = 1.0
        return proba

    def predict(self, test: Samples) -> np.ndarray:
        return np.full(len(test), int(np.argmax(self.priors_)), dtype=np.int64)
