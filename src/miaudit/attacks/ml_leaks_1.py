"""ML-Leaks, Adversary I (Salem, Zhang, Humbert, Berrang, Fritz and Backes, "ML-Leaks: Model and
Data Independent Membership Inference Attacks and Defenses on Machine Learning Models", NDSS 2019).

Threat model: the top-3 probabilities, the target's architecture and training recipe, and
same-distribution data (the attacker's pool).

Shokri et al.'s attack with one shadow model and one attack model: the shadow is trained like the
target on a random half of the pool (the other half are its non-members). The attack model sees
the shadow's three largest probabilities, sorted in descending order (so it does not depend on the
class), and learns members (1) from non-members (0); the score is its P(member).

Attack model: as in the paper, a multilayer perceptron with one hidden layer of 64 units
(scikit-learn's ``MLPClassifier``, Adam, seeded); ``attack_model=`` takes any name in
:data:`~miaudit.attacks.attack_models.ATTACK_MODELS` (e.g. ``"logreg"``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from miaudit.attacks.attack_models import (
    ATTACK_MODELS,
    AttackModelAttack,
    attack_model_seed,
    fit_attack_model,
    member_probability,
    query_top_k,
    shadow_attack_data,
    sorted_top_k,
)
from miaudit.attacks.base import ATTACKS, AttackResult
from miaudit.attacks.knowledge import AttackerKnowledge
from miaudit.attacks.shadow_models import (
    GRAY_BOX_SHADOW_TRAINING,
    ShadowModel,
    train_shadow_models,
)
from miaudit.targets.access import TargetAccess
from miaudit.threat import OutputAccess

TOP_K = 3  # ML-Leaks: the three largest posteriors carry (almost) all the signal


def top3_features(proba: np.ndarray) -> np.ndarray:
    """The attack model's input: the three largest probabilities, descending."""
    return sorted_top_k(proba, TOP_K)


@ATTACKS.register("ml-leaks-1")
class MLLeaks1Attack(AttackModelAttack):
    name = "ml-leaks-1"
    paper = "Salem et al., NDSS 2019 (Adversary I)"
    # Shokri et al.'s knowledge, but only the top-3 probabilities of the target's output.
    requirements = replace(GRAY_BOX_SHADOW_TRAINING, output=OutputAccess.TOP_K, min_top_k=TOP_K)

    def __init__(self, attack_model: str = "mlp") -> None:
        ATTACK_MODELS.get(attack_model)  # unknown names fail here, listing the known ones
        self.attack_model_name = attack_model
        self.attack_model: Any = None

    def fit(self, knowledge: AttackerKnowledge) -> "MLLeaks1Attack":
        shadows = train_shadow_models(knowledge, 1)
        return self._fit_on_shadows(shadows, knowledge.pool_x, knowledge.pool_y, seed=knowledge.seed)

    def _fit_on_shadows(self, shadows: Sequence[ShadowModel], x: np.ndarray, y: np.ndarray, *, seed: int) -> "MLLeaks1Attack":
        features, labels, _ = shadow_attack_data(shadows, x, y, top3_features)
        self.attack_model = fit_attack_model(
            self.attack_model_name, features, labels, seed=attack_model_seed(seed, self.name)
        )
        return self

    def _details(self, x: np.ndarray) -> dict[str, Any]:
        return {"shadow_models": 1}

    def score(self, access: TargetAccess, x: np.ndarray, y: np.ndarray) -> AttackResult:
        self._check_fitted(self.attack_model)
        before = access.queries
        scores = member_probability(self.attack_model, query_top_k(access, x, TOP_K))
        return self._membership_result(access, before, len(y), scores, {
            "attack_model": self.attack_model_name,
            "features": f"sorted top-{TOP_K} probabilities",
            **self._details(x),
        })  # fmt: skip
