"""Distance to the decision boundary from label queries alone: a HopSkipJump-style search.

After Chen, Jordan and Wainwright, "HopSkipJumpAttack: A Query-Efficient Decision-Based Attack"
(IEEE S&P 2020), as used by Choquette-Choo et al. ("Label-Only Membership Inference Attacks",
ICML 2021, section 4.3) to measure how far a record lies from the boundary: members tend to lie
farther. Only predicted labels are used; every call of ``labels_of`` is one query per row.

Per record (all records of a call advance together, one batched query per step):

1. query the label; a misclassified record gets distance 0 and costs nothing more;
2. start: random points inside the data's range until one is classified otherwise
   (``init_tries`` at most; a record that never finds one keeps the largest distance found);
3. binary search (``binary_steps``) on the segment record -> start for the boundary;
4. ``max_iter`` times: estimate the boundary's normal at the boundary point from the labels of
   ``num_evals`` random probes (the sign average of HopSkipJump), step along it by a geometrically
   shrinking size (``step_tries`` at most) while the step stays on the other side, and binary-search
   back to the boundary between the record and the stepped point. The distance is the L2 norm of
   the smallest boundary point found minus the record.

Queries per record: at most ``1 + init_tries + binary_steps + max_iter * (num_evals + step_tries + binary_steps)``;
:func:`boundary_distances` returns the exact count per record.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

PROBE_FLOATS = 20_000_000  # the probes of one query, in floats (bounds the search's memory)

LabelOracle = Callable[[np.ndarray], np.ndarray]
"""``labels_of(x)`` -> the predicted class of each row (one query per row)."""


@dataclass(frozen=True)
class SearchBudget:
    """How many queries each phase of the boundary search may spend per record."""

    max_iter: int = 3
    num_evals: int = 50
    init_tries: int = 10
    binary_steps: int = 10
    step_tries: int = 5

    def max_queries(self) -> int:
        return 1 + self.init_tries + self.binary_steps + self.max_iter * (self.num_evals + self.step_tries + self.binary_steps)


class _Counter:
    """Wraps an oracle and counts queries per record index."""

    def __init__(self, labels_of: LabelOracle, n: int, shape: tuple[int, ...]) -> None:
        self.labels_of = labels_of
        self.count = np.zeros(n, dtype=np.int64)
        self.shape = shape

    def __call__(self, rows: np.ndarray, points: np.ndarray) -> np.ndarray:
        if len(rows) == 0:
            return np.zeros(0, dtype=np.int64)
        np.add.at(self.count, rows, 1)
        return np.asarray(self.labels_of(points.reshape((len(points), *self.shape)).astype(np.float32)))


def _binary_search(ask: _Counter, rows: np.ndarray, x: np.ndarray, adv: np.ndarray, y: np.ndarray, steps: int) -> np.ndarray:
    """Boundary points on the segments x -> adv (adv on the other side), kept on the other side."""
    lo = np.zeros(len(rows))
    hi = np.ones(len(rows))
    for _ in range(steps):
        mid = (lo + hi) / 2
        other = ask(rows, x + mid[:, None] * (adv - x)) != y
        hi = np.where(other, mid, hi)
        lo = np.where(other, lo, mid)
    return x + hi[:, None] * (adv - x)


def boundary_distances(
    labels_of: LabelOracle,
    x: np.ndarray,
    y: np.ndarray,
    *,
    low: np.ndarray,
    high: np.ndarray,
    budget: SearchBudget,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """``(distance, queries)`` per record: the L2 distance to the boundary found (0 when misclassified)."""
    shape = tuple(np.shape(x)[1:])
    flat = np.asarray(x, np.float64).reshape(len(x), -1)
    low = np.broadcast_to(np.asarray(low, np.float64).reshape(-1), flat.shape[1:])
    high = np.broadcast_to(np.asarray(high, np.float64).reshape(-1), flat.shape[1:])
    y = np.asarray(y)
    n, d = flat.shape
    ask = _Counter(labels_of, n, shape)
    dist = np.zeros(n)
    correct = ask(np.arange(n), flat) == y
    rows = np.flatnonzero(correct)

    # 2. a start on the other side of the boundary, from uniform random points in the data's range
    start = np.full((n, d), np.nan)
    pending = rows
    for _ in range(budget.init_tries):
        if len(pending) == 0:
            break
        cand = low + rng.random((len(pending), d)) * (high - low)
        found = ask(pending, cand) != y[pending]
        start[pending[found]] = cand[found]
        pending = pending[~found]
    stuck = pending  # no start found: the largest distance found below
    rows = np.setdiff1d(rows, stuck)
    if len(rows) == 0:
        dist[stuck] = np.inf if len(stuck) else 0.0
        return _finite(dist), ask.count

    # 3. binary search for the boundary
    xb = _binary_search(ask, rows, flat[rows], start[rows], y[rows], budget.binary_steps)
    best = np.linalg.norm(xb - flat[rows], axis=1)

    # 4. gradient-direction estimates at the boundary, steps, and binary searches back
    probe = min(0.1, 10.0 / d)
    for it in range(budget.max_iter):
        cur = np.linalg.norm(xb - flat[rows], axis=1)
        delta = np.maximum(probe * cur, 1e-6)
        # Probes of many records per query ((records x num_evals) points, about PROBE_FLOATS floats).
        grad = np.zeros((len(rows), d))
        per_chunk = max(1, PROBE_FLOATS // (budget.num_evals * d))
        for lo_i in range(0, len(rows), per_chunk):
            sl = slice(lo_i, lo_i + per_chunk)
            r = rows[sl]
            u = rng.standard_normal((len(r), budget.num_evals, d)).astype(np.float32)
            u /= np.linalg.norm(u, axis=2, keepdims=True)
            pts = np.clip(xb[sl, None, :] + delta[sl, None, None] * u, low, high).reshape(-1, d)
            other = ask(np.repeat(r, budget.num_evals), pts) != np.repeat(y[r], budget.num_evals)
            phis = np.where(other, 1.0, -1.0).reshape(len(r), budget.num_evals)
            # Sign average with the mean subtracted (HopSkipJump's variance reduction) unless all agree.
            mean = phis.mean(axis=1, keepdims=True)
            centred = np.where(np.abs(mean) == 1.0, phis, phis - mean)
            grad[sl] = np.einsum("re,red->rd", centred, u)
        norm = np.linalg.norm(grad, axis=1, keepdims=True)
        grad = np.divide(grad, norm, out=np.zeros_like(grad), where=norm > 0)
        # geometric step search: shrink until the stepped point stays on the other side
        eps = cur / np.sqrt(it + 1)
        stepped = xb.copy()
        todo = np.arange(len(rows))
        for _ in range(budget.step_tries):
            if len(todo) == 0:
                break
            cand = np.clip(xb[todo] + eps[todo, None] * grad[todo], low, high)
            ok = ask(rows[todo], cand) != y[rows[todo]]
            stepped[todo[ok]] = cand[ok]
            eps[todo[~ok]] /= 2
            todo = todo[~ok]
        xb = _binary_search(ask, rows, flat[rows], stepped, y[rows], budget.binary_steps)
        best = np.minimum(best, np.linalg.norm(xb - flat[rows], axis=1))
    dist[rows] = best
    dist[stuck] = np.inf
    return _finite(dist), ask.count


def _finite(dist: np.ndarray) -> np.ndarray:
    """Records with no start found lie farther than any found: give them the largest finite distance."""
    finite = dist[np.isfinite(dist)]
    fill = float(finite.max()) if finite.size else 0.0
    return np.where(np.isfinite(dist), dist, fill)
