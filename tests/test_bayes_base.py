"""BASE (Lassila, Östman & Ngo, 2025) and hyperparameters tuned on a shadow model as stand-in target."""

import numpy as np
import pytest
from scipy.special import log_softmax

from miaudit.attacks import ATTACKS
from miaudit.attacks.bayes_base import (
    BaseOfflineAttack,
    BaseOnlineAttack,
    base_offline_scores,
    base_online_scores,
    tempered_log_confidence,
)
from miaudit.attacks.knowledge import AttackerKnowledge, ModelSpec
from miaudit.attacks.rmia import RmiaOfflineAttack
from miaudit.errors import ConfigError
from miaudit.threat import THREAT_MODELS


def _softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _knowledge(seed=0, n_shadow_models=4, n=400):
    rng = np.random.default_rng(3)
    x = rng.random((n, 8), dtype=np.float32)
    y = rng.integers(0, 4, n)
    return AttackerKnowledge(
        threat=THREAT_MODELS.get("gray-box"), num_classes=4, input_shape=(8,), seed=seed,
        pool_x=x, pool_y=y, model=ModelSpec("random_forest", {}, recipe=object()), n_shadow_models=n_shadow_models,
    )  # fmt: skip


def test_registered_under_both_names():
    assert {"base", "base-offline"} <= set(ATTACKS.names())
    assert ATTACKS.get("base").requirements == ATTACKS.get("rmia").requirements


def test_temperature_on_probabilities_equals_temperature_on_logits():
    rng = np.random.default_rng(0)
    logits = rng.normal(scale=4.0, size=(50, 6))
    y = rng.integers(0, 6, 50)
    for t in (0.5, 1.0, 2.0, 5.0):
        expected = log_softmax(logits / t, axis=1)[np.arange(50), y]
        np.testing.assert_allclose(tempered_log_confidence(_softmax(logits), y, t), expected, rtol=1e-9, atol=1e-9)


def test_online_score_at_t1_is_log_p_target_minus_log_mean_reference_p():
    p_target = np.array([0.9, 0.2, 0.5])
    p_refs = np.array([[0.6, 0.1, 0.5], [0.3, 0.3, 0.25], [0.9, 0.2, 0.05]])  # 3 references x 3 records
    expected = np.log(p_target) - np.log(p_refs.mean(axis=0))
    np.testing.assert_allclose(base_online_scores(np.log(p_target), np.log(p_refs)), expected, rtol=1e-12, atol=1e-12)
    # Through the probability vectors (two classes, label 0), at T = 1:
    y = np.zeros(3, dtype=int)
    two = lambda p: np.stack([p, 1 - p], axis=1)  # noqa: E731
    s_t = tempered_log_confidence(two(p_target), y, 1.0)
    s_r = np.stack([tempered_log_confidence(two(p), y, 1.0) for p in p_refs])
    np.testing.assert_allclose(base_online_scores(s_t, s_r), expected, rtol=1e-12, atol=1e-12)


def test_offline_uses_only_out_references_and_scales_the_threshold():
    rng = np.random.default_rng(1)
    s_target, s_refs = np.log(rng.random(5)), np.log(rng.random((4, 5)))
    out = np.array([[1, 0, 1, 0, 1], [0, 1, 0, 1, 1], [1, 1, 0, 0, 1], [0, 0, 1, 1, 0]], dtype=bool)
    scores = base_offline_scores(s_target, s_refs, out, 0.33)
    changed = s_refs.copy()
    changed[~out] = 5.0  # any value at an IN (model, record)
    np.testing.assert_array_equal(base_offline_scores(s_target, changed, out, 0.33), scores)
    for j in range(5):
        threshold = np.log(np.mean(np.exp(s_refs[out[:, j], j])))
        assert scores[j] == pytest.approx(s_target[j] - 0.33 * threshold, rel=1e-12)


