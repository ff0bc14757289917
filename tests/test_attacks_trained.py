"""Attacks that train an attack model: shadow-training, nn, ML-Leaks I, II and III."""

import numpy as np
import pytest

from miaudit.attacks import ATTACKS, AttackerKnowledge, ModelSpec
from miaudit.attacks.attack_models import (
    ATTACK_MODELS,
    fit_attack_model,
    member_probability,
    query_top_k,
    shadow_attack_data,
    sorted_top_k,
)
from miaudit.attacks.ml_leaks_2 import MLLeaks2Attack, row_fingerprints
from miaudit.attacks.ml_leaks_3 import MLLeaks3Attack, generate_non_members
from miaudit.attacks.nn_attack import network_member_probability, train_attack_network
from miaudit.attacks.shadow_models import ShadowModel
from miaudit.attacks.shadow_training import PerClassAttackModels, ShadowTrainingAttack
from miaudit.data import load_dataset
from miaudit.errors import UnknownNameError
from miaudit.experiments import AuditConfig, run_audit
from miaudit.metrics import THRESHOLD_SOURCES
from miaudit.models import TrainingRecipe, fit_classifier
from miaudit.targets.access import QueryBudgetExceededError, TargetAccess
from miaudit.threat import THREAT_MODELS, DataKnowledge, OutputAccess, ThreatModel, check

