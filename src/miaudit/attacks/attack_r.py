"""Attack-R, the reference-model loss attack (Ye et al., "Enhanced Membership Inference Attacks
against Machine Learning Models", ACM CCS 2022).

Threat model: gray box: the full probability vector, the target's architecture and training
recipe, and same-distribution data (the attacker's pool) to train reference models on.

Yeom's loss attack uses one global loss threshold; Attack-R gives every record its own, from the
losses of OUT reference models (the shadow models, trained on the attacker's pool, never on the
scored records): a record whose loss under the target is lower than under most models that did
not train on it is likely a member. The score is the one-sided empirical p-value

    score(x) = (#refs with loss > target loss + 0.5 * #ties) / #refs,

so that thresholding it at ``alpha`` is the paper's per-record ``alpha``-percentile threshold.
It sits between the global loss attack and LiRA: per-record calibration, but no Gaussian model.
With k references the p-value takes only 2k + 1 values, so many records tie (all members a model
fits better than every reference get 1); ties are broken by the target's own loss (the global
loss attack), with a term smaller than the gap between two distinct p-values, so the p-value
order is never changed.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from scipy.stats import rankdata

from miaudit.attacks.base import ATTACKS, Attack, AttackResult
from miaudit.attacks.knowledge import AttackerKnowledge
from miaudit.attacks.loss import log_true_class_probability
from miaudit.attacks.reference_stats import require_counts
from miaudit.attacks.shadow_models import GRAY_BOX_SHADOW_TRAINING, train_shadow_models
from miaudit.errors import ConfigError
from miaudit.targets.access import TargetAccess


def attack_r_scores(loss_target: np.ndarray, loss_refs: np.ndarray, out_mask: np.ndarray | None = None) -> np.ndarray:
    """Fraction of the OUT references (``out_mask`` over (R, N); None: all) with a higher loss
    (ties count half), plus a tie-break by the target loss below the p-values' resolution."""
    t = np.asarray(loss_target, dtype=np.float64)
    r = np.asarray(loss_refs, dtype=np.float64)
    mask = np.ones(r.shape, dtype=bool) if out_mask is None else np.asarray(out_mask, dtype=bool)
    require_counts(mask, 1, "Attack-R")
    counts = mask.sum(axis=0)
    higher = ((r > t) & mask).sum(axis=0)
    ties = ((r == t) & mask).sum(axis=0)
    p_value = (higher + 0.5 * ties) / counts
    # Distinct p-values m1 / (2 k1) != m2 / (2 k2) differ by at least 1 / (2 k_max^2).
    resolution = 1.0 / (2.0 * float(counts.max()) ** 2)
    lower_loss_rank = (rankdata(-t) - 1) / len(t)  # in [0, 1): the lowest loss ranks highest
    return p_value + 0.999 * resolution * lower_loss_rank


@ATTACKS.register("attack-r")
class AttackR(Attack):
    name = "attack-r"
    paper = "Ye et al., ACM CCS 2022"
    kind = "reference models"
    requirements = GRAY_BOX_SHADOW_TRAINING

    def __init__(self) -> None:
        self.references: list[Any] | None = None

    def fit(self, knowledge: AttackerKnowledge) -> AttackR:
        self.references = [s.model for s in train_shadow_models(knowledge, knowledge.n_shadow_models)]
        return self

    def score(self, access: TargetAccess, x: np.ndarray, y: np.ndarray) -> AttackResult:
        if self.references is None:
            raise ConfigError("call fit() before score(): Attack-R needs reference models")
        y = np.asarray(y)
        before = access.queries
        loss_target = -log_true_class_probability(access.predict_proba(x), y)
        x32 = np.asarray(x, dtype=np.float32)
        loss_refs = np.stack([-log_true_class_probability(m.predict_proba(x32), y) for m in self.references])
        scores = attack_r_scores(loss_target, loss_refs)
        details = {"variant": "offline", "reference_models": len(self.references)}
        return self._result(access, before, len(y), scores, details=details)
