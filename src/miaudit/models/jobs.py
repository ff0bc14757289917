"""The contract between the ModelBank and where its blocks train.

A :class:`ModelBank` cuts the models it has to train into blocks; an :class:`Executor` trains
each block, a :class:`TrainJob`, and hands back its models' weights (:data:`State`). The bank
needs only this contract; the executors themselves (:mod:`miaudit.models.executors`: local,
process pool, Ray) train a job with a one-chunk ModelBank, so they depend on the bank, never the
other way round.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from miaudit.models.architectures import ArchConfig
from miaudit.models.recipe import TrainingRecipe

State = dict[str, np.ndarray]
"""A trained model's state dict as numpy arrays (what travels back from a worker)."""


@dataclass(frozen=True)
class TrainJob:
    """One block of models to train: everything a worker needs besides the data set."""

    arch: ArchConfig
    recipe: TrainingRecipe
    num_classes: int
    subsets: tuple[np.ndarray, ...]
    seeds: tuple[int, ...]
    device: str = "cpu"  # the run's device type (miaudit.models.device), which a worker's own process cannot see


class Executor(ABC):
    """Trains blocks of models. ``in_process`` executors let the bank train itself (with its
    per-epoch progress); the others get the blocks through :meth:`run`."""

    name: ClassVar[str]
    in_process: ClassVar[bool] = False

    @abstractmethod
    def run(self, jobs: Sequence[TrainJob], x: np.ndarray, y: np.ndarray) -> Iterator[tuple[int, list[State]]]:
        """Yield ``(job index, weights)`` as each block finishes, in any order."""

    def close(self) -> None:
        """Release workers. Idempotent."""

    def describe(self) -> dict[str, Any]:
        return {"executor": self.name}
