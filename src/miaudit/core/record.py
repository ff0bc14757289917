"""The audit record: one typed, schema-versioned result for every kind of audit.

Every front door (``audit`` with a data set, a model file, a Python object, a URL or
precomputed outputs; grids, ``defend``, ``reproduce``, studies) writes the same record:

- ``results.json``: :data:`SCHEMA`, :data:`SCHEMA_VERSION`, provenance (versions), the config,
  the data (name, size, classes, fingerprint, preprocessing), the target (its source, model,
  accuracies, the attacker's stand-in), the threat model, the evaluated records' counts and
  notes, per-attack metrics, skipped attacks with reasons, the defense, warnings and the
  **verdict** (:mod:`miaudit.verdict`, computed here, never in the report);
- ``scores.csv``: one row per evaluated record: its index (a row of the data set; for the
  user's own files, training rows first, then test rows, then pool rows), its membership truth
  and every attack's score;
- ``documents.jsonl`` for text audits: each evaluated document's first characters
  (:mod:`miaudit.core.excerpts`), which the report shows beside the most exposed records;
- ``report.html`` on request (:func:`miaudit.report.write_report`).

:func:`read` loads a folder back as an :class:`AuditRecord`; :meth:`AuditRecord.table` gives
one pandas row per attack.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from miaudit import __version__
from miaudit.errors import MiauditError
from miaudit.io_utils import atomic_path
from miaudit.verdict import HEADLINE_ORDER, Verdict, compute_verdict

SCHEMA = "miaudit.audit-record"
SCHEMA_VERSION = 2
"""Version 1 (miaudit <= 0.1 before the one-core record) had no ``schema`` and no verdict."""

RESULTS_FILE = "results.json"
SCORES_FILE = "scores.csv"
_NOT_SERIALISED = ("target", "own_data", "shadow_model")  # live objects; described instead


def write_scores_csv(path: Path, record_indices: Any, is_member: Any, scores: dict[str, Any]) -> None:
    """One row per record: index, membership truth, each attack's score (``repr``: exact)."""
    names = list(scores)
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["record_index", "is_member", *names])
        for row, (idx, member) in enumerate(zip(record_indices, is_member)):
            writer.writerow([int(idx), int(member), *(repr(float(scores[n][row])) for n in names)])


def threat_dict(threat: Any) -> dict[str, Any] | None:
    """The threat model as JSON: output access, knowledge of model / recipe / data, budget, price."""
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


def attack_summary(outcome: Any, price: float | None, calibrated: bool = True) -> dict[str, Any]:
    """One attack's entry of ``results.json``: its metrics, queries, cost, calibration and details."""
    out: dict[str, Any] = {
        **outcome.metrics.to_dict(),
        "queries": outcome.queries,
        "queries_per_record": outcome.result.queries_per_record,
        "calibrated": calibrated,
    }
    if price is not None:
        out["cost"] = outcome.queries * price
    out["details"] = outcome.result.details
    return out


def _config_dict(config: Any, split_sizes: dict[str, int], result: Any) -> dict[str, Any]:
    cfg = {f.name: getattr(config, f.name) for f in fields(config) if f.name not in _NOT_SERIALISED}
    cfg["split"] = split_sizes
    cfg["target_source"] = result.source
    cfg["shadow_model"] = result.stand_in
    return json.loads(json.dumps(cfg, default=str))  # JSON-safe (tuples -> lists, odd values -> str)


def summary_of(result: Any, verdict: Verdict | None) -> dict[str, Any]:
    """The JSON-able record of a finished audit (an ``AuditResult``), everything but the scores."""
    threat = result.threat
    price = threat.price_per_query if threat is not None else None
    dataset = result.dataset
    own = result.config.own_data
    data: dict[str, Any] = {
        "name": dataset.name,
        "records": len(dataset),
        "num_classes": dataset.num_classes,
        "fingerprint": dataset.fingerprint,
        "class_names": list(dataset.class_names),
    }
    if own is not None:
        data["preprocessing"] = own.preprocessing
    uncalibrated = set(result.uncalibrated)
    return _summary(
        kind=result.source_kind,
        config=_config_dict(result.config, result.split.sizes(), result),
        dataset=data,
        target={
            "source": result.source,
            "model": result.model_name,
            "options": result.model_options,
            "recipe": result.recipe,
            "seed": result.config.seed,
            "train_accuracy": result.train_accuracy,
            "test_accuracy": result.test_accuracy,
            "stand_in": result.stand_in,
        },
        threat_model=threat.name if threat is not None else result.config.threat_model,
        threat=threat_dict(threat),
        is_member=np.asarray(result.is_member, dtype=bool),
        notes=result.notes,
        attacks={o.result.attack: attack_summary(o, price, o.result.attack not in uncalibrated) for o in result.outcomes},
        skipped=result.skipped,
        defense=result.defense,
        warnings=result.warnings,
        verdict=verdict,
    )


