"""Song & Mittal's metric attacks with per-class thresholds from shadow models."""

import math

import numpy as np
import pytest

from miaudit.attacks.class_thresholds import LOG_FLOOR, ClassThresholds, choose_class_thresholds
from miaudit.attacks.confidence import ConfidenceAttack, true_class_probability
from miaudit.attacks.entropy import entropy
from miaudit.attacks.modified_entropy import modified_entropy
from miaudit.experiments import AuditConfig, run_audit
from miaudit.metrics import balanced_accuracy
from miaudit.targets.access import TargetAccess
from miaudit.threat import THREAT_MODELS

METRIC_ATTACKS = ("confidence", "entropy", "modified-entropy", "loss-class")


def _brute_force_best_balanced_accuracy(values, member):
    """max over thresholds t in the values of the balanced accuracy of "value >= t"."""
    return max(0.5 * ((values[member] >= t).mean() + (values[~member] < t).mean()) for t in values)


# --------------------------------------------------------------------------- threshold chooser


def test_class_thresholds_on_hand_made_records():
    # class 0: members 5, 6, 7 vs non-members 1, 2, 3 -> t = 5 separates them (highest such value)
    # class 1: members 0.2, 0.3 vs non-members 0.05, 0.1, 0.25 -> t = 0.2: TPR 1, FPR 1/3
    # class 2: members only -> fallback; class 3: no records -> fallback
    # global: t = 4 flags 4, 4.5, 5, 6, 7: TPR 5/7, FPR 0, better than any other value
    values = np.array([5, 6, 7, 1, 2, 3, 0.2, 0.3, 0.05, 0.1, 0.25, 4, 4.5])
    labels = np.array([0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 2, 2])
    member = np.array([1, 1, 1, 0, 0, 0, 1, 1, 0, 0, 0, 1, 1], bool)
    cal = choose_class_thresholds(values, labels, member, num_classes=4)
    assert cal.global_threshold == 4.0
    np.testing.assert_array_equal(cal.thresholds, [5.0, 0.2, 4.0, 4.0])
    np.testing.assert_array_equal(cal.fallback, [False, False, True, True])


def test_class_thresholds_reach_the_best_balanced_accuracy_of_each_class():
    rng = np.random.default_rng(0)
    n, classes = 600, 5
    labels = rng.integers(0, classes, n)
    member = rng.random(n) < 0.5
    values = np.round(rng.normal(member * 0.7 + labels * 0.3, 1.0), 1)  # rounding makes ties
    cal = choose_class_thresholds(values, labels, member, num_classes=classes)
    assert not cal.fallback.any()
    for c in range(classes):
        sel = labels == c
        best = _brute_force_best_balanced_accuracy(values[sel], member[sel])
        assert balanced_accuracy(values[sel], member[sel], cal.thresholds[c]) == pytest.approx(best, abs=1e-12)


# --------------------------------------------------------------------------- metrics


def test_modified_entropy_matches_the_formula():
    rng = np.random.default_rng(1)
    proba = rng.dirichlet(np.full(6, 0.3), size=50)
    y = rng.integers(0, 6, 50)
    expected = [
        -(1 - p[k]) * math.log(max(p[k], LOG_FLOOR))
        - sum(p[i] * math.log(max(1 - p[i], LOG_FLOOR)) for i in range(len(p)) if i != k)
        for p, k in zip(proba, y)
    ]
    np.testing.assert_allclose(modified_entropy(proba, y), expected, rtol=1e-12, atol=1e-15)


def test_modified_entropy_vanishes_for_confident_correct_and_is_high_for_confident_wrong():
    classes = 4
    eps = np.array([1e-1, 1e-3, 1e-6, 1e-9])
    proba = np.full((len(eps), classes), 0.0)
    proba[:, 0] = 1 - eps
    proba[:, 1:] = (eps / (classes - 1))[:, None]
    y = np.zeros(len(eps), int)
    mentr = modified_entropy(proba, y)
    assert np.all(np.diff(mentr) < 0) and mentr[-1] < 1e-7  # p_y -> 1: Mentr -> 0
    assert modified_entropy(np.eye(classes)[[0]], np.array([0]))[0] == 0.0
    # Confident and wrong: entropy calls the record certain, Mentr calls it very unlike a member.
    wrong = np.array([[0.98, 0.01, 0.005, 0.005]])
    uniform = np.full((1, classes), 1 / classes)
    assert modified_entropy(wrong, np.array([1]))[0] > modified_entropy(uniform, np.array([1]))[0]
    assert entropy(wrong)[0] < entropy(uniform)[0]
    assert np.isfinite(modified_entropy(np.eye(classes)[[0]], np.array([2]))).all()  # clipped, not inf


def test_entropy_of_one_hot_is_zero_and_of_uniform_is_log_c():
    for classes in (2, 10, 100):
        assert np.all(entropy(np.eye(classes)) == 0.0)
        assert entropy(np.full((1, classes), 1 / classes))[0] == pytest.approx(math.log(classes), rel=1e-12)


# --------------------------------------------------------------------------- scores


class _FixedOutputs:
    def __init__(self, proba):
        self.proba = proba

    def predict_proba(self, x):
        return self.proba[x[:, 0].astype(int)]


def test_score_shift_reproduces_the_per_class_decisions():
    rng = np.random.default_rng(2)
    n, classes = 400, 5
    proba = np.round(rng.dirichlet(np.ones(classes), size=n), 2)  # coarse values: ties with thresholds
    y = rng.integers(0, classes, n)
    truth = rng.random(n) < 0.5
    p_y = true_class_probability(proba, y)
    thresholds = p_y[[int(np.flatnonzero(y == c)[0]) for c in range(classes)]]  # equal to some p_y
    attack = ConfidenceAttack()
    attack.calibration = ClassThresholds(thresholds, np.zeros(classes, bool), 0.5)
    access = TargetAccess(_FixedOutputs(proba), THREAT_MODELS.get("gray-box"), input_shape=(1,))
    result = attack.score(access, np.arange(n, dtype=np.float32)[:, None], y)
    decisions = p_y >= thresholds[y]
    np.testing.assert_array_equal(result.scores >= result.threshold, decisions)
    per_class_ba = 0.5 * (decisions[truth].mean() + (~decisions[~truth]).mean())
    assert balanced_accuracy(result.scores, truth, result.threshold) == per_class_ba
    assert result.threshold == 0.0 and result.threshold_source == "shadow models"
    assert result.queries_per_record == 1.0


def test_audit_on_digits_runs_every_metric_attack():
    result = run_audit(
        AuditConfig(
            dataset="digits",
            attacks=METRIC_ATTACKS,
            recipe={"epochs": 5},
            n_shadow_models=2,
            n_bootstrap=0,
            use_cache=False,
        ),
        progress=False,
    )
    by_name = {o.result.attack: o for o in result.outcomes}
    assert sorted(by_name) == sorted(METRIC_ATTACKS)
    for name, outcome in by_name.items():
        r = outcome.result
        assert np.isfinite(r.scores).all(), name
        assert r.threshold == 0.0 and r.threshold_source == "shadow models", name
        assert r.queries_per_record == 1.0, name
        assert r.details["per_class_thresholds"] + r.details["fallback_classes"] == 10, name
        assert outcome.metrics.balanced_accuracy is not None, name
