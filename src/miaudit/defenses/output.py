"""Output-time defenses: the model is trained as usual; what a query releases is changed.

:class:`OutputDefense` trains the undefended model (the same cached model as an undefended
audit) and wraps it in a :class:`DefendedOutputs`, whose ``predict_proba`` applies the
defense's ``release`` to the model's probability vectors. The wrapper exposes no logits and no
torch module, so every query, from an attack or from the HTTP server, goes through the defense.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Any

import numpy as np

from miaudit.defenses.base import DefendedModel, Defense, TrainingTask
from miaudit.defenses.training import plain_model


class DefendedOutputs:
    """A classifier whose released probabilities are ``release(x, model.predict_proba(x))``."""

    def __init__(self, model: Any, defense: OutputDefense, state: Any = None) -> None:
        self.base = model
        self.defense = defense
        self.state = state  # what the defense fitted for this model (MemGuard's classifier)
        self.num_classes = int(getattr(model, "num_classes", 0)) or None
        self.input_shape = getattr(model, "input_shape", None)

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        return self.defense.release(self, x, np.asarray(self.base.predict_proba(x), dtype=np.float64))

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.predict_proba(x).argmax(axis=1)


class OutputDefense(Defense):
    stage = "output"

    def build(self, task: TrainingTask) -> DefendedModel:
        model = plain_model(task)
        state = self.fit(model, task)
        return DefendedModel(DefendedOutputs(model, self, state), self.info(state))

    def fit(self, model: Any, task: TrainingTask) -> Any:
        """Fit what the defense needs for ``model`` (default: nothing)."""
        return None

    def info(self, state: Any) -> dict[str, Any]:
        return {}

    def wrap(self, model: Any, task: TrainingTask | None = None) -> DefendedOutputs:
        """Wrap an already trained model (e.g. a served one); ``task`` only where ``fit`` needs data."""
        return DefendedOutputs(model, self, self.fit(model, task) if task is not None else self.fit_without_data(model))

    def fit_without_data(self, model: Any) -> Any:
        return None

    @abstractmethod
    def release(self, wrapper: DefendedOutputs, x: np.ndarray, proba: np.ndarray) -> np.ndarray:
        """The vectors a query releases for records ``x`` whose true outputs are ``proba``."""


def renormalise(p: np.ndarray) -> np.ndarray:
    """Rows scaled to sum to 1 (a row of zeros becomes uniform)."""
    total = p.sum(axis=1, keepdims=True)
    uniform = np.full_like(p, 1.0 / p.shape[1])
    return np.where(total > 0, p / np.where(total > 0, total, 1.0), uniform)
