"""Early stopping (Song and Mittal, USENIX Security 2021, section 6, and Shokri et al., S&P 2017,
discuss fewer training epochs as a regulariser): the target's recipe stopped after a fraction of
its epochs. The stopping epoch is fixed in advance (``fraction`` of the recipe's epochs, at
least 1), so no validation data are spent on it; a learning-rate step scheduled after the stop
does not happen.

Threat model: a training-time defense; an adaptive attacker trains its shadows with it too.
"""

from __future__ import annotations

from miaudit.defenses.base import DEFENSES, DefendedModel, Defense, TrainingTask
from miaudit.defenses.training import plain_model, with_epochs


@DEFENSES.register("early-stopping")
class EarlyStopping(Defense):
    name = "early-stopping"
    paper = "Song & Mittal, USENIX Security 2021 (early stopping as a baseline)"
    stage = "training"
    defaults = {"fraction": 0.25}

    def validate(self) -> None:
        self._number("fraction", low=0, high=1)
        if self.params["fraction"] == 0:
            from miaudit.errors import ConfigError

            raise ConfigError("defense 'early-stopping': fraction must be > 0 (a share of the recipe's epochs)")

    def build(self, task: TrainingTask) -> DefendedModel:
        epochs = max(1, round(task.recipe.epochs * self.params["fraction"]))
        return DefendedModel(plain_model(task, recipe=with_epochs(task.recipe, epochs)), {"epochs": epochs})
