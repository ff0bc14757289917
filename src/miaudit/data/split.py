"""The split protocol: one seeded function that carves a data set into disjoint parts.

Parts (Shokri et al., S&P 2017; Salem et al., NDSS 2019 use the same shape):
- ``target_in``: the target model's training set (members);
- ``target_out``: held-out records from the same distribution (non-members);
- ``attacker_pool``: same-distribution data the attacker holds, disjoint from the target's data
  (the survey's "same distribution" data knowledge); shadow/reference models train on it;
- ``population``: further records neither side trained on (e.g. RMIA's population z).

The split only holds indices. Membership truth (which evaluated record is in ``target_in``)
stays with the experiment and reaches the metrics, never the attacks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from miaudit.errors import ConfigError
from miaudit.seeds import stream_rng

PART_NAMES = ("target_in", "target_out", "attacker_pool", "population")


@dataclass(frozen=True)
class SplitSizes:
    """Sizes of the four parts, each a count (int >= 0) or a fraction of the data set (float in [0, 1]).

    ``population=None`` gives the population every record left over.
    """

    target_in: int | float = 0.25
    target_out: int | float = 0.25
    attacker_pool: int | float = 0.5
    population: int | float | None = None

    def resolve(self, n: int) -> dict[str, int]:
        """Counts for a data set of ``n`` records; raises ConfigError if they do not fit."""
        counts: dict[str, int] = {}
        for name in PART_NAMES[:3]:
            counts[name] = _to_count(name, getattr(self, name), n)
        rest = n - sum(counts.values())
        counts["population"] = rest if self.population is None else _to_count("population", self.population, n)
        total = sum(counts.values())
        if rest < 0 or total > n:
            raise ConfigError(
                f"split sizes {counts} need {total} records but the data set has {n}; lower the sizes"
            )
        if counts["target_in"] < 1 or counts["target_out"] < 1:
            raise ConfigError("the split needs at least one target member and one non-member; raise the sizes")
        return counts


def _to_count(name: str, value: int | float, n: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"split size {name}={value!r} must be a count or a fraction")
    if isinstance(value, float):
        if not 0.0 <= value <= 1.0:
            raise ConfigError(f"split fraction {name}={value} must lie in [0, 1]")
        # Rounded down (with slack for float error: 0.29 * 100 is 28.999...), so that fractions
        # summing to 1 never ask for more records than there are (0.25 * 14 rounds to 4, twice).
        return math.floor(value * n + 1e-9)
    if value < 0:
        raise ConfigError(f"split count {name}={value} must be >= 0")
    return int(value)


@dataclass(frozen=True)
class Split:
    """Disjoint index arrays into one data set, plus the seed that produced them."""

    target_in: np.ndarray
    target_out: np.ndarray
    attacker_pool: np.ndarray
    population: np.ndarray
    seed: int

    def parts(self) -> dict[str, np.ndarray]:
        return {name: getattr(self, name) for name in PART_NAMES}

    def sizes(self) -> dict[str, int]:
        return {name: int(len(idx)) for name, idx in self.parts().items()}


def make_split(n: int, sizes: SplitSizes | None = None, *, seed: int) -> Split:
    """Carve ``range(n)`` into the four disjoint parts with one seeded permutation."""
    counts = (sizes or SplitSizes()).resolve(n)
    order = stream_rng(seed, "split").permutation(n)
    bounds = np.cumsum([0] + [counts[name] for name in PART_NAMES])
    parts = {name: np.sort(order[bounds[i] : bounds[i + 1]]) for i, name in enumerate(PART_NAMES)}
    return Split(**parts, seed=seed)


def known_members(split: Split, fraction: float, *, seed: int) -> np.ndarray:
    """A seeded ``fraction`` of ``target_in``: the members a partial-training-set attacker knows
    (Nasr et al., S&P 2019, supervised setting). At least one member stays unknown."""
    if not 0.0 < fraction < 1.0:
        raise ConfigError(f"the known fraction of the training set must lie in (0, 1), got {fraction}")
    n = len(split.target_in)
    k = min(int(round(fraction * n)), n - 1)
    rng = stream_rng(seed, "known-members")
    return np.sort(rng.choice(split.target_in, k, replace=False))


def evaluation_records(split: Split, *, seed: int, exclude: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Members and non-members to be scored, shuffled so that their order reveals nothing.

    Returns ``(record_indices, is_member)``: the indices go to the attack, ``is_member`` only to
    the metrics. ``exclude`` (e.g. the members the attacker already knows) are left out.
    """
    members = split.target_in if exclude is None else np.setdiff1d(split.target_in, exclude)
    idx = np.concatenate([members, split.target_out])
    truth = np.concatenate([np.ones(len(members), bool), np.zeros(len(split.target_out), bool)])
    order = stream_rng(seed, "evaluation-order").permutation(len(idx))
    return idx[order], truth[order]
