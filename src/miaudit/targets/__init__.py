"""Targets: the model under audit, and the door (TargetAccess) through which attacks query it."""

from miaudit.targets.access import AccessDeniedError, QueryBudgetExceededError, TargetAccess

__all__ = ["AccessDeniedError", "QueryBudgetExceededError", "TargetAccess"]
