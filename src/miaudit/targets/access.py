"""TargetAccess: the only door through which an attack sees the target.

It releases exactly what the threat model's output access allows (labels, top-k probabilities
with their class indices, or the full probability vector), counts queries (one per record per
call) and enforces an optional query budget.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from miaudit.errors import InputError, MiauditError
from miaudit.threat import OutputAccess, ThreatModel


class AccessDeniedError(MiauditError):
    """An attack asked for more than its threat model releases."""


class QueryBudgetExceededError(MiauditError):
    """The attack used up its query budget."""


class ProbabilisticModel(Protocol):
    def predict_proba(self, x: np.ndarray) -> np.ndarray: ...


class TargetAccess:
    """Query interface to a target model under a threat model."""

    def __init__(self, model: ProbabilisticModel, threat: ThreatModel, *, input_shape: tuple[int, ...]) -> None:
        self._model = model
        self.threat = threat
        self.input_shape = tuple(input_shape)
        self.queries = 0

    @property
    def output(self) -> OutputAccess:
        return self.threat.output

    def _query(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        if x.shape[1:] != self.input_shape:
            raise InputError(f"queries must have shape (n, {', '.join(map(str, self.input_shape))}), got {x.shape}")
        budget = self.threat.query_budget
        if budget is not None and self.queries + len(x) > budget:
            raise QueryBudgetExceededError(
                f"query budget of {budget} exceeded ({self.queries} used, {len(x)} more asked); raise the budget"
            )
        self.queries += len(x)
        return self._model.predict_proba(x)

    def predict_label(self, x: np.ndarray) -> np.ndarray:
        """Predicted class per record (every threat model allows this)."""
        return self._query(x).argmax(axis=1)

    def predict_topk(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The k largest probabilities (descending) and their class indices."""
        if self.output < OutputAccess.TOP_K:
            raise AccessDeniedError(f"threat model {self.threat.name!r} releases labels only")
        proba = self._query(x)
        k = self.threat.top_k if self.output == OutputAccess.TOP_K else proba.shape[1]
        idx = np.argsort(-proba, axis=1, kind="stable")[:, :k]
        return np.take_along_axis(proba, idx, axis=1), idx

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """The full probability vector per record."""
        if self.output < OutputAccess.PROBABILITIES:
            raise AccessDeniedError(f"threat model {self.threat.name!r} does not release full probability vectors")
        return self._query(x)
