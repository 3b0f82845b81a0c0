import numpy as np
import pytest

from mer_bench.data import SCHEMA, DatasetError
from mer_bench.datasets.synthetic import CLASSES, SyntheticMER


def test_deterministic_and_seed_dependent():
    a = SyntheticMER(seed=3, n_subjects=3, cache=False)
    b = SyntheticMER(seed=3, n_subjects=3, cache=False)
    c = SyntheticMER(seed=4, n_subjects=3, cache=False)
    idx = np.arange(len(a.table()))
    assert a.table().equals(b.table())
    assert np.array_equal(a.load("clip", idx), b.load("clip", idx))
    assert a.fingerprint() == b.fingerprint() != c.fingerprint()
    assert not np.array_equal(a.load("apex", idx[:5]), c.load("apex", idx[:5]))


def test_cache_roundtrip(tmp_path, monkeypatch):
    monkeypatch.setenv("MER_BENCH_CACHE", str(tmp_path))
    fresh = SyntheticMER(seed=1, n_subjects=2)
    idx = np.arange(len(fresh.table()))
    clips = fresh.load("clip", idx)
    assert list(tmp_path.glob("synthetic-*.npz"))
    cached = SyntheticMER(seed=1, n_subjects=2)
    assert cached.table().equals(fresh.table())
    assert np.array_equal(cached.load("clip", idx), clips)
    # a corrupt cache is regenerated, not trusted
    next(tmp_path.glob("synthetic-*.npz")).write_bytes(b"garbage")
    assert np.array_equal(SyntheticMER(seed=1, n_subjects=2).load("clip", idx), clips)


def test_schema_shapes_and_annotations():
    ds = SyntheticMER(seed=0, n_subjects=12)
    t = ds.table()
    assert tuple(t.columns) == SCHEMA
    assert t["subject"].nunique() == 12
    assert (t["onset"] < t["apex"]).all() and (t["apex"] < t["offset"]).all() and (t["offset"] <= 7).all()
    assert set(t["emotion"]) == set(CLASSES)
    frac = t["label"].value_counts(normalize=True).sort_index().to_numpy()
    assert frac == pytest.approx([0.56, 0.25, 0.19], abs=0.08)
    x = ds.load("clip", np.arange(4))
    assert x.shape == (4, 3, 8, 32, 32) and x.dtype == np.float32 and 0 <= x.min() and x.max() <= 1
    assert ds.load("apex", np.arange(4)).shape == (4, 3, 32, 32)
    flow = ds.load("flow", np.arange(4))  # u, v, strain, min-max scaled per image like the MEGC composite
    assert flow.shape == (4, 3, 28, 28) and flow.dtype == np.float32
    assert np.allclose(flow.min(axis=(2, 3)), 0) and np.allclose(flow.max(axis=(2, 3)), 1)
    with pytest.raises(DatasetError, match="features"):
        ds.samples("features", np.arange(2))


def test_synthetic_flow_carries_the_class_motion():
    from mer_bench.datasets.synthetic import normal_flow

    ds = SyntheticMER(seed=0, n_subjects=12)
    t = ds.table()
    idx = np.arange(len(t))
    flow = ds.load("flow", idx)
    # a still clip has no flow: onset == apex gives u = v = 0 (constant channels scale to 0)
    clip = ds.load("clip", idx[:1])
    still = normal_flow(clip[:, :, 0], clip[:, :, 0])
    assert np.allclose(still[:, :2], 0)
    # the strain map concentrates where the class motion is (motion mask), more than elsewhere
    mask = ds.motion_mask(idx)[:, 2:30, 2:30]
    strain = flow[:, 2]
    inside = np.array([s[m].mean() for s, m in zip(strain, mask) if m.any()])
    outside = np.array([s[~m].mean() for s, m in zip(strain, mask) if m.any()])
    assert (inside > outside).mean() > 0.8


def test_motion_masks_match_the_class_region():
    ds = SyntheticMER(seed=0, n_subjects=4)
    t = ds.table()
    masks = ds.motion_mask(np.arange(len(t)))
    assert masks.shape == (len(t), 32, 32) and masks.dtype == bool
    assert masks.any(axis=(1, 2)).all(), "every clip has a localised motion"
    assert masks.mean() < 0.2, "motion is local, not global"
    rows = np.arange(32)[None, :, None]
    centre = (masks * rows).sum(axis=(1, 2)) / masks.sum(axis=(1, 2))
    brows = t["aus"].isin(["1+2", "4"]).to_numpy()
    mouth = t["aus"].isin(["12", "15"]).to_numpy()
    assert centre[brows].max() < centre[mouth].min(), "brow motions lie above mouth motions"


def test_learnable_but_not_trivial():
    """The class signal is in the change over time: apex - onset differs by class."""
    ds = SyntheticMER(seed=0, n_subjects=12)
    t = ds.table()
    x = ds.load("clip", np.arange(len(t))).mean(axis=1)  # grey (N, T, H, W)
    n = np.arange(len(t))
    diff = x[n, t["apex"].to_numpy()] - x[n, t["onset"].to_numpy()]
    upper = np.abs(diff[:, 4:14]).mean(axis=(1, 2))   # brow band
    lower = np.abs(diff[:, 20:28]).mean(axis=(1, 2))  # mouth band
    ratio = upper / (lower + 1e-9)
    surprise = (t["label"] == 2).to_numpy()
    positive = (t["label"] == 1).to_numpy()
    assert np.median(ratio[surprise]) > np.median(ratio[positive])
    # ...but not separable by this one statistic alone
    assert ratio[surprise].min() < ratio[positive].max()


def test_invalid_sizes():
    with pytest.raises(DatasetError):
        SyntheticMER(n_subjects=0)


def test_suggested_presets_in_order_of_preference():
    from mer_bench.registry import METHODS

    assert SyntheticMER.preset_for(METHODS.get("meranet")) == "testbed"
    assert SyntheticMER.preset_for(METHODS.get("resnet3d18")) == "testbed"
    assert SyntheticMER.preset_for(METHODS.get("offapexnet")) == "fast"  # no testbed: the next one
    assert SyntheticMER.preset_for(METHODS.get("chance")) is None


def test_coded_apex_is_sometimes_off_the_true_one_but_inside_the_clip():
    from mer_bench.datasets import synthetic

    t = SyntheticMER(seed=0, n_subjects=12).table()
    assert synthetic.GENERATOR_VERSION == 3 and 0 not in synthetic.DEVELOPMENT_SEEDS
    assert ((t["onset"] < t["apex"]) & (t["apex"] < t["offset"])).all()
