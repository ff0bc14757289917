"""LiRA, offline variant (Carlini et al., "Membership Inference Attacks From First Principles",
IEEE S&P 2022).

Threat model: gray box: the full probability vector, the target's architecture and training
recipe, and same-distribution data (the attacker's pool) to train reference models on.

Reference models are the shadow models of :func:`train_shadow_models`, trained like the target on
halves of the attacker's pool. They never saw the records being scored (the pool is disjoint from
the target's data), so they are OUT references. For each scored record ``(x, y)`` the attacker
queries every reference (in process: they are its own models) and computes the logit-scaled
confidence ``phi = log p_y - log(sum_{i != y} p_i)`` from their logits. A Gaussian is fitted to
the references' ``phi`` on the record: a mean per record and, by default, one global standard
deviation over all (reference, record) values, as the paper recommends when there are few
references (fewer than 64); ``per_record_variance=True`` uses the standard deviation of each
record's own references instead. The score is the one-sided test

    score = log Phi((phi_target - mu_out) / sigma)

(``Phi`` the standard normal CDF): higher means the target is more confident on the record than
models that did not train on it, i.e. more likely a member.

Online LiRA additionally trains IN reference models on each scored record. The fit/score split
of :class:`Attack` gives ``fit`` only the attacker's knowledge, never the records to be scored,
so online LiRA cannot be expressed here; only the offline variant is implemented.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.special import log_ndtr, logsumexp

from miaudit.attacks.base import ATTACKS, Attack, AttackResult
from miaudit.attacks.knowledge import AttackerKnowledge
from miaudit.attacks.shadow_models import GRAY_BOX_SHADOW_TRAINING, train_shadow_models
from miaudit.errors import ConfigError, InputError
from miaudit.targets.access import TargetAccess

SIGMA_FLOOR = 1e-30  # a zero standard deviation (identical references) would divide by zero


def logit_scaled_confidence(logits: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``phi = log p_y - log(sum_{i != y} p_i)`` per record, from logits (or log-probabilities).

    Computed as ``z_y - logsumexp_{i != y} z_i``: the softmax normaliser cancels, and neither
    ``p_y`` nor ``1 - p_y`` is ever formed, so saturated outputs stay finite.
    """
    z = np.asarray(logits, dtype=np.float64)
    y = np.asarray(y)
    if z.ndim != 2 or y.shape != (len(z),):
        raise InputError(f"need logits shaped (n, C) and one label per row, got {z.shape} and {y.shape}")
    rows = np.arange(len(y))
    z_y = z[rows, y]
    others = z.copy()
    others[rows, y] = -np.inf
    return z_y - logsumexp(others, axis=1)


def log_probabilities(proba: np.ndarray) -> np.ndarray:
    """``log p`` with exact zeros floored at the smallest normal float64 (stays finite)."""
    return np.log(np.maximum(np.asarray(proba, dtype=np.float64), np.finfo(np.float64).tiny))


def model_logits(model: Any, x: np.ndarray) -> np.ndarray:
    """The attacker's own model's logits (log-probabilities when it only gives probabilities)."""
    if hasattr(model, "predict_logits"):
        return np.asarray(model.predict_logits(x), dtype=np.float64)
    return log_probabilities(model.predict_proba(x))


def offline_lira_scores(
    phi_target: np.ndarray, phi_out: np.ndarray, *, per_record_variance: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``log Phi((phi_target - mu) / sigma)`` with ``phi_out`` shaped (references, records).

    Returns the scores, the per-record means and the standard deviations used (one per record).
    """
    phi_out = np.asarray(phi_out, dtype=np.float64)
    mu = phi_out.mean(axis=0)
    if per_record_variance:
        if phi_out.shape[0] < 2:
            raise ConfigError("per-record variance needs at least 2 reference models")
        sigma = phi_out.std(axis=0)
    else:
        sigma = np.full(phi_out.shape[1], phi_out.std() if phi_out.size else 0.0)
    sigma = np.maximum(sigma, SIGMA_FLOOR)
    return log_ndtr((np.asarray(phi_target, dtype=np.float64) - mu) / sigma), mu, sigma


@ATTACKS.register("lira")
class LiraAttack(Attack):
    name = "lira"
    paper = "Carlini et al., IEEE S&P 2022"
    kind = "reference models"
    requirements = GRAY_BOX_SHADOW_TRAINING

    def __init__(self, *, per_record_variance: bool = False) -> None:
        self.per_record_variance = per_record_variance
        self.references: list[Any] | None = None

    def fit(self, knowledge: AttackerKnowledge) -> LiraAttack:
        shadows = train_shadow_models(knowledge, knowledge.n_shadow_models)
        self.references = [s.model for s in shadows]
        if self.per_record_variance and len(self.references) < 2:
            raise ConfigError("per-record variance needs at least 2 reference models; raise n_shadow_models")
        return self

    def score(self, access: TargetAccess, x: np.ndarray, y: np.ndarray) -> AttackResult:
        if self.references is None:
            raise ConfigError("call fit() before score(): LiRA needs reference models")
        y = np.asarray(y)
        before = access.queries
        phi_target = logit_scaled_confidence(log_probabilities(access.predict_proba(x)), y)
        x32 = np.asarray(x, dtype=np.float32)
        phi_out = np.stack([logit_scaled_confidence(model_logits(m, x32), y) for m in self.references])
        scores, _, sigma = offline_lira_scores(phi_target, phi_out, per_record_variance=self.per_record_variance)
        return self._result(
            access,
            before,
            len(y),
            scores,
            details={
                "variant": "offline",
                "reference_models": len(self.references),
                "variance": "per record" if self.per_record_variance else "global",
                "global_sigma": None if self.per_record_variance else float(sigma[0]) if len(sigma) else None,
                "score": "log Phi((phi_target - mu_out) / sigma), phi = log p_y - log(1 - p_y)",
            },
        )
