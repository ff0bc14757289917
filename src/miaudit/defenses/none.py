"""No defense: the undefended target, trained as an undefended audit trains it (cached)."""

from __future__ import annotations

from miaudit.defenses.base import DEFENSES, DefendedModel, Defense, TrainingTask
from miaudit.defenses.training import plain_model


@DEFENSES.register("none")
class NoDefense(Defense):
    name = "none"
    paper = "-"
    stage = "training"

    def build(self, task: TrainingTask) -> DefendedModel:
        return DefendedModel(plain_model(task))
