"""The defenses section's input: ``privacy_utility.json`` written by ``miaudit defend --out``.

A defend folder holds the table (``privacy_utility.json``, its plot ``privacy_utility.png``) and
one audit per defense and seed (``<defense>/seed-<n>/results.json`` + ``scores.csv``). The
report shows the table's rows (the headline attack chosen without the truth, its TPR at 1% FPR
and AUC, the verdicts, the inversion flag, the upper bound labelled as such) and, for the
page's audit sections, the first audit of the first row (usually the undefended target). Every
value is checked; a folder named in the file must lie inside the run folder.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from miaudit.report.inputs import RESULTS_FILE, ReportError, RunInputs, _check_png, _number, _read_json, read_run
from miaudit.report.privacy_inputs import read_privacy_audit

PRIVACY_UTILITY_FILE = "privacy_utility.json"
PRIVACY_UTILITY_PNG = "privacy_utility.png"
#: Table columns shown, in order: (column title, row key).
COLUMNS: tuple[tuple[str, str], ...] = (
    ("name", "defense"),
    ("test_accuracy", "test_accuracy"),
    ("headline attack (chosen without the truth)", "headline_attack"),
    ("tpr_at_1pct_fpr", "headline_tpr_at_1pct_fpr"),
    ("tpr_at_1pct_fpr std over seeds", "headline_tpr_at_1pct_fpr_std"),
    ("auc", "headline_auc"),
    ("auc std over seeds", "headline_auc_std"),
    ("verdict per seed", "verdicts"),
    ("flag", "flag"),
    ("upper bound (max over attacks on the target's truth): TPR@1%FPR", "upper_bound_tpr_at_1pct_fpr"),
    ("upper bound (max over attacks on the target's truth): AUC", "upper_bound_auc"),
    ("upper bound attack", "upper_bound_auc_attack"),
    ("seeds", "n_seeds"),
)


def _probability(row: dict[str, Any], key: str, what: str) -> float | None:
    value = row.get(key)
    return None if value is None else _number(value, f"{what} {key}", 0.0, 1.0)


def _table_row(row: Any, what: str) -> dict[str, Any]:
    """One report row from one ``privacy_utility.json`` row (``auc`` and ``test_accuracy`` required)."""
    if not isinstance(row, dict) or not isinstance(row.get("defense"), str):
        raise ReportError(f"{what} must be an object with a string 'defense'")
    out: dict[str, Any] = {}
    for title, key in COLUMNS:
        value = row.get(key)
        if key.endswith(("accuracy", "auc", "fpr")) or key.endswith("_std"):
            value = _probability(row, key, what)
        elif key == "verdicts":
            value = " / ".join(str(v) for v in value) if isinstance(value, list) else None
        elif value is not None and not isinstance(value, (str, int)):
            raise ReportError(f"{what} {key} must be a string or a number, got {value!r}")
        out[title] = value
    for required in ("test_accuracy", "auc"):
        if out[required] is None:
            raise ReportError(f"{what} has no {required}; rerun `miaudit defend`")
    return out


def _inside(run_dir: Path, folder: Any, path: Path) -> Path:
    if not isinstance(folder, str) or not folder:
        raise ReportError(f"{path}: an audit folder must be a non-empty string, got {folder!r}")
    target = (run_dir / folder).resolve()
    if run_dir.resolve() not in target.parents:
        raise ReportError(f"{path}: audit folder {folder!r} lies outside {run_dir}")
    return target


def read_privacy_utility(run_dir: Path) -> tuple[list[dict[str, Any]], Path | None, dict[str, Any]]:
    """``(rows, first audit folder or None, protocol)`` of ``run_dir/privacy_utility.json``."""
    path = run_dir / PRIVACY_UTILITY_FILE
    doc = _read_json(path)
    if not isinstance(doc, dict) or not isinstance(doc.get("rows"), list) or not doc["rows"]:
        raise ReportError(f"{path} has no rows; is it the privacy_utility.json of `miaudit defend --out`?")
    rows = [_table_row(r, f"{path}: row {i}") for i, r in enumerate(doc["rows"])]
    first = None
    per_seed = doc.get("per_seed")
    runs = per_seed.get(doc["rows"][0]["defense"]) if isinstance(per_seed, dict) else None
    if isinstance(runs, list) and runs and isinstance(runs[0], dict) and "folder" in runs[0]:
        first = _inside(run_dir, runs[0]["folder"], path)
    protocol = doc.get("protocol") if isinstance(doc.get("protocol"), dict) else {}
    return rows, first, protocol


def read_report_inputs(run_dir: Path) -> RunInputs:
    """What the report shows for ``run_dir``: an audit folder as :func:`read_run` reads it; a
    defend folder (``privacy_utility.json``) with its table and plot in the defenses section and,
    without a ``results.json`` of its own, its first audit in the audit sections; and a
    ``privacy_audit.json`` (:mod:`miaudit.report.privacy_inputs`) in the empirical-epsilon
    section, alone when the folder holds no audit."""
    privacy = read_privacy_audit(run_dir) if run_dir.is_dir() else None
    if privacy is not None and not any((run_dir / name).is_file() for name in (RESULTS_FILE, PRIVACY_UTILITY_FILE)):
        return RunInputs(run_dir, None, None, privacy_audit=privacy)
    return dataclasses.replace(_audit_inputs(run_dir), privacy_audit=privacy)


def _audit_inputs(run_dir: Path) -> RunInputs:
    if not (run_dir / PRIVACY_UTILITY_FILE).is_file():
        return read_run(run_dir)
    rows, first, protocol = read_privacy_utility(run_dir)
    audit_dir, note = run_dir, None
    if not (run_dir / RESULTS_FILE).is_file():
        if first is None:
            raise ReportError(f"{run_dir / PRIVACY_UTILITY_FILE} names no audit folder; rerun `miaudit defend --out`")
        audit_dir = first
        note = (f"The audit sections show {first.relative_to(run_dir.resolve())} (the first defense and seed); "
                f"the table covers every defense over seeds {protocol.get('seeds', '?')}.")  # fmt: skip
    png = _check_png(run_dir / PRIVACY_UTILITY_PNG) if (run_dir / PRIVACY_UTILITY_PNG).is_file() else None
    return dataclasses.replace(
        read_run(run_dir, audit_dir), defenses=rows, defenses_baseline=None, defenses_png=png,
        defenses_source=PRIVACY_UTILITY_FILE, defenses_note=note,
    )  # fmt: skip
