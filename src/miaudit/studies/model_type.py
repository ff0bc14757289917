"""Model-type study: the same split, different learners (Truex et al., IEEE TSC 2019).

Truex et al. ("Demystifying membership inference attacks in machine learning as a service")
find that the learner matters: a decision tree leaks far more than naive Bayes, whose per-class
feature statistics barely depend on any one record. Every model here trains on the same members
and is attacked with shadow models of its own type (the gray box knows the architecture), and
the table reports each one's test accuracy beside its attack power.
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from miaudit.studies.base import STUDIES, Study, StudyConfig, StudyResult
from miaudit.studies.plots import context_line
from miaudit.studies.runner import audit_setting, check_grid_keys, context, load_study_data, parse_grid, power_row
from miaudit.studies.stats import aggregate

CLAIM = "The model type matters: a decision tree leaks more than naive Bayes (Truex et al.)."
DEFAULT_MODELS = ["decision_tree", "random_forest", "logreg", "gaussian_nb", "bernoulli_nb", "gradient_boosting", "mlp"]
NAIVE_BAYES = ("gaussian_nb", "bernoulli_nb")


def run(config: StudyConfig, progress: bool = False) -> StudyResult:
    check_grid_keys(config, {"models"}, "model-type")
    dataset = load_study_data(config)
    models = parse_grid(config, "models", DEFAULT_MODELS, str)
    rows = []
    for seed in config.seeds:
        for model in models:
            result = audit_setting(config, dataset, seed=seed, model=model, progress=progress)
            rows.append(power_row(result))
    summary = aggregate(rows, ["model"], ["train_accuracy", "test_accuracy", "gap", "best_auc", "best_tpr@1%"])
    by_model = {s["model"]: s for s in summary}
    findings: dict = {"best_auc_mean": {m: s["best_auc_mean"] for m, s in by_model.items()}}
    nb = [m for m in NAIVE_BAYES if m in by_model]
    if "decision_tree" in by_model and nb:
        tree = by_model["decision_tree"]["best_auc_mean"]
        findings["decision_tree_vs_naive_bayes"] = {m: tree - by_model[m]["best_auc_mean"] for m in nb}
        findings["claim_holds"] = bool(all(tree > by_model[m]["best_auc_mean"] for m in nb))
        findings["rule"] = "claim holds when the decision tree's mean best AUC exceeds every naive Bayes model's"
    ctx = context(config, dataset, None)

    def draw(fig: Figure) -> None:
        ax1, ax2 = fig.subplots(1, 2)
        names = [s["model"] for s in summary]
        pos = np.arange(len(names))
        ax1.bar(pos - 0.2, [s["best_auc_mean"] for s in summary], 0.4, yerr=[s["best_auc_std"] for s in summary], label="best AUC", capsize=2)
        ax1.bar(pos + 0.2, [s["test_accuracy_mean"] for s in summary], 0.4, yerr=[s["test_accuracy_std"] for s in summary], label="test accuracy", capsize=2)
        ax1.axhline(0.5, color="grey", lw=0.8, ls="--")
        ax1.set_xticks(pos, names, rotation=40, ha="right", fontsize=8)
        ax1.set_ylim(0, 1.05)
        ax1.legend(fontsize=8)
        ax1.set_title("attack power and utility per model", fontsize=9)
        for s in summary:
            ax2.errorbar(s["gap_mean"], s["best_tpr@1%_mean"], xerr=s["gap_std"], yerr=s["best_tpr@1%_std"], fmt="o", capsize=2)
            ax2.annotate(s["model"], (s["gap_mean"], s["best_tpr@1%_mean"]), fontsize=7, xytext=(3, 3), textcoords="offset points")
        ax2.set_xlabel("generalization gap")
        ax2.set_ylabel("best TPR at 1% FPR")
        ax2.grid(alpha=0.3)
        fig.suptitle("Model type vs leakage\n" + context_line(ctx), fontsize=8)

    return StudyResult(
        study="model-type",
        claim=CLAIM,
        description="Every model trains on the same members of the same split; shadows are of the same model type.",
        tables={"table": rows, "summary": summary},
        findings=findings,
        context=ctx,
        plot=draw,
    )


STUDIES.add("model-type", Study("model-type", CLAIM, run, "models=decision_tree,gaussian_nb,... (any `miaudit models` name)"))
