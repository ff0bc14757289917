"""Summarise study results for the README: one markdown row per (data set, study), and the figures.

    .venv/bin/python tools/study_summary.py results/studies [--figures docs/figures/studies]

Reads RESULTS/<dataset>/<study>/study.json as written by `miaudit study ... --out`, prints the
table, and copies each plot.png to FIGURES/<dataset>-<study>.png.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path


def _num(v: float | None, digits: int = 3) -> str:
    return "n/a" if v is None else f"{v:.{digits}f}"


def _corr(c: dict) -> str:
    return f"Spearman rho {_num(c['spearman_rho'], 2)} (p={_num(c['spearman_p'], 3) if c['spearman_p'] is None or c['spearman_p'] >= 1e-3 else format(c['spearman_p'], '.1e')}, n={c['n']})"


def measurement(doc: dict) -> str:
    f, rows = doc["findings"], doc["tables"].get("summary", [])
    study = doc["study"]
    if study == "overfitting":
        return f"gap vs best AUC: {_corr(f['gap_vs_best_auc'])}; gap vs best TPR@1%FPR: {_corr(f['gap_vs_best_tpr@1%'])}"
    if study == "classes":
        per_k = ", ".join(f"{r['classes']}: {_num(r['best_auc_mean'])}±{_num(r['best_auc_std'])}" for r in rows)
        return f"best AUC by classes ({f['records_per_setting']} records each): {per_k}; {_corr(f['classes_vs_best_auc'])}"
    if study == "feature-variance":
        return f"per class: {_corr(f['variance_vs_class_auc'])}"
    if study == "model-type":
        ranked = sorted(rows, key=lambda r: -r["best_auc_mean"])
        return "best AUC (test acc): " + ", ".join(
            f"{r['model']} {_num(r['best_auc_mean'])} ({_num(r['test_accuracy_mean'], 2)})" for r in ranked
        )
    if study == "per-record-risk":
        lo, hi = f["class_auc_range"]
        return (
            f"strongest {', '.join(f['strongest_attack'])}; per-class AUC {_num(lo)}-{_num(hi)}; "
            f"{f['exposed_members_with_no_nonmember_above']} of the top members exposed with no non-member scoring as high"
        )
    return json.dumps(f)


PRIMARY = {"overfitting": "gap_vs_best_auc", "classes": "classes_vs_best_auc", "feature-variance": "variance_vs_class_auc"}


def verdict(doc: dict) -> str:
    f = doc["findings"]
    holds = f.get("claim_holds")
    corr = f.get(PRIMARY.get(doc["study"], ""), {})
    if holds is False and (corr.get("spearman_rho") or 0) > 0:
        return "same direction, **not significant** (p >= 0.05)"
    return {True: "agrees", False: "**disagrees**", None: "-"}[holds]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path)
    parser.add_argument("--figures", type=Path, default=None)
    args = parser.parse_args()
    print("| data set | study | records / model / seeds | survey claim | our measurement | verdict |")
    print("|---|---|---|---|---|---|")
    for path in sorted(args.results.glob("*/*/study.json")):
        doc = json.loads(path.read_text())
        ctx = doc["context"]
        setting = f"{ctx['records']} / {ctx['model'] or 'per row'} / {len(ctx['seeds'])}"
        print(f"| {ctx['dataset']} | {doc['study']} | {setting} | {doc['claim']} | {measurement(doc)} | {verdict(doc)} |")
        if args.figures is not None and (path.parent / "plot.png").is_file():
            args.figures.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path.parent / "plot.png", args.figures / f"{path.parent.parent.name}-{doc['study']}.png")


if __name__ == "__main__":
    main()
