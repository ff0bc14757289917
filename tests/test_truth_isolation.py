"""Membership truth reaches the metrics, never the attacks: shuffling it changes no score."""

import numpy as np
from synthetic import FAST_OPTIONS

from miaudit.attacks import ATTACKS
from miaudit.experiments import AuditConfig, run_audit
from miaudit.experiments import audit as audit_module


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
    honest = run_audit(config, progress=False)

    real = audit_module.evaluation_records

    def shuffled_truth(split, *, seed, **kwargs):
        idx, is_member = real(split, seed=seed, **kwargs)
        return idx, np.random.default_rng(99).permutation(is_member)

    monkeypatch.setattr(audit_module, "evaluation_records", shuffled_truth)
    lied_to = run_audit(config, progress=False)

    assert not np.array_equal(honest.is_member, lied_to.is_member)
    ran = [o.result.attack for o in honest.outcomes]
    assert len(ran) + len(honest.skipped) == len(ATTACKS.names()) and len(ran) >= 10
    for a, b in zip(honest.outcomes, lied_to.outcomes, strict=True):
        assert a.result.attack == b.result.attack
        np.testing.assert_array_equal(a.result.scores, b.result.scores, err_msg=a.result.attack)
