"""Where attack scores meet membership truth: ROC, AUC, TPR at low FPR, advantage, accuracy.

Every number an audit reports is computed here from two arrays:

``scores``
    one float per record, **higher = more likely a member**. ``+inf`` and ``-inf`` are
    allowed and simply rank above / below every finite score (an attack may say "certainly
    a member"); NaN is rejected, because a NaN has no rank and silently dropping or placing
    it would change the result.
``is_member``
    the truth, boolean or 0/1, with at least one member and one non-member.

Conventions (shared by every function below):

* **Decision rule**: a threshold ``t`` flags a record as a member iff ``score >= t``.
* **Ties**: records with equal scores are never split. They enter the ROC curve together as
  one step (a diagonal segment when the tie mixes members and non-members), so no metric
  depends on the order of records or on random tie-breaking. ``tpr_at_fpr`` therefore never
  "half-includes" a tied group to reach an FPR budget; it takes the best ROC vertex within it.
* **Calibration**: maxima over thresholds (``membership_advantage``,
  ``best_balanced_accuracy``) choose the threshold using the truth being evaluated. An
  attacker does not have it, so these are *upper bounds* on what a threshold attack
  achieves; an honest operating point uses a threshold chosen elsewhere (shadow models,
  reference data, ...) and says so through ``threshold_source`` in :func:`evaluate`.

References
----------
* S. Yeom, I. Giacomelli, M. Fredrikson, S. Jha. "Privacy Risk in Machine Learning:
  Analyzing the Connection to Overfitting". IEEE CSF 2018 -- membership advantage
  (TPR - FPR).
* L. Song, P. Mittal. "Systematic Evaluation of Privacy Risks of Machine Learning Models".
  USENIX Security 2021 -- balanced accuracy of threshold attacks, thresholds set on shadow
  data versus the target's own truth.
* N. Carlini, S. Chien, M. Nasr, S. Song, A. Terzis, F. Tramer. "Membership Inference
  Attacks From First Principles". IEEE S&P 2022 -- report TPR at low FPR (and log-scale ROC
  curves) rather than accuracy or AUC alone.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import ArrayLike

from miaudit.errors import InputError

__all__ = [
    "DEFAULT_FPR_LEVELS",
    "LOW_FPR_LEVELS",
    "MIN_FALSE_POSITIVES",
    "THRESHOLD_SOURCES",
    "Metrics",
    "auc",
    "balanced_accuracy",
    "best_balanced_accuracy",
    "best_threshold",
    "bootstrap_ci",
    "check_inputs",
    "downsample_roc",
    "evaluate",
    "is_measurable",
    "membership_advantage",
    "precision_recall",
    "roc_curve",
    "tpr_at_fpr",
]

#: FPR levels always reported by :func:`evaluate` (``None`` where not measurable).
DEFAULT_FPR_LEVELS: tuple[float, ...] = (0.1, 0.01, 0.001)
#: Lower FPR levels that :func:`evaluate` adds only when they are measurable.
LOW_FPR_LEVELS: tuple[float, ...] = (1e-4, 1e-5)
#: Measurability rule: TPR at FPR ``f`` is reported only if ``n_nonmembers * f`` is at least
#: this many (expected) false positives. See :func:`is_measurable`.
MIN_FALSE_POSITIVES: int = 10
#: Where a decision threshold may come from (``threshold_source`` of :func:`evaluate`).
THRESHOLD_SOURCES: tuple[str, ...] = (
    "shadow models",
    "reference data",
    "attacker's pool",
    "known members",  # part of the target's training set (Nasr et al.'s supervised setting)
    "fixed by the attack",
    "target truth (upper bound)",
)

Statistic = Callable[[np.ndarray, np.ndarray], "float | None"]


# --------------------------------------------------------------------------- validation


def check_inputs(scores: ArrayLike, is_member: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Validate and convert ``(scores, is_member)``; return float64 scores and bool truth.

    Raises :class:`InputError` when an array is not 1-D, the lengths differ, scores are not
    numeric or contain NaN, the truth is not boolean / 0-1, or one class is missing.
    ``+inf`` / ``-inf`` scores are accepted (they rank above / below all finite scores).
    """
    s = np.asarray(scores)
    m = np.asarray(is_member)
    if s.ndim != 1:
        raise InputError(
            f"scores must be a 1-D array (one score per record), got shape {s.shape}; "
            "pass one float per record (e.g. scores.ravel() if it is (n, 1))"
        )
    if m.ndim != 1:
        raise InputError(
            f"is_member must be a 1-D array (one flag per record), got shape {m.shape}; "
            "pass one boolean per record"
        )
    if len(s) != len(m):
        raise InputError(
            f"scores has {len(s)} entries but is_member has {len(m)}; "
            "pass exactly one score per record, in the same order as is_member"
        )
    if s.dtype.kind not in "biuf":
        raise InputError(
            f"scores must be real numbers, got dtype {s.dtype}; convert them to float "
            "(higher = more likely a member)"
        )
    s = s.astype(np.float64, copy=False)
    n_nan = int(np.isnan(s).sum())
    if n_nan:
        first = int(np.flatnonzero(np.isnan(s))[0])
        raise InputError(
            f"scores contain {n_nan} NaN value(s) out of {len(s)} (first at index {first}); "
            "every record needs a score -- fix the attack that produced NaN (e.g. log of 0), "
            "or drop those records from both scores and is_member"
        )
    if m.dtype.kind == "b":
        truth = m
    elif m.dtype.kind in "iuf":
        n_nan_m = int(np.isnan(m).sum()) if m.dtype.kind == "f" else 0
        if n_nan_m:
            raise InputError(
                f"is_member contains {n_nan_m} NaN value(s); the membership truth must be "
                "known for every record -- drop the unknown records from both arrays"
            )
        bad = ~np.isin(m, (0, 1))
        if bad.any():
            shown = np.unique(m[bad])[:5].tolist()
            raise InputError(
                f"is_member must be boolean or 0/1, found {int(bad.sum())} other value(s) "
                f"such as {shown}; pass a boolean mask (True = member)"
            )
        truth = m == 1
    else:
        raise InputError(
            f"is_member must be boolean or 0/1, got dtype {m.dtype}; "
            "pass a boolean mask (True = member)"
        )
    n1 = int(truth.sum())
    n0 = len(truth) - n1
    if n1 == 0 or n0 == 0:
        raise InputError(
            f"is_member has {n1} member(s) and {n0} non-member(s); membership metrics need "
            "at least one of each -- evaluate on a set that mixes members and non-members"
        )
    return s, np.ascontiguousarray(truth, dtype=bool)


