"""Per-class thresholds calibrated on shadow models, shared by the metric attacks of Song and
Mittal ("Systematic Evaluation of Privacy Risks of Machine Learning Models", USENIX Security
2021): ``confidence``, ``entropy``, ``modified-entropy`` and ``loss-class``.

Calibration: the attacker trains ``knowledge.n_shadow_models`` shadow models with the target's
recipe on halves of its pool (:func:`train_shadow_models`), so it knows which pool records each
shadow trained on. It computes the attack's metric (higher = more member-like) on every
(shadow, pool record) pair and, for each class ``c``, picks the threshold that maximises
balanced accuracy on the shadow records of class ``c`` (rule: member iff metric >= threshold;
among equally good thresholds the highest, see :func:`miaudit.metrics.best_threshold`). A class
without shadow members or without shadow non-members gets the global threshold, chosen the same
way on all shadow records.

Scores, not decisions: the score of a record ``(x, y)`` is ``metric(x, y) - threshold[y]``.
One global threshold 0 then reproduces the per-class decisions exactly (for floats,
``a - b >= 0`` iff ``a >= b``), so the balanced accuracy reported at threshold 0 with source
"shadow models" is Song and Mittal's per-class attack, while AUC and TPR at low FPR are computed
over these per-class calibrated scores. Those differ from the AUC of the raw metric: the shift
moves each class's scores so that its own threshold sits at 0.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from miaudit.attacks.base import NOT_CALIBRATED, Attack, AttackResult
from miaudit.attacks.knowledge import AttackerKnowledge
from miaudit.attacks.shadow_models import GRAY_BOX_SHADOW_TRAINING, train_shadow_models
from miaudit.errors import ConfigError, InputError
from miaudit.metrics import best_threshold, check_inputs
from miaudit.targets.access import TargetAccess
from miaudit.threat import OutputAccess, Requirements

Metric = Callable[[np.ndarray, np.ndarray], np.ndarray]
"""``metric(proba, y)``: one float per record from probability vectors and labels, higher = member."""

LOG_FLOOR = 1e-30  # probabilities are clipped here before a log: log 0 would be -inf

#: Gray box, as the survey's Table 2 lists the shadow-calibrated metric attacks: the full
#: probability vector, the target's architecture and recipe (to train shadow models like it),
#: and same-distribution data to train them on.


def clipped_log(p: np.ndarray) -> np.ndarray:
    """``log(max(p, LOG_FLOOR))``, finite for every probability in [0, 1]."""
    return np.log(np.maximum(p, LOG_FLOOR))


@dataclass(frozen=True)
class ShadowValues:
    """A metric on shadow outputs: one entry per (shadow model, pool record) pair."""

    values: np.ndarray
    labels: np.ndarray
    is_member: np.ndarray


def shadow_metric_values(knowledge: AttackerKnowledge, metric: Metric) -> ShadowValues:
    """``metric(proba, y)`` of every shadow model on its members and its non-members.

    Trains ``knowledge.n_shadow_models`` shadow models (from the cache when there is one).
    """
    shadows = train_shadow_models(knowledge, knowledge.n_shadow_models)
    pool_x, pool_y = knowledge.pool_x, knowledge.pool_y  # present: train_shadow_models checked
    values, labels, member = [], [], []
    for s in shadows:
        idx = np.concatenate((s.in_idx, s.out_idx))
        values.append(metric(np.asarray(s.model.predict_proba(pool_x[idx]), np.float64), pool_y[idx]))
        labels.append(pool_y[idx])
        member.append(np.arange(len(idx)) < len(s.in_idx))
    return ShadowValues(np.concatenate(values), np.concatenate(labels), np.concatenate(member))


@dataclass(frozen=True)
class ClassThresholds:
    """One threshold per class; ``fallback[c]`` marks a class that got ``global_threshold``."""

    thresholds: np.ndarray
    fallback: np.ndarray
    global_threshold: float


def choose_class_thresholds(
    values: np.ndarray, labels: np.ndarray, is_member: np.ndarray, num_classes: int
) -> ClassThresholds:
    """Per class, the threshold maximising balanced accuracy of "member iff value >= t".

    Classes with no members or no non-members among the records fall back to the global
    threshold chosen the same way on all records. Records are grouped by class with one sort;
    each class's threshold then costs one sort of that class's values.
    """
    values, is_member = check_inputs(values, is_member)  # needs members and non-members overall
    labels = np.asarray(labels)
    if labels.shape != values.shape:
        raise InputError(f"labels has shape {labels.shape}, values {values.shape}; pass one label per value")
    global_t = best_threshold(values, is_member)
    thresholds = np.full(num_classes, global_t)
    fallback = np.ones(num_classes, dtype=bool)
    order = np.argsort(labels, kind="stable")
    bounds = np.searchsorted(labels[order], np.arange(num_classes + 1), side="left")
    for c in range(num_classes):
        idx = order[bounds[c] : bounds[c + 1]]
        m = is_member[idx]
        if m.any() and not m.all():
            thresholds[c] = best_threshold(values[idx], m)
            fallback[c] = False
    return ClassThresholds(thresholds, fallback, global_t)


class ClassThresholdAttack(Attack):
    """A metric attack with per-class thresholds from shadow models (see the module docstring).

    Subclasses set ``name``, ``paper`` and ``metric(proba, y)``: one float per record from the
    full probability vectors (float64) and the true labels, higher = more member-like.
    """

    kind = "metric"
    requirements = GRAY_BOX_SHADOW_TRAINING
    uncalibrated_requirements = Requirements(output=OutputAccess.PROBABILITIES)  # the raw metric

    def __init__(self) -> None:
        self.calibration: ClassThresholds | None = None
        self.n_shadow = 0

    @staticmethod
    @abstractmethod
    def metric(proba: np.ndarray, y: np.ndarray) -> np.ndarray:
        """The attack's metric per record (higher = more likely a member)."""

    def fit(self, knowledge: AttackerKnowledge) -> "ClassThresholdAttack":
        self.n_shadow = knowledge.n_shadow_models
        shadow = shadow_metric_values(knowledge, self.metric)
        self.calibration = choose_class_thresholds(shadow.values, shadow.labels, shadow.is_member, knowledge.num_classes)
        return self

    def score(self, access: TargetAccess, x: np.ndarray, y: np.ndarray) -> AttackResult:
        if not self.calibrated:  # the raw metric, no per-class shift
            before = access.queries
            values = self.metric(np.asarray(access.predict_proba(x), np.float64), np.asarray(y))
            return self._result(access, before, len(y), values, details={"threshold": NOT_CALIBRATED})
        cal = self.calibration
        if cal is None:
            raise ConfigError(f"call fit() before score(): the {self.name} attack calibrates on shadow models")
        y = np.asarray(y)
        if len(y) and (y.min() < 0 or y.max() >= len(cal.thresholds)):
            raise InputError(f"labels must lie in [0, {len(cal.thresholds)}), got {y.min()}..{y.max()}")
        before = access.queries
        values = self.metric(np.asarray(access.predict_proba(x), np.float64), y)
        return self._result(
            access,
            before,
            len(y),
            values - cal.thresholds[y],
            threshold=0.0,
            threshold_source="shadow models",
            details={
                "threshold_rule": "per-class threshold maximising balanced accuracy on shadow models; score = metric - threshold[y]",
                "shadow_models": self.n_shadow,
                "per_class_thresholds": int((~cal.fallback).sum()),
                "fallback_classes": int(cal.fallback.sum()),
                "global_threshold": float(cal.global_threshold),
                "thresholds": [float(t) for t in cal.thresholds],
            },
        )
