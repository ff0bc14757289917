"""What every epsilon bound returns, the ``BOUNDS`` registry, and the shared input checks and split.

Each method lives in its own module (``clopper_pearson``, ``gdp``, ``one_run``) and registers
its entry function in :data:`BOUNDS`. Every result states its confidence level and whether it is
a lower bound or an estimate; every threshold or guess count it used says how it was selected:

* ``"split"``: chosen on a seeded selection half of the scores by maximising the method's value
  there, reported on the other half only (the reporting half is never looked at while choosing);
* ``"bonferroni"``: every candidate of a stated grid evaluated on all scores at confidence
  ``1 - (1 - confidence) / len(grid)`` (union bound), the best reported;
* ``"fixed"``: given by the caller and evaluated on all scores.

Epsilon is in nats (natural logarithm) throughout.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from miaudit.errors import ConfigError, InputError
from miaudit.registry import Registry
from miaudit.seeds import stream_rng

LOWER_BOUND = "lower bound"
ESTIMATE = "estimate"
SELECTIONS = ("split", "bonferroni", "fixed")


@dataclass(frozen=True)
class BoundResult:
    """One epsilon lower bound (or estimate) from membership scores.

    ``epsilon`` is in nats; ``kind`` is ``"lower bound"`` (holds with probability at least
    ``confidence`` over the randomness of training, if the mechanism is (epsilon, delta)-DP) or
    ``"estimate"`` (no coverage guarantee). ``choice`` holds the threshold or guess counts used,
    ``selection`` how they were chosen (``"split"``, ``"bonferroni"``, ``"fixed"``), ``counts``
    the counts the reported value was computed from (on the reporting half for ``"split"``).
    """

    method: str
    epsilon: float
    kind: str
    confidence: float
    delta: float
    selection: str
    choice: dict[str, Any]
    counts: dict[str, int]
    paper: str
    details: dict[str, Any] = field(default_factory=dict)


BOUNDS: Registry[Callable[..., BoundResult]] = Registry("epsilon bound")


def check_confidence(confidence: float) -> float:
    """``confidence`` as a float in the open interval (0, 1); a one-line ConfigError otherwise."""
    c = float(confidence)
    if not 0.0 < c < 1.0:
        raise ConfigError(f"confidence must lie strictly between 0 and 1 (e.g. 0.95), got {confidence!r}")
    return c


def check_delta(delta: float, *, positive: bool = False) -> float:
    """``delta`` as a float in [0, 1) (in (0, 1) when ``positive``); a one-line ConfigError otherwise."""
    d = float(delta)
    if not (0.0 <= d < 1.0) or (positive and d == 0.0):
        low = "(0" if positive else "[0"
        raise ConfigError(f"delta must lie in {low}, 1), got {delta!r}")
    return d


def check_selection(selection: str) -> str:
    """``selection`` if it is one of :data:`SELECTIONS`; a one-line ConfigError otherwise."""
    if selection not in SELECTIONS:
        raise ConfigError(f"unknown selection {selection!r}; choose one of: {', '.join(SELECTIONS)}")
    return selection


def check_scores(scores: np.ndarray, labels: np.ndarray, what: str = "is_member") -> tuple[np.ndarray, np.ndarray]:
    """Scores as finite float64 and ``labels`` as bool, both 1-D and of one length; InputError otherwise.

    ``labels`` must be 0/1 (or booleans): membership truth for a threshold bound, the secret
    coins ``S_i`` of the canaries for one-run auditing.
    """
    s = np.asarray(scores)
    y = np.asarray(labels)
    if s.ndim != 1 or y.ndim != 1 or len(s) != len(y):
        raise InputError(f"scores and {what} must be 1-D arrays of one length, got shapes {s.shape} and {y.shape}")
    if len(s) < 2:
        raise InputError(f"need at least 2 scores, got {len(s)}")
    if not np.issubdtype(s.dtype, np.number) or np.issubdtype(s.dtype, np.complexfloating):
        raise InputError(f"scores must be real numbers, got dtype {s.dtype}")
    s = s.astype(np.float64)
    if not np.all(np.isfinite(s)):
        raise InputError(f"scores hold {int(np.sum(~np.isfinite(s)))} NaN or infinite values; drop or fix those records")
    if y.dtype != bool:
        if not np.issubdtype(y.dtype, np.number) or not np.all(np.isin(y, (0, 1))):
            raise InputError(f"{what} must hold only 0 and 1 (or booleans)")
    return s, y.astype(bool)


def split_halves(labels: np.ndarray, seed: int, *, stratify: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Indices of a selection half and a reporting half, drawn with ``seed``; never looks at scores.

    The records are shuffled with the ``"auditing/split"`` stream of :mod:`miaudit.seeds` and cut
    in two (the reporting half gets the extra record of an odd count). With ``stratify`` each
    class of ``labels`` is cut on its own, so both halves hold both classes (threshold bounds,
    which condition on the numbers of members and non-members). Without it the cut ignores the
    labels (one-run auditing, where the reporting half's secret coins must stay independent
    fair coins, so the split must not depend on them).
    """
    rng = stream_rng(int(seed), "auditing/split")
    if not stratify:
        idx = rng.permutation(len(labels))
        half = len(idx) // 2
        return np.sort(idx[:half]), np.sort(idx[half:])
    select, report = [], []
    for value in (False, True):
        idx = np.flatnonzero(labels == value)
        idx = idx[rng.permutation(len(idx))]
        half = len(idx) // 2
        select.append(idx[:half])
        report.append(idx[half:])
    return np.sort(np.concatenate(select)), np.sort(np.concatenate(report))
