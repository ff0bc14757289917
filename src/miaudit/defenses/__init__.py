"""Membership-inference defenses. Each module registers its defense in :data:`DEFENSES`."""

from miaudit.defenses import (  # noqa: F401  (registration)
    advreg,
    dmp,
    dpsgd,
    dropout,
    early_stopping,
    gaussian_noise,
    hamp,
    label_only,
    label_smoothing,
    memguard,
    none,
    relaxloss,
    rounding,
    selena,
    top_k,
    weight_decay,
)
from miaudit.defenses.base import DEFENSES, DefendedModel, Defense, TrainingTask, parse_defense, parse_defenses
from miaudit.defenses.output import DefendedOutputs, OutputDefense

__all__ = [
    "DEFENSES",
    "DefendedModel",
    "DefendedOutputs",
    "Defense",
    "OutputDefense",
    "TrainingTask",
    "parse_defense",
    "parse_defenses",
]
