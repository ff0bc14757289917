"""The rows of the privacy-utility table: a headline attack chosen without the target's truth.

Per seed (:func:`seed_row`), every attack's AUC and TPR at 1% FPR, and the audit's verdict
(:func:`miaudit.core.record.verdict_of`: one-sided Mann-Whitney test per attack, Holm's
correction over all of them). The row's *headline* attack is the verdict's: the first attack
present in the fixed strongest-first order :data:`miaudit.verdict.HEADLINE_ORDER`, never chosen
on the evaluated records' membership truth. Its AUC and TPR at 1% FPR carry a stratified
bootstrap interval over the evaluated records (``n_bootstrap`` resamples, 95%), and over seeds
(:func:`summarise`) mean ± sample std. An AUC below 0.5 is flagged: the attacker's calibration
points the wrong way on this target.

The maximum over attacks (by AUC, by TPR at 1% FPR) is chosen on the target's truth: it is kept
only as the ``upper_bound_*`` columns, labelled "upper bound (max over attacks on the target's
truth)".
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from miaudit import metrics
from miaudit.core.record import verdict_of
from miaudit.experiments.audit import AuditResult

TPR_LEVEL = 0.01
POWER_METRICS = ("auc", "tpr_at_1pct_fpr", "balanced_accuracy")
HEADLINE_METRICS = ("auc", "tpr_at_1pct_fpr")
UPPER_BOUND_LABEL = "upper bound (max over attacks on the target's truth)"
INVERTED_FLAG = "inverted: the attacker's calibration points the wrong way"


def _tpr(scores: np.ndarray, is_member: np.ndarray) -> float | None:
    return metrics.tpr_at_fpr(scores, is_member, TPR_LEVEL)


def headline_of(scores: np.ndarray, is_member: np.ndarray, attack: str, *, n_bootstrap: int, seed: int) -> dict[str, Any]:
    """The headline attack's AUC and TPR at 1% FPR with bootstrap intervals over the records
    (None without resamples or where TPR is not measurable), and the inversion flag."""
    auc = metrics.auc(scores, is_member)
    out: dict[str, Any] = {"attack": attack, "auc": float(auc), "tpr_at_1pct_fpr": _tpr(scores, is_member)}
    for key, statistic in (("auc", "auc"), ("tpr_at_1pct_fpr", _tpr)):
        ci = metrics.bootstrap_ci(scores, is_member, statistic, n_resamples=n_bootstrap, seed=seed) if n_bootstrap else None
        out[key + "_ci"] = None if ci is None else [float(ci[0]), float(ci[1])]
    out["inverted"] = bool(auc < 0.5)
    return out


def seed_row(result: AuditResult, *, n_bootstrap: int) -> dict[str, Any]:
    """One audit's figures: per attack, the verdict, the headline attack and the upper bounds."""
    attacks: dict[str, dict[str, Any]] = {}
    scores: dict[str, np.ndarray] = {}
    for o in result.outcomes:
        m = o.metrics
        scores[o.result.attack] = np.asarray(o.result.scores, dtype=np.float64)
        attacks[o.result.attack] = {
            "auc": float(m.auc),
            "tpr_at_1pct_fpr": m.tpr_at_fpr.get(TPR_LEVEL),
            "balanced_accuracy": m.balanced_accuracy,
            "advantage_upper_bound": float(m.advantage),
            "threshold_source": m.threshold_source,
            "inverted": bool(m.auc < 0.5),
        }
    verdict = verdict_of(scores, result.is_member)
    headline = None
    if verdict is not None:
        name = verdict.headline_attack
        headline = headline_of(scores[name], result.is_member, name, n_bootstrap=n_bootstrap, seed=result.config.seed)
    upper: dict[str, dict[str, Any]] = {}
    for metric in POWER_METRICS:
        candidates = [(v[metric], n) for n, v in attacks.items() if v[metric] is not None and not math.isnan(v[metric])]
        if candidates:
            value, name = max(candidates)
            upper[metric] = {"value": float(value), "attack": name}
    return {
        "seed": result.config.seed,
        "train_accuracy": result.train_accuracy,
        "test_accuracy": result.test_accuracy,
        "defense_info": (result.defense or {}).get("info", {}),
        "headline": headline,
        "verdict": None if verdict is None else {
            "level": verdict.level, "leaks": verdict.leaks, "graded_attack": verdict.graded_attack,
            "headline": verdict.headline,
        },
        "upper_bound": upper,
        "attacks": attacks,
        "skipped": result.skipped,
        "notes": list(result.notes),
    }  # fmt: skip


def mean_std(values: Sequence[float | None]) -> tuple[float | None, float | None]:
    """Mean and sample std (None with one value) of the finite values; (None, None) if none."""
    vals = [v for v in values if v is not None and not math.isnan(v)]
    if not vals:
        return None, None
    return float(np.mean(vals)), (float(np.std(vals, ddof=1)) if len(vals) > 1 else None)


def _joined(names: Sequence[str]) -> str:
    return "/".join(n for n, _ in Counter(names).most_common())


def summarise(spec: str, describe: dict[str, Any], runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One table row: means ± std over seeds, per-seed intervals, verdicts, flags, upper bounds."""
    row: dict[str, Any] = {"defense": spec, "stage": describe["stage"], "paper": describe["paper"], "n_seeds": len(runs)}
    for key in ("test_accuracy", "train_accuracy"):
        row[key], row[key + "_std"] = mean_std([r[key] for r in runs])
    eps = [r["defense_info"].get("epsilon") for r in runs if "epsilon" in r["defense_info"]]
    if eps:
        row["epsilon"], _ = mean_std(eps)
        row["delta"] = runs[0]["defense_info"].get("delta")
    heads = [r["headline"] for r in runs if r["headline"] is not None]
    row["headline_attack"] = _joined([h["attack"] for h in heads]) or None
    for metric in HEADLINE_METRICS:
        row[f"headline_{metric}"], row[f"headline_{metric}_std"] = mean_std([h[metric] for h in heads])
        row[f"headline_{metric}_ci"] = [h[f"{metric}_ci"] for h in heads]
    inverted = [r["seed"] for r, h in zip(runs, (r["headline"] for r in runs)) if h is not None and h["inverted"]]
    row["inverted_seeds"] = inverted
    row["flag"] = f"{INVERTED_FLAG} (seed {', '.join(map(str, inverted))})" if inverted else None
    row["verdicts"] = [r["verdict"]["level"] if r["verdict"] else None for r in runs]
    row["verdict"] = _joined([v for v in row["verdicts"] if v is not None]) or None
    for metric in POWER_METRICS:
        found = [r["upper_bound"][metric] for r in runs if metric in r["upper_bound"]]
        row[f"upper_bound_{metric}"], row[f"upper_bound_{metric}_std"] = mean_std([b["value"] for b in found])
        row[f"upper_bound_{metric}_attack"] = _joined([b["attack"] for b in found])
    per_attack: dict[str, dict[str, Any]] = {}
    for name in sorted({a for r in runs for a in r["attacks"]}):
        per_attack[name] = {}
        for metric in POWER_METRICS:
            mean, std = mean_std([r["attacks"][name][metric] for r in runs if name in r["attacks"]])
            per_attack[name][metric], per_attack[name][metric + "_std"] = mean, std
        auc = per_attack[name]["auc"]
        per_attack[name]["inverted"] = auc is not None and auc < 0.5
    row["per_attack"] = per_attack
    return row
