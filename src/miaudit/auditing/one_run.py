"""One-run auditing: epsilon lower bound from m canaries with abstention (Steinke, Nasr & Jagielski 2023).

Each of ``m`` canaries is included in training independently with probability 1/2 (its secret
coin ``S_i``). The auditor ranks the canaries by score, guesses the top ``k+`` IN and the bottom
``k-`` OUT and abstains on the rest; ``v`` of the ``r = k+ + k-`` guesses are correct. Under
(epsilon, delta)-DP (their main theorem, guesses with abstention, as their appendix code computes it),

    P[v correct or more] <= P[Binomial(r, q) >= v] + 2 m delta max_{i = 1..v} P[v > Binomial(r, q) >= v - i] / i,

with ``q = e^epsilon / (1 + e^epsilon)``. The lower bound is the largest epsilon (bisection)
whose p-value is below ``1 - confidence``: every smaller epsilon is rejected at that level, so the
mechanism's epsilon is at least the result with probability at least ``confidence``.

Steinke, Nasr & Jagielski, "Privacy Auditing with One (1) Training Run", NeurIPS 2023.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import special, stats

from miaudit.auditing.base import (
    BOUNDS,
    LOWER_BOUND,
    BoundResult,
    check_confidence,
    check_delta,
    check_scores,
    check_selection,
    split_halves,
)
from miaudit.errors import ConfigError
from miaudit.seeds import stream_rng

PAPER = "Steinke, Nasr & Jagielski 2023 (NeurIPS), main theorem with abstention"
GUESS_FRACTIONS = (0.0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5)
"""Default grid: k+ and k- each a fraction of the canaries (pairs with k+ + k- in [1, m])."""
BISECTION_STEPS = 40


def _check_counts(m: int, r: int, v: int) -> None:
    if not (0 <= v <= r <= m):
        raise ConfigError(f"one-run counts need 0 <= v <= r <= m, got m={m}, r={r}, v={v}")


def p_value(m: int, r: int, v: int, epsilon: float, delta: float) -> float:
    """Upper bound on P[at least v of r guesses correct] among m canaries under (epsilon, delta)-DP.

    The main theorem of Steinke, Nasr & Jagielski (2023), abstention case; epsilon in nats. Capped at 1.
    """
    _check_counts(m, r, v)
    q = float(special.expit(epsilon))
    tail = float(stats.binom.sf(v - 1, r, q))
    alpha = 0.0
    if delta > 0.0 and v > 0:
        i = np.arange(1, v + 1)
        below = np.cumsum(stats.binom.pmf(v - i, r, q))  # P[v > Binomial(r, q) >= v - i]
        alpha = float(np.max(below / i))
    return min(tail + alpha * 2.0 * m * delta, 1.0)


def epsilon_lower_bound(m: int, r: int, v: int, delta: float, confidence: float) -> float:
    """The largest epsilon (nats) whose :func:`p_value` is below ``1 - confidence`` (0 if none).

    Bisection with :data:`BISECTION_STEPS` steps, returning the lower end (conservative).
    """
    confidence = check_confidence(confidence)
    delta = check_delta(delta)
    level = 1.0 - confidence
    if p_value(m, r, v, 0.0, delta) >= level:
        return 0.0
    lo, hi = 0.0, 1.0
    while p_value(m, r, v, hi, delta) < level:
        lo, hi = hi, 2.0 * hi
        if hi > 1e4:
            return lo
    for _ in range(BISECTION_STEPS):
        mid = (lo + hi) / 2.0
        if p_value(m, r, v, mid, delta) < level:
            lo = mid
        else:
            hi = mid
    return lo


def ranking(scores: np.ndarray, seed: int) -> np.ndarray:
    """Canary indices from the highest score to the lowest; ties broken by a seeded random key.

    The random key keeps ties from being broken by the caller's record order, which could carry
    the coins.
    """
    keys = stream_rng(int(seed), "auditing/split", 1).random(len(scores))
    return np.lexsort((keys, -scores))


def correct_guesses(order: np.ndarray, coins: np.ndarray, k_plus: int, k_minus: int) -> int:
    """Correct guesses when the first ``k_plus`` of ``order`` are guessed IN and the last ``k_minus`` OUT."""
    top = order[:k_plus]
    bottom = order[len(order) - k_minus :] if k_minus else order[:0]
    return int(np.sum(coins[top]) + np.sum(~coins[bottom]))


def guess_pairs(m: int, fractions: Sequence[float] = GUESS_FRACTIONS) -> list[tuple[int, int]]:
    """(k+, k-) pairs from ``fractions`` of ``m`` each, with 1 <= k+ + k- <= m, deduplicated."""
    ks = sorted({int(round(f * m)) for f in fractions})
    return [(a, b) for a in ks for b in ks if 1 <= a + b <= m]


@dataclass(frozen=True)
class GuessChoice:
    """The (k+, k-) a one-run method used, on which canaries, at which per-test confidence.

    ``value`` is the method's quantity (the one maximised while choosing) on the ``m`` reported
    canaries, ``v`` their correct guesses, ``how`` a sentence on the selection.
    """

    value: float
    k_plus: int
    k_minus: int
    v: int
    m: int
    level: float
    how: str


PairBound = Callable[[int, np.ndarray, np.ndarray, float], np.ndarray]
"""``bound(m, r, v, level)``: a method's value for arrays of guess counts r and correct guesses v."""


