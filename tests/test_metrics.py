"""Metrics on score distributions whose answers are known in closed form or by hand."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
from scipy.stats import norm
from sklearn.metrics import roc_auc_score
from sklearn.metrics import roc_curve as sk_roc_curve

from miaudit.errors import InputError, MiauditError
from miaudit.metrics import (
    THRESHOLD_SOURCES,
    Metrics,
    auc,
    balanced_accuracy,
    best_balanced_accuracy,
    best_threshold,
    bootstrap_ci,
    check_inputs,
    downsample_roc,
    evaluate,
    is_measurable,
    membership_advantage,
    precision_recall,
    roc_curve,
    tpr_at_fpr,
)


def two_gaussians(n: int, d: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """n members ~ N(d, 1), n non-members ~ N(0, 1)."""
    rng = np.random.default_rng(seed)
    scores = np.concatenate((rng.normal(d, 1.0, n), rng.normal(0.0, 1.0, n)))
    truth = np.concatenate((np.ones(n, bool), np.zeros(n, bool)))
    return scores, truth


# --------------------------------------------------------------------------- extreme cases


def test_perfect_separation() -> None:
    n = 20_000  # enough non-members for every default FPR level (20 expected FPs at 0.1%)
    scores = np.concatenate((np.linspace(1.0, 2.0, n), np.linspace(-2.0, 0.0, n)))
    truth = np.concatenate((np.ones(n, bool), np.zeros(n, bool)))
    assert auc(scores, truth) == 1.0
    assert membership_advantage(scores, truth) == 1.0
    assert best_balanced_accuracy(scores, truth) == 1.0
    for f in (0.1, 0.01, 0.001):
        assert tpr_at_fpr(scores, truth, f) == 1.0
    m = evaluate(scores, truth, n_bootstrap=0)
    assert m.auc == 1.0 and m.advantage == 1.0
    assert all(v == 1.0 for v in m.tpr_at_fpr.values())


def test_reversed_scores() -> None:
    n = 2000
    scores = np.concatenate((np.linspace(-2.0, 0.0, n), np.linspace(1.0, 2.0, n)))
    truth = np.concatenate((np.ones(n, bool), np.zeros(n, bool)))
    assert auc(scores, truth) == 0.0
    assert tpr_at_fpr(scores, truth, 0.01) == 0.0
    # The advantage is maximised over thresholds; "flag all" gives 0, never negative.
    assert membership_advantage(scores, truth) == 0.0


def test_all_equal_scores() -> None:
    n = 2000  # 2000 non-members: 20 expected false positives at 1% FPR
    scores = np.full(2 * n, 0.3)
    truth = np.arange(2 * n) < n
    assert auc(scores, truth) == 0.5
    # One tied step from (0, 0) to (1, 1): nothing is reachable at FPR <= 1% but the origin.
    assert tpr_at_fpr(scores, truth, 0.01) == 0.0
    assert tpr_at_fpr(scores, truth, 1.0) == 1.0
    assert membership_advantage(scores, truth) == 0.0
    fpr, tpr, thr = roc_curve(scores, truth)
    np.testing.assert_array_equal(fpr, [0.0, 1.0])
    np.testing.assert_array_equal(tpr, [0.0, 1.0])
    np.testing.assert_array_equal(thr, [np.inf, 0.3])


# --------------------------------------------------------------------------- two Gaussians


def test_two_gaussians_match_closed_form() -> None:
    n, d = 20_000, 1.0
    scores, truth = two_gaussians(n, d, seed=0)
    m = evaluate(scores, truth, n_bootstrap=0)

    # AUC = Phi(d / sqrt 2); Hanley & McNeil standard error.
    a = norm.cdf(d / math.sqrt(2))
    q1, q2 = a / (2 - a), 2 * a * a / (1 + a)
    se_auc = math.sqrt((a * (1 - a) + (n - 1) * (q1 - a * a) + (n - 1) * (q2 - a * a)) / (n * n))
    assert abs(m.auc - a) < 5 * se_auc

    # TPR at FPR f = 1 - Phi(z_{1-f} - d). Its error comes from the member proportion and from
    # the threshold, set by the non-members: var = p(1-p)/n + (phi(z-d)/phi(z))^2 f(1-f)/n.
    for f in (0.1, 0.01, 0.001):
        z = norm.ppf(1 - f)
        p = 1 - norm.cdf(z - d)
        se = math.sqrt(p * (1 - p) / n + (norm.pdf(z - d) / norm.pdf(z)) ** 2 * f * (1 - f) / n)
        assert m.tpr_at_fpr[f] is not None
        assert abs(m.tpr_at_fpr[f] - p) < 5 * se, (f, m.tpr_at_fpr[f], p, se)

    # Advantage = 2 Phi(d/2) - 1 at threshold d/2 (the max over thresholds is biased up a bit).
    adv = 2 * norm.cdf(d / 2) - 1
    p1, p0 = norm.cdf(d / 2), 1 - norm.cdf(d / 2)
    se_adv = math.sqrt(p1 * (1 - p1) / n + p0 * (1 - p0) / n)
    assert abs(m.advantage - adv) < 5 * se_adv
    assert abs(best_threshold(scores, truth) - d / 2) < 0.15
    assert m.best_balanced_accuracy == pytest.approx(0.5 + adv / 2, abs=2.5 * se_adv)


# --------------------------------------------------------------------------- hand-computed ties

# scores   0.9  0.8  0.8  0.8  0.5  0.5  0.2
# member    1    1    0    1    0    1    0        -> 4 members, 3 non-members
# threshold  members >= t  non-members >= t   (FPR, TPR)
#   +inf          0              0            (0,   0)
#   0.9           1              0            (0,   1/4)
#   0.8           3              1            (1/3, 3/4)
#   0.5           4              2            (2/3, 1)
#   0.2           4              3            (1,   1)
# AUC by pairs: 0.9 beats 3; each 0.8 beats 0.5, 0.2 and ties 0.8: 2.5 x 2; 0.5 beats 0.2 and
# ties 0.5: 1.5  ->  (3 + 5 + 1.5) / 12 = 19/24.
HAND_SCORES = np.array([0.9, 0.8, 0.8, 0.8, 0.5, 0.5, 0.2])
HAND_TRUTH = np.array([1, 1, 0, 1, 0, 1, 0])


def test_hand_computed_roc_with_ties() -> None:
    fpr, tpr, thr = roc_curve(HAND_SCORES, HAND_TRUTH)
    np.testing.assert_allclose(fpr, [0, 0, 1 / 3, 2 / 3, 1])
    np.testing.assert_allclose(tpr, [0, 1 / 4, 3 / 4, 1, 1])
    np.testing.assert_array_equal(thr, [np.inf, 0.9, 0.8, 0.5, 0.2])
    assert auc(HAND_SCORES, HAND_TRUTH) == pytest.approx(19 / 24, abs=1e-15)
    # Record order must not matter (ties are one step, not split by position).
    perm = np.random.default_rng(3).permutation(len(HAND_SCORES))
    fpr2, tpr2, thr2 = roc_curve(HAND_SCORES[perm], HAND_TRUTH[perm])
    np.testing.assert_array_equal(fpr2, fpr)
    np.testing.assert_array_equal(tpr2, tpr)
    np.testing.assert_array_equal(thr2, thr)


def test_hand_computed_operating_points() -> None:
    s, m = HAND_SCORES, HAND_TRUTH
    # 3 non-members: only FPR levels with >= 1 expected false positive are measurable here.
    assert tpr_at_fpr(s, m, 0.34, min_false_positives=1) == 0.75
    # The 0.5 tie holds a member and a non-member: it cannot be half-included to use FPR 1/2.
    assert tpr_at_fpr(s, m, 0.5, min_false_positives=1) == 0.75
    assert tpr_at_fpr(s, m, 0.3, min_false_positives=1) is None
    assert tpr_at_fpr(s, m, 0.34) is None  # default rule: 10 expected false positives
    assert membership_advantage(s, m) == pytest.approx(3 / 4 - 1 / 3)
    assert best_threshold(s, m) == 0.8
    assert best_balanced_accuracy(s, m) == pytest.approx(17 / 24)
    assert balanced_accuracy(s, m, 0.8) == pytest.approx((3 / 4 + 2 / 3) / 2)
    assert precision_recall(s, m, 0.8) == (0.75, 0.75)
    assert precision_recall(s, m, 0.5) == (4 / 6, 1.0)
    assert precision_recall(s, m, 0.95) == (None, 0.0)  # nothing flagged: precision is 0/0


def test_matches_sklearn_on_random_ties() -> None:
    rng = np.random.default_rng(7)
    for _ in range(30):
        n = int(rng.integers(2, 400))
        s = rng.integers(0, 8, n).astype(float)
        m = rng.random(n) < 0.3
        if m.all() or not m.any():
            continue
        fpr, tpr, thr = roc_curve(s, m)
        sk_fpr, sk_tpr, sk_thr = sk_roc_curve(m, s, drop_intermediate=False)
        np.testing.assert_allclose(fpr, sk_fpr)
        np.testing.assert_allclose(tpr, sk_tpr)
        np.testing.assert_array_equal(thr, sk_thr)
        assert auc(s, m) == pytest.approx(roc_auc_score(m, s), abs=1e-12)


def test_infinite_scores_are_ranked() -> None:
    s = np.array([np.inf, np.inf, 5.0, 1.0, -np.inf, -np.inf])
    m = np.array([1, 0, 1, 0, 1, 0])
    finite = np.array([1e9, 1e9, 5.0, 1.0, -1e9, -1e9])
    assert auc(s, m) == auc(finite, m)
    fpr, tpr, thr = roc_curve(s, m)
    np.testing.assert_array_equal(thr, [np.inf, np.inf, 5.0, 1.0, -np.inf])
    np.testing.assert_allclose(tpr, [0, 1 / 3, 2 / 3, 2 / 3, 1])
    assert membership_advantage(s, m) == membership_advantage(finite, m)


# --------------------------------------------------------------------------- balanced accuracy


def test_balanced_accuracy_identity_for_correctness_attack() -> None:
    rng = np.random.default_rng(1)
    n1, n0 = 700, 1300  # unbalanced on purpose: balanced accuracy ignores the class sizes
    truth = np.arange(n1 + n0) < n1
    # Correctness attack: 1 if the target classifies the record correctly, else 0.
    correct = np.where(truth, rng.random(n1 + n0) < 0.95, rng.random(n1 + n0) < 0.80)
    for scores in (correct, correct.astype(float), correct.astype(np.int64)):
        tpr = correct[truth].mean()
        fpr = correct[~truth].mean()
        assert balanced_accuracy(scores, truth, 0.5) == pytest.approx(0.5 + (tpr - fpr) / 2)
        assert best_balanced_accuracy(scores, truth) == pytest.approx(0.5 + (tpr - fpr) / 2)
        assert precision_recall(scores, truth, 0.5) == pytest.approx(
            (correct[truth].sum() / correct.sum(), tpr)
        )


def test_best_threshold_gives_upper_bound_in_evaluate() -> None:
    scores, truth = two_gaussians(3000, 0.8, seed=5)
    t = best_threshold(scores, truth)
    m = evaluate(scores, truth, threshold=t, threshold_source="target truth (upper bound)", n_bootstrap=0)
    assert m.balanced_accuracy == pytest.approx(m.best_balanced_accuracy)
    assert m.recall is not None and m.precision is not None
    for other in np.linspace(-1, 2, 13):
        assert balanced_accuracy(scores, truth, other) <= m.best_balanced_accuracy + 1e-12


# --------------------------------------------------------------------------- measurability


def test_measurability_rule() -> None:
    assert is_measurable(1000, 0.01) and not is_measurable(999, 0.01)
    assert is_measurable(100_000, 1e-4) and not is_measurable(100_000, 1e-5)
    assert is_measurable(1000, 0.001, min_false_positives=1)
    assert not is_measurable(999, 0.001, min_false_positives=1)


def test_low_fpr_none_with_few_nonmembers() -> None:
    rng = np.random.default_rng(2)
    few = np.concatenate((rng.normal(1, 1, 500), rng.normal(0, 1, 50)))
    few_truth = np.arange(550) < 500
    assert tpr_at_fpr(few, few_truth, 0.001) is None
    assert tpr_at_fpr(few, few_truth, 0.001, min_false_positives=1) is None  # 50 < 1/0.001

    many = np.concatenate((rng.normal(1, 1, 500), rng.normal(0, 1, 100_000)))
    many_truth = np.arange(100_500) < 500
    value = tpr_at_fpr(many, many_truth, 0.001)
    assert isinstance(value, float) and 0.0 <= value <= 1.0


def test_evaluate_fpr_levels() -> None:
    scores, truth = two_gaussians(5000, 1.0, seed=4)
    m = evaluate(scores, truth, n_bootstrap=0)
    # Default levels are always listed, 0.001 is None with 5000 non-members; lower ones absent.
    assert list(m.tpr_at_fpr) == [0.1, 0.01, 0.001]
    assert m.tpr_at_fpr[0.001] is None and m.tpr_at_fpr[0.01] is not None

    rng = np.random.default_rng(4)
    big = np.concatenate((rng.normal(1, 1, 1000), rng.normal(0, 1, 100_000)))
    big_truth = np.arange(101_000) < 1000
    m = evaluate(big, big_truth, n_bootstrap=0)
    assert list(m.tpr_at_fpr) == [0.1, 0.01, 0.001, 1e-4]  # 1e-5 needs a million non-members
    assert all(v is not None for v in m.tpr_at_fpr.values())
    m = evaluate(big, big_truth, n_bootstrap=0, extra_fpr_levels=())
    assert list(m.tpr_at_fpr) == [0.1, 0.01, 0.001]


# --------------------------------------------------------------------------- bootstrap


def test_bootstrap_contains_truth_and_narrows() -> None:
    d = 1.0
    true_auc = norm.cdf(d / math.sqrt(2))
    small = bootstrap_ci(*two_gaussians(1000, d, seed=10), "auc", n_resamples=1000, seed=0)
    large = bootstrap_ci(*two_gaussians(10_000, d, seed=11), "auc", n_resamples=1000, seed=0)
    assert small is not None and large is not None
    assert small[0] < true_auc < small[1]
    assert large[0] < true_auc < large[1]
    # Width shrinks like 1/sqrt(n): ten times the data, about a third of the width.
    assert (large[1] - large[0]) < 0.5 * (small[1] - small[0])
    # The 95% interval of AUC at n=1000 per class is about +-1.96 * 0.0118.
    assert 0.03 < small[1] - small[0] < 0.06


def test_bootstrap_reproducible_and_paths_agree() -> None:
    scores, truth = two_gaussians(800, 0.5, seed=12)
    scores = np.round(scores, 1)  # many ties
    a = bootstrap_ci(scores, truth, "auc", n_resamples=300, seed=42)
    b = bootstrap_ci(scores, truth, "auc", n_resamples=300, seed=42)
    c = bootstrap_ci(scores, truth, "auc", n_resamples=300, seed=43)
    assert a == b and a != c
    # The vectorised AUC path and the generic one see the same resamples.
    generic = bootstrap_ci(scores, truth, lambda s, m: auc(s, m), n_resamples=300, seed=42)
    assert generic == pytest.approx(a, abs=1e-12)
    assert bootstrap_ci(scores, truth, auc, n_resamples=300, seed=42) == a
    wider = bootstrap_ci(scores, truth, "auc", n_resamples=300, confidence=0.99, seed=42)
    assert wider[0] <= a[0] and wider[1] >= a[1]


def test_bootstrap_coverage() -> None:
    # Over repeated samples the 90% interval should contain the true AUC about 90% of the time.
    d, n = 1.0, 300
    true_auc = norm.cdf(d / math.sqrt(2))
    hits = 0
    reps = 100
    for rep in range(reps):
        sample = two_gaussians(n, d, seed=100 + rep)
        ci = bootstrap_ci(*sample, "auc", n_resamples=200, confidence=0.9, seed=rep)
        hits += ci[0] < true_auc < ci[1]
    assert 78 <= hits <= 98


def test_bootstrap_generic_statistic_and_not_measurable() -> None:
    scores, truth = two_gaussians(2000, 1.0, seed=13)
    ci = bootstrap_ci(scores, truth, lambda s, m: tpr_at_fpr(s, m, 0.01), n_resamples=50, seed=0)
    point = tpr_at_fpr(scores, truth, 0.01)
    assert ci is not None and ci[0] <= point <= ci[1]
    assert bootstrap_ci(scores, truth, lambda s, m: tpr_at_fpr(s, m, 0.001), n_resamples=50, seed=0) is None


def test_bootstrap_speed_is_vectorised() -> None:
    import time

    scores, truth = two_gaussians(5000, 1.0, seed=14)
    start = time.perf_counter()
    bootstrap_ci(scores, truth, "auc", n_resamples=1000, seed=0)
    assert time.perf_counter() - start < 5.0  # about 0.4 s on 2 cores


# --------------------------------------------------------------------------- Metrics / evaluate


def test_evaluate_and_to_dict() -> None:
    scores, truth = two_gaussians(4000, 1.0, seed=20)
    kwargs = dict(threshold=0.5, threshold_source="shadow models", n_bootstrap=200, seed=1)
    m = evaluate(scores, truth, **kwargs)
    assert isinstance(m, Metrics)
    assert m.n_members == 4000 and m.n_nonmembers == 4000
    assert m.auc == pytest.approx(auc(scores, truth))
    assert m.auc_ci is not None and m.auc_ci[0] < m.auc < m.auc_ci[1]
    assert m.advantage == pytest.approx(membership_advantage(scores, truth))
    assert m.balanced_accuracy == pytest.approx(balanced_accuracy(scores, truth, 0.5))
    assert (m.precision, m.recall) == pytest.approx(precision_recall(scores, truth, 0.5))
    assert m == evaluate(scores, truth, **kwargs)  # reproducible with the seed
    with pytest.raises(dataclasses.FrozenInstanceError):
        m.auc = 0.0  # type: ignore[misc]

    d = m.to_dict()
    text = json.dumps(d, allow_nan=False)
    back = json.loads(text)
    assert back["tpr_at_fpr"]["0.001"] is None  # 4000 non-members: not measurable
    assert back["tpr_at_fpr"]["0.01"] == m.tpr_at_fpr[0.01]
    assert back["threshold_source"] == "shadow models"
    assert back["auc_ci"] == list(m.auc_ci)
    assert back["lowest_measurable_fpr"] == pytest.approx(10 / 4000)
    assert back["roc"]["n_points"] <= 200 < back["roc"]["n_points_full"]
    assert "roc" not in m.to_dict(roc=False)
    assert m.to_dict(max_roc_points=None)["roc"]["n_points"] == len(m.roc_fpr)

    plain = evaluate(scores, truth, n_bootstrap=0).to_dict()
    assert plain["auc_ci"] is None and plain["balanced_accuracy"] is None
    assert plain["threshold"] is None and plain["precision"] is None
    json.dumps(plain, allow_nan=False)


def test_threshold_source_is_required_and_checked() -> None:
    scores, truth = two_gaussians(100, 1.0, seed=21)
    with pytest.raises(InputError, match="threshold_source"):
        evaluate(scores, truth, threshold=0.5, n_bootstrap=0)
    with pytest.raises(InputError, match="threshold_source"):
        evaluate(scores, truth, threshold=0.5, threshold_source="a guess", n_bootstrap=0)
    with pytest.raises(InputError, match="without a threshold"):
        evaluate(scores, truth, threshold_source="shadow models", n_bootstrap=0)
    for source in THRESHOLD_SOURCES:
        evaluate(scores, truth, threshold=0.5, threshold_source=source, n_bootstrap=0)


def test_downsample_roc_keeps_ends_and_low_fpr() -> None:
    scores, truth = two_gaussians(20_000, 1.0, seed=22)
    fpr, tpr, _ = roc_curve(scores, truth)
    f, t = downsample_roc(fpr, tpr, 100)
    assert len(f) <= 100
    assert (f[0], t[0]) == (0.0, 0.0) and (f[-1], t[-1]) == (1.0, 1.0)
    assert np.all(np.diff(f) >= 0) and np.all(np.diff(t) >= 0)
    assert f[f > 0].min() <= 1e-4  # the log-spaced grid reaches the smallest FPRs
    # Every kept point is a vertex of the full curve.
    full = set(zip(fpr.tolist(), tpr.tolist()))
    assert all(p in full for p in zip(f.tolist(), t.tolist()))


# --------------------------------------------------------------------------- bad input


def test_nan_scores_raise_with_count() -> None:
    s = np.array([0.1, np.nan, 0.3, np.nan])
    with pytest.raises(InputError, match=r"scores contain 2 NaN.*index 1"):
        auc(s, [1, 0, 1, 0])
    with pytest.raises(InputError, match="is_member contains 1 NaN"):
        auc([0.1, 0.2, 0.3], [1.0, np.nan, 0.0])


def test_shape_errors() -> None:
    with pytest.raises(InputError, match="3 entries but is_member has 2"):
        auc([0.1, 0.2, 0.3], [1, 0])
    with pytest.raises(InputError, match="1-D"):
        auc(np.zeros((4, 1)), [1, 0, 1, 0])
    with pytest.raises(InputError, match="1-D"):
        auc(np.zeros(4), np.zeros((4, 1)))
    with pytest.raises(InputError, match="real numbers"):
        auc(np.array(["a", "b"]), [1, 0])


def test_truth_errors() -> None:
    with pytest.raises(InputError, match="0 non-member"):
        auc([0.1, 0.2], [1, 1])
    with pytest.raises(InputError, match="0 member"):
        evaluate([0.1, 0.2], [False, False])
    with pytest.raises(InputError, match="boolean or 0/1"):
        auc([0.1, 0.2, 0.3], [0, 1, 2])
    with pytest.raises(InputError):
        auc([], [])
    assert issubclass(InputError, MiauditError)
    s, m = check_inputs([1, 2, 3], [0.0, 1.0, 1.0])
    assert s.dtype == np.float64 and m.dtype == bool and m.tolist() == [False, True, True]


def test_option_errors() -> None:
    s, m = HAND_SCORES, HAND_TRUTH
    for bad in (0.0, 1.5, -0.1, float("nan")):
        with pytest.raises(InputError, match="FPR"):
            tpr_at_fpr(s, m, bad)
    with pytest.raises(InputError, match="min_false_positives"):
        tpr_at_fpr(s, m, 0.5, min_false_positives=0.5)
    with pytest.raises(InputError, match="threshold"):
        balanced_accuracy(s, m, float("nan"))
    with pytest.raises(InputError, match="n_resamples"):
        bootstrap_ci(s, m, "auc", n_resamples=1, seed=0)
    with pytest.raises(InputError, match="confidence"):
        bootstrap_ci(s, m, "auc", confidence=1.0, seed=0)
    with pytest.raises(InputError, match="unknown bootstrap statistic"):
        bootstrap_ci(s, m, "accuracy", seed=0)
    with pytest.raises(InputError, match="n_bootstrap"):
        evaluate(s, m, n_bootstrap=1)
