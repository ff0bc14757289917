"""Per-record risk: which records are most exposed, and which slices leak most.

The most exposed records are the true members with the highest membership scores under the
strongest attack (highest AUC); such a record is flagged as a member before any non-member is.
Leakage by slice follows TensorFlow Privacy's membership-inference slicing (entire set, per
class, correctly vs incorrectly classified): a slice's AUC compares its members with its
non-members only. The strongest attack is chosen on the auditor's truth, as an audit reports it.
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from miaudit.studies.base import STUDIES, Study, StudyConfig, StudyResult
from miaudit.studies.plots import context_line
from miaudit.studies.runner import audit_setting, check_grid_keys, context, load_study_data, parse_grid
from miaudit.studies.slices import eval_predictions, slice_metrics, strongest

CLAIM = "Leakage is uneven: a few records and some classes carry most of it (per-record view of the audit)."


def run(config: StudyConfig, progress: bool = False) -> StudyResult:
    check_grid_keys(config, {"top"}, "per-record-risk")
    top = parse_grid(config, "top", [20], int)[0]
    dataset = load_study_data(config)
    slices, exposed = [], []
    for seed in config.seeds:
        result = audit_setting(config, dataset, seed=seed, progress=progress)
        best = strongest(result)
        scores, member = best.result.scores, result.is_member
        y, pred = eval_predictions(result)
        correct = pred == y
        everyone = np.ones(len(y), bool)
        specs = [("entire set", "all", everyone), ("correctly classified", "yes", correct), ("correctly classified", "no", ~correct)]
        for c in range(dataset.num_classes):
            specs.append(("class", dataset.class_names[c] if dataset.class_names else str(c), y == c))
        for kind, value, mask in specs:
            slices.append({"seed": seed, "attack": best.result.attack, "slice": kind, "value": value, "records": int(mask.sum()), **slice_metrics(scores, member, mask)})
        # Rank of every evaluated record by score (1 = most member-like); exposed = top members.
        order = np.argsort(-scores, kind="stable")
        rank = np.empty(len(scores), dtype=np.int64)
        rank[order] = np.arange(1, len(scores) + 1)
        nonmember_scores = np.sort(scores[~member])
        for i in [j for j in order if member[j]][:top]:
            above = len(nonmember_scores) - np.searchsorted(nonmember_scores, scores[i], side="left")
            exposed.append({
                "seed": seed,
                "attack": best.result.attack,
                "record_index": int(result.record_indices[i]),
                "label": int(y[i]),
                "predicted": int(pred[i]),
                "score": float(scores[i]),
                "rank": int(rank[i]),
                "nonmembers_scoring_higher_or_equal": int(above),
            })  # fmt: skip
    ctx = context(config, dataset, result.model_name if config.seeds else config.model)
    class_rows = [s for s in slices if s["slice"] == "class" and not np.isnan(s["auc"])]
    findings = {
        "strongest_attack": sorted({s["attack"] for s in slices}),
        "exposed_members_with_no_nonmember_above": sum(1 for e in exposed if e["nonmembers_scoring_higher_or_equal"] == 0),
        "class_auc_range": [min((s["auc"] for s in class_rows), default=None), max((s["auc"] for s in class_rows), default=None)],
        "auc_correct_vs_incorrect": {s["value"]: s["auc"] for s in slices if s["slice"] == "correctly classified" and s["seed"] == config.seeds[0]},
    }

    def draw(fig: Figure) -> None:
        ax1, ax2 = fig.subplots(1, 2, width_ratios=[3, 1])
        first = [s for s in slices if s["seed"] == config.seeds[0]]
        cls = [s for s in first if s["slice"] == "class"]
        ax1.bar(range(len(cls)), [s["auc"] for s in cls], color="tab:blue")
        ax1.axhline(next(s["auc"] for s in first if s["slice"] == "entire set"), color="black", lw=1, label="entire set")
        ax1.axhline(0.5, color="grey", lw=0.8, ls="--")
        ax1.set_xticks(range(len(cls)), [s["value"] for s in cls], rotation=90, fontsize=6)
        ax1.set_ylabel(f"AUC of {first[0]['attack']} within the slice")
        ax1.set_title("per class (empty bar: too few records)", fontsize=9)
        ax1.set_ylim(0, 1.05)
        ax1.legend(fontsize=8)
        cc = [s for s in first if s["slice"] == "correctly classified"]
        ax2.bar([s["value"] for s in cc], [s["auc"] for s in cc], color="tab:orange")
        ax2.axhline(0.5, color="grey", lw=0.8, ls="--")
        ax2.set_ylim(0, 1.05)
        ax2.set_title("correctly classified?", fontsize=9)
        fig.suptitle(f"Leakage by slice (seed {config.seeds[0]})\n" + context_line(ctx), fontsize=8)

    return StudyResult(
        study="per-record-risk",
        claim=CLAIM,
        description=f"Slices of the evaluated records; the {top} most exposed members per seed in exposed.csv.",
        tables={"table": slices, "exposed": exposed},
        findings=findings,
        context=ctx,
        plot=draw,
    )


STUDIES.add("per-record-risk", Study("per-record-risk", CLAIM, run, "top=N (exposed records listed per seed)"))
