"""Loss-threshold attack (Yeom et al., IEEE CSF 2018), in the survey's gray-box form.

Threat model: gray box: full probability vector, the target's architecture and training recipe,
and same-distribution data (the attacker's pool). Score = -cross-entropy loss = log p_y.
Yeom et al. assume the attacker knows the target's average training loss; here the attacker
estimates it as the mean training loss of shadow models trained with the target's recipe on
halves of its own pool, and calls a record a member when its loss is below that mean.
"""

from __future__ import annotations

import numpy as np

from miaudit.attacks.base import ATTACKS, NOT_CALIBRATED, Attack, AttackResult
from miaudit.attacks.knowledge import AttackerKnowledge
from miaudit.attacks.shadow_models import GRAY_BOX_SHADOW_TRAINING, train_shadow_models
from miaudit.errors import ConfigError
from miaudit.targets.access import TargetAccess
from miaudit.threat import OutputAccess, Requirements

_LOG_FLOOR = 1e-30  # probabilities of exactly 0 would give an infinite loss


def true_class_probability(proba: np.ndarray, y: np.ndarray) -> np.ndarray:
    """p_y per record, float64 (shared by the loss, confidence and RMIA attacks)."""
    return np.asarray(proba, dtype=np.float64)[np.arange(len(y)), np.asarray(y)]


def log_true_class_probability(proba: np.ndarray, y: np.ndarray) -> np.ndarray:
    """log p_y per record (the negative cross-entropy loss)."""
    return np.log(np.maximum(true_class_probability(proba, y), _LOG_FLOOR))


@ATTACKS.register("loss")
class LossAttack(Attack):
    name = "loss"
    paper = "Yeom et al., CSF 2018"
    kind = "metric"
    requirements = GRAY_BOX_SHADOW_TRAINING
    uncalibrated_requirements = Requirements(output=OutputAccess.PROBABILITIES)

    def __init__(self) -> None:
        self.threshold: float | None = None
        self.n_shadow = 0

    def fit(self, knowledge: AttackerKnowledge) -> "LossAttack":
        self.n_shadow = knowledge.n_shadow_models
        shadows = train_shadow_models(knowledge, self.n_shadow)
        pool_x, pool_y = knowledge.pool_x, knowledge.pool_y  # present: train_shadow_models checked
        train_scores = [
            log_true_class_probability(s.model.predict_proba(pool_x[s.in_idx]), pool_y[s.in_idx])
            for s in shadows
        ]
        self.threshold = float(np.mean(np.concatenate(train_scores)))
        return self

    def score(self, access: TargetAccess, x: np.ndarray, y: np.ndarray) -> AttackResult:
        if not self.calibrated:
            before = access.queries
            scores = log_true_class_probability(access.predict_proba(x), y)
            return self._result(access, before, len(y), scores, details={"threshold": NOT_CALIBRATED})
        if self.threshold is None:
            raise ConfigError("call fit() before score(): the loss attack calibrates on shadow models")
        before = access.queries
        scores = log_true_class_probability(access.predict_proba(x), y)
        return self._result(
            access,
            before,
            len(y),
            scores,
            threshold=self.threshold,
            threshold_source="shadow models",
            details={"threshold_rule": "mean training log p_y of the shadow models", "shadow_models": self.n_shadow},
        )
