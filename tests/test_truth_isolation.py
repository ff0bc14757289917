"""Membership truth reaches the metrics, never the attacks: shuffling it changes no score."""

import numpy as np
from synthetic import FAST_OPTIONS

from miaudit.attacks import ATTACKS
from miaudit.experiments import AuditConfig, run_audit
from miaudit.experiments import audit as audit_module

# Every hyperparameter the tuner (miaudit.attacks.tuning) may choose, set to "auto".
TUNED_OPTIONS = {
    "rmia-offline": {"a": "auto", "gamma": "auto", "tune_trials": 5},
    "base": {"temperature": "auto", "tune_trials": 5},
    "base-offline": {"temperature": "auto", "offline_scale_factor": "auto", "tune_trials": 5},
    "qmia": {"tune": True, "tune_trials": 3},  # no shadow model: tuned on the pool's held-out pinball loss
    "nn": {"tune": True, "tune_trials": 2},
}


def _honest_and_lied_to(config, monkeypatch):
    """The audit run with the true membership, then with it shuffled (the evaluated records are the same)."""
    honest = run_audit(config, progress=False)
    real = audit_module.evaluation_records

    def shuffled_truth(split, *, seed, **kwargs):
        idx, is_member = real(split, seed=seed, **kwargs)
        return idx, np.random.default_rng(99).permutation(is_member)

    monkeypatch.setattr(audit_module, "evaluation_records", shuffled_truth)
    lied_to = run_audit(config, progress=False)
    assert not np.array_equal(honest.is_member, lied_to.is_member)
    for a, b in zip(honest.outcomes, lied_to.outcomes, strict=True):
        assert a.result.attack == b.result.attack
        np.testing.assert_array_equal(a.result.scores, b.result.scores, err_msg=a.result.attack)
        assert a.result.details == b.result.details, a.result.attack
    return honest


def test_scores_do_not_depend_on_the_membership_truth(tmp_path, monkeypatch):
    config = AuditConfig(
        dataset="digits",
        # The widest threat model: every attack runs (NSH with known members, left out of the evaluation).
        threat_model="white-box-partial",
        recipe={"epochs": 3},
        n_shadow_models=2,
        attack_options=FAST_OPTIONS,  # the costly attacks with fewer queries / epochs
        n_bootstrap=0,
        cache_dir=str(tmp_path / "cache"),
    )
    honest = _honest_and_lied_to(config, monkeypatch)
    ran = [o.result.attack for o in honest.outcomes]
    assert len(ran) + len(honest.skipped) == len(ATTACKS.names()) and len(ran) >= 10


def test_tuned_hyperparameters_do_not_depend_on_the_membership_truth(tmp_path, monkeypatch):
    """The tuner's stand-in target is a shadow model: the chosen values (in ``details``) and the
    scores are the same whatever the evaluated records' truth."""
    config = AuditConfig(
        dataset="digits",
        model="random_forest",
        attacks=tuple(TUNED_OPTIONS),
        attack_options=TUNED_OPTIONS,
        n_shadow_models=4,  # the stand-in, its twin, 2 references
        n_bootstrap=0,
        cache_dir=str(tmp_path / "cache"),
    )
    honest = _honest_and_lied_to(config, monkeypatch)
    assert sorted(o.result.attack for o in honest.outcomes) == sorted(TUNED_OPTIONS)
    for o in honest.outcomes:
        assert o.result.details["tuned"] and "never on the target's records or truth" in o.result.details["tuning"]
        auto = {k for k, v in TUNED_OPTIONS[o.result.attack].items() if v == "auto"}
        auto |= {"width", "depth", "lr"} if o.result.attack == "nn" else set()
        assert auto <= set(o.result.details["tuned"]), o.result.attack
