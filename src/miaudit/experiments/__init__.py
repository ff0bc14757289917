"""Config-driven runs: the audit pipeline, per-data-set defaults, and the results store."""

from miaudit.experiments.audit import AuditConfig, AuditResult, run_audit
from miaudit.experiments.results import result_summary, write_results

__all__ = ["AuditConfig", "AuditResult", "result_summary", "run_audit", "write_results"]