@pytest.mark.parametrize(
    "options",
    [{"temperature": 0}, {"temperature": -1.0}, {"temperature": "hot"}, {"offline_scale_factor": -0.1},
     {"tune_trials": 0}, {"tune_objective": "accuracy"}, {"temperature": True}],
)  # fmt: skip
def test_bad_options_are_config_errors(options):
    with pytest.raises(ConfigError):
        BaseOfflineAttack(**options)


def test_online_takes_no_scale_factor_and_needs_two_references():
    with pytest.raises(TypeError):
        BaseOnlineAttack(offline_scale_factor=0.5)
    with pytest.raises(ConfigError, match="at least 2 reference models"):
        BaseOnlineAttack().fit(_knowledge(n_shadow_models=1))


def test_tuned_values_are_reproducible_from_the_seed_and_written_in_details():
    first = BaseOfflineAttack(temperature="auto", offline_scale_factor="auto", tune_trials=8).fit(_knowledge())
    again = BaseOfflineAttack(temperature="auto", offline_scale_factor="auto", tune_trials=8).fit(_knowledge())
    assert (first.temperature, first.scale) == (again.temperature, again.scale)
    assert set(first.tuning["tuned"]) == {"temperature", "offline_scale_factor"}
    assert "shadow 0 as stand-in target" in first.tuning["tuning"] and "8 trials" in first.tuning["tuning"]
    rmia = [RmiaOfflineAttack(a="auto", gamma="auto", tune_trials=8, tune_objective="tpr@1%fpr").fit(_knowledge()) for _ in range(2)]
    assert (rmia[0].a, rmia[0].gamma) == (rmia[1].a, rmia[1].gamma)
    assert set(rmia[0].tuning["tuned"]) == {"a", "gamma"} and "tpr@1%fpr" in rmia[0].tuning["tuning"]


def test_tpr_objective_needs_a_stand_in_with_100_non_members():
    with pytest.raises(ConfigError, match="at least 100"):
        BaseOfflineAttack(temperature="auto", tune_objective="tpr@1%fpr").fit(_knowledge(n=200))


def test_tuning_needs_four_shadow_models():
    with pytest.raises(ConfigError, match="at least 4 shadow models"):
        BaseOfflineAttack(temperature="auto").fit(_knowledge(n_shadow_models=2))
    with pytest.raises(ConfigError, match="at least 4 shadow models"):
        RmiaOfflineAttack(gamma="auto").fit(_knowledge(n_shadow_models=2))


def test_the_tuner_sees_only_the_attackers_pool(monkeypatch):
    """Everything the objective is handed comes from shadow 0's own pool subsets."""
    from miaudit.attacks import tuning

    seen = []
    real = tuning.objective_value

    def spy(scores, is_member, objective):
        seen.append(len(is_member))
        return real(scores, is_member, objective)

    monkeypatch.setattr(tuning, "objective_value", spy)
    knowledge = _knowledge()
    attack = BaseOfflineAttack(temperature="auto", tune_trials=3).fit(knowledge)
    assert seen == [seen[0]] * 3 and seen[0] < len(knowledge.pool_y)
    assert attack.tuning["tuned"]["temperature"] > 0


@pytest.mark.slow
def test_a_leaking_digits_target_is_caught(tmp_path):
    from miaudit.experiments import AuditConfig, run_audit

    result = run_audit(
        AuditConfig(dataset="digits", model="random_forest", attacks=("base", "base-offline"), n_shadow_models=4,
                    n_bootstrap=0, cache_dir=str(tmp_path / "cache")),  # fmt: skip
        progress=False,
    )
    # Fully grown trees: members get their own vote (train accuracy 1, test about 0.95); measured:
    # AUC 0.964 online, 0.901 offline (seed 0).
    assert result.train_accuracy == 1.0
    by_name = {o.result.attack: o for o in result.outcomes}
    for name in ("base", "base-offline"):
        assert by_name[name].metrics.auc > 0.8, (name, by_name[name].metrics.auc)
        assert by_name[name].result.details["reference_models"] == 4
