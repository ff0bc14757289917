"""Feature-variance study (Truex et al., IEEE TSC 2019): per-class leakage against the class's
within-class feature variance.

Truex et al. find that classes whose records look alike (low within-class variance) leak less:
a member is then hard to tell from the non-members it resembles. Per class c we measure the mean
over features of the variance of the features among the target's training records of class c,
and the strongest attack's AUC over the evaluated records of class c (members of c vs
non-members of c), then report their rank correlation.
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from miaudit.studies.base import STUDIES, Study, StudyConfig, StudyResult
from miaudit.studies.plots import context_line
from miaudit.studies.runner import audit_setting, check_grid_keys, context, load_study_data
from miaudit.studies.slices import slice_metrics, strongest
from miaudit.studies.stats import aggregate, correlation, positive_and_significant

CLAIM = "Lower within-class feature variance leaks less (Truex et al.)."


def within_class_variance(x: np.ndarray, y: np.ndarray, num_classes: int) -> np.ndarray:
    """Mean over features of the per-feature variance within each class (NaN for < 2 records)."""
    flat = x.reshape(len(x), -1).astype(np.float64)
    out = np.full(num_classes, np.nan)
    for c in range(num_classes):
        rows = flat[y == c]
        if len(rows) >= 2:
            out[c] = float(rows.var(axis=0, ddof=1).mean())
    return out


def run(config: StudyConfig, progress: bool = False) -> StudyResult:
    check_grid_keys(config, set(), "feature-variance")
    dataset = load_study_data(config)
    rows = []
    for seed in config.seeds:
        result = audit_setting(config, dataset, seed=seed, progress=progress)
        best = strongest(result)
        members = result.split.target_in
        variance = within_class_variance(dataset.x[members], dataset.y[members], dataset.num_classes)
        y_eval = dataset.y[result.record_indices]
        for c in range(dataset.num_classes):
            m = slice_metrics(best.result.scores, result.is_member, y_eval == c)
            name = dataset.class_names[c] if dataset.class_names else str(c)
            rows.append({"seed": seed, "class": c, "class_name": name, "attack": best.result.attack, "within_class_variance": float(variance[c]), **m})
    summary = aggregate(rows, ["class", "class_name"], ["within_class_variance", "auc", "tpr@1%"])
    # One point per class (its mean over seeds): the seeds re-measure the same classes, so pooling
    # them would count each class several times and overstate the significance.
    corr = correlation([s["within_class_variance_mean"] for s in summary], [s["auc_mean"] for s in summary])
    rho = corr["spearman_rho"]
    findings = {
        "variance_vs_class_auc": corr,
        "claim_holds": positive_and_significant(corr),
        "rule": "claim holds when Spearman rho(within-class variance, class AUC) > 0 with p < 0.05, one point per class (mean over seeds)",
        "attack_per_seed": sorted({r["attack"] for r in rows}),
    }
    ctx = context(config, dataset, result.model_name if config.seeds else config.model)

    def draw(fig: Figure) -> None:
        ax = fig.subplots()
        ax.errorbar(
            [s["within_class_variance_mean"] for s in summary], [s["auc_mean"] for s in summary],
            xerr=[s["within_class_variance_std"] for s in summary], yerr=[s["auc_std"] for s in summary],
            fmt="o", capsize=2,
        )  # fmt: skip
        for s in summary:
            ax.annotate(str(s["class_name"]), (s["within_class_variance_mean"], s["auc_mean"]), fontsize=6, xytext=(2, 2), textcoords="offset points")
        r_text = "n/a" if rho is None else f"{rho:.2f} (p={corr['spearman_p']:.2g})"
        ax.set_title(f"per class; Spearman rho = {r_text}", fontsize=9)
        ax.set_xlabel("within-class feature variance (mean over features, members of the class)")
        ax.set_ylabel("strongest attack AUC within the class")
        ax.grid(alpha=0.3)
        fig.suptitle("Within-class variance vs leakage\n" + context_line(ctx), fontsize=8)

    return StudyResult(
        study="feature-variance",
        claim=CLAIM,
        description="One point per class: its members' feature variance and the strongest attack's AUC on its records.",
        tables={"table": rows, "summary": summary},
        findings=findings,
        context=ctx,
        plot=draw,
    )


STUDIES.add("feature-variance", Study("feature-variance", CLAIM, run))
