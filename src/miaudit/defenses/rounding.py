"""Rounding the released probabilities to d decimals (Shokri et al., S&P 2017, section VIII
"coarsen precision of the prediction vector"). The label is kept: the largest probability is
rounded up if rounding would tie it with, or drop it below, another class.

Threat model: the attacker sees coarse probability vectors.
"""

from __future__ import annotations

import numpy as np

from miaudit.defenses.base import DEFENSES
from miaudit.defenses.output import DefendedOutputs, OutputDefense


@DEFENSES.register("rounding")
class Rounding(OutputDefense):
    name = "rounding"
    paper = "Shokri et al., S&P 2017 (section VIII, mitigation)"
    defaults = {"decimals": 1}

    def validate(self) -> None:
        self._number("decimals", low=0, high=15, integer=True)

    def release(self, wrapper: DefendedOutputs, x: np.ndarray, proba: np.ndarray) -> np.ndarray:
        d = self.params["decimals"]
        out = np.round(proba, d)
        label = proba.argmax(axis=1)
        rows = np.arange(len(proba))
        # Argmax of the released vector must stay the model's label (ties break to the lowest index).
        top = out[rows, label]
        others = out.copy()
        others[rows, label] = -np.inf
        lose = (others.max(axis=1) >= top) if proba.shape[1] > 1 else np.zeros(len(proba), bool)
        out[rows[lose], label[lose]] = others.max(axis=1)[lose] + 10.0 ** (-d)
        return out
