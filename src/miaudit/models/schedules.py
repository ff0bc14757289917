"""Learning-rate schedules, applied once per epoch (identically by ``train_one`` and the bank).

Per-epoch (not per-step) schedules keep models with different numbers of steps per epoch, as in a
bank over subsets of unequal size, on the same learning rate in the same epoch.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from miaudit.registry import Registry

Schedule = Callable[[float, int, int], float]
"""``schedule(base_lr, epoch, epochs) -> lr`` for the 0-based ``epoch``."""

SCHEDULES: Registry[Schedule] = Registry("learning-rate schedule")


@SCHEDULES.register("constant")
def constant(base_lr: float, epoch: int, epochs: int) -> float:
    return base_lr


@SCHEDULES.register("cosine")
def cosine(base_lr: float, epoch: int, epochs: int) -> float:
    """Cosine annealing to zero over the run, as ``CosineAnnealingLR(T_max=epochs)`` stepped per epoch."""
    return base_lr * 0.5 * (1.0 + math.cos(math.pi * epoch / epochs))
