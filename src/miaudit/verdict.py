"""One verdict from per-attack scores and membership truth: does the model leak, and how much.

The question "does the model leak membership?" is one test per attack of H0 "members' scores
are not stochastically larger than non-members'" (AUC <= 0.5) against AUC > 0.5: the
one-sided Mann-Whitney U test (Mann & Whitney 1947), ties handled by its tie correction. An
audit runs many attacks, so the family-wise false-alarm rate is controlled over all of them
with Holm's step-down procedure (S. Holm, "A simple sequentially rejective multiple test
procedure", Scand. J. Statist. 6, 1979): "leaks" iff some Holm-adjusted p-value < alpha.

How much it leaks is graded on one *headline* attack, chosen without the truth (a fixed order
by strength in the literature, :data:`HEADLINE_ORDER`), from its AUC and TPR at 1% FPR
(computed by :mod:`miaudit.metrics`). The attack with the highest AUC is reported too, labelled
as an upper bound: it is chosen on the truth being evaluated. When no attack is significant
and the records are too few for the test to detect an AUC of :data:`LOW_AUC_FLOOR` with 80%
power, the verdict is "undetermined", never "none-detected".
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
from scipy.stats import mannwhitneyu, norm, rankdata

from miaudit import metrics
from miaudit.errors import ConfigError, InputError

__all__ = ["HEADLINE_ORDER", "LEVELS", "LOW_AUC_FLOOR", "Verdict", "compute_verdict", "holm",
           "level_at_least", "min_detectable_auc", "parse_level"]  # fmt: skip

#: Severity, weakest first.
LEVELS: tuple[str, ...] = ("undetermined", "none-detected", "low", "medium", "high")
#: (level, TPR at 1% FPR floor, AUC floor), strongest first: the first row whose TPR or AUC
#: floor the graded attack reaches is its level; a significant leak below every row is "low".
SEVERITY: tuple[tuple[str, float, float], ...] = (("high", 0.10, 0.80), ("medium", 0.03, 0.65))
#: The smallest AUC worth calling a leak; an audit that cannot detect it is "undetermined".
LOW_AUC_FLOOR = 0.55
POWER = 0.80
FPR = 0.01
#: Attacks strongest-first by the literature: the headline is the first one that was run.
HEADLINE_ORDER: tuple[str, ...] = (
    "rmia", "lira", "rmia-offline", "lira-offline", "base", "base-offline", "loss-trajectory", "attack-r",
    "qmia", "nn", "shadow-training",
    "loss-class", "loss", "modified-entropy", "entropy", "confidence", "ml-leaks-1",
    "ml-leaks-2", "ml-leaks-3", "blindmi-diff-w", "blindmi-diff-wo", "blindmi-bi", "nsh",
    "label-boundary", "oslo", "yoqo", "label-augmentation", "label-noise", "correctness",
)  # fmt: skip


def parse_level(name: object) -> str:
    """The level called ``name`` (case and surrounding blanks ignored); ConfigError if unknown."""
    level = str(name).strip().lower()
    if level not in LEVELS:
        raise ConfigError(f"unknown leakage level {name!r}; choose one of: {', '.join(LEVELS)}")
    return level


def level_at_least(level: str, floor: str) -> bool:
    """Whether ``level`` is ``floor`` or more severe (e.g. for ``--fail-on-leak medium``)."""
    return LEVELS.index(parse_level(level)) >= LEVELS.index(parse_level(floor))


def holm(p_values: Sequence[float]) -> np.ndarray:
    """Holm (1979) step-down adjusted p-values, in the input's order.

    With p-values sorted ascending, ``p_(i)`` (i = 1..m) is adjusted to
    ``max_{j <= i} min(1, (m - j + 1) p_(j))``; rejecting where it is < alpha controls the
    family-wise error rate at alpha under any dependence between the tests.
    """
    p = np.asarray(p_values, dtype=np.float64)
    order = np.argsort(p, kind="stable")
    scaled = np.minimum(1.0, (len(p) - np.arange(len(p))) * p[order])
    adjusted = np.empty_like(p)
    adjusted[order] = np.maximum.accumulate(scaled)
    return adjusted


def _se0(n1: int, n0: int) -> float:
    """Standard error of the AUC (U / n1 n0) under H0, normal approximation, no ties."""
    return math.sqrt((n1 + n0 + 1) / (12.0 * n1 * n0))


def min_detectable_auc(n1: int, n0: int, n_attacks: int, alpha: float = 0.05) -> float:
    """Smallest AUC the one-sided test detects with 80% power at Holm's first level alpha/m.

    ``0.5 + (z_{1-alpha/m} + z_{0.8}) * SE0``, SE0 the AUC's standard error under H0
    (normal approximation of the Mann-Whitney statistic, also used under the alternative).
    """
    return 0.5 + (norm.ppf(1.0 - alpha / n_attacks) + norm.ppf(POWER)) * _se0(n1, n0)


def _balanced_needed(n_attacks: int, alpha: float) -> int:
    """Members (= non-members) needed for :func:`min_detectable_auc` <= :data:`LOW_AUC_FLOOR`."""
    d2 = ((LOW_AUC_FLOOR - 0.5) / (norm.ppf(1.0 - alpha / n_attacks) + norm.ppf(POWER))) ** 2
    n = math.ceil((2.0 + math.sqrt(4.0 + 48.0 * d2)) / (24.0 * d2))  # root of 12 d2 n^2 = 2n + 1
    while min_detectable_auc(n, n, n_attacks, alpha) > LOW_AUC_FLOOR:
        n += 1
    return n


def _p_value(s: np.ndarray, m: np.ndarray) -> float:
    """One-sided Mann-Whitney p-value of AUC > 0.5; on ranks, so +-inf scores just rank."""
    if s.min() == s.max():
        return 1.0
    r = rankdata(s)
    return float(mannwhitneyu(r[m], r[~m], alternative="greater").pvalue)


def _ranked(names: Sequence[str], order: Sequence[str]) -> list[str]:
    """``names`` in the caller's ``order``, then :data:`HEADLINE_ORDER`, then alphabetically."""
    rank: dict[str, int] = {}
    for n in [*order, *HEADLINE_ORDER]:
        rank.setdefault(n, len(rank))
    return sorted(names, key=lambda n: (rank.get(n, len(rank)), n))


