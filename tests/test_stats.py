"""Statistics against known results; a method compared with itself is never significant; bad
input is explained, not scored."""

from pathlib import Path

import numpy as np
import pytest

from mer_bench import stats

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "megc2019-composite"


def _fake_run(seed=0, n_subjects=20, acc=0.7):
    rng = np.random.default_rng(seed)
    subjects = np.repeat([f"s{i:02d}" for i in range(n_subjects)], 8)
    y = rng.integers(0, 3, len(subjects))
    pred = np.where(rng.random(len(y)) < acc, y, rng.integers(0, 3, len(y)))
    return y, pred, subjects


def test_stats_imports_without_torch():
    import subprocess
    import sys

    code = "import sys, mer_bench.stats; assert 'torch' not in sys.modules"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_holm_matches_the_textbook_example():
    reject, adj = stats.holm([0.01, 0.04, 0.03, 0.005])
    # sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1 -> 0.02, 0.03, 0.06, 0.04 -> monotone 0.06
    np.testing.assert_allclose(adj, [0.03, 0.06, 0.06, 0.02])
    assert reject.tolist() == [True, False, False, True]


def test_mcnemar_exact_binomial():
    y = np.zeros(12, int)
    a = np.array([0] * 10 + [1] * 2)  # a right on 10 clips b gets wrong, b right on the 2 a gets wrong
    b = np.array([1] * 10 + [0] * 2)
    assert stats.mcnemar_test(y, a, b) == pytest.approx(2 * (1 + 12 + 66) / 4096)


def test_cluster_bootstrap_on_the_published_ststnet_log():
    if not DATA.is_dir():
        pytest.skip(f"MEGC 2019 composite not found at {DATA} (licensed data)")
    from mer_bench.datasets.megc2019 import MEGC2019Flow
    from mer_bench.importers import read_megc_log

    log = read_megc_log(DATA / "ststnet_logfile.txt")
    keys = [MEGC2019Flow(data_root=str(DATA)).canonical_key(r.db, r.subject, r.clip) for r in log]
    subjects = np.array([f"{k[0]}/{k[1]}" for k in keys])
    strata = np.array([k[0] for k in keys])
    y, p = np.array([r.y_true for r in log]), np.array([r.y_pred for r in log])
    ci = stats.cluster_bootstrap_ci(y, p, subjects, 3, "uf1", n_resamples=5000)
    assert ci.estimate == pytest.approx(0.7353, abs=1e-4) and ci.n_clusters == 68 and not ci.few_clusters
    # the STSTNet log: .7353 [.669, .791] (percentile, B = 5000, measured once);
    # another random stream moves the ends a little
    assert ci.low == pytest.approx(0.669, abs=0.012) and ci.high == pytest.approx(0.791, abs=0.012)
    uar = stats.cluster_bootstrap_ci(y, p, subjects, 3, "uar", strata=strata, n_resamples=5000)
    assert uar.estimate == pytest.approx(0.7186, abs=1e-4)
    assert uar.low == pytest.approx(0.656, abs=0.012) and uar.high == pytest.approx(0.774, abs=0.012)
    assert len(y) == 442


def test_a_method_compared_with_itself_is_never_significant():
    y, p, s = _fake_run()
    c = stats.paired_comparison(y, p, p, s, 3, n_resamples=2000)
    assert c.difference == 0 and c.low == 0 and c.high == 0 and c.p_value == 1.0
    bayes = stats.bayesian_signed_rank(np.linspace(0.5, 0.8, 12), np.linspace(0.5, 0.8, 12), rope=0.01,
                                       n_samples=5000)
    assert bayes["p_equivalent"] == 1.0


def test_paired_comparison_detects_a_real_difference_and_not_noise():
    y, good, s = _fake_run(acc=0.9, n_subjects=30)
    _, bad, _ = _fake_run(seed=1, acc=0.4, n_subjects=30)
    c = stats.paired_comparison(y, good, bad, s, 3, n_resamples=2000)
    assert c.difference > 0.2 and c.low > 0 and c.p_value < 0.01



