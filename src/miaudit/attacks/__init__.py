"""Membership-inference attacks. Each module registers its attack in :data:`ATTACKS`."""

from miaudit.attacks import (  # noqa: F401  (registration)
    attack_r,
    bayes_base,
    blindmi,
    confidence,
    correctness,
    entropy,
    label_only,
    lira,
    loss,
    loss_per_class,
    loss_trajectory,
    ml_leaks_1,
    ml_leaks_2,
    ml_leaks_3,
    modified_entropy,
    nn_attack,
    nsh_whitebox,
    oslo,
    qmia,
    rmia,
    shadow_training,
    yoqo,
)
from miaudit.attacks.base import ATTACKS, Attack, AttackResult
from miaudit.attacks.knowledge import AttackerKnowledge, ModelSpec

__all__ = ["ATTACKS", "Attack", "AttackResult", "AttackerKnowledge", "ModelSpec"]
