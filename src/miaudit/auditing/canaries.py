"""Canaries for empirical privacy auditing: records inserted into training, each with probability
1/2 on a seeded, recorded coin.

An audit of a training algorithm's differential privacy (Jagielski et al., "Auditing
Differentially Private Machine Learning: How Private is Private SGD?", NeurIPS 2020; Nasr et al.,
"Adversary Instantiation: Lower Bounds for Differentially Private Machine Learning", S&P 2021;
Steinke, Nasr & Jagielski, "Privacy Auditing with One (1) Training Run", NeurIPS 2023) inserts
chosen records, *canaries*, into the training set on independent fair coins and asks an attack to
tell from the trained model which coins came up IN. Whatever the attack's success, the training
algorithm's epsilon is at least what that success implies; the bounds live beside this module.

Threat model: the auditor chooses the canaries and knows every coin except the one being guessed
(the DP adversary); the canaries are what make the guess easy. The kinds here:

- ``mislabelled``: held-out natural records with a seeded wrong label (the hardest records for a
  model to fit without memorising them; Jagielski et al. 2020's "clipping-aware" poisons are a
  stronger form);
- ``ood``: out-of-distribution records: uniform binary vectors for binary features (Location30,
  Purchase100), else uniform draws in each feature's observed range, with uniform labels;
- ``natural``: held-out records with their true labels (the average-case canary: what a
  membership attack on ordinary data shows).

Gradient canaries (Nasr et al. 2021's and Steinke et al. 2023's white-box "Dirac" canaries: a
gradient of norm equal to the clipping norm on one parameter coordinate, added to DP-SGD's
clipped sum) are not records, so not in this registry: :func:`dirac_coordinates` chooses their
coordinates and :func:`miaudit.auditing.runs.one_run_gradient` inserts them.

Every generator is ``(x, y, m, seed, *, num_classes) -> (canary_x, canary_y)`` over *held-out*
records ``(x, y)`` (disjoint from the base training set: the caller's responsibility).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from miaudit.errors import ConfigError, InputError
from miaudit.registry import Registry
from miaudit.seeds import check_user_seed

CanaryGenerator = Callable[..., tuple[np.ndarray, np.ndarray]]
"""``(x, y, m, seed, *, num_classes) -> (canary_x float32 (m, ...), canary_y int64 (m,))``."""

CANARY_KINDS: Registry[CanaryGenerator] = Registry("canary kind")


def _rng(seed: int, stream: str) -> np.random.Generator:
    """A numpy generator for ``stream`` of ``seed`` (derived by hash, so streams never collide)."""
    from miaudit.models.seeding import derive_seed

    return np.random.default_rng(derive_seed(check_user_seed(seed), f"canaries/{stream}"))


def check_count(m: object, what: str = "canaries") -> int:
    """``m`` as a positive int, or a one-line ConfigError."""
    if isinstance(m, bool) or not isinstance(m, int | np.integer) or int(m) < 1:
        raise ConfigError(f"the number of {what} must be a whole number >= 1, got {m!r}")
    return int(m)


def _held_out(x: np.ndarray, y: np.ndarray, m: int, seed: int, kind: str) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x)
    y = np.asarray(y, dtype=np.int64)
    if x.ndim < 2 or y.ndim != 1 or len(x) != len(y):
        raise InputError(f"canary kind {kind!r}: x must be (n, features...) and y (n,), got {x.shape} and {y.shape}")
    if m > len(y):
        raise ConfigError(f"canary kind {kind!r}: {m} canaries asked from {len(y)} held-out records; give more records or fewer canaries")
    pick = np.sort(_rng(seed, f"{kind}/pick").choice(len(y), size=m, replace=False))
    return np.ascontiguousarray(x[pick], dtype=np.float32), y[pick].copy()


@CANARY_KINDS.register("natural")
def natural_canaries(x: np.ndarray, y: np.ndarray, m: int, seed: int, *, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """``m`` held-out records drawn without replacement, with their true labels."""
    return _held_out(x, y, check_count(m), seed, "natural")


@CANARY_KINDS.register("mislabelled")
def mislabelled_canaries(x: np.ndarray, y: np.ndarray, m: int, seed: int, *, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """``m`` held-out records, each relabelled with a class drawn uniformly from the
    ``num_classes - 1`` classes other than its true one (never its true label)."""
    if num_classes < 2:
        raise ConfigError(f"mislabelled canaries need at least 2 classes, got {num_classes}")
    cx, cy = _held_out(x, y, check_count(m), seed, "mislabelled")
    shift = _rng(seed, "mislabelled/labels").integers(1, num_classes, size=len(cy))
    return cx, (cy + shift) % num_classes


@CANARY_KINDS.register("ood")
def ood_canaries(x: np.ndarray, y: np.ndarray, m: int, seed: int, *, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """``m`` out-of-distribution records with uniform labels: for binary features (every value 0
    or 1) uniform binary vectors, else uniform draws in each feature's [min, max] over ``x``."""
    m = check_count(m)
    x = np.asarray(x, dtype=np.float32)
    if x.ndim < 2 or len(x) == 0:
        raise InputError(f"canary kind 'ood': x must be a non-empty (n, features...) array, got {x.shape}")
    rng = _rng(seed, "ood/records")
    shape = (m, *x.shape[1:])
    if np.isin(x, (0.0, 1.0)).all():
        cx = rng.integers(0, 2, size=shape).astype(np.float32)
    else:
        low, high = x.min(axis=0), x.max(axis=0)
        cx = (low + (high - low) * rng.random(shape)).astype(np.float32)
    cy = _rng(seed, "ood/labels").integers(0, num_classes, size=m).astype(np.int64)
    return cx, cy


