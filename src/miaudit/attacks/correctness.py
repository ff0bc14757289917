"""Correctness attack (Yeom, Giacomelli, Fredrikson and Jha, "Privacy Risk in Machine Learning:
Analyzing the Connection to Overfitting", IEEE CSF 2018).

Threat model: black box, label only; no data, model or training knowledge.
A record is called a member iff the target classifies it correctly. Its balanced accuracy is
exactly 1/2 + (train accuracy - test accuracy)/2: the attack measures the generalisation gap.
"""

from __future__ import annotations

import numpy as np

from miaudit.attacks.base import ATTACKS, Attack, AttackResult
from miaudit.targets.access import TargetAccess
from miaudit.threat import OutputAccess, Requirements


@ATTACKS.register("correctness")
class CorrectnessAttack(Attack):
    name = "correctness"
    paper = "Yeom et al., CSF 2018"
    kind = "metric"
    requirements = Requirements(output=OutputAccess.LABEL)

    def score(self, access: TargetAccess, x: np.ndarray, y: np.ndarray) -> AttackResult:
        before = access.queries
        correct = (access.predict_label(x) == y).astype(np.float64)
        # The rule needs no calibration: 1 = member, 0 = non-member.
        return self._result(access, before, len(y), correct, threshold=0.5, threshold_source="fixed by the attack")
