"""L2 weight decay, the regulariser Shokri et al. (S&P 2017, section VIII) evaluate as a
mitigation: the target's recipe with ``weight_decay = lambda`` (``torch.optim`` semantics: the
gradient gains ``lambda * w``).

Threat model: a training-time defense; an adaptive attacker trains its shadows with it too.
"""

from __future__ import annotations

import dataclasses

from miaudit.defenses.base import DEFENSES, DefendedModel, Defense, TrainingTask
from miaudit.defenses.training import plain_model


@DEFENSES.register("weight-decay")
class WeightDecay(Defense):
    name = "weight-decay"
    paper = "Shokri et al., S&P 2017 (section VIII, regularization)"
    stage = "training"
    defaults = {"lam": 5e-3}

    def validate(self) -> None:
        self._number("lam", low=0)

    def build(self, task: TrainingTask) -> DefendedModel:
        recipe = dataclasses.replace(task.recipe, weight_decay=self.params["lam"])
        return DefendedModel(plain_model(task, recipe=recipe), {"weight_decay": self.params["lam"]})
