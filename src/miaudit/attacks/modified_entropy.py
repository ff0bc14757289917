"""Modified-entropy attack (Song and Mittal, "Systematic Evaluation of Privacy Risks of Machine
Learning Models", USENIX Security 2021).

Mentr(p, y) = -(1 - p_y) log p_y - sum_{i != y} p_i log(1 - p_i). Unlike the entropy it uses
the label: it is 0 for a confident correct prediction (p_y -> 1) and grows without bound for a
confident wrong one (p_y -> 0, or some p_i -> 1 with i != y), where plain entropy would call the
record certain. Logs are clipped at :data:`LOG_FLOOR`, so Mentr stays finite (at most about
69 nats per term). Metric: -Mentr, with per-class thresholds from shadow models (see
:mod:`miaudit.attacks.class_thresholds`).
"""

from __future__ import annotations

import numpy as np

from miaudit.attacks.base import ATTACKS
from miaudit.attacks.class_thresholds import ClassThresholdAttack, clipped_log


def modified_entropy(proba: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Mentr(p, y) per record."""
    rows = np.arange(len(y))
    p_y = proba[rows, y]
    terms = -proba * clipped_log(1.0 - proba)  # the i != y terms; column y is replaced below
    terms[rows, y] = -(1.0 - p_y) * clipped_log(p_y)
    return terms.sum(axis=1)


def negative_modified_entropy(proba: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The attack's metric: -Mentr (low modified entropy = member)."""
    return -modified_entropy(proba, y)


@ATTACKS.register("modified-entropy")
class ModifiedEntropyAttack(ClassThresholdAttack):
    """Song & Mittal (USENIX Security 2021): member iff -Mentr(p, y) >= the threshold of class y.

    Threat model: gray box. Mentr reads every class's probability, so it needs the full vector;
    shadow models trained with the target's architecture and recipe on the attacker's
    same-distribution pool set the thresholds."""

    name = "modified-entropy"
    paper = "Song & Mittal, USENIX Security 2021"
    metric = staticmethod(negative_modified_entropy)