def _check_threshold(threshold: float) -> float:
    if isinstance(threshold, bool) or not isinstance(threshold, numbers.Real):
        raise InputError(f"threshold must be a real number, got {threshold!r}")
    t = float(threshold)
    if math.isnan(t):
        raise InputError("threshold is NaN; pass a number (records with score >= threshold are flagged)")
    return t


def _check_fpr(fpr: float) -> float:
    if isinstance(fpr, bool) or not isinstance(fpr, numbers.Real) or not 0.0 < float(fpr) <= 1.0:
        raise InputError(f"FPR level must be a number in (0, 1], got {fpr!r}; e.g. 0.01 for 1%")
    return float(fpr)


def _check_min_fp(min_false_positives: float) -> float:
    if (
        isinstance(min_false_positives, bool)
        or not isinstance(min_false_positives, numbers.Real)
        or not float(min_false_positives) >= 1.0
    ):
        raise InputError(
            f"min_false_positives must be a number >= 1, got {min_false_positives!r}; "
            f"the default is {MIN_FALSE_POSITIVES}"
        )
    return float(min_false_positives)


# --------------------------------------------------------------------------- ROC core


class _Counts(NamedTuple):
    """Cumulative counts at the ROC vertices, highest threshold first.

    ``tp[k]`` / ``fp[k]`` are members / non-members with ``score >= thresholds[k]``;
    vertex 0 is the "flag nothing" point (``thresholds[0] = +inf`` is a sentinel).
    """

    tp: np.ndarray
    fp: np.ndarray
    thresholds: np.ndarray
    n1: int
    n0: int


