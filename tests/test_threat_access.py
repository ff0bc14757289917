import numpy as np
import pytest

from miaudit.errors import ConfigError, InputError
from miaudit.targets.access import AccessDeniedError, QueryBudgetExceededError, TargetAccess
from miaudit.threat import THREAT_MODELS, DataKnowledge, OutputAccess, Requirements, ThreatModel, check


class SoftmaxOfLinear:
    """A tiny real model: softmax(x @ W)."""

    def __init__(self, w):
        self.w = w

    def predict_proba(self, x):
        z = x @ self.w
        z = z - z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)


@pytest.fixture
def model():
    return SoftmaxOfLinear(np.random.default_rng(0).normal(size=(5, 4)))


def test_label_only_access_refuses_probabilities(model):
    access = TargetAccess(model, THREAT_MODELS.get("label-only"), input_shape=(5,))
    x = np.random.default_rng(1).normal(size=(7, 5)).astype(np.float32)
    assert access.predict_label(x).shape == (7,)
    with pytest.raises(AccessDeniedError):
        access.predict_proba(x)
    with pytest.raises(AccessDeniedError):
        access.predict_topk(x)
    assert access.queries == 7


def test_topk_returns_sorted_probabilities_and_their_classes(model):
    threat = ThreatModel("top2", OutputAccess.TOP_K, top_k=2)
    access = TargetAccess(model, threat, input_shape=(5,))
    x = np.random.default_rng(2).normal(size=(10, 5)).astype(np.float32)
    probs, classes = access.predict_topk(x)
    full = model.predict_proba(x)
    assert probs.shape == classes.shape == (10, 2)
    assert np.all(probs[:, 0] >= probs[:, 1])
    np.testing.assert_allclose(probs, np.take_along_axis(full, classes, axis=1))
    assert np.array_equal(classes[:, 0], full.argmax(axis=1))
    with pytest.raises(AccessDeniedError):
        access.predict_proba(x)


def test_query_budget_is_enforced_with_counts(model):
    threat = ThreatModel("budget", OutputAccess.PROBABILITIES, query_budget=10)
    access = TargetAccess(model, threat, input_shape=(5,))
    access.predict_proba(np.zeros((8, 5), np.float32))
    with pytest.raises(QueryBudgetExceededError, match="8 used, 3 more"):
        access.predict_proba(np.zeros((3, 5), np.float32))
    assert access.queries == 8


def test_wrong_query_shape_is_an_input_error(model):
    access = TargetAccess(model, THREAT_MODELS.get("black-box"), input_shape=(5,))
    with pytest.raises(InputError):
        access.predict_label(np.zeros((3, 4), np.float32))


def test_requirements_check_gives_reasons():
    gray, black, label = (THREAT_MODELS.get(n) for n in ("gray-box", "black-box", "label-only"))
    needs_recipe = Requirements(OutputAccess.PROBABILITIES, architecture=True, training_recipe=True, data=DataKnowledge.SAME_DISTRIBUTION)
    assert check(needs_recipe, gray) is None
    assert "architecture" in check(needs_recipe, black)
    assert "output" in check(needs_recipe, label)
    assert check(Requirements(OutputAccess.LABEL), label) is None
    top3 = ThreatModel("top3", OutputAccess.TOP_K, top_k=3)
    assert "top-5" in check(Requirements(OutputAccess.TOP_K, min_top_k=5), top3)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"output": OutputAccess.TOP_K},
        {"output": OutputAccess.PROBABILITIES, "top_k": 3},
        {"output": OutputAccess.PROBABILITIES, "knows_parameters": True},
        {"output": OutputAccess.WHITE_BOX, "knows_architecture": True},
        {"output": OutputAccess.LABEL, "query_budget": -1},
    ],
)
def test_inconsistent_threat_models_are_refused(kwargs):
    with pytest.raises(ConfigError):
        ThreatModel("bad", **kwargs)
