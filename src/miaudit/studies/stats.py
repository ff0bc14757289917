"""Small statistics for the studies: mean and spread over seeds, rank and linear correlation."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import stats


def aggregate(rows: Sequence[dict[str, Any]], by: Sequence[str], columns: Sequence[str]) -> list[dict[str, Any]]:
    """One row per distinct ``by`` values: mean, std (ddof=1; 0 for one seed) and count of each column."""
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        groups[tuple(row[k] for k in by)].append(row)
    out = []
    for key, members in groups.items():
        agg: dict[str, Any] = dict(zip(by, key))
        agg["n_seeds"] = len(members)
        for col in columns:
            vals = np.array([m[col] for m in members], dtype=float)
            vals = vals[~np.isnan(vals)]
            agg[f"{col}_mean"] = float(vals.mean()) if len(vals) else float("nan")
            agg[f"{col}_std"] = float(vals.std(ddof=1)) if len(vals) > 1 else 0.0
        out.append(agg)
    return out


def correlation(x: Sequence[float], y: Sequence[float]) -> dict[str, Any]:
    """Pearson r and Spearman rho with their two-sided p-values over the finite pairs."""
    xa, ya = np.asarray(x, float), np.asarray(y, float)
    keep = np.isfinite(xa) & np.isfinite(ya)
    xa, ya = xa[keep], ya[keep]
    if len(xa) < 3 or np.ptp(xa) == 0 or np.ptp(ya) == 0:
        return {"n": int(len(xa)), "pearson_r": None, "pearson_p": None, "spearman_rho": None, "spearman_p": None}
    pr = stats.pearsonr(xa, ya)
    sr = stats.spearmanr(xa, ya)
    return {
        "n": int(len(xa)),
        "pearson_r": _f(pr.statistic),
        "pearson_p": _f(pr.pvalue),
        "spearman_rho": _f(sr.statistic),
        "spearman_p": _f(sr.pvalue),
    }


def _f(v: Any) -> float | None:
    v = float(v)
    return None if math.isnan(v) else v


def positive_and_significant(corr: dict[str, Any], alpha: float = 0.05) -> bool | None:
    """Whether a :func:`correlation` is positive (Spearman) with p < ``alpha``; None if undefined.
    (scipy gives p = 0.0 for a perfect correlation: that is significant, not missing.)"""
    rho, p = corr["spearman_rho"], corr["spearman_p"]
    if rho is None or p is None:
        return None
    return bool(rho > 0 and p < alpha)