def test_paired_randomisation_test_holds_its_level_under_the_null():
    """Two runs of the same quality (independent errors): about 5 % of comparisons reject at .05."""
    rng = np.random.default_rng(7)
    rejections = 0
    for _ in range(200):
        y, a, s = _fake_run(seed=int(rng.integers(1 << 30)), acc=0.7)
        b = np.where(rng.random(len(y)) < 0.7, y, rng.integers(0, 3, len(y)))
        rejections += stats.paired_comparison(y, a, b, s, 3, n_resamples=400, seed=1).p_value < 0.05
    assert 2 <= rejections <= 20  # 10 expected


def test_wilcoxon_holm_and_ranks():
    rng = np.random.default_rng(0)
    base = rng.random(8)
    table = np.stack([base + 0.2, base + 0.1 + rng.normal(0, 0.001, 8), base], axis=1)
    p, ranks = stats.wilcoxon_holm(table)
    assert ranks.tolist() == [1.0, 2.0, 3.0]
    assert p[0, 2] < 0.05 and p[0, 0] == 1 and np.allclose(p, p.T)
    # scipy's documented example (scipy.stats.wilcoxon): 15 paired differences, two-sided p = 0.0413;
    # with two methods there is one pair, so Holm leaves it unchanged
    d = np.array([6, 8, 14, 16, 23, 24, 28, 29, 41, -48, 49, 56, 60, -67, 75])
    p2, _ = stats.wilcoxon_holm(np.stack([d + 100.0, np.full(15, 100.0)], axis=1))
    assert p2[0, 1] == pytest.approx(0.0413, abs=1e-3)
    with pytest.raises(stats.StatsError, match="fewer than 5"):
        stats.wilcoxon_holm(table[:3])


def test_bayesian_signed_rank_sees_a_clear_win():
    a = np.linspace(0.6, 0.9, 15)
    r = stats.bayesian_signed_rank(a, a - 0.05, rope=0.01, n_samples=5000)
    assert r["p_a_better"] > 0.95 and sum(r.values()) == pytest.approx(1)
    r = stats.bayesian_signed_rank(a, a - 0.005, rope=0.01, n_samples=5000)
    assert r["p_equivalent"] > 0.95


def test_bad_input_is_explained():
    y, p, s = _fake_run()
    with pytest.raises(stats.StatsError, match="at least 2 subjects"):
        stats.cluster_bootstrap_ci(y, p, np.full(len(y), "s01"), 3)
    with pytest.raises(stats.StatsError, match="not on the same samples"):
        stats.paired_comparison(y, p, p, s, 3, sample_ids_a=np.arange(len(y)), sample_ids_b=np.arange(len(y))[::-1])
    with pytest.raises(stats.StatsError, match="different numbers of predictions"):
        stats.paired_comparison(y, p, p[:-1], s, 3)
    few = stats.cluster_bootstrap_ci(*_fake_run(n_subjects=5), 3, n_resamples=500)
    assert few.few_clusters and few.low <= few.estimate <= few.high


def test_several_seeds_give_the_seed_mean_and_one_interval():
    y, a, s = _fake_run(acc=0.8)
    _, b, _ = _fake_run(seed=5, acc=0.8)
    b = np.where(np.random.default_rng(9).random(len(y)) < 0.8, y, b)
    both = stats.cluster_bootstrap_ci(y, np.stack([a, b]), s, 3, n_resamples=2000)
    one_a = stats.cluster_bootstrap_ci(y, a, s, 3, n_resamples=2000)
    one_b = stats.cluster_bootstrap_ci(y, b, s, 3, n_resamples=2000)
    assert both.estimate == pytest.approx((one_a.estimate + one_b.estimate) / 2)
    assert both.low <= both.estimate <= both.high
    c = stats.paired_comparison(y, np.stack([a, b]), np.stack([a, b]), s, 3, n_resamples=500)
    assert c.difference == 0 and c.p_value == 1.0


