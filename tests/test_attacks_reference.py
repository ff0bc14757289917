"""Reference-model attacks: LiRA (offline) and RMIA (offline)."""

import numpy as np
import pytest

from miaudit.attacks import ATTACKS
from miaudit.attacks.lira import logit_scaled_confidence, offline_lira_scores
from miaudit.attacks.rmia import offline_marginal, population_fraction
from miaudit.errors import ConfigError


def _softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def test_phi_is_log_odds_of_the_true_class():
    rng = np.random.default_rng(0)
    logits = rng.normal(scale=3.0, size=(200, 7))
    y = rng.integers(0, 7, 200)
    p = _softmax(logits)[np.arange(200), y]
    np.testing.assert_allclose(logit_scaled_confidence(logits, y), np.log(p / (1 - p)), rtol=1e-9, atol=1e-9)


def test_phi_is_finite_on_saturated_logits():
    logits = np.zeros((2, 3))
    logits[0, 1] = 200.0  # the true class far ahead: p_y rounds to 1
    logits[1, 0] = 200.0  # another class far ahead: p_y rounds to 0
    phi = logit_scaled_confidence(logits, np.array([1, 1]))
    assert np.isfinite(phi).all()
    np.testing.assert_allclose(phi, [200.0 - np.log(2.0), -200.0], rtol=1e-12)


def test_lira_scores_grow_with_the_target_confidence():
    rng = np.random.default_rng(1)
    phi_out = rng.normal(size=(4, 50))
    low, _, _ = offline_lira_scores(np.zeros(50), phi_out)
    high, _, _ = offline_lira_scores(np.full(50, 3.0), phi_out)
    assert (high > low).all() and np.isfinite(low).all()
    per_record, _, sigma = offline_lira_scores(np.zeros(50), phi_out, per_record_variance=True)
    assert np.isfinite(per_record).all() and sigma.shape == (50,)


@pytest.mark.parametrize("gamma", [1.0, 2.0, 0.5])
def test_rmia_sorted_fraction_matches_brute_force(gamma):
    rng = np.random.default_rng(2)
    ratio_x = rng.lognormal(size=37)
    ratio_z = rng.lognormal(size=53)
    ratio_z[:5] = ratio_x[:5]  # ties, for gamma = 1
    brute = (ratio_x[:, None] / ratio_z[None, :] >= gamma).mean(axis=1)
    np.testing.assert_allclose(population_fraction(ratio_x, ratio_z, gamma), brute)


def test_rmia_offline_marginal():
    np.testing.assert_allclose(offline_marginal(np.array([0.0, 1.0, 0.5]), 0.3), [0.35, 1.0, 0.675])
    np.testing.assert_allclose(offline_marginal(np.array([0.2]), 1.0), [0.2])


def test_registered():
    assert {"lira", "rmia"} <= set(ATTACKS.names())


def test_digits_audit_gives_finite_scores():
    from miaudit.experiments import AuditConfig, run_audit

    result = run_audit(
        AuditConfig(
            dataset="digits",
            attacks=("lira", "rmia"),
            recipe={"epochs": 5},
            n_shadow_models=2,
            n_bootstrap=0,
            use_cache=False,
        ),
        progress=False,
    )
    by_name = {o.result.attack: o.result for o in result.outcomes}
    assert set(by_name) == {"lira", "rmia"}
    for r in by_name.values():
        assert len(r.scores) and np.isfinite(r.scores).all()
        assert r.details["variant"] == "offline" and r.details["reference_models"] == 2
    rmia = by_name["rmia"]
    assert ((rmia.scores >= 0) & (rmia.scores <= 1)).all()
    assert rmia.queries_per_record > 1  # the population was queried through TargetAccess
    assert by_name["lira"].queries_per_record == 1


def test_rmia_auto_a_is_chosen_on_shadow_models(tmp_path):
    from miaudit.attacks.knowledge import AttackerKnowledge, ModelSpec
    from miaudit.attacks.rmia import A_GRID, RmiaAttack
    from miaudit.threat import THREAT_MODELS

    rng = np.random.default_rng(3)
    x = rng.random((400, 8), dtype=np.float32)
    y = rng.integers(0, 4, 400)
    knowledge = AttackerKnowledge(
        threat=THREAT_MODELS.get("gray-box"), num_classes=4, input_shape=(8,), seed=0,
        pool_x=x, pool_y=y, model=ModelSpec("random_forest", {}, recipe=object()), n_shadow_models=4,
    )  # fmt: skip
    attack = RmiaAttack(a="auto").fit(knowledge)
    assert attack.a in A_GRID and attack.a_source.startswith("auto (chosen")
    knowledge2 = AttackerKnowledge(**{**knowledge.__dict__, "n_shadow_models": 2})
    fallback = RmiaAttack(a="auto").fit(knowledge2)
    assert fallback.a == 0.3 and "fallback" in fallback.a_source
    with pytest.raises(ConfigError):
        RmiaAttack(a=1.5)