def draw_coins(m: int, seed: int) -> np.ndarray:
    """``m`` independent fair coins (True = the canary is IN the training set), a pure function
    of ``seed``: the same seed gives the same coins, so the record of a run is its seed."""
    m = check_count(m, "coins")
    return _rng(seed, "coins").random(m) < 0.5


def dirac_coordinates(num_params: int, m: int, seed: int) -> np.ndarray:
    """``m`` distinct coordinates (int64, sorted) of a flattened parameter vector of
    ``num_params`` entries, drawn uniformly from ``seed``: the directions of ``m`` Dirac gradient
    canaries, one coordinate each."""
    m = check_count(m, "gradient canaries")
    if m > num_params:
        raise ConfigError(f"{m} gradient canaries asked of a model with {num_params} parameters; give fewer canaries")
    return np.sort(_rng(seed, "dirac/coordinates").choice(num_params, size=m, replace=False)).astype(np.int64)


@dataclass(frozen=True)
class CanarySet:
    """``m`` canaries (``x`` float32 (m, ...), ``y`` int64 (m,)) of one ``kind``, with their coins
    (bool (m,), True = inserted into training) and the seed both were drawn from."""

    x: np.ndarray
    y: np.ndarray
    kind: str
    coins: np.ndarray
    seed: int

    def __len__(self) -> int:
        return len(self.y)

    @property
    def inside(self) -> np.ndarray:
        """Indices of the canaries whose coin is IN."""
        return np.flatnonzero(self.coins)

    def to_json(self) -> dict[str, Any]:
        """JSON-able metadata: kind, seed, count, the coins as 0/1, the labels and a content hash
        of the records (the records themselves are reproducible from the seed and the data)."""
        from miaudit.io_utils import sha256_arrays

        return {
            "kind": self.kind,
            "seed": int(self.seed),
            "m": len(self),
            "in": int(self.coins.sum()),
            "coins": [int(c) for c in self.coins],
            "labels": [int(v) for v in self.y],
            "records_sha256": sha256_arrays(np.ascontiguousarray(self.x), np.ascontiguousarray(self.y)),
        }


def make_canaries(kind: str, x: np.ndarray, y: np.ndarray, m: int, seed: int, *, num_classes: int) -> CanarySet:
    """``m`` canaries of ``kind`` (a :data:`CANARY_KINDS` name) from held-out records ``(x, y)``,
    with coins from :func:`draw_coins` of the same seed."""
    m = check_count(m)
    if kind not in CANARY_KINDS:
        raise ConfigError(f"unknown canary kind {kind!r}; choose one of: {', '.join(CANARY_KINDS.names())}")
    cx, cy = CANARY_KINDS.get(kind)(x, y, m, seed, num_classes=num_classes)
    return CanarySet(cx, cy, kind, draw_coins(m, seed), int(seed))
