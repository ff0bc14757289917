"""The split protocol: one seeded function that carves a data set into disjoint parts.

Parts (Shokri et al., S&P 2017; Salem et al., NDSS 2019 use the same shape):
- ``target_in``: the target model's training set (members);
- ``target_out``: held-out records from the same distribution (non-members);
- ``attacker_pool``: same-distribution data the attacker holds, disjoint from the target's data
  (the survey's "same distribution" data knowledge); shadow/reference models train on it;
- ``population``: further records neither side trained on (e.g. RMIA's population z).

A :class:`FixedSplit` gives the parts as indices instead (a paper's own fixed shuffle, read by
:func:`index_file_split`), with the shadow models' training records when the paper fixes them too.

The split only holds indices. Membership truth (which evaluated record is in ``target_in``)
stays with the experiment and reaches the metrics, never the attacks.
"""

from __future__ import annotations

import math
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

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


@dataclass(frozen=True, eq=False)
class FixedSplit:
    """The four parts as fixed indices into a data set of ``n_records``, the same for every seed,
    and the training records of each shadow model (``shadow_subsets``: positions in the sorted
    ``attacker_pool``; empty: the shadows take the usual seeded halves). ``source`` says where the
    indices come from (recorded with the results)."""

    n_records: int
    target_in: np.ndarray
    target_out: np.ndarray
    attacker_pool: np.ndarray
    population: np.ndarray
    shadow_subsets: tuple[np.ndarray, ...]
    source: str

    def split(self, n: int, *, seed: int) -> Split:
        """The parts as a :class:`Split` of a data set of ``n`` records (ConfigError if ``n`` is not
        the size the indices were made for)."""
        if n != self.n_records:
            raise ConfigError(f"{self.source}: the split is for {self.n_records} records, the data set has {n}")
        return Split(self.target_in, self.target_out, self.attacker_pool, self.population, seed=seed)

    def __str__(self) -> str:
        return self.source


def index_file_split(
    path: Path, *, key: str, n_records: int, parts: Mapping[str, tuple[tuple[int, int], ...]],
    shadow_members: tuple[tuple[int, int], ...] = (), source: str | None = None,
) -> FixedSplit:  # fmt: skip
    """A :class:`FixedSplit` from a permutation of ``range(n_records)`` saved under ``key`` in the
    ``.npz`` file ``path`` (read with ``allow_pickle=False``): part ``name`` is
    ``permutation[start:stop]`` over the ranges ``(start, stop)`` of ``parts[name]`` (absent parts
    are empty), and
    each ``shadow_members`` range of the permutation is one shadow model's training records, which
    must lie in the attacker's pool. One-line ConfigError when the file is missing or is not such
    a permutation."""
    unknown = sorted(set(parts) - set(PART_NAMES))
    if unknown:
        raise ConfigError(f"unknown split parts {unknown}; the parts are {list(PART_NAMES)}")
    try:
        with np.load(path, allow_pickle=False) as archive:
            if key not in archive.files:
                raise ConfigError(f"split index file {path} has no array {key!r} (it has {sorted(archive.files)})")
            order = np.asarray(archive[key])
    except FileNotFoundError:
        raise ConfigError(f"split index file {path} not found") from None
    except (OSError, ValueError, zipfile.BadZipFile) as exc:  # not an .npz, or an object array (pickle refused)
        raise ConfigError(f"split index file {path} cannot be read as a plain .npz: {exc}") from None
    if order.shape != (n_records,) or order.dtype.kind not in "iu" or not np.array_equal(np.sort(order), np.arange(n_records)):
        raise ConfigError(f"split index file {path}: {key!r} is not a permutation of the {n_records} records")
    for start, stop in [r for ranges in parts.values() for r in ranges] + list(shadow_members):
        if not 0 <= start <= stop <= n_records:
            raise ConfigError(f"split range [{start}, {stop}) is outside the {n_records} records")
    arrays = {
        name: np.sort(np.concatenate([order[a:b] for a, b in parts.get(name, ())] + [order[:0]])).astype(np.int64)
        for name in PART_NAMES
    }
    if len(np.unique(np.concatenate(list(arrays.values())))) != sum(len(a) for a in arrays.values()):
        raise ConfigError(f"split parts {dict(parts)} overlap")
    pool = arrays["attacker_pool"]
    subsets: list[np.ndarray] = []
    for start, stop in shadow_members:
        members = np.sort(order[start:stop])
        if not np.isin(members, pool).all():
            raise ConfigError(f"shadow members [{start}, {stop}) are not all in the attacker's pool")
        subsets.append(np.searchsorted(pool, members))
    return FixedSplit(n_records, **arrays, shadow_subsets=tuple(subsets), source=source or str(path))


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
