"""Top-k only (Shokri et al., S&P 2017, section VIII "restrict the prediction vector to top k
classes"): the k largest probabilities are released, every other class gets 0.

Threat model: the attacker sees at most k probabilities per query; the label is unchanged.
"""

from __future__ import annotations

import numpy as np

from miaudit.defenses.base import DEFENSES
from miaudit.defenses.output import DefendedOutputs, OutputDefense


@DEFENSES.register("top-k")
class TopK(OutputDefense):
    name = "top-k"
    paper = "Shokri et al., S&P 2017 (section VIII, mitigation)"
    defaults = {"k": 3}

    def validate(self) -> None:
        self._number("k", low=1, integer=True)

    def release(self, wrapper: DefendedOutputs, x: np.ndarray, proba: np.ndarray) -> np.ndarray:
        k = min(self.params["k"], proba.shape[1])
        keep = np.argsort(-proba, axis=1, kind="stable")[:, :k]
        out = np.zeros_like(proba)
        np.put_along_axis(out, keep, np.take_along_axis(proba, keep, axis=1), axis=1)
        return out
