"""Dropout (Srivastava et al., JMLR 2014), evaluated as a membership-inference mitigation by
Salem et al. (ML-Leaks, NDSS 2019, section VI): the target's architecture with a dropout layer
of rate ``p`` after every hidden activation, active during training only.

Threat model: a training-time defense; an adaptive attacker trains its shadows with it too.
"""

from __future__ import annotations

from typing import Any

from miaudit.defenses.base import DEFENSES, DefendedModel, Defense, TrainingTask
from miaudit.defenses.training import new_module, require_torch_model, torch_classifier, train_module


def with_dropout(module: Any, p: float) -> Any:
    """A Sequential with ``Dropout(p)`` inserted after each activation (not after the output layer)."""
    from torch import nn

    layers: list[nn.Module] = []
    children = list(module.children())
    for i, layer in enumerate(children):
        layers.append(layer)
        is_activation = not isinstance(layer, (nn.Linear, nn.Conv2d, nn.Flatten, nn.MaxPool2d))
        if is_activation and i < len(children) - 1:
            layers.append(nn.Dropout(p))
    return nn.Sequential(*layers)


@DEFENSES.register("dropout")
class Dropout(Defense):
    name = "dropout"
    paper = "Salem et al., NDSS 2019 (ML-Leaks, section VI: dropout as a defense)"
    stage = "training"
    defaults = {"p": 0.5}

    def validate(self) -> None:
        self._number("p", low=0, high=0.95)

    def build(self, task: TrainingTask) -> DefendedModel:
        require_torch_model(task, self.name)
        module = with_dropout(new_module(task), self.params["p"])
        idx = task.private_idx
        train_module(module, task.x[idx], task.y[idx], task.recipe, seed=task.seed)
        return DefendedModel(torch_classifier(module, task), {"dropout": self.params["p"]})
