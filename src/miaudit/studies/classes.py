"""Number-of-classes study (Shokri et al., S&P 2017; Salem et al., NDSS 2019).

Both papers observe that targets over more classes leak more: each class has fewer records, so
the model must remember more about each. Here the same data set is restricted to its first k
classes for several k, with the number of records held fixed across k (the smallest k's record
count, or ``--records``), so that fewer records per class, not more data, is what changes.
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter

from miaudit.errors import ConfigError
from miaudit.studies.base import STUDIES, Study, StudyConfig, StudyResult
from miaudit.studies.plots import context_line
from miaudit.studies.runner import audit_setting, check_grid_keys, context, load_study_data, parse_grid, power_row, subset
from miaudit.studies.stats import aggregate, correlation, positive_and_significant
from miaudit.seeds import stream_rng

CLAIM = "More classes leak more (Shokri et al.; Salem et al.)."


def _default_counts(num_classes: int) -> list[int]:
    return sorted({k for k in (2, 5, 10, 20, 30, 50, 100) if k < num_classes} | {num_classes})


def run(config: StudyConfig, progress: bool = False) -> StudyResult:
    check_grid_keys(config, {"classes"}, "classes")
    dataset = load_study_data(config)
    counts = parse_grid(config, "classes", _default_counts(dataset.num_classes), int)
    if min(counts) < 2 or max(counts) > dataset.num_classes:
        raise ConfigError(f"--grid classes= must lie in [2, {dataset.num_classes}], got {counts}")
    # Classes in order of size, largest first, so that small k keeps enough records.
    order = np.argsort(-np.bincount(dataset.y, minlength=dataset.num_classes), kind="stable")
    pools = {k: np.flatnonzero(np.isin(dataset.y, order[:k])) for k in counts}
    n_fixed = min(len(p) for p in pools.values())
    rows = []
    for seed in config.seeds:
        rng = stream_rng(seed, "study/classes")
        for k in counts:
            idx = np.sort(rng.choice(pools[k], n_fixed, replace=False))
            data = subset(dataset, idx, classes=[int(c) for c in order[:k]])
            result = audit_setting(config, data, seed=seed, progress=progress)
            rows.append({"classes": k, "records": n_fixed, **power_row(result)})
    summary = aggregate(rows, ["classes"], ["gap", "test_accuracy", "best_auc", "best_tpr@1%"])
    corr = correlation([r["classes"] for r in rows], [r["best_auc"] for r in rows])
    findings = {
        "classes_vs_best_auc": corr,
        "records_per_setting": n_fixed,
        "claim_holds": positive_and_significant(corr),
        "rule": "claim holds when Spearman rho(classes, best AUC) > 0 with p < 0.05",
    }
    ctx = context(config, dataset, rows[0]["model"] if rows else config.model)

    def draw(fig: Figure) -> None:
        ax = fig.subplots()
        ks = [s["classes"] for s in summary]
        for metric, label in (("best_auc", "strongest attack AUC"), ("best_tpr@1%", "best TPR at 1% FPR"), ("test_accuracy", "target test accuracy")):
            ax.errorbar(ks, [s[f"{metric}_mean"] for s in summary], yerr=[s[f"{metric}_std"] for s in summary], marker="o", label=label, capsize=2)
        ax.set_xscale("log")
        ax.set_xticks(ks, [str(k) for k in ks])
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel(f"number of classes ({n_fixed} records each setting; TPR missing where not measurable)")
        ax.set_ylim(0, 1.05)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        fig.suptitle("Number of classes vs leakage\n" + context_line(ctx), fontsize=8)

    return StudyResult(
        study="classes",
        claim=CLAIM,
        description=f"The largest k classes, {n_fixed} random records per setting, split as in an audit.",
        tables={"table": rows, "summary": summary},
        findings=findings,
        context=ctx,
        plot=draw,
    )


STUDIES.add("classes", Study("classes", CLAIM, run, "classes=K1,K2,..."))
