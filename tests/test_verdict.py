"""The verdict: a real test per attack, Holm over attacks, a truth-free headline, honest sizes."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from miaudit.errors import ConfigError, InputError, MiauditError
from miaudit.verdict import (
    HEADLINE_ORDER,
    LEVELS,
    LOW_AUC_FLOOR,
    Verdict,
    _balanced_needed,
    compute_verdict,
    holm,
    level_at_least,
    min_detectable_auc,
    parse_level,
)

CLASSES = 10


def precomputed_scores(proba: np.ndarray, labels: np.ndarray) -> dict[str, np.ndarray]:
    """Scores computable from outputs alone (higher = member), as an outputs-only audit has them."""
    p_y = proba[np.arange(len(labels)), labels]
    return {
        "correctness": (proba.argmax(axis=1) == labels).astype(np.float64),
        "loss": np.log(np.maximum(p_y, 1e-30)),
        "confidence": p_y.astype(np.float64),
        "entropy": (proba * np.log(np.maximum(proba, 1e-30))).sum(axis=1),
        "top-1": proba.max(axis=1).astype(np.float64),
    }


def null_outputs(rng: np.random.Generator, n1: int, n0: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Random model outputs and labels, independent of membership: nothing to detect."""
    n = n1 + n0
    proba = rng.dirichlet(np.ones(CLASSES), size=n)
    labels = rng.integers(0, CLASSES, size=n)
    is_member = rng.permutation(np.arange(n) < n1)
    return precomputed_scores(proba, labels), is_member


