"""TargetAccess: the only door through which an attack sees the target.

It releases exactly what the threat model's output access allows (labels, top-k probabilities
with their class indices, or the full probability vector), counts queries (one per record per
call) and enforces an optional query budget.

The target is either an in-process model with ``predict_proba`` or a :class:`QueryBackend`
(e.g. :class:`miaudit.targets.http_target.HttpTarget`, a model behind an HTTP server) that
answers ``query(x, output, k)`` with at most what it releases itself; a backend that releases
less than the threat model asks for raises :class:`AccessDeniedError` (it never fakes outputs).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from miaudit.errors import InputError, MiauditError
from miaudit.threat import OutputAccess, ThreatModel


class AccessDeniedError(MiauditError):
    """An attack asked for more than its threat model releases."""


class QueryBudgetExceededError(MiauditError):
    """The attack used up its query budget."""


class ProbabilisticModel(Protocol):
    def predict_proba(self, x: np.ndarray) -> np.ndarray: ...


QueryAnswer = tuple[np.ndarray, "np.ndarray | None", "np.ndarray | None"]
"""``(labels, probabilities or None, classes or None)`` of one backend query."""


@runtime_checkable
class QueryBackend(Protocol):
    """A target that answers queries itself, releasing no more than it allows.

    ``query(x, output, k)`` returns ``(labels, probs, classes)``: with ``output=LABEL``,
    ``probs`` and ``classes`` are None; with ``TOP_K``, ``probs`` holds the ``k`` largest
    probabilities per record (descending) and ``classes`` their class indices; with
    ``PROBABILITIES``, ``probs`` is the full vector and ``classes`` None. It raises
    :class:`AccessDeniedError` when asked for more than it releases.
    """

    def query(self, x: np.ndarray, output: OutputAccess, k: int | None) -> QueryAnswer: ...


def top_k(proba: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` largest probabilities per row (descending, ties by class index) and their classes."""
    idx = np.argsort(-proba, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(proba, idx, axis=1), idx


class ModelBackend:
    """:class:`QueryBackend` over an in-process model with ``predict_proba``."""

    def __init__(self, model: ProbabilisticModel) -> None:
        self.model = model

    def query(self, x: np.ndarray, output: OutputAccess, k: int | None) -> QueryAnswer:
        proba = self.model.predict_proba(x)
        labels = proba.argmax(axis=1)
        if output == OutputAccess.LABEL:
            return labels, None, None
        if output == OutputAccess.TOP_K:
            probs, classes = top_k(proba, int(k if k is not None else proba.shape[1]))
            return labels, probs, classes
        return labels, proba, None


class TargetAccess:
    """Query interface to a target model (or a :class:`QueryBackend`) under a threat model."""

    def __init__(
        self, model: ProbabilisticModel | QueryBackend, threat: ThreatModel, *, input_shape: tuple[int, ...]
    ) -> None:
        self._model = model
        self._backend: QueryBackend = model if isinstance(model, QueryBackend) else ModelBackend(model)
        self.threat = threat
        self.input_shape = tuple(input_shape)
        self.queries = 0

    @property
    def output(self) -> OutputAccess:
        return self.threat.output

    def _query(self, x: np.ndarray, output: OutputAccess, k: int | None) -> QueryAnswer:
        x = np.asarray(x, dtype=np.float32)
        if x.shape[1:] != self.input_shape:
            raise InputError(f"queries must have shape (n, {', '.join(map(str, self.input_shape))}), got {x.shape}")
        budget = self.threat.query_budget
        if budget is not None and self.queries + len(x) > budget:
            raise QueryBudgetExceededError(
                f"query budget of {budget} exceeded ({self.queries} used, {len(x)} more asked); raise the budget"
            )
        answer = self._backend.query(x, output, k)
        self.queries += len(x)
        return answer

    def predict_label(self, x: np.ndarray) -> np.ndarray:
        """Predicted class per record (every threat model allows this)."""
        return self._query(x, OutputAccess.LABEL, None)[0]

    def predict_topk(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The k largest probabilities (descending) and their class indices."""
        if self.output < OutputAccess.TOP_K:
            raise AccessDeniedError(f"threat model {self.threat.name!r} releases labels only")
        if self.output == OutputAccess.TOP_K:
            _, probs, classes = self._query(x, OutputAccess.TOP_K, self.threat.top_k)
            assert probs is not None and classes is not None
            return probs, classes
        _, proba, _ = self._query(x, OutputAccess.PROBABILITIES, None)
        assert proba is not None
        return top_k(proba, proba.shape[1])

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """The full probability vector per record."""
        if self.output < OutputAccess.PROBABILITIES:
            raise AccessDeniedError(f"threat model {self.threat.name!r} does not release full probability vectors")
        proba = self._query(x, OutputAccess.PROBABILITIES, None)[1]
        assert proba is not None
        return proba
