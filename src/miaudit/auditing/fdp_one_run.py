"""One-run auditing of f-DP: a lower bound from m canaries via the trade-off curve (Mahloujifar, Melis & Chaudhuri 2024).

Threat model and game as in :mod:`miaudit.auditing.one_run` (Steinke et al. 2023): each of ``m``
canaries is included in the one training run independently with probability 1/2 (its secret coin),
the auditor ranks the canaries by score, guesses the top ``k+`` IN and the bottom ``k-`` OUT and
abstains on the rest; ``v`` of the ``r = k+ + k-`` guesses are correct. Instead of bounding the
number of correct guesses through (epsilon, delta) alone, the analysis uses the whole trade-off
function ``f`` claimed for the mechanism (f-DP: every test between neighbouring datasets with
type-I error x has type-II error at least f(x)). Their analysis of the guessing game with
abstention gives, for a claimed f, a backward recursion on two numbers (written with the
"blow-up" inverse ``g = (1 - f)^{-1}``, i.e. ``g(y)`` is the smallest type-I error whose power
can be ``y``):

    r = tau v / m,  h = tau (r_guesses - v) / m;
    for i = v - 1, ..., 0:  h' = max(h, g(r)),  r = min(r + i / (r_guesses - i) (h' - h), 1),  h = h'.

If the mechanism is f-DP and P[at least v correct] >= tau, the recursion ends with
``r + h <= r_guesses / m``; so ending above it shows P[at least v correct] < tau, and the claim
"the mechanism is f-DP" is rejected at level ``tau = 1 - confidence``. Once ``h`` stops growing it
never grows again (``g(r)`` depends on ``r`` only), so the recursion stops there.

Two families of claims, each ordered by one parameter (a larger parameter is a weaker claim, and
the recursion is monotone in ``g``, so the rejected parameters form an interval from 0):

* ``"epsilon-delta"``: ``f_{eps,delta}(x) = max(0, 1 - delta - e^eps x, e^-eps (1 - delta - x))``,
  the trade-off of (eps, delta)-DP, so the bound holds for **any** (eps, delta)-DP mechanism
  (randomized response, DP-SGD, ...); directly comparable with Steinke et al.'s bound.
* ``"gaussian"``: ``f_mu(x) = Phi(Phi^{-1}(1 - x) - mu)`` (mu-GDP, Dong, Roth & Su 2022); the
  result is a lower bound on mu, turned into epsilon at ``delta`` (> 0) with
  :func:`miaudit.auditing.gdp.gdp_epsilon`. This epsilon is a lower bound only for mechanisms
  whose trade-off has the Gaussian shape (e.g. full-batch DP-SGD, a composition of Gaussian
  mechanisms): rejecting mu-GDP does not reject (eps(mu), delta)-DP for other mechanisms.

The lower bound is the largest parameter rejected (a bracketing search that keeps a rejected end). Epsilon in nats.

Mahloujifar, Melis & Chaudhuri, "Auditing f-Differential Privacy in One Run", arXiv 2410.22235
(2024), ICML 2025.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import special

from miaudit.auditing.base import (
    BOUNDS,
    LOWER_BOUND,
    BoundResult,
    check_confidence,
    check_delta,
    check_scores,
    check_selection,
)
from miaudit.auditing.gdp import gdp_epsilon
from miaudit.auditing.one_run import GUESS_RULE, choose_guesses
from miaudit.errors import ConfigError

PAPER = ("Mahloujifar, Melis & Chaudhuri 2024 (arXiv 2410.22235, ICML 2025), the f-DP bound for the "
         "guessing game with abstention, computed by their backward recursion (empirical privacy)")  # fmt: skip
GAUSSIAN = "gaussian"
EPSILON_DELTA = "epsilon-delta"
FAMILIES = (EPSILON_DELTA, GAUSSIAN)
PARAMETER_CAP = {EPSILON_DELTA: 50.0, GAUSSIAN: 50.0}
"""Largest parameter (epsilon in nats, or mu) searched; a bound at the cap means "at least this"."""
SEARCH_POINTS = 15
SEARCH_ROUNDS = 8


def check_family(family: str) -> str:
    """``family`` if it is one of :data:`FAMILIES`; a one-line ConfigError otherwise."""
    if family not in FAMILIES:
        raise ConfigError(f"unknown trade-off family {family!r}; choose one of: {', '.join(FAMILIES)}")
    return family


def blow_up_inverse(y: np.ndarray, family: str, param: np.ndarray, delta: float) -> np.ndarray:
    """``(1 - f)^{-1}(y)`` of the family's trade-off at ``param`` (eps in nats, or mu), elementwise.

    The smallest type-I error at which a test can have power ``y``: ``Phi(Phi^{-1}(y) - mu)`` for
    mu-GDP, ``max(0, (y - delta) e^-eps, 1 - delta - e^eps (1 - y))`` for (eps, delta)-DP.
    """
    y = np.clip(y, 0.0, 1.0)
    if family == GAUSSIAN:
        return special.ndtr(special.ndtri(y) - param)
    e = np.exp(param)
    return np.maximum(np.maximum((y - delta) / e, 1.0 - delta - e * (1.0 - y)), 0.0)


def rejects(m: int, r: np.ndarray, v: np.ndarray, param: np.ndarray, *, family: str, delta: float, confidence: float) -> np.ndarray:
    """Whether v correct of r guesses among m canaries reject "f-DP at ``param``" at ``confidence``.

    The paper's backward recursion (module docstring), run for all entries of the broadcast
    arrays ``r``, ``v``, ``param`` at once; entries stop as soon as their ``h`` stops growing.
    """
    r, v, param = (np.asarray(a, dtype=np.float64) for a in np.broadcast_arrays(r, v, param))
    if np.any((v < 0) | (v > r) | (r > m) | (r < 1)):
        raise ConfigError(f"one-run counts need 0 <= v <= r <= m and r >= 1, got m={m}")
    tau = 1.0 - confidence
    rr, hh = tau * v / m, tau * (r - v) / m
    live = v > 0
    for i in range(int(v.max(initial=0)) - 1, -1, -1):
        act = live & (v > i)
        if not act.any():
            if not live.any():
                break
            continue
        grown = np.maximum(hh, blow_up_inverse(rr, family, param, delta))
        grows = act & (grown > hh)
        live &= ~act | grows
        with np.errstate(divide="ignore", invalid="ignore"):
            step = i / (r - i) * (grown - hh)
        rr = np.where(grows, np.minimum(rr + step, 1.0), rr)
        hh = np.where(grows, grown, hh)
    return rr + hh > r / m


def parameter_lower_bound(m: int, r: np.ndarray, v: np.ndarray, *, family: str, delta: float, confidence: float) -> np.ndarray:
    """The largest rejected parameter (eps in nats, or mu) for each (r, v), 0 where none is rejected.

    A search on [0, :data:`PARAMETER_CAP`] in lockstep for all entries: each of
    :data:`SEARCH_ROUNDS` rounds tests :data:`SEARCH_POINTS` evenly spaced parameters inside the
    current bracket at once and keeps the last rejected one as the lower end (the first kept
    rejected point of each entry, so the result is always a rejected parameter: conservative by
    at most cap / (points + 1)^rounds, about 1e-9 of the cap).
    """
    r, v = (np.atleast_1d(np.asarray(a, dtype=np.float64)) for a in np.broadcast_arrays(r, v))
    cap = PARAMETER_CAP[family]

    def test(p: np.ndarray) -> np.ndarray:
        return rejects(m, r[:, None], v[:, None], p, family=family, delta=delta, confidence=confidence)

    lo, hi = np.zeros_like(r), np.full_like(r, cap)
    ends = test(np.stack([lo, hi], axis=1))
    frac = np.arange(1, SEARCH_POINTS + 1) / (SEARCH_POINTS + 1)
    for _ in range(SEARCH_ROUNDS):
        pts = lo[:, None] + (hi - lo)[:, None] * frac
        ok = test(pts)
        j = np.where(ok.all(axis=1), SEARCH_POINTS, np.argmin(ok, axis=1))  # first point not rejected
        rows = np.arange(len(r))
        lo = np.where(j > 0, pts[rows, np.maximum(j - 1, 0)], lo)
        hi = np.where(j < SEARCH_POINTS, pts[rows, np.minimum(j, SEARCH_POINTS - 1)], hi)
    return np.where(ends[:, 1], cap, np.where(ends[:, 0], lo, 0.0))


@BOUNDS.register("one-run-fdp")
def fdp_one_run_bound(
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
    family: str = EPSILON_DELTA,
) -> BoundResult:
    """Epsilon lower bound (nats) at ``confidence`` from one training run via f-DP (Mahloujifar et al. 2024).

    Same inputs and the same selection rules as :func:`miaudit.auditing.one_run.one_run_bound`
    (``"split"`` default, ``"bonferroni"``, ``"fixed"``; shared code), with the guesses judged by
    the f-DP recursion of the module docstring for the trade-off ``family``:

    * ``"epsilon-delta"`` (default): the largest epsilon for which (epsilon, ``delta``)-DP is
      rejected. It is the default because it is the only family whose result is a lower bound
      in the sense of :class:`BoundResult` for every (epsilon, delta)-DP mechanism: miaudit's
      DP-SGD samples its batches with Poisson sampling, whose trade-off is not Gaussian, and its
      accountants state (epsilon, delta). Any ``delta`` in [0, 1).
    * ``"gaussian"``: the largest mu for which mu-GDP is rejected (``details["mu"]``), reported
      as epsilon at ``delta`` of mu-GDP; needs ``delta > 0``. Tighter on mechanisms with a
      Gaussian trade-off, but a bound on epsilon only under that assumption.

    ``details`` holds the family, the per-test confidence and (Gaussian) mu.
    """
    s, S = check_scores(scores, coins, what="coins")
    confidence = check_confidence(confidence)
    family = check_family(family)
    delta = check_delta(delta)
    if family == GAUSSIAN and delta == 0.0:
        raise ConfigError("family 'gaussian' reports epsilon of mu-GDP at delta and needs delta > 0 (e.g. delta=1e-5)")
    selection = check_selection(selection)

    def bound(m: int, r: np.ndarray, v: np.ndarray, level: float) -> np.ndarray:
        return parameter_lower_bound(m, r, v, family=family, delta=delta, confidence=level)

    c = choose_guesses(s, S, bound, confidence=confidence, selection=selection, seed=seed, k_plus=k_plus, k_minus=k_minus, grid=grid)
    details: dict[str, object] = {"family": family, "per_test_confidence": c.level}
    if family == GAUSSIAN:
        details["mu"] = c.value
        details["conversion"] = "epsilon of mu-GDP at delta (Dong, Roth & Su 2022); sound only for Gaussian-shaped trade-offs"
        epsilon = gdp_epsilon(c.value, delta)
    else:
        epsilon = c.value
    details["at_cap"] = bool(c.value >= PARAMETER_CAP[family])
    return BoundResult(
        method="one-run-fdp",
        epsilon=epsilon,
        kind=LOWER_BOUND,
        confidence=confidence,
        delta=delta,
        selection=selection,
        choice={"k_plus": c.k_plus, "k_minus": c.k_minus, "rule": GUESS_RULE, "how": c.how},
        counts={"m": c.m, "r": c.k_plus + c.k_minus, "v": c.v},
        paper=PAPER,
        details=details,
    )

