"""Confidence attack (Song and Mittal, "Systematic Evaluation of Privacy Risks of Machine
Learning Models", USENIX Security 2021): metric p_y, the probability the target gives the true
class, with per-class thresholds from shadow models (see :mod:`miaudit.attacks.class_thresholds`).
"""

from __future__ import annotations

from miaudit.attacks.base import ATTACKS
from miaudit.attacks.class_thresholds import ClassThresholdAttack
from miaudit.attacks.loss import true_class_probability


@ATTACKS.register("confidence")
class ConfidenceAttack(ClassThresholdAttack):
    """Song & Mittal (USENIX Security 2021): member iff p_y >= the threshold of class y.
    Threat model: gray box (full probability vector; architecture, recipe and pool for shadows)."""

    name = "confidence"
    paper = "Song & Mittal, USENIX Security 2021"
    metric = staticmethod(true_class_probability)
