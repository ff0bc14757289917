"""Writing an audit's results: ``results.json`` (config, target, metrics) and ``scores.csv``.

``scores.csv`` has one row per evaluated record: its index in the data set, its membership
truth, and each attack's score, so any metric can be recomputed outside miaudit.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from miaudit import __version__
from miaudit.experiments.audit import AttackOutcome, AuditResult
from miaudit.experiments.store import write_scores_csv
from miaudit.io_utils import atomic_path
from miaudit.provenance import versions
from miaudit.threat import ThreatModel


def _threat_dict(threat: ThreatModel | None) -> dict[str, Any] | None:
    if threat is None:
        return None
    return {
        "name": threat.name,
        "output": threat.output.name.lower().replace("_", "-"),
        "top_k": threat.top_k,
        "knows_architecture": threat.knows_architecture,
        "knows_parameters": threat.knows_parameters,
        "knows_training_recipe": threat.knows_training_recipe,
        "data": threat.data.name.lower().replace("_", "-"),
        "query_budget_per_attack": threat.query_budget,
        "price_per_query": threat.price_per_query,
    }


def attack_summary(o: AttackOutcome, price: float | None) -> dict[str, Any]:
    """One attack's entry of ``results.json``: its metrics, queries, cost and details."""
    out: dict[str, Any] = {
        **o.metrics.to_dict(),
        "queries": o.queries,
        "queries_per_record": o.result.queries_per_record,
    }
    if price is not None:
        out["cost"] = o.queries * price
    out["details"] = o.result.details
    return out


def result_summary(result: AuditResult) -> dict[str, Any]:
    """The JSON-able summary of an audit (everything but the per-record scores)."""
    cfg = dataclasses.asdict(result.config)
    threat = result.threat
    price = threat.price_per_query if threat is not None else None
    cfg["split"] = result.split.sizes()
    return {
        "miaudit_version": __version__,
        "versions": versions(),
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
        "threat_model": threat.name if threat is not None else result.config.threat_model,
        "threat": _threat_dict(threat),
        "attacks": {o.result.attack: attack_summary(o, price) for o in result.outcomes},
        "skipped": result.skipped,
        "defense": result.defense,
    }


def write_results(result: AuditResult, out_dir: Path) -> tuple[Path, Path]:
    """Write ``results.json`` and ``scores.csv`` into ``out_dir`` atomically; return their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, csv_path = out_dir / "results.json", out_dir / "scores.csv"
    with atomic_path(json_path) as tmp:
        tmp.write_text(json.dumps(result_summary(result), indent=2, sort_keys=False) + "\n")
    scores = {o.result.attack: o.result.scores for o in result.outcomes}
    write_scores_csv(csv_path, result.record_indices, result.is_member, scores)
    return json_path, csv_path