def _summary(
    *, kind: str, config: dict[str, Any], dataset: dict[str, Any], target: dict[str, Any], threat_model: str,
    threat: dict[str, Any] | None, is_member: np.ndarray, notes: Any, attacks: dict[str, Any],
    skipped: dict[str, str], defense: dict[str, Any] | None, warnings: Any, verdict: Verdict | None,
) -> dict[str, Any]:
    """``results.json``: the one layout every kind of audit writes (schema and provenance first)."""
    from miaudit.provenance import versions

    return {
        "schema": SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "miaudit_version": __version__,
        "versions": versions(),
        "kind": kind,
        "config": config,
        "dataset": dataset,
        "target": target,
        "threat_model": threat_model,
        "threat": threat,
        "evaluation": {"members": int(is_member.sum()), "non_members": int((~is_member).sum()), "notes": list(notes)},
        "attacks": attacks,
        "skipped": skipped,
        "defense": defense,
        "warnings": list(warnings),
        "verdict": verdict.to_dict() if verdict is not None else None,
    }


def verdict_of(scores: dict[str, Any], is_member: np.ndarray, headline_order: tuple[str, ...] = HEADLINE_ORDER) -> Verdict | None:
    """The verdict over every attack's scores (None when no attack ran); the headline is the
    first of ``headline_order`` that ran (the classifier attacks' order by default)."""
    if not scores:
        return None
    arrays = {name: np.asarray(values, dtype=np.float64) for name, values in scores.items()}
    return compute_verdict(arrays, np.asarray(is_member, dtype=bool), headline_order=headline_order)


