import numpy as np
import pandas as pd
import pytest

from mer_bench.protocol import ProtocolError
from mer_bench.registry import PROTOCOLS
from mer_bench.testing import tiny_dataset


@pytest.fixture(scope="module")
def table():
    return tiny_dataset().table()


def test_loso_invariants(table):
    folds = PROTOCOLS.get("loso")().folds(table)
    subjects = table["subject"].to_numpy()
    assert len(folds) == len(set(subjects))
    tested = np.concatenate([f.test for f in folds])
    assert sorted(tested.tolist()) == list(range(len(table)))  # every clip tested exactly once
    for f in folds:
        assert set(subjects[f.train]).isdisjoint(subjects[f.test])
        assert len(set(subjects[f.test])) == 1 and f.name == subjects[f.test][0]
        assert len(f.train) + len(f.test) == len(table)


def test_loso_needs_two_subjects(table):
    one = table[table["subject"] == table["subject"].iloc[0]]
    with pytest.raises(ProtocolError, match="at least 2 subjects"):
        PROTOCOLS.get("loso")().folds(one)


def test_loso_separates_same_subject_name_across_databases():
    t = pd.DataFrame({"dataset": ["a", "a", "b", "b"], "subject": ["s1", "s1", "s1", "s2"], "label": [0, 1, 0, 1]})
    folds = PROTOCOLS.get("loso")().folds(t)
    assert [f.name for f in folds] == ["a/s1", "b/s1", "b/s2"]


def test_subject_holdout_is_disjoint_and_seeded(table):
    proto = PROTOCOLS.get("holdout")()
    assert not proto.leaky
    subjects = table["subject"].to_numpy()
    (f0,) = proto.folds(table, seed=0)
    assert set(subjects[f0.train]).isdisjoint(subjects[f0.test])
    assert len(f0.train) + len(f0.test) == len(table) and len(f0.test) > 0
    (again,) = proto.folds(table, seed=0)
    assert np.array_equal(f0.test, again.test)
    tests = {tuple(proto.folds(table, seed=s)[0].test) for s in range(6)}
    assert len(tests) > 1, "different seeds must give different splits"


def test_sample_holdout_is_leaky_and_stratified(table):
    proto = PROTOCOLS.get("holdout-sample")(test_size=0.25)
    assert proto.leaky
    (f,) = proto.folds(table, seed=1)
    assert len(f.test) == pytest.approx(0.25 * len(table), abs=1)
    assert set(f.train).isdisjoint(f.test)
    y = table["label"].to_numpy()
    assert set(y[f.test]) == set(y)


@pytest.mark.parametrize("name", ["holdout", "holdout-sample"])
def test_bad_test_size(table, name):
    with pytest.raises(ProtocolError, match="test_size"):
        PROTOCOLS.get(name)(test_size=1.5).folds(table)


def test_meranet3_holdouts_use_the_paper_fraction_per_dataset():
    n = 120
    table = pd.DataFrame({"dataset": "casme2", "subject": [f"sub{i % 12:02d}" for i in range(n)],
                          "label": [i % 3 for i in range(n)]})
    paper = PROTOCOLS.get("meranet3-holdout-paper")()
    (fold,) = paper.folds(table, 0)
    assert len(fold.test) == 30 and paper.leaky  # 25 % of the clips, subjects shared
    (fold,) = PROTOCOLS.get("meranet3-holdout")().folds(table, 0)
    assert not set(table["subject"].iloc[fold.train]) & set(table["subject"].iloc[fold.test])
    with pytest.raises(ProtocolError, match="no paper test fraction"):
        paper.folds(table.assign(dataset="smic"), 0)
    assert len(PROTOCOLS.get("meranet3-holdout-paper")(test_size=0.5).folds(table.assign(dataset="smic"), 0)[0].test) \
        == 60


def test_lodo_holds_out_each_database():
    table = pd.DataFrame({"dataset": ["casme2"] * 3 + ["samm"] * 2 + ["smic"] * 4, "subject": list("abcdefghi"),
                          "label": [0, 1, 2] * 3})
    folds = PROTOCOLS.get("lodo")().folds(table)
    assert [f.name for f in folds] == ["casme2", "samm", "smic"]
    assert [len(f.test) for f in folds] == [3, 2, 4]
    assert all(set(table["dataset"].iloc[f.train]).isdisjoint(set(table["dataset"].iloc[f.test])) for f in folds)
    with pytest.raises(ProtocolError, match="at least 2 databases"):
        PROTOCOLS.get("lodo")().folds(table[table["dataset"] == "smic"])


def test_subject_kfold_tests_every_clip_once_with_whole_subjects():
    from mer_bench.datasets.synthetic import SyntheticMER

    table = SyntheticMER(seed=0, n_subjects=9, min_clips=4, max_clips=6, cache=False).table()
    proto = PROTOCOLS.get("subject-kfold")(k=3)
    assert proto.options() == {"k": 3} and not proto.leaky
    partitions = []
    for seed in (0, 1, 2):
        folds = proto.folds(table, seed)
        assert len(folds) == 3
        tested = np.concatenate([f.test for f in folds])
        assert sorted(tested) == list(range(len(table)))  # every clip tested exactly once
        for f in folds:
            train_s, test_s = set(table["subject"].iloc[f.train]), set(table["subject"].iloc[f.test])
            assert not train_s & test_s and len(f.train) + len(f.test) == len(table)
        partitions.append(frozenset(frozenset(table["subject"].iloc[f.test]) for f in folds))
    assert len(set(partitions)) > 1, "the seed chooses the partition"
    assert proto.folds(table, 1)[0].test.tolist() == proto.folds(table, 1)[0].test.tolist()  # deterministic
    with pytest.raises(ProtocolError, match="at least 10 subjects"):
        PROTOCOLS.get("subject-kfold")(k=10).folds(table, 0)
    with pytest.raises(ProtocolError, match="k >= 2"):
        PROTOCOLS.get("subject-kfold")(k=1).folds(table, 0)
