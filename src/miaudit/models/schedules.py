"""Learning-rate schedules, applied once per epoch (identically by ``train_one`` and the bank).

Per-epoch (not per-step) schedules keep models with different numbers of steps per epoch, as in a
bank over subsets of unequal size, on the same learning rate in the same epoch.

A schedule is ``schedule(base_lr, epoch, epochs, **params) -> lr`` for the 0-based ``epoch``;
``params`` are the recipe fields the schedule names in :data:`SCHEDULE_PARAMS` (none for
``constant`` and ``cosine``). Training loops call :func:`learning_rate`, never a schedule directly,
so ``train_one`` and the bank cannot disagree on how a recipe's parameters reach it.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from miaudit.registry import Registry

Schedule = Callable[..., float]
"""``schedule(base_lr, epoch, epochs, **params) -> lr`` for the 0-based ``epoch``."""

SCHEDULES: Registry[Schedule] = Registry("learning-rate schedule")

#: The recipe fields each schedule takes as keyword parameters (schedules not listed take none).
SCHEDULE_PARAMS: dict[str, tuple[str, ...]] = {"step": ("milestones", "gamma")}


class _HasSchedule(Protocol):  # a TrainingRecipe (not imported: recipe.py imports this module)
    lr: float
    epochs: int
    schedule: str

    def schedule_params(self) -> dict[str, Any]: ...


def learning_rate(recipe: _HasSchedule, epoch: int) -> float:
    """The learning rate of ``recipe`` in the 0-based ``epoch``."""
    return SCHEDULES.get(recipe.schedule)(recipe.lr, epoch, recipe.epochs, **recipe.schedule_params())


@SCHEDULES.register("constant")
def constant(base_lr: float, epoch: int, epochs: int) -> float:
    return base_lr


@SCHEDULES.register("cosine")
def cosine(base_lr: float, epoch: int, epochs: int) -> float:
    """Cosine annealing to zero over the run, as ``CosineAnnealingLR(T_max=epochs)`` stepped per epoch."""
    return base_lr * 0.5 * (1.0 + math.cos(math.pi * epoch / epochs))


@SCHEDULES.register("step")
def step(base_lr: float, epoch: int, epochs: int, *, milestones: Sequence[int], gamma: float) -> float:
    """Multiply the rate by ``gamma`` at each milestone, as ``MultiStepLR(milestones, gamma)`` stepped
    per epoch: epoch ``e`` runs at ``base_lr * gamma ** (number of milestones <= e)``.

    With ``milestones=(150,)``, epochs 0..149 run at ``base_lr`` and epochs 150.. at
    ``gamma * base_lr`` (the Keras loops of Jia et al., CCS 2019, decay after the 150th epoch).
    Milestones past the last epoch never apply.
    """
    return base_lr * gamma ** bisect.bisect_right(milestones, epoch)
