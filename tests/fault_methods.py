"""Test doubles for the fault suite: a method that misbehaves on request (registered on import)."""

import os
import time

import numpy as np

from mer_bench.method import Method, MethodInfo
from mer_bench.registry import METHODS


class FaultToy(Method):
    """Predicts class 0 with uniform probabilities, or breaks the method contract as ``fault`` says:
    ``fit-raises``, ``short`` (one label too few), ``float`` (labels 1.7), ``range`` (label 99),
    ``nan`` and ``unnormalised`` probabilities. ``$FAULT_TOY_SLEEP`` seconds of sleep per fit (not
    a hyper-parameter, so it does not change the run's identity)."""

    info = MethodInfo(name="fault-toy", citation="a test double", representation="none", summary="test double")

    def __init__(self, fault: str = "none", random_state: int = 0):
        self._store_params(locals())

    def fit(self, train):
        if self.fault == "fit-raises":
            raise RuntimeError("boom in fit")
        time.sleep(float(os.environ.get("FAULT_TOY_SLEEP", "0")))
        self.classes_ = np.arange(train.n_classes)
        return self

    def predict(self, test):
        y = np.zeros(len(test), dtype=np.int64)
        if self.fault == "short":
            return y[:-1]
        if self.fault == "float":
            return np.full(len(test), 1.7)
        if self.fault == "range":
            y[0] = 99
        return y

    def predict_proba(self, test):
        p = np.full((len(test), len(self.classes_)), 1 / len(self.classes_))
        if self.fault == "nan":
            p[0, 0] = np.nan
        if self.fault == "unnormalised":
            p = p * 3
        return p


METHODS.register("fault-toy", FaultToy)
