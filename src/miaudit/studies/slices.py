"""Leakage by slices of the evaluated records (in the spirit of TensorFlow Privacy's
``SlicingSpec``: by class, by whether the target classifies the record correctly).

A slice's metrics compare its members with its non-members only, so a slice is measurable only
when it holds both; slices with fewer than ``MIN_PER_SIDE`` of either are reported as such.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from miaudit import metrics
from miaudit.experiments.audit import AttackOutcome, AuditResult

MIN_PER_SIDE = 5


def strongest(result: AuditResult) -> AttackOutcome:
    """The attack with the highest AUC over all evaluated records."""
    return max(result.outcomes, key=lambda o: o.metrics.auc)


def slice_metrics(scores: np.ndarray, is_member: np.ndarray, mask: np.ndarray) -> dict[str, Any]:
    m = is_member[mask]
    n1, n0 = int(m.sum()), int((~m).sum())
    row: dict[str, Any] = {"n_members": n1, "n_nonmembers": n0}
    if n1 < MIN_PER_SIDE or n0 < MIN_PER_SIDE:
        row.update({"auc": float("nan"), "advantage": float("nan"), "tpr@1%": float("nan")})
        return row
    ev = metrics.evaluate(scores[mask], m, n_bootstrap=0)
    tpr = ev.tpr_at_fpr.get(0.01)
    row.update({"auc": ev.auc, "advantage": ev.advantage, "tpr@1%": float("nan") if tpr is None else tpr})
    return row


def eval_predictions(result: AuditResult) -> tuple[np.ndarray, np.ndarray]:
    """Labels and the target's predicted labels of the evaluated records (in their evaluated order)."""
    x = result.dataset.x[result.record_indices]
    y = result.dataset.y[result.record_indices]
    return y, np.asarray(result.target.predict_logits(x)).argmax(axis=1)
