"""The empirical-epsilon section's input: ``privacy_audit.json`` written by ``miaudit privacy-audit --out``.

The file holds every epsilon bound of the audit (method, kind ``lower bound`` / ``estimate``,
epsilon in nats, confidence, delta, how the threshold or guess counts were selected, counts,
paper, the ratio to the accountant's epsilon), the accountant's epsilon (None: non-private),
delta, the number of trials (canaries or runs) and the audit's configuration. Every value the
report shows is checked here; a damaged file is a :class:`ReportError` (one line).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from miaudit.report.inputs import ReportError, _number, _read_json

PRIVACY_AUDIT_FILE = "privacy_audit.json"
SCHEMA = "miaudit.privacy-audit"
SCHEMA_VERSION = 1
KINDS = ("lower bound", "estimate")
MAX_BOUNDS = 100  # a real audit has one to three; more is not a privacy_audit.json
RATIO_TOLERANCE = 1e-9


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise ReportError(f"{what} must be a non-empty string, got {value!r}")
    return value


def _count(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ReportError(f"{what} must be a whole number >= 0, got {value!r}")
    return value


def _check_bound(row: Any, what: str, accountant: float | None) -> None:
    if not isinstance(row, dict):
        raise ReportError(f"{what} must be an object")
    _text(row.get("method"), f"{what} method")
    if row.get("kind") not in KINDS:
        raise ReportError(f"{what} kind must be one of {', '.join(map(repr, KINDS))}, got {row.get('kind')!r}")
    epsilon = _number(row.get("epsilon"), f"{what} epsilon", 0.0)
    confidence = row.get("confidence")
    # An estimate has no confidence level: privacy-audit writes null.
    if not (row["kind"] == "estimate" and confidence is None):
        if _number(confidence, f"{what} confidence", 0.0, 1.0) in (0.0, 1.0):
            raise ReportError(f"{what} confidence must lie strictly between 0 and 1, got {confidence!r}")
    _number(row.get("delta"), f"{what} delta", 0.0, 1.0)
    _text(row.get("selection"), f"{what} selection")
    for key in ("choice", "counts"):
        if not isinstance(row.get(key, {}), dict):
            raise ReportError(f"{what} {key} must be an object")
    for key, value in row.get("counts", {}).items():
        _count(value, f"{what} counts.{key}")
    if not isinstance(row.get("paper", ""), str):
        raise ReportError(f"{what} paper must be a string")
    ratio = row.get("ratio_to_accountant")
    if ratio is not None:
        _number(ratio, f"{what} ratio_to_accountant", 0.0)
        if accountant is None or not math.isclose(ratio, epsilon / accountant, rel_tol=RATIO_TOLERANCE, abs_tol=RATIO_TOLERANCE):
            raise ReportError(f"{what} ratio_to_accountant {ratio!r} is not its epsilon over the accountant's epsilon; the file was edited")


def check_privacy_audit(doc: Any, path: Path) -> dict[str, Any]:
    """``doc`` (``privacy_audit.json``'s content) if every field the report shows is well formed."""
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
        raise ReportError(f"{path} is not a miaudit privacy_audit.json (schema {SCHEMA!r}); rerun `miaudit privacy-audit`")
    version = doc.get("schema_version")
    if isinstance(version, bool) or not isinstance(version, int) or version > SCHEMA_VERSION or version < 1:
        raise ReportError(f"{path} has schema_version {version!r}; this miaudit reads version {SCHEMA_VERSION}: upgrade miaudit or rerun the audit")
    config = doc.get("config")
    if not isinstance(config, dict):
        raise ReportError(f"{path} has no 'config' object; rerun `miaudit privacy-audit`")
    for key in ("dataset", "mode", "canary_kind", "attack"):
        _text(config.get(key), f"{path}: config.{key}")
    accountant = doc.get("accountant_epsilon")
    if accountant is not None:
        accountant = _number(accountant, f"{path}: accountant_epsilon", 0.0)
    _number(doc.get("delta"), f"{path}: delta", 0.0, 1.0)
    if _count(doc.get("trials"), f"{path}: trials") < 1:
        raise ReportError(f"{path}: trials must be at least 1")
    bounds = doc.get("bounds")
    if not isinstance(bounds, list) or not bounds or len(bounds) > MAX_BOUNDS:
        raise ReportError(f"{path} must hold a list of 1 to {MAX_BOUNDS} bounds; rerun `miaudit privacy-audit`")
    for i, row in enumerate(bounds):
        _check_bound(row, f"{path}: bound {i}", accountant if accountant else None)
    if doc.get("versions") is not None and not isinstance(doc["versions"], dict):
        raise ReportError(f"{path}: versions must be an object")
    return doc


def read_privacy_audit(run_dir: Path) -> dict[str, Any] | None:
    """``run_dir/privacy_audit.json``, read and checked; None when the folder has none."""
    path = run_dir / PRIVACY_AUDIT_FILE
    if not os.path.lexists(path):  # present but not a regular file (a FIFO, a link to a device): refused by _read_json
        return None
    return check_privacy_audit(_read_json(path), path)
