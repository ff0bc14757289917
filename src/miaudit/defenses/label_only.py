"""Label only (Shokri et al., S&P 2017, section VIII, the extreme of top-k): a query releases
the one-hot vector of the predicted label and nothing else.

Threat model: the attacker sees labels only, so only correctness-style and label-only attacks
keep any signal.
"""

from __future__ import annotations

import numpy as np

from miaudit.defenses.base import DEFENSES
from miaudit.defenses.output import DefendedOutputs, OutputDefense


@DEFENSES.register("label-only")
class LabelOnly(OutputDefense):
    name = "label-only"
    paper = "Shokri et al., S&P 2017 (section VIII, mitigation)"

    def release(self, wrapper: DefendedOutputs, x: np.ndarray, proba: np.ndarray) -> np.ndarray:
        out = np.zeros_like(proba)
        out[np.arange(len(proba)), proba.argmax(axis=1)] = 1.0
        return out