@dataclass(frozen=True)
class Verdict:
    """The audit's verdict; every figure behind it is a field (JSON-able via :meth:`to_dict`).

    ``graded_attack`` is the attack whose AUC / TPR set the level: the headline attack, or,
    when the model leaks but the headline attack is not significant, the first Holm-significant
    attack in the headline order. ``upper_bound_attack`` has the highest AUC (chosen on the
    truth). ``records_needed`` (members + non-members, balanced) is set only when undetermined.
    """

    level: str
    leaks: bool
    headline_attack: str
    headline: str
    details: tuple[str, ...]
    p_values: dict[str, float]
    adjusted_p_values: dict[str, float]
    aucs: dict[str, float]
    tpr_at_1pct_fpr: dict[str, float | None]
    graded_attack: str
    upper_bound_attack: str
    alpha: float
    min_detectable_auc: float
    members: int
    non_members: int
    records_needed: int | None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types only (details as a list)."""
        d = asdict(self)
        d["details"] = list(self.details)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Verdict:
        """Inverse of :meth:`to_dict`; InputError naming missing or unknown keys."""
        names = {f.name for f in fields(cls)}
        if set(d) != names:
            raise InputError(f"a verdict needs exactly the keys {sorted(names)}; "
                             f"missing {sorted(names - set(d))}, unknown {sorted(set(d) - names)}")  # fmt: skip
        return cls(**{**d, "details": tuple(d["details"]), "level": parse_level(d["level"])})


def _grade(auc: float, tpr: float | None) -> str:
    for level, tpr_floor, auc_floor in SEVERITY:
        if auc >= auc_floor or (tpr is not None and tpr >= tpr_floor):
            return level
    return "low"


def compute_verdict(
    scores: Mapping[str, np.ndarray],
    is_member: np.ndarray,
    *,
    headline_order: Sequence[str] | None = None,
    alpha: float = 0.05,
) -> Verdict:
    """The verdict on ``scores`` (attack name -> one score per record, higher = member).

    Test per attack: one-sided Mann-Whitney U (constant scores: p = 1); correction: Holm (1979)
    over all attacks; level: :data:`SEVERITY` on the graded attack's AUC and TPR at 1% FPR
    (``None`` when not measurable by :func:`miaudit.metrics.is_measurable`; then AUC alone).
    NaN scores, shape mismatches or a missing class raise InputError.
    """
    if not scores:
        raise InputError("no attack scores to judge; pass at least one attack's scores")
    if not 0.0 < alpha < 1.0:
        raise ConfigError(f"alpha must be in (0, 1), got {alpha!r}; e.g. 0.05")
    names = _ranked(list(scores), headline_order or ())
    checked = {n: metrics.check_inputs(scores[n], is_member) for n in names}
    truth = checked[names[0]][1]
    n1, n0, k = int(truth.sum()), int((~truth).sum()), len(names)
    p = {n: _p_value(*checked[n]) for n in names}
    adj = dict(zip(names, (float(v) for v in holm([p[n] for n in names]))))
    aucs = {n: metrics.auc(*checked[n]) for n in names}
    tprs = {n: metrics.tpr_at_fpr(*checked[n], FPR) for n in names}
    significant = [n for n in names if adj[n] < alpha]
    leaks, head = bool(significant), names[0]
    graded = head if head in significant or not leaks else significant[0]
    upper = max(names, key=lambda n: (aucs[n], -names.index(n)))
    mda = float(min_detectable_auc(n1, n0, k, alpha))
    needed = None
    if leaks:
        level = _grade(aucs[graded], tprs[graded])
        t = tprs[graded]
        what = (f"flags {t:.1%} of members at 1% false alarms (AUC {aucs[graded]:.3f})" if t is not None else
                f"separates members from non-members with AUC {aucs[graded]:.3f} (graded on AUC alone: "
                f"TPR at 1% false alarms is not measurable with {n0} non-members)")  # fmt: skip
        headline = f"{level.capitalize()} leakage: an attacker using {graded} {what}."
    elif mda > LOW_AUC_FLOOR:
        level, per = "undetermined", _balanced_needed(k, alpha)
        needed = 2 * per
        headline = (f"Undetermined: with {n1} members and {n0} non-members no attack is significant, but only an "
                    f"AUC of {mda:.3f} or more would be detected; about {per} members and {per} non-members are "
                    f"needed to detect an AUC of {LOW_AUC_FLOOR}.")  # fmt: skip
    else:
        level = "none-detected"
        headline = (f"No membership leakage detected: no attack's AUC is significantly above 0.5, and an AUC of "
                    f"{mda:.3f} or more would have been detected with {POWER:.0%} power.")  # fmt: skip
    details = [
        f"Basis: {k} attack(s) on {n1} members and {n0} non-members; headline attack {head}, the first present in a "
        "fixed strongest-first order of attacks (chosen without the membership truth).",
        "Test: one-sided Mann-Whitney U per attack (members' scores stochastically larger, AUC > 0.5), ties corrected.",
        f"Correction: Holm's step-down (1979) over all {k} attacks, family-wise alpha {alpha}; leaks iff some "
        "adjusted p-value is below alpha.",
        "p-values (raw / Holm-adjusted): " + "; ".join(f"{n} {p[n]:.3g} / {adj[n]:.3g}" for n in names) + ".",
        f"Power: with these records an AUC of {mda:.3f} is detected with {POWER:.0%} power at level alpha/{k}.",
        f"Upper bound (attack chosen on the truth): {upper} has the highest AUC, {aucs[upper]:.3f}.",
    ]
    if graded != head:
        details.append(f"The headline attack {head} is not significant; the level is graded on {graded}, "
                       "the first significant attack in the headline order.")  # fmt: skip
    return Verdict(level=level, leaks=leaks, headline_attack=head, headline=headline, details=tuple(details),
                   p_values=p, adjusted_p_values=adj, aucs=aucs, tpr_at_1pct_fpr=tprs, graded_attack=graded,
                   upper_bound_attack=upper, alpha=float(alpha), min_detectable_auc=mda, members=n1,
                   non_members=n0, records_needed=needed)  # fmt: skip
