"""Clopper-Pearson epsilon lower bound at a threshold (Jagielski et al. 2020; Nasr et al. 2021).

A record is guessed a member when its score is at or above the threshold ``t``. With
one-sided exact (Clopper-Pearson) upper bounds ``FPR_hi`` on the false-positive rate and
``FNR_hi`` on the false-negative rate, each at confidence ``1 - (1 - confidence) / 2`` so that
both hold together with probability at least ``confidence`` (union bound), every
(epsilon, delta)-DP mechanism satisfies both

    epsilon >= ln((1 - delta - FNR_hi) / FPR_hi)   and   epsilon >= ln((1 - delta - FPR_hi) / FNR_hi),

so the larger of the two (floored at 0) is a lower bound on epsilon (nats) at that confidence.
The threshold is never chosen on the scores the bound is reported on (see :mod:`.base`).

Jagielski, Ullman & Oprea, "Auditing Differentially Private Machine Learning: How Private is
Private SGD?", NeurIPS 2020; Nasr, Song, Thakurta, Papernot & Carlini, "Adversary Instantiation:
Lower Bounds for Differentially Private Machine Learning", IEEE S&P 2021.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

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

PAPER = "Jagielski et al. 2020 (NeurIPS); Nasr et al. 2021 (IEEE S&P)"


def cp_upper(k: np.ndarray | int, n: np.ndarray | int, confidence: float) -> np.ndarray:
    """One-sided exact (Clopper-Pearson) upper confidence bound on a binomial proportion.

    ``k`` successes out of ``n`` trials; the true proportion is at most the result with
    probability at least ``confidence``: ``Beta(confidence; k + 1, n - k)``, and 1 when ``k == n``.
    Works elementwise on arrays.
    """
    k = np.asarray(k, dtype=np.float64)
    n = np.asarray(n, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        hi = stats.beta.ppf(confidence, k + 1.0, np.maximum(n - k, 1e-300))
    return np.where(k >= n, 1.0, hi)


def cp_interval(k: int, n: int, confidence: float) -> tuple[float, float]:
    """Two-sided exact (Clopper-Pearson) interval on a binomial proportion at ``confidence``.

    Each tail gets ``(1 - confidence) / 2``; matches ``scipy.stats.binomtest(k, n).proportion_ci(
    confidence, method="exact")``.
    """
    a = (1.0 - check_confidence(confidence)) / 2.0
    lo = 0.0 if k == 0 else float(stats.beta.ppf(a, k, n - k + 1))
    return lo, float(cp_upper(k, n, 1.0 - a))


def epsilon_from_rates(fpr_hi: np.ndarray, fnr_hi: np.ndarray, delta: float) -> np.ndarray:
    """max(ln((1 - delta - FNR_hi) / FPR_hi), ln((1 - delta - FPR_hi) / FNR_hi), 0), elementwise (nats)."""
    fpr_hi = np.asarray(fpr_hi, dtype=np.float64)
    fnr_hi = np.asarray(fnr_hi, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        one = np.log(np.maximum(1.0 - delta - fnr_hi, 0.0)) - np.log(fpr_hi)
        two = np.log(np.maximum(1.0 - delta - fpr_hi, 0.0)) - np.log(fnr_hi)
    eps = np.fmax(np.fmax(one, two), 0.0)
    return np.nan_to_num(eps, nan=0.0)


def threshold_counts(scores: np.ndarray, is_member: np.ndarray, thresholds: np.ndarray) -> dict[str, np.ndarray]:
    """For each threshold ``t`` (guess member iff score >= t): counts ``tp``, ``fp``, ``fn``, ``tn``."""
    t = np.asarray(thresholds, dtype=np.float64)
    mem = np.sort(scores[is_member])
    non = np.sort(scores[~is_member])
    tp = len(mem) - np.searchsorted(mem, t, side="left")
    fp = len(non) - np.searchsorted(non, t, side="left")
    return {"tp": tp, "fp": fp, "fn": len(mem) - tp, "tn": len(non) - fp}


def epsilon_per_threshold(
    scores: np.ndarray, is_member: np.ndarray, thresholds: np.ndarray, confidence: float, delta: float
) -> np.ndarray:
    """The Clopper-Pearson lower bound (nats) at each threshold, each at ``confidence`` on its own.

    No correction for looking at several thresholds: the maximum over thresholds of this array,
    evaluated and reported on the same scores, is *not* a bound at ``confidence``.
    """
    count = threshold_counts(scores, is_member, thresholds)
    per_side = 1.0 - (1.0 - confidence) / 2.0
    n_mem, n_non = count["tp"] + count["fn"], count["fp"] + count["tn"]
    fpr_hi = cp_upper(count["fp"], n_non, per_side)
    fnr_hi = cp_upper(count["fn"], n_mem, per_side)
    return epsilon_from_rates(fpr_hi, fnr_hi, delta)


def candidate_thresholds(scores: np.ndarray, max_candidates: int) -> np.ndarray:
    """The distinct values of ``scores`` (at most ``max_candidates`` of them, evenly spaced in rank)."""
    values = np.unique(scores)
    if len(values) > max_candidates:
        values = values[np.unique(np.linspace(0, len(values) - 1, max_candidates).round().astype(int))]
    return values


@BOUNDS.register("clopper-pearson")
def clopper_pearson_bound(
    scores: np.ndarray,
    is_member: np.ndarray,
    *,
    confidence: float = 0.95,
    delta: float = 0.0,
    selection: str = "split",
    seed: int = 0,
    threshold: float | None = None,
    grid: np.ndarray | None = None,
    max_candidates: int = 200,
) -> BoundResult:
    """Epsilon lower bound (nats) at ``confidence`` from scores (higher = member) and membership truth.

    Clopper-Pearson on FPR and FNR at one threshold, both rules of Jagielski et al. 2020 /
    Nasr et al. 2021 (module docstring). The threshold comes from ``selection``:

    * ``"split"`` (default): a seeded, label-stratified half of the records (``seed``) picks the
      threshold among its own distinct scores (at most ``max_candidates``) that maximises the
      bound on that half; the bound is computed on the other half only.
    * ``"bonferroni"``: every threshold of ``grid`` (given by the caller, fixed before looking at
      the scores) on all records, each at ``1 - (1 - confidence) / len(grid)``; the best is reported.
    * ``"fixed"``: ``threshold`` on all records.

    The result holds with probability at least ``confidence`` if the training mechanism is
    (epsilon, delta)-DP with respect to each record's inclusion.
    """
    s, y = check_scores(scores, is_member)
    confidence = check_confidence(confidence)
    delta = check_delta(delta)
    selection = check_selection(selection)
    if selection == "fixed":
        if threshold is None or not np.isfinite(threshold):
            raise ConfigError("selection 'fixed' needs a finite threshold=")
        chosen, level, report = float(threshold), confidence, np.arange(len(s))
        how = "given by the caller"
    elif selection == "bonferroni":
        g = np.asarray(grid if grid is not None else [], dtype=np.float64).ravel()
        if g.size == 0 or not np.all(np.isfinite(g)):
            raise ConfigError("selection 'bonferroni' needs grid=, a non-empty array of finite thresholds fixed in advance")
        level = 1.0 - (1.0 - confidence) / g.size
        eps = epsilon_per_threshold(s, y, g, level, delta)
        chosen, report = float(g[int(np.argmax(eps))]), np.arange(len(s))
        how = f"best of a {g.size}-threshold grid on all records, Bonferroni-corrected (each at {level:.6g})"
    else:
        select, report = split_halves(y, seed)
        cands = candidate_thresholds(s[select], max_candidates)
        eps = epsilon_per_threshold(s[select], y[select], cands, confidence, delta)
        chosen, level = float(cands[int(np.argmax(eps))]), confidence
        how = f"maximised over {len(cands)} thresholds on a seeded selection half ({len(select)} records, seed {seed}); reported on the other half"
    c = {k: int(v[0]) for k, v in threshold_counts(s[report], y[report], np.array([chosen])).items()}
    per_side = 1.0 - (1.0 - level) / 2.0
    fpr_hi = float(cp_upper(c["fp"], c["fp"] + c["tn"], per_side))
    fnr_hi = float(cp_upper(c["fn"], c["fn"] + c["tp"], per_side))
    value = float(epsilon_from_rates(fpr_hi, fnr_hi, delta))
    return BoundResult(
        method="clopper-pearson",
        epsilon=value,
        kind=LOWER_BOUND,
        confidence=confidence,
        delta=delta,
        selection=selection,
        choice={"threshold": chosen, "rule": "member iff score >= threshold", "how": how},
        counts=c,
        paper=PAPER,
        details={"fpr_upper": fpr_hi, "fnr_upper": fnr_hi, "per_test_confidence": level, "per_side_confidence": per_side},
    )
