"""Shadow-training attack (Shokri, Stronati, Song and Shmatikov, "Membership Inference Attacks
against Machine Learning Models", IEEE S&P 2017).

Threat model: gray box: the full probability vector, the target's architecture and training
recipe, and same-distribution data (the attacker's pool).

The attacker trains ``knowledge.n_shadow_models`` shadow models with the target's recipe on
halves of its pool. Their probability vectors on the records they trained on (label 1) and on
the others (label 0) train ONE binary attack model PER CLASS, selected by the record's true
label; its input is the full (unsorted) probability vector. The score is that attack model's
P(member). A class whose attack data holds a single label (or none: the class is absent from the
pool) is scored by a global attack model trained on the attack data of all classes.

The default attack model is a one-hidden-layer MLP of 64 units (``attack_model="mlp"``); any name
in :data:`~miaudit.attacks.attack_models.ATTACK_MODELS` may replace it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from miaudit.attacks.attack_models import (
    ATTACK_MODELS,
    AttackModelAttack,
    attack_model_seed,
    fit_attack_model,
    member_probability,
    shadow_attack_data,
)
from miaudit.attacks.base import ATTACKS, AttackResult
from miaudit.attacks.knowledge import AttackerKnowledge
from miaudit.attacks.shadow_models import GRAY_BOX_SHADOW_TRAINING, train_shadow_models
from miaudit.errors import ConfigError
from miaudit.targets.access import TargetAccess


class PerClassAttackModels:
    """One attack model per class, and a global one for the classes that cannot have their own."""

    def __init__(self, models: dict[int, Any], global_model: Any, fallback_classes: list[int]) -> None:
        self.models = models
        self.global_model = global_model
        self.fallback_classes = fallback_classes

    @classmethod
    def fit(
        cls, features: np.ndarray, labels: np.ndarray, classes: np.ndarray, *, num_classes: int, attack_model: str, seed: int
    ) -> "PerClassAttackModels":
        if len(np.unique(labels)) < 2:
            raise ConfigError("the shadow models' attack data holds only members or only non-members")
        models: dict[int, Any] = {}
        fallback: list[int] = []
        for c in range(num_classes):
            rows = classes == c
            if len(np.unique(labels[rows])) < 2:
                fallback.append(c)
                continue
            models[c] = fit_attack_model(attack_model, features[rows], labels[rows], seed=attack_model_seed(seed, f"class-{c}"))
        global_model = (
            fit_attack_model(attack_model, features, labels, seed=attack_model_seed(seed, "global")) if fallback else None
        )
        return cls(models, global_model, fallback)

    def score(self, features: np.ndarray, y: np.ndarray) -> np.ndarray:
        """P(member) per record, from the attack model of its class ``y``."""
        scores = np.empty(len(y), dtype=np.float64)
        for c in np.unique(y):
            rows = y == c
            model = self.models.get(int(c), self.global_model)
            if model is None:  # a class beyond num_classes: the target would have refused it
                raise ConfigError(f"no attack model for class {int(c)}")
            scores[rows] = member_probability(model, features[rows])
        return scores


@ATTACKS.register("shadow-training")
class ShadowTrainingAttack(AttackModelAttack):
    name = "shadow-training"
    paper = "Shokri et al., S&P 2017"
    requirements = GRAY_BOX_SHADOW_TRAINING

    def __init__(self, attack_model: str = "mlp") -> None:
        ATTACK_MODELS.get(attack_model)  # unknown names fail here, listing the known ones
        self.attack_model = attack_model
        self.per_class: PerClassAttackModels | None = None
        self.n_shadow = 0

    def fit(self, knowledge: AttackerKnowledge) -> "ShadowTrainingAttack":
        self.n_shadow = knowledge.n_shadow_models
        shadows = train_shadow_models(knowledge, self.n_shadow)
        features, labels, classes = shadow_attack_data(shadows, knowledge.pool_x, knowledge.pool_y, lambda p: p)
        self.per_class = PerClassAttackModels.fit(
            features, labels, classes, num_classes=knowledge.num_classes, attack_model=self.attack_model, seed=knowledge.seed
        )
        return self

    def score(self, access: TargetAccess, x: np.ndarray, y: np.ndarray) -> AttackResult:
        self._check_fitted(self.per_class)
        before = access.queries
        scores = self.per_class.score(access.predict_proba(x), np.asarray(y))
        return self._membership_result(access, before, len(y), scores, {
            "attack_model": self.attack_model,
            "shadow_models": self.n_shadow,
            "per_class_models": len(self.per_class.models),
            "fallback_classes": self.per_class.fallback_classes,
        })  # fmt: skip