@dataclass(frozen=True)
class AuditRecord:
    """One audit: its ``summary`` (the content of ``results.json``), the evaluated records'
    indices and membership truth, and every attack's scores. ``result`` holds the live objects
    (data set, split, trained target) when the audit ran in this process; None when read."""

    summary: dict[str, Any]
    record_indices: np.ndarray
    is_member: np.ndarray
    scores: dict[str, np.ndarray]
    result: Any = None
    excerpts: tuple[str, ...] | None = None  # text audits: each evaluated document, in record order

    def with_excerpts(self, texts: Any) -> "AuditRecord":
        """This record with the evaluated documents' text (one per record, in record order),
        written as ``documents.jsonl`` for the report's most exposed documents."""
        from dataclasses import replace

        texts = tuple(str(t) for t in texts)
        if len(texts) != len(self.record_indices):
            raise ValueError(f"{len(texts)} documents for {len(self.record_indices)} evaluated records")
        return replace(self, excerpts=texts)

    @property
    def verdict(self) -> Verdict | None:
        """The audit's verdict (None when no attack ran)."""
        v = self.summary.get("verdict")
        return Verdict.from_dict(v) if v else None

    @property
    def attacks(self) -> dict[str, dict[str, Any]]:
        return self.summary["attacks"]

    @property
    def warnings(self) -> list[str]:
        return list(self.summary.get("warnings", []))

    def table(self) -> Any:
        """One row per attack (pandas DataFrame), strongest AUC first: AUC with its interval,
        TPR at 1% and 0.1% FPR, balanced accuracy (at the attack's own threshold, None if
        uncalibrated), advantage (an upper bound: its threshold is chosen on the truth), the
        verdict's p-value and Holm-adjusted p-value, calibration and queries per record."""
        import pandas as pd

        verdict = self.verdict
        rows = []
        for name, e in self.attacks.items():
            ci = e.get("auc_ci") or (None, None)
            tpr = e.get("tpr_at_fpr", {})
            rows.append({
                "attack": name,
                "auc": e["auc"],
                "auc_ci_low": ci[0],
                "auc_ci_high": ci[1],
                "tpr_at_1pct_fpr": tpr.get("0.01"),
                "tpr_at_0.1pct_fpr": tpr.get("0.001"),
                "balanced_accuracy": e.get("balanced_accuracy") if e.get("threshold") is not None else None,
                "advantage_upper_bound": e.get("advantage"),
                "p_value": verdict.p_values.get(name) if verdict else None,
                "holm_p_value": verdict.adjusted_p_values.get(name) if verdict else None,
                "calibrated": e.get("calibrated", True),
                "threshold_source": e.get("threshold_source"),
                "queries_per_record": e.get("queries_per_record"),
            })  # fmt: skip
        frame = pd.DataFrame(rows)
        return frame.sort_values("auc", ascending=False, kind="stable").reset_index(drop=True) if rows else frame

    def roc(self, attack: str) -> Any:
        """The ROC curve of ``attack`` (pandas DataFrame: fpr, tpr), from its scores and the truth."""
        import pandas as pd

        from miaudit import metrics

        if attack not in self.scores:
            raise MiauditError(f"no scores for attack {attack!r}; this audit ran: {', '.join(self.scores) or '(none)'}")
        fpr, tpr, _ = metrics.roc_curve(self.scores[attack], self.is_member)
        return pd.DataFrame({"fpr": fpr, "tpr": tpr})

    def to_json(self) -> str:
        return json.dumps(self.summary, indent=2) + "\n"

    def write(self, out_dir: str | Path, *, report: bool = True) -> dict[str, Path]:
        """``results.json``, ``scores.csv`` and (with ``report``, when an attack ran) ``report.html``."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        paths = {"results": out / RESULTS_FILE, "scores": out / SCORES_FILE}
        with atomic_path(paths["results"]) as tmp:
            tmp.write_text(self.to_json())
        write_scores_csv(paths["scores"], self.record_indices, self.is_member, self.scores)
        if self.excerpts is not None:
            from miaudit.core.excerpts import EXCERPTS_FILE, write_excerpts

            paths["documents"] = out / EXCERPTS_FILE
            write_excerpts(paths["documents"], self.record_indices.tolist(), self.excerpts)
        if report and self.scores:
            from miaudit.report import write_report

            paths["report"] = write_report(out)
        return paths


def record_of(result: Any) -> AuditRecord:
    """The record of a finished audit (an :class:`~miaudit.experiments.audit.AuditResult`)."""
    scores = {o.result.attack: np.asarray(o.result.scores, dtype=np.float64) for o in result.outcomes}
    is_member = np.asarray(result.is_member, dtype=bool)
    summary = summary_of(result, verdict_of(scores, is_member))
    return AuditRecord(summary, np.asarray(result.record_indices), is_member, scores, result)


def record_from_scores(
    *,
    kind: str,
    dataset: dict[str, Any],
    target: dict[str, Any],
    config: dict[str, Any],
    threat_model: str,
    scores: dict[str, np.ndarray],
    is_member: np.ndarray,
    record_indices: np.ndarray,
    details: dict[str, dict[str, Any]] | None = None,
    notes: list[str] | tuple[str, ...] = (),
    n_bootstrap: int = 0,
    seed: int = 0,
    headline_order: tuple[str, ...] = HEADLINE_ORDER,
) -> AuditRecord:
    """A record from scores computed outside :func:`run_audit` (e.g. the many-target protocol,
    which scores every target from models' outputs computed once, or a text audit). Metrics and
    the verdict are computed here exactly as for any audit; ``dataset`` / ``target`` /
    ``config`` are the front door's own descriptions; ``headline_order`` ranks the attacks for
    the verdict's headline (fixed in advance, never from the truth)."""
    from miaudit import metrics

    is_member = np.asarray(is_member, dtype=bool)
    arrays = {n: np.asarray(v, dtype=np.float64) for n, v in scores.items()}
    attacks = {}
    for name, values in arrays.items():
        m = metrics.evaluate(values, is_member, n_bootstrap=n_bootstrap, seed=seed)
        attacks[name] = {**m.to_dict(), "calibrated": True, "queries_per_record": 0.0, "details": (details or {}).get(name, {})}
    summary = _summary(
        kind=kind, config=json.loads(json.dumps(config, default=str)), dataset=dataset, target=target,
        threat_model=threat_model, threat=None, is_member=is_member, notes=notes, attacks=attacks, skipped={},
        defense=None, warnings=(), verdict=verdict_of(arrays, is_member, headline_order),
    )  # fmt: skip
    return AuditRecord(summary, np.asarray(record_indices), is_member, arrays)


def read(run_dir: str | Path) -> AuditRecord:
    """The audit record in ``run_dir`` (``results.json`` + ``scores.csv``), checked."""
    from miaudit.report.inputs import ReportError, read_results, read_scores

    folder = Path(run_dir)
    summary = read_results(folder)
    if summary.get("schema") != SCHEMA or summary.get("schema_version") != SCHEMA_VERSION:
        found = summary.get("schema_version", 1)
        raise ReportError(
            f"{folder / RESULTS_FILE} is audit-record schema version {found}; this miaudit reads version {SCHEMA_VERSION}: rerun the audit"
        )
    names = list(summary["attacks"])
    if not names:
        return AuditRecord(summary, np.arange(0), np.zeros(0, bool), {})
    scores = read_scores(folder / SCORES_FILE, names)
    return AuditRecord(summary, scores.record_index, scores.is_member, dict(scores.by_attack))
