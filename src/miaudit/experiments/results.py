"""Writing an audit's results: ``results.json`` (config, target, metrics) and ``scores.csv``.

``scores.csv`` has one row per evaluated record: its index in the data set, its membership
truth, and each attack's score, so any metric can be recomputed outside miaudit.
"""

from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path
from typing import Any

from miaudit import __version__
from miaudit.experiments.audit import AuditResult
from miaudit.io_utils import atomic_path


def result_summary(result: AuditResult) -> dict[str, Any]:
    """The JSON-able summary of an audit (everything but the per-record scores)."""
    cfg = dataclasses.asdict(result.config)
    cfg["split"] = result.split.sizes()
    return {
        "miaudit_version": __version__,
        "config": cfg,
        "dataset": {
            "name": result.dataset.name,
            "records": len(result.dataset),
            "num_classes": result.dataset.num_classes,
            "fingerprint": result.dataset.fingerprint,
        },
        "target": {
            "model": result.model_name,
            "options": result.model_options,
            "recipe": result.recipe,
            "seed": result.config.seed,
            "train_accuracy": result.train_accuracy,
            "test_accuracy": result.test_accuracy,
        },
        "threat_model": result.config.threat_model,
        "attacks": {
            o.result.attack: {
                **o.metrics.to_dict(),
                "queries_per_record": o.result.queries_per_record,
                "details": o.result.details,
            }
            for o in result.outcomes
        },
        "skipped": result.skipped,
    }


def write_results(result: AuditResult, out_dir: Path) -> tuple[Path, Path]:
    """Write ``results.json`` and ``scores.csv`` into ``out_dir`` atomically; return their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, csv_path = out_dir / "results.json", out_dir / "scores.csv"
    with atomic_path(json_path) as tmp:
        tmp.write_text(json.dumps(result_summary(result), indent=2, sort_keys=False) + "\n")
    names = [o.result.attack for o in result.outcomes]
    with atomic_path(csv_path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["record_index", "is_member", *names])
        for row, (idx, member) in enumerate(zip(result.record_indices, result.is_member)):
            writer.writerow([int(idx), int(member), *(repr(float(o.result.scores[row])) for o in result.outcomes)])
    return json_path, csv_path
