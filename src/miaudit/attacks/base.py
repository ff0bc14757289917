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

    def fit(self, knowledge: AttackerKnowledge) -> "Attack":
        """Calibrate on what the attacker holds. The default needs nothing."""
        return self

    @abstractmethod
    def score(self, access: TargetAccess, x: np.ndarray, y: np.ndarray) -> AttackResult:
        """Score records ``(x, y)``, querying the target only through ``access``."""

    def _result(self, access: TargetAccess, queries_before: int, n: int, scores: np.ndarray, **kw: Any) -> AttackResult:
        used = access.queries - queries_before
        return AttackResult(self.name, np.asarray(scores, dtype=np.float64), queries_per_record=used / max(n, 1), **kw)


ATTACKS: Registry[type[Attack]] = Registry("attack")