def check_pairs(pairs: Sequence[tuple[int, int]], m: int) -> list[tuple[int, int]]:
    """``pairs`` as int (k+, k-) tuples, each with k+, k- >= 0 and 1 <= k+ + k- <= m; ConfigError otherwise."""
    pairs = [(int(a), int(b)) for a, b in pairs]
    if not pairs or any(a < 0 or b < 0 or not 1 <= a + b <= m for a, b in pairs):
        raise ConfigError(f"every (k+, k-) needs k+, k- >= 0 and 1 <= k+ + k- <= {m} (the canaries it is used on)")
    return pairs


def choose_guesses(
    s: np.ndarray,
    S: np.ndarray,
    bound: PairBound,
    *,
    confidence: float,
    selection: str,
    seed: int,
    k_plus: int | None,
    k_minus: int | None,
    grid: Sequence[tuple[int, int]] | None,
) -> GuessChoice:
    """The one-run selection rules (``"split"``, ``"bonferroni"``, ``"fixed"``; see :func:`one_run_bound`)
    applied to any method ``bound`` that maps guess counts to a value to maximise (checked scores
    ``s`` and coins ``S``). Shared by the one-run bounds so that they select in exactly one way.
    """

    def evaluate(idx: np.ndarray, pairs: Sequence[tuple[int, int]], level: float) -> list[tuple[float, int, int, int]]:
        order = idx[ranking(s[idx], seed)]
        v = np.array([correct_guesses(order, S, kp, km) for kp, km in pairs], dtype=np.int64)
        r = np.array([kp + km for kp, km in pairs], dtype=np.int64)
        values = np.asarray(bound(len(idx), r, v, level), dtype=np.float64)
        return [(float(x), kp, km, int(c)) for x, (kp, km), c in zip(values, pairs, v)]

    m_all = len(s)
    if selection == "fixed":
        if k_plus is None or k_minus is None:
            raise ConfigError("selection 'fixed' needs k_plus= and k_minus=")
        (kp, km), = check_pairs([(k_plus, k_minus)], m_all)
        level, report, how = confidence, np.arange(m_all), "given by the caller"
    elif selection == "bonferroni":
        pairs = check_pairs(grid if grid is not None else guess_pairs(m_all), m_all)
        level = 1.0 - (1.0 - confidence) / len(pairs)
        best = max(evaluate(np.arange(m_all), pairs, level))
        kp, km, report = best[1], best[2], np.arange(m_all)
        how = f"best of {len(pairs)} (k+, k-) pairs on all canaries, Bonferroni-corrected (each at {level:.6g})"
    else:
        select, report = split_halves(S, seed, stratify=False)
        pairs = check_pairs(grid if grid is not None else guess_pairs(len(select)), len(select))
        best = max(evaluate(select, pairs, confidence), key=lambda t: (t[0], t[1] + t[2]))
        kp, km, level = best[1], best[2], confidence
        how = f"maximised over {len(pairs)} (k+, k-) pairs on a seeded selection half ({len(select)} canaries, seed {seed}); reported on the other half"
    value, kp, km, v = evaluate(report, [(kp, km)], level)[0]
    return GuessChoice(value=value, k_plus=kp, k_minus=km, v=v, m=len(report), level=level, how=how)


GUESS_RULE = "top k+ guessed IN, bottom k- guessed OUT, the rest abstain"


@BOUNDS.register("one-run")
def one_run_bound(
    scores: np.ndarray,
    coins: np.ndarray,
    *,
    confidence: float = 0.95,
    delta: float = 0.0,
    selection: str = "split",
    seed: int = 0,
    k_plus: int | None = None,
    k_minus: int | None = None,
    grid: Sequence[tuple[int, int]] | None = None,
) -> BoundResult:
    """Epsilon lower bound (nats) at ``confidence`` from one training run (Steinke et al. 2023).

    ``scores``: one per canary, higher = more likely IN; ``coins``: the canaries' secret 0/1
    inclusion coins, each drawn with probability 1/2 by the caller. The guess counts come from
    ``selection``:

    * ``"split"`` (default): a seeded half of the canaries, drawn without looking at the coins,
      chooses (k+, k-) from ``grid`` (default: :func:`guess_pairs` of the half's size) by
      maximising the bound on that half; the same counts are then used on the other half, whose
      m canaries alone the reported bound is about (the selection half's canaries are fixed
      constants to it, so the theorem applies conditionally on them).
    * ``"bonferroni"``: every pair of ``grid`` (default: :func:`guess_pairs` of m) on all
      canaries, each at confidence ``1 - (1 - confidence) / len(grid)``; the best is reported.
    * ``"fixed"``: ``k_plus`` and ``k_minus`` on all canaries.
    """
    s, S = check_scores(scores, coins, what="coins")
    confidence = check_confidence(confidence)
    delta = check_delta(delta)
    selection = check_selection(selection)

    def bound(m: int, r: np.ndarray, v: np.ndarray, level: float) -> np.ndarray:
        return np.array([epsilon_lower_bound(m, int(a), int(b), delta, level) for a, b in zip(r, v)])

    c = choose_guesses(s, S, bound, confidence=confidence, selection=selection, seed=seed, k_plus=k_plus, k_minus=k_minus, grid=grid)
    return BoundResult(
        method="one-run",
        epsilon=c.value,
        kind=LOWER_BOUND,
        confidence=confidence,
        delta=delta,
        selection=selection,
        choice={"k_plus": c.k_plus, "k_minus": c.k_minus, "rule": GUESS_RULE, "how": c.how},
        counts={"m": c.m, "r": c.k_plus + c.k_minus, "v": c.v},
        paper=PAPER,
        details={"per_test_confidence": c.level},
    )
