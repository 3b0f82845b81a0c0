"""An example third-party mer-bench plugin: the nearest class mean of the apex frame.

Install it beside mer-bench (``pip install -e examples/nearest-mean-plugin``); then
``mer-bench list methods`` shows ``nearest-mean`` and ``mer-bench run --method nearest-mean`` runs it.
Nothing in mer-bench's repository names it: the entry point in ``pyproject.toml`` is all it takes.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from mer_bench.method import Method, MethodInfo

__all__ = ["NearestMean"]


class NearestMean(Method):
    """Nearest class mean of the apex frame ``(N, C, H, W)`` (Euclidean, on per-sample standardised
    pixels). Learned state: ``classes_``, ``means_`` ``(n_classes, C*H*W)`` (``inf`` for a class
    absent from training, so it is never predicted).
    """

    info: ClassVar[MethodInfo] = MethodInfo(
        name="nearest-mean", citation="example plugin (nearest class mean; no paper)", representation="apex",
        accepts=("flow", "dynamic", "mesti"), summary="example third-party plugin: nearest class mean of the apex")

    def __init__(self, temperature: float = 1.0, random_state: int = 0) -> None:
        self.temperature = temperature
        self.random_state = random_state

    @staticmethod
    def _flat(X: np.ndarray) -> np.ndarray:
        x = np.asarray(X, np.float64)
        if x.ndim != 4:
            raise ValueError(f"nearest-mean expects images (N, C, H, W), got shape {x.shape}")
        x = x.reshape(len(x), -1)
        return (x - x.mean(1, keepdims=True)) / (x.std(1, keepdims=True) + 1e-8)

    def fit(self, train) -> NearestMean:
        if train.y is None:
            raise ValueError("fit needs labelled samples")
        x = self._flat(train.X)
        self.classes_ = np.arange(train.n_classes)
        self.means_ = np.full((train.n_classes, x.shape[1]), np.inf)
        for c in np.unique(train.y):
            self.means_[c] = x[train.y == c].mean(0)
        return self

    def predict_proba(self, test) -> np.ndarray:
        x = self._flat(test.X)
        d = np.array([[np.sum((row - m) ** 2) / x.shape[1] for m in self.means_] for row in x])
        logits = -d / self.temperature
        logits -= np.max(logits, axis=1, keepdims=True)
        p = np.exp(logits)
        return p / p.sum(1, keepdims=True)

    def predict(self, test) -> np.ndarray:
        return self.predict_proba(test).argmax(1).astype(np.int64)
