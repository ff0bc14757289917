"""The adaptive attacker's plan for defended models: the target's sizes, disjoint reference data.

Song and Mittal's adaptive attacker builds every model it trains (shadows, online references)
the way the defender built the target: the same defense, a training set of the *target's size*
and, for a defense that needs reference data (adversarial regularization's inference set,
MemGuard's non-members, DMP's transfer set), a reference set of the *defender's reference size*
drawn from the attacker's own records *outside* the model's training subset.

Per pair of models ``(2j, 2j+1)``: a reference set ``R`` is drawn from ``reference_from`` (the
attacker's pool: never a scored candidate); the other records are split into complementary
halves, ``priority`` records (the online attacks' candidates) and the rest separately, and each
model of the pair trains on ``train_size`` records of its half, priority records first. A
record is then IN for the model that trains on it, *reference* (neither IN nor OUT) for both
models of its pair when in ``R``, and OUT otherwise.

When the records cannot hold ``2 * train_size + reference_size`` (two disjoint training sets
and the reference set), both sizes are scaled down by the same factor, the largest that fits,
keeping the defender's ratio; :attr:`DefendedPlan.note` says so in one line.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from miaudit.errors import ConfigError
from miaudit.seeds import stream_rng

__all__ = ["DefendedPlan", "defended_plan", "plan_sizes"]


@dataclass(frozen=True)
class DefendedPlan:
    """Per model: its training subset and its reference set (None when the defense needs none),
    the sizes used, and a note when they are smaller than the target's."""

    subsets: list[np.ndarray]
    references: list[np.ndarray] | None
    train_size: int
    reference_size: int
    note: str | None


def plan_sizes(n_records: int, n_reference_eligible: int, train_size: int, reference_size: int) -> tuple[int, int, str | None]:
    """``(train, reference, note)``: the target's sizes when ``n_records`` hold two disjoint training
    sets plus the reference set (and ``n_reference_eligible`` the reference set), else both scaled
    down by the largest common factor that fits, with a one-line note."""
    if train_size < 1:
        raise ConfigError(f"the target's training-set size must be >= 1, got {train_size}")
    need = 2 * train_size + reference_size
    factor = min(1.0, n_records / need, (n_reference_eligible / reference_size) if reference_size else 1.0)
    if factor >= 1.0:
        return train_size, reference_size, None
    train, ref = max(1, math.floor(train_size * factor)), math.floor(reference_size * factor)
    if reference_size and ref < 1:
        raise ConfigError(f"the attacker's {n_records} records leave no reference data for a defended model; give a larger pool")
    note = (f"the attacker's {n_records} records cannot hold two target-size training sets ({train_size}) plus a "
            f"disjoint reference set ({reference_size}): defended models use {train} training and {ref} reference records")
    return train, ref, note


def defended_plan(
    n_records: int,
    n_models: int,
    *,
    train_size: int,
    reference_size: int,
    seed: int,
    reference_from: np.ndarray | None = None,
    priority: np.ndarray | None = None,
) -> DefendedPlan:
    """The plan of the module docstring for ``n_models`` models on ``range(n_records)``.

    ``reference_size`` 0: the defense needs no reference data (``references`` is None).
    ``reference_from`` (default all records) is where reference sets come from; ``priority``
    records fill the training subsets first (each in the training subset of one model of a pair
    when the halves allow it)."""
    eligible = np.arange(n_records) if reference_from is None else np.asarray(reference_from)
    train, ref, note = plan_sizes(n_records, len(eligible), train_size, reference_size)
    first = np.zeros(n_records, dtype=bool)
    if priority is not None:
        first[np.asarray(priority)] = True
    rng = stream_rng(seed, "shadow/halves", 1)
    subsets: list[np.ndarray] = []
    references: list[np.ndarray] = []
    while len(subsets) < n_models:
        reference = np.sort(rng.choice(eligible, size=ref, replace=False)) if ref else np.zeros(0, dtype=np.int64)
        rest = np.setdiff1d(np.arange(n_records), reference)
        halves: list[list[np.ndarray]] = [[], []]
        for group in (rest[first[rest]], rest[~first[rest]]):  # priority records, then the others
            perm = rng.permutation(group)
            halves[0].append(perm[: len(perm) // 2])
            halves[1].append(perm[len(perm) // 2 :])
        for half in halves:
            subsets.append(np.sort(np.concatenate(half)[:train]))
            references.append(reference)
    return DefendedPlan(subsets[:n_models], references[:n_models] if reference_size else None, train, ref, note)
