"""Entropy attack (Salem et al., NDSS 2019; per-class thresholds after Song and Mittal,
"Systematic Evaluation of Privacy Risks of Machine Learning Models", USENIX Security 2021):
metric minus the Shannon entropy of the probability vector, since models are more certain on
their training records (see :mod:`miaudit.attacks.class_thresholds` for the calibration).
"""

from __future__ import annotations

import numpy as np

from miaudit.attacks.base import ATTACKS
from miaudit.attacks.class_thresholds import ClassThresholdAttack, clipped_log


def entropy(proba: np.ndarray) -> np.ndarray:
    """Shannon entropy ``-sum_i p_i log p_i`` (nats) per row; 0 log 0 counts as 0."""
    return -np.sum(proba * clipped_log(proba), axis=1)


def negative_entropy(proba: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The attack's metric: minus the entropy (low entropy = member). The label is unused."""
    return -entropy(proba)


@ATTACKS.register("entropy")
class EntropyAttack(ClassThresholdAttack):
    """Song & Mittal (USENIX Security 2021, after Salem et al., NDSS 2019): member iff
    -H(p) >= the threshold of class y.

    Threat model: gray box: the full probability vector (the entropy sums over every class),
    the target's architecture and training recipe, and same-distribution data on which shadow
    models set one threshold per class. The label picks the threshold only: a confident wrong
    prediction looks as member-like as a confident right one (modified entropy fixes this).
    """

    name = "entropy"
    paper = "Song & Mittal, USENIX Security 2021"
    metric = staticmethod(negative_entropy)