def test_mean_over_different_splits():
    runs = [_fake_run(seed=k, n_subjects=6) for k in range(3)]
    ci = stats.split_mean_ci(runs, 3, "uf1", n_resamples=1000)
    singles = [stats.cluster_bootstrap_ci(*r, 3, n_resamples=1000).estimate for r in runs]
    assert ci.estimate == pytest.approx(np.mean(singles)) and ci.low <= ci.estimate <= ci.high
    assert ci.n_clusters == 18 and ci.few_clusters
    with pytest.raises(stats.StatsError, match="1 subject"):
        stats.split_mean_ci([_fake_run(n_subjects=1)], 3)


def _pilot(n_subjects=12, clips=16, acc=0.85, disagree=0.1, seed=0):
    """Two runs of one configuration: the same errors except on a fraction ``disagree`` of clips."""
    rng = np.random.default_rng(seed)
    subjects = np.repeat([f"s{i:02d}" for i in range(n_subjects)], clips)
    y = rng.integers(0, 3, len(subjects))
    p1 = np.where(rng.random(len(y)) < acc, y, (y + 1) % 3)
    p2 = np.where(rng.random(len(y)) < disagree, np.where(p1 == y, (y + 2) % 3, y), p1)
    return y, p1, p2, subjects


def test_power_grows_with_subjects_and_is_alpha_without_an_effect():
    y, p1, p2, subjects = _pilot()
    pw = stats.paired_power(y, p1, p2, subjects, 3, effect=0.03, n_subjects=(12, 96), n_sim=150)
    assert 0 < pw.q < 1 and pw.pilot_subjects == 12 and pw.pilot_clips == len(y)
    assert pw.power[96] > pw.power[12] + 0.2
    assert pw.interval[96][0] <= pw.power[96] <= pw.interval[96][1]
    null = stats.paired_power(y, p1, p2, subjects, 3, effect=0.0, n_subjects=(48,), n_sim=200, seed=1)
    assert null.q < 1e-6 and null.power[48] < 0.12  # the test keeps its size: about alpha = .05
    # noisier training (more disagreement between two trainings) needs more subjects
    noisy = stats.paired_power(*_pilot(disagree=0.3), 3, effect=0.03, n_subjects=(96,), n_sim=150)
    assert noisy.power[96] < pw.power[96]
    assert pw.subjects_for(0.0) == 12 and pw.subjects_for(1.01) is None


def test_power_refuses_what_it_cannot_simulate():
    y, p1, p2, subjects = _pilot()
    with pytest.raises(stats.StatsError, match="cannot show"):
        stats.paired_power(y, p1, p2, subjects, 3, effect=0.9, n_sim=5)
    with pytest.raises(stats.StatsError, match="at least 2 subjects"):
        stats.paired_power(y, p1, p2, np.zeros(len(y)), 3, n_sim=5)
    with pytest.raises(stats.StatsError, match="equally long"):
        stats.paired_power(y, p1[:-1], p2, subjects, 3, n_sim=5)


def test_stack_runs_puts_seeds_on_other_folds_in_seed_0_order():
    import pandas as pd

    ids = [f"synthetic/s{i}/c{i}" for i in range(6)]
    a = pd.DataFrame({"sample_id": ids, "dataset": "synthetic", "subject": [f"s{i}" for i in range(6)],
                      "y_true": [0, 1, 2, 0, 1, 2], "y_pred": [0, 1, 2, 0, 0, 0]})
    b = a.iloc[[3, 4, 5, 0, 1, 2]].copy()  # another K-fold partition: the same clips, fold order
    b["y_pred"] = [9, 8, 7, 6, 5, 4]
    y, yp, _, _, got = stats.stack_runs([a, b])
    assert list(got) == ids and yp[1].tolist() == [6, 5, 4, 9, 8, 7]
    assert stats.stack_runs([a, a.iloc[:5]]) is None  # other clips: no stacking