def memorising_outputs(rng: np.random.Generator, n1: int, n0: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Members get confident correct outputs, non-members random ones."""
    n = n1 + n0
    labels = rng.integers(0, CLASSES, size=n)
    is_member = rng.permutation(np.arange(n) < n1)
    proba = rng.dirichlet(np.ones(CLASSES), size=n)
    conc = np.ones((n1, CLASSES))
    conc[np.arange(n1), labels[is_member]] = 50.0
    proba[is_member] = np.array([rng.dirichlet(c) for c in conc])
    return precomputed_scores(proba, labels), is_member


def shifted(rng: np.random.Generator, auc: float, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian scores, members shifted so that the population AUC is ``auc``."""
    from scipy.stats import norm

    d = math.sqrt(2.0) * norm.ppf(auc)
    is_member = np.arange(2 * n) < n
    return rng.normal(size=2 * n) + d * is_member, is_member


# --------------------------------------------------------------------------- the pieces


def test_holm_matches_a_hand_computed_example():
    # sorted: 0.005 (x4 = 0.02), 0.01 (x3 = 0.03), 0.03 (x2 = 0.06), 0.04 (x1 = 0.04 -> max 0.06)
    np.testing.assert_allclose(holm([0.01, 0.04, 0.03, 0.005]), [0.03, 0.06, 0.06, 0.02])
    np.testing.assert_allclose(holm([0.5, 0.2]), [0.5, 0.4])  # 0.2*2 = 0.4; 0.5*1 -> max(0.4, 0.5)
    np.testing.assert_allclose(holm([0.6, 0.9, 0.001]), [1.0, 1.0, 0.003])  # clipped at 1


def test_constant_scores_get_p_one_and_no_leak():
    m = np.arange(100) < 50
    v = compute_verdict({"loss": np.full(100, 3.0), "correctness": np.ones(100)}, m)
    assert v.p_values == {"loss": 1.0, "correctness": 1.0}
    assert v.adjusted_p_values == {"loss": 1.0, "correctness": 1.0}
    assert not v.leaks


def test_infinite_scores_rank_and_nan_is_refused():
    m = np.arange(200) < 100
    s = np.where(m, np.inf, -np.inf)
    v = compute_verdict({"label-boundary": s}, m)
    assert v.leaks and v.aucs["label-boundary"] == 1.0 and v.p_values["label-boundary"] < 1e-10
    with pytest.raises(InputError, match="NaN"):
        compute_verdict({"loss": np.where(m, np.nan, 0.0)}, m)
    with pytest.raises(InputError):
        compute_verdict({}, m)
    with pytest.raises(ConfigError):
        compute_verdict({"loss": s}, m, alpha=1.5)


def test_min_detectable_auc_and_records_needed():
    se = math.sqrt((300 + 300 + 1) / (12 * 300 * 300))
    assert min_detectable_auc(300, 300, 5) == pytest.approx(0.5 + (2.326348 + 0.841621) * se, rel=1e-6)
    n = _balanced_needed(5, 0.05)
    assert min_detectable_auc(n, n, 5) <= LOW_AUC_FLOOR < min_detectable_auc(n - 1, n - 1, 5)
    assert _balanced_needed(20, 0.05) > n  # more attacks, stricter level, more records


def test_levels_parse_and_order():
    assert LEVELS == ("undetermined", "none-detected", "low", "medium", "high")
    assert parse_level(" Medium ") == "medium"
    with pytest.raises(ConfigError, match="undetermined, none-detected, low, medium, high") as err:
        parse_level("severe")
    assert isinstance(err.value, MiauditError) and "\n" not in str(err.value)
    assert level_at_least("high", "medium") and level_at_least("medium", "medium")
    assert not level_at_least("low", "medium") and not level_at_least("undetermined", "low")


# --------------------------------------------------------------------------- calibration


def test_null_targets_false_alarm_rate_is_controlled():
    rng = np.random.default_rng(20240601)
    n_audits = 600
    alarms = sum(compute_verdict(*null_outputs(rng, 300, 300)).leaks for _ in range(n_audits))
    rate = alarms / n_audits
    bound = 0.05 + 3 * math.sqrt(0.05 * 0.95 / n_audits)
    print(f"null false-alarm rate: {alarms}/{n_audits} = {rate:.3f}")
    assert rate <= bound, f"null audits declared leaking: {alarms}/{n_audits} = {rate:.3f} > {bound:.3f}"


def test_memorising_target_leaks_high_every_time():
    for seed in range(20):
        v = compute_verdict(*memorising_outputs(np.random.default_rng(seed), 300, 300))
        assert v.leaks and v.level == "high", (seed, v.headline)
        assert v.headline_attack == "loss"  # first of HEADLINE_ORDER among the five
        assert "not measurable with 300 non-members" in v.headline  # 1% of 300 < 10 false positives


def test_small_audit_is_undetermined_never_none_detected():
    for seed in range(20):
        v = compute_verdict(*null_outputs(np.random.default_rng(seed), 20, 20))
        assert v.level != "none-detected"
        if not v.leaks:
            assert v.level == "undetermined" and v.records_needed is not None and v.records_needed > 40
            assert "needed" in v.headline and "20 members and 20 non-members" in v.headline
    v = compute_verdict(*null_outputs(np.random.default_rng(1), 20, 20))
    assert v.level == "undetermined" and v.min_detectable_auc > LOW_AUC_FLOOR


def test_large_null_audit_is_none_detected():
    v = compute_verdict(*null_outputs(np.random.default_rng(3), 3000, 3000))
    assert v.level == "none-detected" and not v.leaks and v.records_needed is None
    assert v.min_detectable_auc < LOW_AUC_FLOOR


def test_weak_and_strong_leaks_get_different_levels():
    rng = np.random.default_rng(7)
    weak = compute_verdict({"loss": (s := shifted(rng, 0.60, 2000))[0]}, s[1])
    strong = compute_verdict({"loss": (t := shifted(rng, 0.98, 2000))[0]}, t[1])
    assert weak.leaks and strong.leaks
    assert 0.57 < weak.aucs["loss"] < 0.63 and strong.aucs["loss"] > 0.96
    assert weak.level in ("low", "medium") and strong.level == "high"
    assert "flags" in strong.headline and "% of members at 1% false alarms (AUC 0.9" in strong.headline


def test_auc_alone_grades_when_tpr_is_not_measurable():
    rng = np.random.default_rng(8)
    s, m = shifted(rng, 0.70, 300)
    v = compute_verdict({"rmia": s}, m)
    assert v.tpr_at_1pct_fpr["rmia"] is None and v.level == "medium"  # AUC ~0.70 >= 0.65


# --------------------------------------------------------------------------- headline choice


def test_headline_attack_does_not_depend_on_the_truth():
    rng = np.random.default_rng(11)
    scores, m = memorising_outputs(rng, 200, 200)
    scores["rmia"] = rng.normal(size=400)
    scores["zz-custom"] = rng.normal(size=400)
    heads = {compute_verdict(scores, rng.permutation(m)).headline_attack for _ in range(10)}
    assert heads == {"rmia"}
    assert compute_verdict(scores, m, headline_order=["confidence", "rmia"]).headline_attack == "confidence"
    assert compute_verdict(scores, m, headline_order=["absent"]).headline_attack == "rmia"
    assert compute_verdict({"b-x": scores["loss"], "a-x": scores["loss"]}, m).headline_attack == "a-x"
    assert "rmia" in HEADLINE_ORDER


def test_non_significant_headline_grades_on_a_significant_attack_and_says_so():
    rng = np.random.default_rng(12)
    scores, m = memorising_outputs(rng, 200, 200)
    scores["rmia"] = np.zeros(400)
    v = compute_verdict(scores, m)
    assert v.headline_attack == "rmia" and v.leaks and v.graded_attack == "loss"
    assert any("rmia is not significant" in d for d in v.details)
    assert v.upper_bound_attack in scores and any("Upper bound" in d for d in v.details)


def test_round_trip_through_json():
    v = compute_verdict(*memorising_outputs(np.random.default_rng(5), 100, 100))
    u = compute_verdict(*null_outputs(np.random.default_rng(5), 20, 20))
    for x in (v, u):
        d = json.loads(json.dumps(x.to_dict()))
        assert Verdict.from_dict(d) == x and Verdict.from_dict(d).to_dict() == x.to_dict()
    with pytest.raises(InputError, match="missing"):
        Verdict.from_dict({"level": "high"})


def test_the_headline_order_names_every_registered_attack_once():
    """A name in the order that is not registered never ranks its attack (it then falls to the
    alphabetical tail); every registered attack must have its place."""
    from miaudit.attacks import ATTACKS

    assert len(set(HEADLINE_ORDER)) == len(HEADLINE_ORDER)
    assert set(HEADLINE_ORDER) == set(ATTACKS.names())
