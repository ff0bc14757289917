"""The attack contract: declared requirements, ``fit`` on the attacker's knowledge, ``score``.

Every attack returns one float per record, higher meaning "more likely a member". A decision
threshold, where the attack has one, comes with the name of the data it was calibrated on.
Attacks never see membership truth: they get the target only through :class:`TargetAccess`
and their knowledge only through :class:`AttackerKnowledge`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from miaudit.attacks.knowledge import AttackerKnowledge
from miaudit.registry import Registry
from miaudit.targets.access import TargetAccess
from miaudit.threat import Requirements


@dataclass(frozen=True)
class AttackResult:
    """Scores of one attack on the evaluated records (higher = member)."""

    attack: str
    scores: np.ndarray
    threshold: float | None = None
    threshold_source: str | None = None
    queries_per_record: float = 0.0
    details: dict[str, Any] = field(default_factory=dict)


class Attack(ABC):
    """Base class. Subclasses set ``name``, ``paper``, ``kind`` and ``requirements``."""

    name: ClassVar[str]
    paper: ClassVar[str]
    kind: ClassVar[str]  # e.g. "metric", "shadow training", "reference models"
    requirements: ClassVar[Requirements]
    # What the attack needs to compute its *scores* when its calibration (a threshold from
    # shadow models) is out of reach, e.g. outputs only; None: no such mode. Uncalibrated scores
    # have no threshold: only threshold-free metrics (AUC, TPR at FPR) are reported for them.
    uncalibrated_requirements: ClassVar[Requirements | None] = None
    calibrated: bool = True

    def uncalibrated(self) -> "Attack":
        """Skip ``fit``: score without a threshold (only for attacks with ``uncalibrated_requirements``)."""
        if self.uncalibrated_requirements is None:
            raise TypeError(f"attack {self.name!r} has no uncalibrated mode")
        self.calibrated = False
        return self

    def fit(self, knowledge: AttackerKnowledge) -> "Attack":
        """Calibrate on what the attacker holds. The default needs nothing."""
        return self

    @abstractmethod
    def score(self, access: TargetAccess, x: np.ndarray, y: np.ndarray) -> AttackResult:
        """Score records ``(x, y)``, querying the target only through ``access``."""

    def _result(self, access: TargetAccess, queries_before: int, n: int, scores: np.ndarray, **kw: Any) -> AttackResult:
        used = access.queries - queries_before
        return AttackResult(self.name, np.asarray(scores, dtype=np.float64), queries_per_record=used / max(n, 1), **kw)


NOT_CALIBRATED = "not calibrated: the threat model gives no shadow models or reference data; threshold-free metrics only"

ATTACKS: Registry[type[Attack]] = Registry("attack")
