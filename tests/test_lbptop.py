"""LBP-TOP: the vectorised features equal the per-voxel reference, known patterns, and the SVM
chooses C inside the training folds only."""

import numpy as np
import pytest

from mer_bench.methods.lbptop import LBPTOPSVM, lbp_top, lbp_top_reference, uniform_table
from mer_bench.testing import check_method, tiny_dataset


@pytest.mark.parametrize("radii,p,blocks", [((1, 1, 4), 4, 5), ((1, 1, 1), 8, 5), ((2, 2, 2), 8, 3),
                                            ((1, 1, 2), 16, 2), ((1.5, 1, 2), 8, 4)])
def test_vectorised_histograms_equal_the_reference(radii, p, blocks):
    clip = np.random.default_rng(p).integers(0, 256, (10, 21, 19)).astype(np.uint8)
    fast, ref = lbp_top(clip, radii, p, blocks), lbp_top_reference(clip, radii, p, blocks)
    n_bins = uniform_table(p)[1]
    assert fast.shape == (blocks * blocks * 3 * n_bins,)
    np.testing.assert_array_equal(fast, ref)


def test_uniform_mapping_sizes_and_known_patterns():
    assert uniform_table(4)[1] == 15 and uniform_table(8)[1] == 59  # uniform patterns: P(P-1)+3 bins
    table, n_bins = uniform_table(8)
    assert table[0b01010101] == n_bins - 1  # 8 transitions: non-uniform
    flat = lbp_top(np.full((10, 20, 20), 7.0), blocks=1)
    # every neighbour equals the centre (>=), so every code is all ones, one bin per plane
    hist = flat.reshape(3, 15)
    assert np.all(hist.max(axis=1) == 1.0) and np.all(hist.argmax(axis=1) == uniform_table(4)[0][15])
    # a ramp in time: XY codes unchanged, XT/YT codes differ from XY
    ramp = np.arange(10)[:, None, None] * np.ones((10, 20, 20))
    h = lbp_top(ramp, blocks=1).reshape(3, 15)
    assert not np.array_equal(h[0], h[1])


def test_bad_clips_are_refused_with_the_reason():
    with pytest.raises(ValueError, match=r"grey clip \(T, H, W\)"):
        lbp_top(np.zeros((4, 4)))
    with pytest.raises(ValueError, match="too small for radii"):
        lbp_top(np.zeros((8, 20, 20)), radii=(1, 1, 4))
    with pytest.raises(ValueError, match="expects clips"):
        LBPTOPSVM().features(np.zeros((2, 28, 28)))


def test_svm_chooses_C_on_training_subjects_only(monkeypatch):
    ds = tiny_dataset()
    t = ds.table()
    test_subject = t["subject"].iloc[0]
    train_idx = np.flatnonzero(t["subject"] != test_subject)
    test_idx = np.flatnonzero(t["subject"] == test_subject)
    train, test = ds.samples("clip", train_idx), ds.samples("clip", test_idx, with_labels=False)
    seen = []
    from sklearn.model_selection import GridSearchCV

    original = GridSearchCV.fit

    def spy(self, X, y=None, groups=None, **kw):
        seen.append(set(groups))
        return original(self, X, y, groups=groups, **kw)

    monkeypatch.setattr(GridSearchCV, "fit", spy)
    m = LBPTOPSVM().fit(train)
    assert seen and test_subject not in seen[0] and seen[0] == set(train.subject)
    assert m.C_ in m.C_grid and m.n_features_ == 1125
    assert set(m.predict(test)) <= {0, 1, 2}
    assert LBPTOPSVM(C=2.0).fit(train).C_ == 2.0


def test_lbptop_svm_passes_the_conformance_suite_p8():
    check_method(LBPTOPSVM, {"neighbours": 8, "radii": (1, 1, 1), "blocks": 4})