TOP3 = ThreatModel("top-3", OutputAccess.TOP_K, top_k=3, data=DataKnowledge.NONE)


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """Small models on a shared 2-core machine: with other processes running, torch's spinning
    threads made the end-to-end audit 20 times slower (60 s instead of 3 s)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class FunctionModel:
    """A target whose probability vectors are ``fn(x)``; remembers every query batch."""

    def __init__(self, fn):
        self.fn = fn
        self.batches = []

    def predict_proba(self, x):
        self.batches.append(np.array(x))
        return self.fn(np.asarray(x, dtype=np.float64))


class ConstantAttackModel:
    """A fitted binary attack model that says P(member) = p for every row."""

    classes_ = np.array([0, 1])

    def __init__(self, p):
        self.p = p

    def predict_proba(self, features):
        return np.column_stack([np.full(len(features), 1 - self.p), np.full(len(features), self.p)])


def _softmax_of_features(x):
    z = np.exp(3 * x.reshape(len(x), -1))
    return z / z.sum(axis=1, keepdims=True)


# ---------------------------------------------------------------- shared pieces


def test_sorted_top3_features_are_built_alike_from_shadow_outputs_and_target_queries():
    proba = np.array([[0.1, 0.6, 0.05, 0.25], [0.4, 0.3, 0.2, 0.1], [0.25, 0.25, 0.25, 0.25]])
    expected = np.array([[0.6, 0.25, 0.1], [0.4, 0.3, 0.2], [0.25, 0.25, 0.25]])
    np.testing.assert_allclose(sorted_top_k(proba, 3), expected)
    np.testing.assert_allclose(sorted_top_k(np.array([[0.3, 0.7]]), 3), [[0.7, 0.3, 0.0]])  # 2 classes: padded
    target = FunctionModel(lambda x: proba[x[:, 0].astype(int)])
    x = np.array([[0.0], [1.0], [2.0]])
    for threat in (TOP3, ThreatModel("top-4", OutputAccess.TOP_K, top_k=4), THREAT_MODELS.get("black-box")):
        access = TargetAccess(target, threat, input_shape=(1,))
        np.testing.assert_allclose(query_top_k(access, x, 3), expected, rtol=1e-6)
        assert access.queries == 3


def test_shadow_attack_data_labels_in_and_out_records_with_their_classes():
    pool_x = np.arange(4, dtype=np.float32).reshape(4, 1)
    pool_y = np.array([5, 6, 7, 8])
    model = FunctionModel(lambda x: np.column_stack([x[:, 0] / 10, 1 - x[:, 0] / 10]))
    shadow = ShadowModel(model, in_idx=np.array([0, 2]), out_idx=np.array([1, 3]))
    features, labels, classes = shadow_attack_data([shadow, shadow], pool_x, pool_y, lambda p: p[:, :1])
    np.testing.assert_allclose(features[:, 0], [0.0, 0.2, 0.1, 0.3] * 2)
    np.testing.assert_array_equal(labels, [1, 1, 0, 0] * 2)
    np.testing.assert_array_equal(classes, [5, 7, 6, 8] * 2)


@pytest.mark.parametrize("name", ATTACK_MODELS.names())
def test_every_attack_model_learns_a_separable_rule(name):
    rng = np.random.default_rng(0)
    features = rng.random((200, 3))
    labels = (features[:, 0] > 0.5).astype(int)
    model = fit_attack_model(name, features, labels, seed=0)
    p = member_probability(model, np.array([[0.9, 0.5, 0.5], [0.1, 0.5, 0.5]]))
    assert 0 <= p[1] < 0.5 < p[0] <= 1


def test_unknown_attack_model_is_refused_with_the_known_names():
    with pytest.raises(UnknownNameError, match="logreg"):
        ShadowTrainingAttack(attack_model="svm")


# ---------------------------------------------------------------- shadow-training


def test_per_class_models_route_by_true_label_and_fall_back_to_the_global_model():
    rng = np.random.default_rng(0)
    classes = np.repeat([0, 1, 2], 100)
    labels = rng.integers(0, 2, 300)
    labels[classes == 2] = 1  # class 2: members only; class 3: no attack data at all
    per_class = PerClassAttackModels.fit(rng.random((300, 4)), labels, classes, num_classes=4, attack_model="logreg", seed=0)
    assert sorted(per_class.models) == [0, 1]
    assert per_class.fallback_classes == [2, 3]
    assert per_class.global_model is not None
    per_class.models = {0: ConstantAttackModel(0.1), 1: ConstantAttackModel(0.2)}
    per_class.global_model = ConstantAttackModel(0.9)
    scores = per_class.score(rng.random((5, 4)), np.array([1, 0, 2, 3, 1]))
    np.testing.assert_allclose(scores, [0.2, 0.1, 0.9, 0.9, 0.2])

    both = PerClassAttackModels.fit(rng.random((300, 4)), rng.integers(0, 2, 300), classes, num_classes=3, attack_model="logreg", seed=0)
    assert both.fallback_classes == [] and both.global_model is None


def test_shadow_training_scores_a_class_missing_from_the_pool_with_the_global_model():
    data = load_dataset("digits")
    rng = np.random.default_rng(0)
    order = rng.permutation(len(data))
    target_idx, pool_idx = order[:300], order[300:]
    pool_idx = pool_idx[data.y[pool_idx] != 9][:400]
    spec = ModelSpec("logreg", {}, TrainingRecipe())
    target = fit_classifier("logreg", data.x[target_idx], data.y[target_idx], num_classes=10, seed=0)
    knowledge = AttackerKnowledge.under(
        THREAT_MODELS.get("gray-box"), num_classes=10, input_shape=data.feature_shape, seed=1,
        pool_x=data.x[pool_idx], pool_y=data.y[pool_idx], pool_fingerprint=None, target_model=spec, n_shadow_models=2,
    )  # fmt: skip
    attack = ShadowTrainingAttack(attack_model="logreg").fit(knowledge)
    x, y = data.x[order[:60]], data.y[order[:60]]
    result = attack.score(TargetAccess(target, THREAT_MODELS.get("gray-box"), input_shape=data.feature_shape), x, y)
    assert result.details["fallback_classes"] == [9] and result.details["per_class_models"] == 9
    proba = target.predict_proba(x)
    nines = y == 9
    assert nines.any() and (~nines).any()
    np.testing.assert_allclose(result.scores[nines], member_probability(attack.per_class.global_model, proba[nines]))
    c = int(y[~nines][0])
    rows = y == c
    np.testing.assert_allclose(result.scores[rows], member_probability(attack.per_class.models[c], proba[rows]))


# ---------------------------------------------------------------- nn


def test_nn_attack_network_is_reproducible_and_learns_a_clear_signal():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 400)
    top1 = np.where(labels == 1, 0.95, 0.6) + rng.normal(0, 0.03, 400)
    features = np.column_stack([top1, 1 - top1])
    net_a, info = train_attack_network(features, labels, seed=3, max_epochs=10)
    net_b, _ = train_attack_network(features, labels, seed=3, max_epochs=10)
    probe = np.array([[0.95, 0.05], [0.6, 0.4]])
    pa, pb = network_member_probability(net_a, probe), network_member_probability(net_b, probe)
    np.testing.assert_array_equal(pa, pb)
    assert pa[0] > 0.5 > pa[1]
    assert 1 <= info["best_epoch"] <= info["epochs_run"] <= 10


# ---------------------------------------------------------------- ML-Leaks


def test_ml_leaks_3_queries_generated_records_through_the_access_and_respects_the_budget():
    rng = np.random.default_rng(0)
    x, y = rng.random((50, 4)).astype(np.float32), rng.integers(0, 4, 50)
    threat = ThreatModel("top-1", OutputAccess.TOP_K, top_k=1, data=DataKnowledge.NONE, query_budget=250)
    target = FunctionModel(_softmax_of_features)
    access = TargetAccess(target, threat, input_shape=(4,))
    result = MLLeaks3Attack(n_generated=200, percentile=80).score(access, x, y)
    assert access.queries == 250 and result.queries_per_record == 5.0
    generated = np.concatenate([b for b in target.batches if len(b) == 200])
    assert generated.shape == (200, 4)
    assert (generated >= x.min(axis=0)).all() and (generated <= x.max(axis=0)).all()
    assert result.threshold == pytest.approx(np.percentile(_softmax_of_features(generated).max(axis=1), 80))
    assert result.threshold_source == "reference data"
    np.testing.assert_allclose(result.scores, _softmax_of_features(x).max(axis=1), rtol=1e-6)

    tight = ThreatModel("top-1", OutputAccess.TOP_K, top_k=1, data=DataKnowledge.NONE, query_budget=249)
    with pytest.raises(QueryBudgetExceededError):
        MLLeaks3Attack(n_generated=200).score(TargetAccess(target, tight, input_shape=(4,)), x, y)


def test_ml_leaks_3_generates_random_bits_for_binary_features():
    rng = np.random.default_rng(0)
    x = (rng.random((400, 50)) < 0.2).astype(np.float32)
    generated, rule = generate_non_members(x, 1000, np.random.default_rng(1))
    assert set(np.unique(generated)) == {0.0, 1.0} and "bits" in rule
    assert generated.mean() == pytest.approx(x.mean(), abs=0.01)


def test_top3_threat_model_permits_ml_leaks_2_and_3_and_skips_shadow_training():
    def req(name):
        return ATTACKS.get(name).requirements

    for threat in (TOP3, THREAT_MODELS.get("black-box")):
        assert check(req("ml-leaks-2"), threat) is None
        assert check(req("ml-leaks-3"), threat) is None
        for name in ("shadow-training", "nn", "ml-leaks-1"):
            assert check(req(name), threat) is not None
    assert "architecture" in check(req("shadow-training"), THREAT_MODELS.get("black-box"))
    assert "top-3" in check(req("ml-leaks-2"), ThreatModel("top-2", OutputAccess.TOP_K, top_k=2))
    assert check(req("ml-leaks-3"), THREAT_MODELS.get("label-only")) is not None
    assert check(req("ml-leaks-1"), ThreatModel("gray-top-3", OutputAccess.TOP_K, top_k=3, knows_architecture=True, knows_training_recipe=True)) is None


def test_ml_leaks_2_transfers_from_digits_to_a_target_with_other_features():
    rng = np.random.default_rng(0)
    x, y = rng.random((300, 8)).astype(np.float32), rng.integers(0, 3, 300)
    target = fit_classifier("random_forest", x[:150], y[:150], num_classes=3, seed=0)
    knowledge = AttackerKnowledge.under(
        TOP3, num_classes=3, input_shape=(8,), seed=1, pool_x=None, pool_y=None, pool_fingerprint=None,
        target_model=ModelSpec("random_forest"),
    )  # fmt: skip
    assert knowledge.model is None and knowledge.pool_x is None
    attack = MLLeaks2Attack(shadow_model="logreg", attack_model="logreg").fit(knowledge)
    access = TargetAccess(target, TOP3, input_shape=(8,))
    result = attack.score(access, x, y)
    assert np.isfinite(result.scores).all() and result.queries_per_record == 1.0
    assert result.details["transfer"] is True and result.details["scored_records_in_shadow_data"] == 0.0
    # A forest's members get confident top-1 outputs: the transferred attack sees it.
    assert result.scores[:150].mean() > result.scores[150:].mean()


def test_row_fingerprints_match_equal_records_only():
    rng = np.random.default_rng(0)
    x = rng.random((100, 2, 3, 3)).astype(np.float32)
    fp = row_fingerprints(x)
    assert len(np.unique(fp)) == 100
    np.testing.assert_array_equal(row_fingerprints(x[[5, 7]]), fp[[5, 7]])
    y = x[:1].copy()
    y[0, 1, 2, 2] = np.nextafter(y[0, 1, 2, 2], 2)
    assert row_fingerprints(y)[0] != fp[0]


# ---------------------------------------------------------------- end to end


def test_trained_attacks_run_end_to_end_on_digits():
    names = ("shadow-training", "nn", "ml-leaks-1", "ml-leaks-2", "ml-leaks-3")
    result = run_audit(
        AuditConfig(dataset="digits", attacks=names, recipe={"epochs": 5}, n_shadow_models=2, n_bootstrap=0, use_cache=False),
        progress=False,
    )
    outcomes = {o.result.attack: o.result for o in result.outcomes}
    assert sorted(outcomes) == sorted(names)
    n = len(result.record_indices)
    for name, r in outcomes.items():
        assert r.scores.shape == (n,) and np.isfinite(r.scores).all(), name
        assert r.threshold_source in THRESHOLD_SOURCES and np.isfinite(r.threshold), name
    for name in ("shadow-training", "nn", "ml-leaks-1", "ml-leaks-2"):
        assert outcomes[name].threshold_source == "shadow models" and outcomes[name].threshold == 0.5
        assert ((outcomes[name].scores >= 0) & (outcomes[name].scores <= 1)).all()
        assert outcomes[name].queries_per_record == 1.0
    assert outcomes["ml-leaks-3"].threshold_source == "reference data"
    assert outcomes["ml-leaks-3"].queries_per_record == pytest.approx(1 + 1000 / n)
    # digits shadow data for a digits target: the attack says it is not a transfer
    assert outcomes["ml-leaks-2"].details["transfer"] is False
