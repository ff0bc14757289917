"""Gaussian-DP estimate of epsilon from FPR and FNR at a threshold (Nasr et al. 2023).

If the attack's trade-off at a threshold were exactly that of mu-GDP, its rates would satisfy
``mu = Phi^{-1}(1 - FPR) - Phi^{-1}(FNR)``. That mu, computed from the empirical rates, is turned
into epsilon at ``delta`` with the mu-GDP to (epsilon, delta) conversion (Dong, Roth & Su 2022)

    delta(epsilon) = Phi(-epsilon / mu + mu / 2) - e^epsilon Phi(-epsilon / mu - mu / 2),

solved for epsilon. The result is an **estimate**, not a bound: it assumes the Gaussian shape and
uses point estimates of the rates, so it carries no coverage guarantee (its ``confidence`` field
is NaN). A zero count is replaced by 1/2 (``(k + 1/2) / n``) so that mu stays finite.

Nasr, Hayes, Steinke, Balle, Tramèr, Jagielski, Carlini & Terzis, "Tight Auditing of
Differentially Private Machine Learning", USENIX Security 2023.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import optimize, special

from miaudit.auditing.base import (
    BOUNDS,
    ESTIMATE,
    BoundResult,
    check_delta,
    check_scores,
    check_selection,
    split_halves,
)
from miaudit.auditing.clopper_pearson import candidate_thresholds, threshold_counts
from miaudit.errors import ConfigError

PAPER = "Nasr et al. 2023 (USENIX Security), conversion of Dong, Roth & Su 2022"


def mu_from_rates(fpr: np.ndarray | float, fnr: np.ndarray | float) -> np.ndarray:
    """``Phi^{-1}(1 - FPR) - Phi^{-1}(FNR)``, elementwise; rates must lie in (0, 1)."""
    return special.ndtri(1.0 - np.asarray(fpr, dtype=np.float64)) - special.ndtri(np.asarray(fnr, dtype=np.float64))


def gdp_delta(epsilon: float, mu: float) -> float:
    """delta(epsilon) of mu-GDP: ``Phi(-eps/mu + mu/2) - e^eps Phi(-eps/mu - mu/2)`` (eps in nats)."""
    if mu <= 0.0:
        return 0.0
    a = special.ndtr(-epsilon / mu + mu / 2.0)
    b = math.exp(epsilon + float(special.log_ndtr(-epsilon / mu - mu / 2.0)))
    return float(max(a - b, 0.0))


def gdp_epsilon(mu: float, delta: float) -> float:
    """The smallest epsilon (nats) at which mu-GDP is (epsilon, delta)-DP, for delta in (0, 1).

    Solves :func:`gdp_delta` (decreasing in epsilon) for ``delta`` with Brent's method; 0 when
    ``mu <= 0`` or when delta(0) is already at most ``delta``.
    """
    delta = check_delta(delta, positive=True)
    mu = float(mu)
    if not math.isfinite(mu):
        raise ConfigError(f"mu must be finite, got {mu!r}")
    if mu <= 0.0 or gdp_delta(0.0, mu) <= delta:
        return 0.0
    hi = max(1.0, mu * mu)
    while gdp_delta(hi, mu) > delta:
        hi *= 2.0
    return float(optimize.brentq(lambda e: gdp_delta(e, mu) - delta, 0.0, hi, xtol=1e-12, rtol=1e-12))


def gdp_mu(epsilon: float, delta: float) -> float:
    """The mu whose mu-GDP is exactly (epsilon, delta)-DP (the inverse of :func:`gdp_epsilon` in mu; eps in nats)."""
    delta = check_delta(delta, positive=True)
    epsilon = float(epsilon)
    if not math.isfinite(epsilon) or epsilon < 0:
        raise ConfigError(f"epsilon must be finite and >= 0, got {epsilon!r}")
    hi = 1.0
    while gdp_delta(epsilon, hi) < delta:
        hi *= 2.0
    return float(optimize.brentq(lambda mu: gdp_delta(epsilon, mu) - delta, 1e-12, hi, xtol=1e-12, rtol=1e-12))


def mu_at_counts(counts: dict[str, np.ndarray]) -> np.ndarray:
    """mu from threshold counts (``tp``, ``fp``, ``fn``, ``tn`` arrays), a zero count taken as 1/2."""
    n_non = counts["fp"] + counts["tn"]
    n_mem = counts["tp"] + counts["fn"]
    fpr = np.clip(counts["fp"], 0.5, n_non - 0.5) / n_non
    fnr = np.clip(counts["fn"], 0.5, n_mem - 0.5) / n_mem
    return mu_from_rates(fpr, fnr)


@BOUNDS.register("gdp")
def gdp_estimate(
    scores: np.ndarray,
    is_member: np.ndarray,
    *,
    delta: float = 1e-5,
    selection: str = "split",
    seed: int = 0,
    threshold: float | None = None,
    max_candidates: int = 200,
) -> BoundResult:
    """Gaussian-DP **estimate** of epsilon (nats) at ``delta`` (Nasr et al. 2023); not a bound.

    mu from the empirical FPR and FNR at one threshold (guess member iff score >= threshold),
    then epsilon from the mu-GDP conversion. ``selection="split"`` (default) picks the threshold
    that maximises mu on a seeded, label-stratified selection half and computes mu on the other
    half; ``"fixed"`` uses ``threshold`` on all records. ``"bonferroni"`` is refused: there is no
    confidence level to correct. The ``confidence`` field is NaN (no coverage guarantee).
    """
    s, y = check_scores(scores, is_member)
    delta = check_delta(delta, positive=True)
    selection = check_selection(selection)
    if selection == "bonferroni":
        raise ConfigError("the GDP estimate has no confidence level to correct; use selection 'split' or 'fixed'")
    if selection == "fixed":
        if threshold is None or not np.isfinite(threshold):
            raise ConfigError("selection 'fixed' needs a finite threshold=")
        chosen, report, how = float(threshold), np.arange(len(s)), "given by the caller"
    else:
        select, report = split_halves(y, seed)
        cands = candidate_thresholds(s[select], max_candidates)
        mus = mu_at_counts(threshold_counts(s[select], y[select], cands))
        chosen = float(cands[int(np.argmax(mus))])
        how = f"maximised mu over {len(cands)} thresholds on a seeded selection half ({len(select)} records, seed {seed}); reported on the other half"
    c = {k: int(v[0]) for k, v in threshold_counts(s[report], y[report], np.array([chosen])).items()}
    mu = float(mu_at_counts({k: np.array([v]) for k, v in c.items()})[0])
    return BoundResult(
        method="gdp",
        epsilon=gdp_epsilon(mu, delta),
        kind=ESTIMATE,
        confidence=float("nan"),
        delta=delta,
        selection=selection,
        choice={"threshold": chosen, "rule": "member iff score >= threshold", "how": how},
        counts=c,
        paper=PAPER,
        details={"mu": mu, "zero_counts": "a zero count is taken as 1/2 so that mu stays finite", **_few_counts_warning(c)},
    )


#: Below this many reported members or non-members the estimate is mostly sampling noise: on
#: 64 runs of uninformative scores (32 reported) it ranged from 0 to 4.3 over 20 seeds.
FEW_COUNTS = 100


def _few_counts_warning(counts: dict[str, int]) -> dict[str, str]:
    n = min(counts["tp"] + counts["fn"], counts["fp"] + counts["tn"])
    if n >= FEW_COUNTS:
        return {}
    return {"warning": f"only {n} reported records of one class: with fewer than {FEW_COUNTS} the estimate is dominated by sampling noise"}