def _counts(s: np.ndarray, m: np.ndarray) -> _Counts:
    order = np.argsort(s, kind="stable")[::-1]
    s_sorted = s[order]
    m_sorted = m[order]
    # The last index of each run of equal scores: tied records form one ROC step.
    ends = np.flatnonzero(s_sorted[1:] != s_sorted[:-1])  # not np.diff: inf - inf is NaN
    ends = np.append(ends, len(s_sorted) - 1)
    tp_all = np.cumsum(m_sorted, dtype=np.int64)
    tp = np.concatenate(([0], tp_all[ends]))
    fp = np.concatenate(([0], ends + 1 - tp_all[ends]))
    thresholds = np.concatenate(([np.inf], s_sorted[ends]))
    n1 = int(tp[-1])
    return _Counts(tp, fp, thresholds, n1, len(s) - n1)


def roc_curve(scores: ArrayLike, is_member: ArrayLike) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exact ROC curve: ``(fpr, tpr, thresholds)``, one vertex per distinct score.

    ``thresholds`` decreases; for ``k >= 1`` vertex ``k`` is the rule "flag ``score >=
    thresholds[k]``". Vertex 0 is ``(0, 0)``, "flag nothing", with the sentinel threshold
    ``+inf`` (as in scikit-learn >= 1.3; if some scores are ``+inf`` the next vertex also
    carries ``+inf``, meaning "flag exactly the ``+inf`` scores"). The last vertex is
    ``(1, 1)``. Tied scores form a single step, and no collinear vertices are dropped, so
    the result equals ``sklearn.metrics.roc_curve(is_member, scores,
    drop_intermediate=False)``.
    """
    c = _counts(*check_inputs(scores, is_member))
    return c.fp / c.n0, c.tp / c.n1, c.thresholds


def _auc(c: _Counts) -> float:
    # Trapezoid rule on integer counts: exact, and equal to the Mann-Whitney U statistic
    # with ties counted 1/2, divided by n1 * n0.
    d_fp = np.diff(c.fp)
    doubled = int(np.sum(d_fp * (c.tp[1:] + c.tp[:-1])))
    return doubled / (2.0 * c.n1 * c.n0)


def auc(scores: ArrayLike, is_member: ArrayLike) -> float:
    """Area under the ROC curve: P(score of a random member > that of a random non-member),
    ties counting 1/2. 1 = perfect, 0.5 = chance, 0 = perfectly reversed.

    AUC summarises the whole curve and is dominated by high-FPR behaviour; report it next to
    :func:`tpr_at_fpr` at low FPR (Carlini et al., S&P 2022).
    """
    return _auc(_counts(*check_inputs(scores, is_member)))


# --------------------------------------------------------------------------- TPR at low FPR


def is_measurable(
    n_nonmembers: int, fpr: float, *, min_false_positives: float = MIN_FALSE_POSITIVES
) -> bool:
    """Whether a TPR at FPR ``fpr`` is meaningful with ``n_nonmembers`` non-members.

    Rule: ``n_nonmembers * fpr >= min_false_positives`` (default 10). The operating point at
    FPR ``f`` is set by roughly the ``n_nonmembers * f``-th highest non-member score; with
    ``k`` such false positives the realised FPR has a relative standard error of about
    ``1/sqrt(k)`` (~32% for k = 10), and with k < 1 the level cannot be reached at all
    except by flagging nothing. ``min_false_positives=1`` gives the bare minimum
    ``n_nonmembers >= 1/fpr``, e.g. for comparison with published numbers that used it.
    """
    f = _check_fpr(fpr)
    k = _check_min_fp(min_false_positives)
    return n_nonmembers * f >= k * (1.0 - 1e-9)  # tolerance for 1e5 * 1e-4 rounding


def _tpr_at_fpr(c: _Counts, f: float) -> float:
    ok = (c.fp / c.n0) <= f  # fp is nondecreasing, so this is a prefix of the vertices
    return float(c.tp[int(np.count_nonzero(ok)) - 1] / c.n1)


def tpr_at_fpr(
    scores: ArrayLike,
    is_member: ArrayLike,
    fpr: float,
    *,
    min_false_positives: float = MIN_FALSE_POSITIVES,
) -> float | None:
    """The highest TPR over thresholds whose FPR is ``<= fpr``; ``None`` if not measurable.

    This is the low-FPR operating point advocated by Carlini et al. (S&P 2022): an attack
    is only worrying if it identifies some members *confidently*. The maximum is over the
    ROC vertices (tied scores are never split), so with all scores equal the answer below
    FPR 1 is 0. ``None`` means there are too few non-members to measure this FPR, see
    :func:`is_measurable` (default: at least 10 expected false positives).
    """
    f = _check_fpr(fpr)
    c = _counts(*check_inputs(scores, is_member))
    if not is_measurable(c.n0, f, min_false_positives=min_false_positives):
        return None
    return _tpr_at_fpr(c, f)


# --------------------------------------------------------------------------- thresholded


def _rates_at(s: np.ndarray, m: np.ndarray, t: float) -> tuple[int, int, int, int]:
    flagged = s >= t
    tp = int(np.count_nonzero(flagged & m))
    fp = int(np.count_nonzero(flagged & ~m))
    n1 = int(np.count_nonzero(m))
    return tp, fp, n1, len(m) - n1


def balanced_accuracy(scores: ArrayLike, is_member: ArrayLike, threshold: float) -> float:
    """Balanced accuracy ``(TPR + TNR) / 2`` of the rule "member iff ``score >= threshold``".

    Equal to ``1/2 + (TPR - FPR)/2``, i.e. accuracy on a set with as many members as
    non-members, whatever the actual class sizes (Song & Mittal, USENIX Security 2021). The
    number is only as honest as the threshold: say where it came from (see :func:`evaluate`).
    """
    s, m = check_inputs(scores, is_member)
    tp, fp, n1, n0 = _rates_at(s, m, _check_threshold(threshold))
    return 0.5 * (tp / n1 + (n0 - fp) / n0)


def precision_recall(
    scores: ArrayLike, is_member: ArrayLike, threshold: float
) -> tuple[float | None, float]:
    """``(precision, recall)`` of the rule "member iff ``score >= threshold``".

    Precision is ``None`` when no record is flagged (0/0). Unlike TPR/FPR, precision
    depends on the share of members in the evaluated set: on a balanced set chance level is
    0.5, on a set with 1% members it is 0.01. Recall is the TPR.
    """
    s, m = check_inputs(scores, is_member)
    tp, fp, n1, _ = _rates_at(s, m, _check_threshold(threshold))
    precision = tp / (tp + fp) if tp + fp else None
    return precision, tp / n1


def _best_index(c: _Counts) -> int:
    # Vertex 0 ("flag nothing", advantage 0) is skipped so the threshold is a real score;
    # the last vertex ("flag all") also has advantage 0, so the maximum is unchanged.
    adv = c.tp[1:] / c.n1 - c.fp[1:] / c.n0
    return 1 + int(np.argmax(adv))


def membership_advantage(scores: ArrayLike, is_member: ArrayLike) -> float:
    """Membership advantage ``max_t TPR(t) - FPR(t)`` (Yeom et al., CSF 2018).

    Yeom et al. define the advantage of an attack as ``TPR - FPR``; the maximum over
    thresholds is the best any threshold on these scores achieves, chosen with the
    evaluated truth, hence an **upper bound** for a real attacker. It lies in [0, 1]: a
    reversed score gives 0 here, not a negative value (flipping it is not done for you).
    Equals the Kolmogorov-Smirnov distance between member and non-member score
    distributions.
    """
    c = _counts(*check_inputs(scores, is_member))
    k = _best_index(c)
    return float(c.tp[k] / c.n1 - c.fp[k] / c.n0)


def best_balanced_accuracy(scores: ArrayLike, is_member: ArrayLike) -> float:
    """Highest balanced accuracy over all thresholds, ``1/2 + advantage/2``.

    **Calibrated on the target's own truth: an upper bound**, not what an attacker gets
    (Song & Mittal, USENIX Security 2021, contrast it with thresholds set on shadow data).
    """
    return 0.5 + 0.5 * membership_advantage(scores, is_member)


def best_threshold(scores: ArrayLike, is_member: ArrayLike) -> float:
    """The threshold that maximises balanced accuracy (= advantage) on these scores.

    Returns an actual score value ``t`` (rule: ``score >= t``); among equally good
    thresholds the highest is returned. Meant to be computed on *shadow* or *reference*
    scores and then applied to the target's scores with the matching ``threshold_source``;
    computed on the target itself it gives the "target truth (upper bound)" point.
    """
    c = _counts(*check_inputs(scores, is_member))
    return float(c.thresholds[_best_index(c)])


# --------------------------------------------------------------------------- bootstrap


def _resample_chunks(
    rng: np.random.Generator, n1: int, n0: int, n_resamples: int
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Stratified resampling indices, in chunks of rows: (members idx, non-members idx)."""
    chunk = max(1, min(n_resamples, 4_000_000 // (n1 + n0)))
    done = 0
    while done < n_resamples:
        b = min(chunk, n_resamples - done)
        yield (
            rng.integers(0, n1, size=(b, n1), dtype=np.int32),
            rng.integers(0, n0, size=(b, n0), dtype=np.int32),
        )
        done += b


def _bootstrap_auc(
    s1: np.ndarray, s0: np.ndarray, chunks: Iterator[tuple[np.ndarray, np.ndarray]]
) -> np.ndarray:
    """AUC of every resample without sorting per resample.

    All scores are grouped once into distinct values (ascending). For a resample, ``W[g]``
    and ``V[g]`` count the drawn members and non-members with the g-th value; members of
    group g beat the non-members of lower groups and tie (1/2) with those of group g, so
    ``2 * U = sum_g W[g] * (2 * cumsum(V)[g] - V[g])``: only bincounts and a cumulative sum.
    """
    n1, n0 = len(s1), len(s0)
    _, group = np.unique(np.concatenate((s1, s0)), return_inverse=True)
    n_groups = int(group.max()) + 1
    g1 = group[:n1].astype(np.int64)
    g0 = group[n1:].astype(np.int64)
    out = []
    for idx1, idx0 in chunks:
        b = len(idx1)
        offset = (np.arange(b, dtype=np.int64) * n_groups)[:, None]
        w = np.bincount((g1[idx1] + offset).ravel(), minlength=b * n_groups).reshape(b, n_groups)
        v = np.bincount((g0[idx0] + offset).ravel(), minlength=b * n_groups).reshape(b, n_groups)
        twice_u = np.einsum("bg,bg->b", w, 2 * np.cumsum(v, axis=1) - v)
        out.append(twice_u / (2.0 * n1 * n0))
    return np.concatenate(out)


def bootstrap_ci(
    scores: ArrayLike,
    is_member: ArrayLike,
    statistic: Statistic | str,
    *,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int | np.random.Generator,
) -> tuple[float, float] | None:
    """Percentile bootstrap confidence interval ``(low, high)`` of a metric.

    Members and non-members are resampled separately (stratified, with replacement), so
    every resample keeps the class sizes and measurability of the original. ``statistic``
    is a function ``(scores, is_member) -> float`` such as :func:`auc` or
    ``lambda s, m: tpr_at_fpr(s, m, 0.01)``, or the string ``"auc"``. AUC (the string or the
    :func:`auc` function itself) uses a vectorised path (no sort per resample): 1000
    resamples of 10k records take well under a second; other statistics are called once per
    resample. Returns ``None`` if the statistic is ``None`` (not measurable) on the data.
    The same ``seed`` gives the same interval, and both AUC paths draw the same resamples.
    """
    s, m = check_inputs(scores, is_member)
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, numbers.Integral) or n_resamples < 2:
        raise InputError(f"n_resamples must be an integer >= 2, got {n_resamples!r}; 1000 is typical")
    if isinstance(confidence, bool) or not isinstance(confidence, numbers.Real) or not 0.0 < confidence < 1.0:
        raise InputError(f"confidence must be in (0, 1), got {confidence!r}; e.g. 0.95")
    if isinstance(statistic, str):
        if statistic != "auc":
            raise InputError(
                f"unknown bootstrap statistic {statistic!r}; pass 'auc' or a function "
                "(scores, is_member) -> float"
            )
        fast = True
    elif callable(statistic):
        fast = statistic is auc
    else:
        raise InputError(
            f"statistic must be 'auc' or a function (scores, is_member) -> float, got {statistic!r}"
        )
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    s1, s0 = s[m], s[~m]
    chunks = _resample_chunks(rng, len(s1), len(s0), int(n_resamples))
    if fast:
        values = _bootstrap_auc(s1, s0, chunks)
    else:
        if statistic(s, m) is None:  # type: ignore[operator]
            return None
        truth = np.concatenate((np.ones(len(s1), bool), np.zeros(len(s0), bool)))
        vals: list[float] = []
        for idx1, idx0 in chunks:
            for i1, i0 in zip(idx1, idx0):
                v = statistic(np.concatenate((s1[i1], s0[i0])), truth)  # type: ignore[operator]
                if v is None:
                    raise InputError(
                        "bootstrap statistic returned None on a resample; it must return a float"
                    )
                vals.append(float(v))
        values = np.asarray(vals)
    alpha = 1.0 - float(confidence)
    low, high = np.quantile(values, [alpha / 2.0, 1.0 - alpha / 2.0])
    return float(low), float(high)


# --------------------------------------------------------------------------- summary


def downsample_roc(
    fpr: np.ndarray, tpr: np.ndarray, max_points: int = 200
) -> tuple[np.ndarray, np.ndarray]:
    """At most ``max_points`` vertices of an ROC curve, for plotting only.

    Keeps both end points and, for FPR values spaced evenly on a linear *and* on a log
    scale (down to the smallest nonzero FPR), the vertex with the highest TPR at or below
    that FPR, so the low-FPR region of a log-log plot (Carlini et al., S&P 2022) stays
    faithful. Compute metrics from the full curve, never from this.
    """
    fpr = np.asarray(fpr, dtype=np.float64)
    tpr = np.asarray(tpr, dtype=np.float64)
    if max_points < 4:
        raise InputError(f"max_points must be >= 4, got {max_points}")
    if len(fpr) <= max_points:
        return fpr.copy(), tpr.copy()
    n_grid = max_points - 2
    n_lin = n_grid // 2
    positive = fpr[fpr > 0]
    smallest = float(positive.min()) if len(positive) else 1.0
    grid = np.concatenate(
        (np.linspace(0.0, 1.0, n_lin), np.geomspace(smallest, 1.0, n_grid - n_lin))
    )
    idx = np.searchsorted(fpr, grid, side="right") - 1
    idx = np.unique(np.concatenate(([0, len(fpr) - 1], np.clip(idx, 0, len(fpr) - 1))))
    return fpr[idx], tpr[idx]


def _json_float(x: float | None) -> float | str | None:
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else ("inf" if x > 0 else "-inf")


def _check_source(threshold: float | None, threshold_source: str | None) -> None:
    if threshold is None and threshold_source is not None:
        raise InputError(
            f"threshold_source {threshold_source!r} given without a threshold; pass both or neither"
        )
    if threshold is not None and threshold_source not in THRESHOLD_SOURCES:
        raise InputError(
            f"a threshold needs a threshold_source saying where it came from, one of "
            f"{list(THRESHOLD_SOURCES)}; got {threshold_source!r}"
        )


def _empty() -> np.ndarray:
    return np.zeros(0)


@dataclass(frozen=True)
class Metrics:
    """Everything one evaluation of attack scores against membership truth reports.

    ``tpr_at_fpr`` maps FPR level -> TPR, ``None`` where there are too few non-members
    (fewer than ``min_false_positives / fpr``). ``advantage`` (Yeom et al., CSF 2018) is
    maximised over thresholds on this truth, an upper bound; ``balanced_accuracy``,
    ``precision`` and ``recall`` are at the given ``threshold`` whose origin is
    ``threshold_source`` (one of :data:`THRESHOLD_SOURCES`), all ``None`` without one.
    ``auc_ci`` is a stratified percentile bootstrap interval at ``confidence`` over
    ``n_bootstrap`` resamples (``None`` when ``n_bootstrap`` is 0). ``roc_fpr`` / ``roc_tpr``
    hold the full ROC curve.
    """

    auc: float
    tpr_at_fpr: dict[float, float | None]
    advantage: float
    n_members: int
    n_nonmembers: int
    auc_ci: tuple[float, float] | None = None
    threshold: float | None = None
    threshold_source: str | None = None
    balanced_accuracy: float | None = None
    precision: float | None = None
    recall: float | None = None
    confidence: float = 0.95
    n_bootstrap: int = 0
    min_false_positives: float = MIN_FALSE_POSITIVES
    roc_fpr: np.ndarray = field(default_factory=_empty, compare=False, repr=False)
    roc_tpr: np.ndarray = field(default_factory=_empty, compare=False, repr=False)

    def __post_init__(self) -> None:
        _check_source(self.threshold, self.threshold_source)

    @property
    def best_balanced_accuracy(self) -> float:
        """``1/2 + advantage/2``: balanced accuracy at the best threshold on the target's
        truth -- an upper bound (Song & Mittal, USENIX Security 2021)."""
        return 0.5 + 0.5 * self.advantage

    @property
    def lowest_measurable_fpr(self) -> float:
        """The smallest FPR level the measurability rule accepts for these non-members."""
        return min(1.0, self.min_false_positives / self.n_nonmembers)

    def to_dict(self, *, roc: bool = True, max_roc_points: int | None = 200) -> dict[str, Any]:
        """A JSON-able dict (plain floats, ``None`` for not measurable / not computed).

        FPR keys are strings such as ``"0.01"`` and ``"1e-05"``; a non-finite threshold is
        written as ``"inf"`` / ``"-inf"``. With ``roc=True`` the ROC curve is included,
        downsampled to ``max_roc_points`` vertices for plotting (``None``: all vertices).
        """
        d: dict[str, Any] = {
            "n_members": int(self.n_members),
            "n_nonmembers": int(self.n_nonmembers),
            "auc": float(self.auc),
            "auc_ci": None if self.auc_ci is None else [float(self.auc_ci[0]), float(self.auc_ci[1])],
            "confidence": float(self.confidence),
            "n_bootstrap": int(self.n_bootstrap),
            "tpr_at_fpr": {f"{f:g}": _json_float(t) for f, t in self.tpr_at_fpr.items()},
            "tpr_at_fpr_rule": (
                f"reported only when n_nonmembers * fpr >= {self.min_false_positives:g} "
                "expected false positives; null = not measurable"
            ),
            "lowest_measurable_fpr": float(self.lowest_measurable_fpr),
            "advantage": float(self.advantage),
            "best_balanced_accuracy_upper_bound": float(self.best_balanced_accuracy),
            "threshold": _json_float(self.threshold),
            "threshold_source": self.threshold_source,
            "balanced_accuracy": _json_float(self.balanced_accuracy),
            "precision": _json_float(self.precision),
            "recall": _json_float(self.recall),
        }
        if roc:
            fpr, tpr = self.roc_fpr, self.roc_tpr
            if max_roc_points is not None:
                fpr, tpr = downsample_roc(fpr, tpr, max_roc_points)
            d["roc"] = {
                "fpr": fpr.tolist(),
                "tpr": tpr.tolist(),
                "n_points": len(fpr),
                "n_points_full": len(self.roc_fpr),
            }
        return d


def _fpr_levels(
    levels: Sequence[float], extra: Sequence[float], n0: int, min_fp: float
) -> list[float]:
    chosen = {_check_fpr(f) for f in levels}
    chosen |= {f for f in map(_check_fpr, extra) if is_measurable(n0, f, min_false_positives=min_fp)}
    return sorted(chosen, reverse=True)


def evaluate(
    scores: ArrayLike,
    is_member: ArrayLike,
    *,
    threshold: float | None = None,
    threshold_source: str | None = None,
    fpr_levels: Sequence[float] = DEFAULT_FPR_LEVELS,
    extra_fpr_levels: Sequence[float] = LOW_FPR_LEVELS,
    min_false_positives: float = MIN_FALSE_POSITIVES,
    n_bootstrap: int = 200,
    confidence: float = 0.95,
    seed: int = 0,
) -> Metrics:
    """All metrics of one attack's scores against the membership truth.

    * AUC with a stratified bootstrap CI (``n_bootstrap`` resamples, 0 to skip);
    * TPR at each of ``fpr_levels`` (``None`` where not measurable, see
      :func:`is_measurable`) plus each of ``extra_fpr_levels`` that *is* measurable
      (pass ``extra_fpr_levels=()`` to report exactly ``fpr_levels``);
    * membership advantage (upper bound, Yeom et al. CSF 2018);
    * if ``threshold`` is given: balanced accuracy, precision and recall of "member iff
      ``score >= threshold``". ``threshold_source`` is then required and must be one of
      :data:`THRESHOLD_SOURCES`, so every accuracy reported says whether the threshold was
      set without the target's truth (shadow models, reference data, the attacker's pool,
      a fixed rule) or with it ("target truth (upper bound)", e.g. from
      :func:`best_threshold` on these scores).
    """
    s, m = check_inputs(scores, is_member)
    _check_source(threshold, threshold_source)
    min_fp = _check_min_fp(min_false_positives)
    if (
        isinstance(n_bootstrap, bool)
        or not isinstance(n_bootstrap, numbers.Integral)
        or n_bootstrap < 0
        or n_bootstrap == 1
    ):
        raise InputError(f"n_bootstrap must be 0 (no CI) or an integer >= 2, got {n_bootstrap!r}; e.g. 200")
    if isinstance(confidence, bool) or not isinstance(confidence, numbers.Real) or not 0.0 < confidence < 1.0:
        raise InputError(f"confidence must be in (0, 1), got {confidence!r}; e.g. 0.95")
    c = _counts(s, m)
    levels = _fpr_levels(fpr_levels, extra_fpr_levels, c.n0, min_fp)
    tprs: dict[float, float | None] = {
        f: (_tpr_at_fpr(c, f) if is_measurable(c.n0, f, min_false_positives=min_fp) else None)
        for f in levels
    }
    k = _best_index(c)
    advantage = float(c.tp[k] / c.n1 - c.fp[k] / c.n0)
    auc_ci = (
        bootstrap_ci(s, m, "auc", n_resamples=int(n_bootstrap), confidence=confidence, seed=seed)
        if n_bootstrap
        else None
    )
    ba = prec = rec = None
    t = None
    if threshold is not None:
        t = _check_threshold(threshold)
        tp, fp, n1, n0 = _rates_at(s, m, t)
        ba = 0.5 * (tp / n1 + (n0 - fp) / n0)
        prec = tp / (tp + fp) if tp + fp else None
        rec = tp / n1
    roc_fpr = c.fp / c.n0
    roc_tpr = c.tp / c.n1
    roc_fpr.setflags(write=False)
    roc_tpr.setflags(write=False)
    return Metrics(
        auc=_auc(c),
        tpr_at_fpr=tprs,
        advantage=advantage,
        n_members=c.n1,
        n_nonmembers=c.n0,
        auc_ci=auc_ci,
        threshold=t,
        threshold_source=threshold_source,
        balanced_accuracy=ba,
        precision=prec,
        recall=rec,
        confidence=float(confidence),
        n_bootstrap=int(n_bootstrap),
        min_false_positives=min_fp,
        roc_fpr=roc_fpr,
        roc_tpr=roc_tpr,
    )

