import numpy as np
import pytest
from sklearn.metrics import f1_score, recall_score

from mer_bench.metrics import AbsentClassError, breakdown, confusion_matrix, pooled_scores


def test_hand_computed_case():
    # truth: 0 0 0 1 1 2 ; pred: 0 0 1 1 2 2
    y = [0, 0, 0, 1, 1, 2]
    p = [0, 0, 1, 1, 2, 2]
    s = pooled_scores(y, p, 3)
    # class 0: tp2 fp0 fn1 -> f1 4/5, recall 2/3, precision 1
    # class 1: tp1 fp1 fn1 -> f1 2/4, recall 1/2, precision 1/2
    # class 2: tp1 fp1 fn0 -> f1 2/3, recall 1,   precision 1/2
    assert s["uf1"] == pytest.approx((4 / 5 + 1 / 2 + 2 / 3) / 3)
    assert s["uar"] == pytest.approx((2 / 3 + 1 / 2 + 1) / 3)
    assert s["macro_precision"] == pytest.approx((1 + 1 / 2 + 1 / 2) / 3)
    assert s["accuracy"] == pytest.approx(4 / 6)
    assert s["confusion"] == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
    assert s["per_class"]["1"]["support"] == 2


def test_pooled_is_not_mean_of_folds():
    # two folds; pooling differs from averaging per-fold macro F1
    y1, p1 = [0, 0, 1], [0, 0, 0]
    y2, p2 = [1, 2, 2], [1, 2, 1]
    pooled = pooled_scores(y1 + y2, p1 + p2, 3)["uf1"]
    assert pooled == pytest.approx(f1_score(y1 + y2, p1 + p2, average="macro", labels=[0, 1, 2]))
    per_fold = np.mean([f1_score(a, b, average="macro", labels=[0, 1, 2], zero_division=0)
                        for a, b in ((y1, p1), (y2, p2))])
    assert abs(pooled - per_fold) > 0.05


def test_uar_is_recall_not_precision():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 200)
    p = np.where(rng.random(200) < 0.6, y, rng.integers(0, 3, 200))
    p[:30] = 0  # skew predictions so precision and recall differ
    s = pooled_scores(y, p, 3)
    assert s["uar"] == pytest.approx(recall_score(y, p, average="macro"))
    assert s["uf1"] == pytest.approx(f1_score(y, p, average="macro"))
    assert s["uar"] != pytest.approx(s["macro_precision"])


def test_absent_class_policies():
    y = [0, 0, 1, 1]          # class 2 has no true sample
    p = [0, 1, 1, 2]
    with pytest.raises(AbsentClassError, match="2"):
        pooled_scores(y, p, 3)
    zero = pooled_scores(y, p, 3, absent="zero")
    excl = pooled_scores(y, p, 3, absent="exclude")
    assert zero["absent_classes"] == excl["absent_classes"] == ["2"]
    # recalls: class0 1/2, class1 2/3... here class1: tp1 fn1 -> 1/2
    assert excl["uar"] == pytest.approx((1 / 2 + 1 / 2) / 2)
    assert zero["uar"] == pytest.approx((1 / 2 + 1 / 2 + 0) / 3)
    # f1 class0: tp1 fp0 fn1 -> 2/3; class1: tp1 fp1 fn1 -> 1/2; class2: tp0 fp1 fn0 -> 0
    assert zero["uf1"] == pytest.approx((2 / 3 + 1 / 2 + 0) / 3)
    assert excl["uf1"] == pytest.approx((2 / 3 + 1 / 2) / 2)


def test_bad_labels_and_lengths():
    with pytest.raises(ValueError, match="outside"):
        confusion_matrix([0, 3], [0, 1], 3)
    with pytest.raises(ValueError, match="labels"):
        confusion_matrix([0, 1], [0], 3)
    with pytest.raises(ValueError, match="no predictions"):
        pooled_scores([], [], 3)


def test_breakdown_per_group():
    y = [0, 1, 2, 0, 1, 2]
    p = [0, 1, 2, 1, 1, 2]
    g = ["a", "a", "a", "b", "b", "b"]
    out = breakdown(y, p, g, 3)
    assert list(out) == ["Full", "a", "b"]
    assert out["a"]["uf1"] == pytest.approx(1.0)
    assert out["b"]["n"] == 3 and out["b"]["uar"] == pytest.approx(2 / 3)
