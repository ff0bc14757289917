"""Overfitting study: generalization gap against attack power (Yeom et al., CSF 2018).

Yeom et al. show that a loss-threshold attacker's advantage is bounded by, and in practice grows
with, the generalization gap; the survey (section 6) names overfitting the first cause of leakage.
We vary one knob at a time from the data set's default target (training epochs, training-set size,
weight decay), audit each setting under the study's threat model, and report the Pearson and
Spearman correlation between the gap (train acc - test acc) and the strongest attack's AUC and
the best TPR at 1% FPR.
"""

from __future__ import annotations

from typing import Any

from matplotlib.figure import Figure

from miaudit.data.split import SplitSizes
from miaudit.experiments.defaults import defaults_for
from miaudit.studies.base import STUDIES, Study, StudyConfig, StudyResult
from miaudit.studies.plots import context_line
from miaudit.studies.runner import audit_setting, check_grid_keys, context, load_study_data, parse_grid, power_row
from miaudit.studies.stats import aggregate, correlation, positive_and_significant

CLAIM = "Overfitting correlates with leakage: a larger generalization gap gives a stronger attack (Yeom et al.)."
GRID_KEYS = {"epochs", "members", "weight_decay"}


def run(config: StudyConfig, progress: bool = False) -> StudyResult:
    check_grid_keys(config, GRID_KEYS, "overfitting")
    dataset = load_study_data(config)
    base_epochs = config.epochs or defaults_for(dataset.name).recipe.get("epochs", 30)
    n = len(dataset)
    epochs = parse_grid(config, "epochs", sorted({max(1, base_epochs // 8), max(1, base_epochs // 3), base_epochs, base_epochs * 2}), int)
    members = parse_grid(config, "members", [max(10, n // 16), max(10, n // 8), n // 4], int)
    decays = parse_grid(config, "weight_decay", [0.0, 1e-3, 1e-2, 1e-1], float)
    settings: list[tuple[str, Any, dict[str, Any], SplitSizes | None]] = []
    settings += [("epochs", e, {"epochs": e}, None) for e in epochs]
    # Members and non-members grow together; the attacker keeps half of the data set.
    settings += [("members", m, {}, SplitSizes(target_in=m, target_out=m, attacker_pool=n // 2, population=0)) for m in members]
    settings += [("weight_decay", w, {"weight_decay": w}, None) for w in decays]
    rows = []
    for seed in config.seeds:
        for knob, value, recipe, split in settings:
            result = audit_setting(config, dataset, seed=seed, recipe=recipe, split=split, progress=progress)
            rows.append({"knob": knob, "value": value, **power_row(result)})
    summary = aggregate(rows, ["knob", "value"], ["gap", "train_accuracy", "test_accuracy", "best_auc", "best_tpr@1%"])
    corr_auc = correlation([r["gap"] for r in rows], [r["best_auc"] for r in rows])
    corr_tpr = correlation([r["gap"] for r in rows], [r["best_tpr@1%"] for r in rows])
    findings = {
        "gap_vs_best_auc": corr_auc,
        "gap_vs_best_tpr@1%": corr_tpr,
        "claim_holds": positive_and_significant(corr_auc),
        "rule": "claim holds when Spearman rho(gap, best AUC) > 0 with p < 0.05 over all settings and seeds",
    }
    ctx = context(config, dataset, rows[0]["model"] if rows else config.model)

    def draw(fig: Figure) -> None:
        axes = fig.subplots(1, 2)
        for ax, metric, label in ((axes[0], "best_auc", "strongest attack AUC"), (axes[1], "best_tpr@1%", "best TPR at 1% FPR")):
            for knob, marker in (("epochs", "o"), ("members", "s"), ("weight_decay", "^")):
                pts = [s for s in summary if s["knob"] == knob]
                ax.errorbar(
                    [p["gap_mean"] for p in pts], [p[f"{metric}_mean"] for p in pts],
                    xerr=[p["gap_std"] for p in pts], yerr=[p[f"{metric}_std"] for p in pts],
                    fmt=marker, label=f"vary {knob}", capsize=2,
                )  # fmt: skip
            ax.set_xlabel("generalization gap (train acc - test acc)")
            ax.set_ylabel(label)
            ax.grid(alpha=0.3)
        c = corr_auc
        r_text = "n/a" if c["spearman_rho"] is None else f"{c['spearman_rho']:.2f} (p={c['spearman_p']:.2g})"
        axes[0].set_title(f"Spearman rho = {r_text}", fontsize=9)
        axes[0].legend(fontsize=8)
        fig.suptitle("Overfitting vs leakage\n" + context_line(ctx), fontsize=8)

    return StudyResult(
        study="overfitting",
        claim=CLAIM,
        description="Each point is one setting (one knob varied from the default target), mean ± std over seeds.",
        tables={"table": rows, "summary": summary},
        findings=findings,
        context=ctx,
        plot=draw,
    )


STUDIES.add("overfitting", Study("overfitting", CLAIM, run, "epochs=E1,E2,... members=N1,N2,... weight_decay=W1,W2,..."))
