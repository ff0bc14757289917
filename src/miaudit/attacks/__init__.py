"""Membership-inference attacks. Each module registers its attack in :data:`ATTACKS`."""

from miaudit.attacks import correctness, loss  # noqa: F401  (registration)
from miaudit.attacks.base import ATTACKS, Attack, AttackResult
from miaudit.attacks.knowledge import AttackerKnowledge, ModelSpec

__all__ = ["ATTACKS", "Attack", "AttackResult", "AttackerKnowledge", "ModelSpec"]
