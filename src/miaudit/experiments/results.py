"""Writing an audit's results: the audit record (:mod:`miaudit.core.record`).

Kept as the experiments' names for the record's functions: ``result_summary`` is the content of
``results.json``, ``write_results`` writes ``results.json`` and ``scores.csv``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from miaudit.core.record import attack_summary, threat_dict
from miaudit.experiments.audit import AuditResult

__all__ = ["attack_summary", "result_summary", "threat_dict", "write_results"]


def result_summary(result: AuditResult) -> dict[str, Any]:
    """The JSON-able record of an audit (everything but the per-record scores), verdict included."""
    return result.record().summary


def write_results(result: AuditResult, out_dir: Path) -> tuple[Path, Path]:
    """Write ``results.json`` and ``scores.csv`` into ``out_dir`` atomically; return their paths."""
    paths = result.record().write(out_dir, report=False)
    return paths["results"], paths["scores"]
