"""Reading a run folder for the report, trusting nothing in it.

Files (all in RUN_DIR):
- ``results.json`` and ``scores.csv`` from ``miaudit audit`` (required);
- ``privacy_utility.json`` + ``privacy_utility.png`` (optional), written by ``miaudit defend --out``
  (:mod:`miaudit.report.defend_inputs`; a defend folder's audit sections come from its first audit);
- ``defenses.json`` (optional, an older hand-written form; see :data:`DEFENSES_FILE`);
- ``studies/<name>/study.json`` + ``plot.png`` (optional), written by ``miaudit study --out``;
- ``documents.jsonl`` (optional), a text audit's document excerpts (:mod:`miaudit.core.excerpts`),
  shown beside the most exposed records;
- ``privacy_audit.json`` (optional), written by ``miaudit privacy-audit --out``
  (:mod:`miaudit.report.privacy_inputs`; a folder holding it and no ``results.json`` is reported
  with the empirical-epsilon section alone).

Every malformed file is a :class:`ReportError` with one line saying what to fix; nothing is
unpickled or executed, images are checked to be PNG files before they are embedded.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from miaudit.bounded_io import regular_file
from miaudit.core.excerpts import EXCERPTS_FILE, MAX_EXCERPT_CHARS, MAX_EXCERPTS_BYTES
from miaudit.errors import MiauditError

RESULTS_FILE = "results.json"
SCORES_FILE = "scores.csv"
DEFENSES_FILE = "defenses.json"
"""Optional defense trade-off table. Either a list of rows or ``{"defenses": [rows], "baseline": row}``;
each row an object with ``name`` (str), ``test_accuracy`` (number in [0, 1]) and ``auc`` (number in
[0, 1]), optionally ``tpr_at_1pct_fpr``, ``attack`` and any other scalar fields (shown in the table)."""
STUDIES_DIR = "studies"
MAX_JSON_BYTES = 64 * 2**20
MAX_PNG_BYTES = 16 * 2**20
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class ReportError(MiauditError):
    """A run folder the report cannot use (missing or malformed file)."""


@dataclass(frozen=True)
class Scores:
    """``scores.csv``: record indices, membership truth and one score column per attack."""

    record_index: np.ndarray
    is_member: np.ndarray
    by_attack: dict[str, np.ndarray]


@dataclass(frozen=True)
class StudyEntry:
    name: str
    doc: dict[str, Any]
    png: bytes | None


@dataclass(frozen=True)
class RunInputs:
    """What the report shows. ``results`` and ``scores`` are None only for a folder holding a
    ``privacy_audit.json`` and no audit (the page then has the empirical-epsilon section alone)."""

    run_dir: Path
    results: dict[str, Any] | None
    scores: Scores | None
    defenses: list[dict[str, Any]] | None = None
    defenses_baseline: dict[str, Any] | None = None
    studies: list[StudyEntry] = field(default_factory=list)
    defenses_png: bytes | None = None  # the defend command's own plot, shown as it is
    defenses_source: str = DEFENSES_FILE
    defenses_note: str | None = None  # what the page's audit sections show, for a defend folder
    privacy_audit: dict[str, Any] | None = None  # privacy_audit.json, checked
    excerpts: dict[int, str] | None = None  # documents.jsonl of a text audit: record index -> excerpt


def _read_json(path: Path) -> Any:
    regular_file(path, "results file")  # a link to /dev/zero has size 0 and would be read forever
    if path.stat().st_size > MAX_JSON_BYTES:
        raise ReportError(f"{path} is larger than {MAX_JSON_BYTES >> 20} MiB; is it the right file?")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ReportError(f"{path} is not valid JSON ({exc}); rerun the command that wrote it") from None


def _number(value: Any, what: str, low: float | None = None, high: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ReportError(f"{what} must be a finite number, got {value!r}")
    if (low is not None and value < low) or (high is not None and value > high):
        raise ReportError(f"{what} must lie in [{low}, {high}], got {value!r}")
    return float(value)


def _check_results(doc: Any, path: Path) -> dict[str, Any]:
    if not isinstance(doc, dict) or not isinstance(doc.get("attacks"), dict):
        raise ReportError(f"{path} has no 'attacks' object; is it a miaudit audit's results.json?")
    for name, entry in doc["attacks"].items():
        if not isinstance(entry, dict):
            raise ReportError(f"{path}: attack {name!r} is not an object")
        _number(entry.get("auc"), f"{path}: attacks.{name}.auc", 0.0, 1.0)
        tprs = entry.get("tpr_at_fpr", {})
        if not isinstance(tprs, dict):
            raise ReportError(f"{path}: attacks.{name}.tpr_at_fpr must be an object")
        for level, tpr in tprs.items():
            if tpr is not None:
                _number(tpr, f"{path}: attacks.{name}.tpr_at_fpr[{level}]", 0.0, 1.0)
    for key in ("dataset", "target", "config"):
        if not isinstance(doc.get(key), dict):
            raise ReportError(f"{path} has no {key!r} object; is it a miaudit audit's results.json?")
    return doc


def read_scores(path: Path, attacks: list[str]) -> Scores:
    """Parse ``scores.csv`` and check it matches ``results.json``'s attacks."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            rows = list(reader)
    except (UnicodeDecodeError, csv.Error) as exc:
        raise ReportError(f"{path} is not a readable CSV file ({exc})") from None
    if not header or header[:2] != ["record_index", "is_member"]:
        raise ReportError(f"{path} must start with columns record_index,is_member; is it an audit's scores.csv?")
    missing = sorted(set(attacks) - set(header[2:]))
    if missing:
        raise ReportError(f"{path} has no score column for {', '.join(missing)} that results.json reports")
    if not rows or any(len(r) != len(header) for r in rows):
        raise ReportError(f"{path}: every row must have {len(header)} fields, and there must be rows")
    try:
        table = np.array(rows, dtype=np.float64)
    except ValueError:
        raise ReportError(f"{path} holds a value that is not a number") from None
    # Scores may be +-inf (e.g. a label-only attack's distance 0); NaN says nothing and is refused.
    if np.isnan(table).any() or not np.isfinite(table[:, :2]).all():
        raise ReportError(f"{path} holds NaN values (or a non-finite index / membership)")
    member = table[:, 1]
    if not np.isin(member, (0.0, 1.0)).all() or member.min() == member.max():
        raise ReportError(f"{path}: is_member must be 0 or 1, with both present")
    return Scores(
        record_index=table[:, 0].astype(np.int64),
        is_member=member.astype(bool),
        by_attack={name: table[:, header.index(name)] for name in attacks},
    )


def _check_png(path: Path) -> bytes | None:
    if not path.is_file():
        return None
    if path.stat().st_size > MAX_PNG_BYTES:
        raise ReportError(f"{path} is larger than {MAX_PNG_BYTES >> 20} MiB")
    data = path.read_bytes()
    from PIL import Image

    try:
        if not data.startswith(PNG_SIGNATURE):
            raise ValueError("no PNG signature")
        Image.open(io.BytesIO(data)).verify()
    except Exception as exc:  # PIL raises many types for corrupt images
        raise ReportError(f"{path} is not a valid PNG image ({exc}); rerun the study") from None
    return data


def _check_defense_row(row: dict[str, Any], what: str) -> None:
    _number(row.get("test_accuracy"), f"{what} test_accuracy", 0.0, 1.0)
    _number(row.get("auc"), f"{what} auc", 0.0, 1.0)
    if row.get("tpr_at_1pct_fpr") is not None:
        _number(row["tpr_at_1pct_fpr"], f"{what} tpr_at_1pct_fpr", 0.0, 1.0)


def _read_defenses(path: Path) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    doc = _read_json(path)
    rows, baseline = (doc, None) if isinstance(doc, list) else (
        (doc.get("defenses"), doc.get("baseline")) if isinstance(doc, dict) else (None, None)
    )
    if not isinstance(rows, list) or not rows:
        raise ReportError(f"{path} must hold a non-empty list of defenses (or {{'defenses': [...]}})")
    for i, row in enumerate(rows):
        if not isinstance(row, dict) or not isinstance(row.get("name"), str):
            raise ReportError(f"{path}: defense {i} must be an object with a string 'name'")
        _check_defense_row(row, f"{path}: defense {row['name']!r}")
    if baseline is not None:
        if not isinstance(baseline, dict):
            raise ReportError(f"{path}: 'baseline' must be an object")
        _check_defense_row(baseline, f"{path}: baseline")
    return rows, baseline


def _read_studies(folder: Path) -> list[StudyEntry]:
    if not folder.is_dir():
        return []
    out = []
    for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
        doc_path = sub / "study.json"
        if not doc_path.is_file():
            continue
        doc = _read_json(doc_path)
        if not isinstance(doc, dict) or not isinstance(doc.get("study"), str) or not isinstance(doc.get("findings"), dict):
            raise ReportError(f"{doc_path} is not a miaudit study.json (no 'study' / 'findings')")
        out.append(StudyEntry(sub.name, doc, _check_png(sub / "plot.png")))
    return out


def read_results(run_dir: Path) -> dict[str, Any]:
    """``results.json`` of ``run_dir``, read and checked."""
    if not run_dir.is_dir():
        raise ReportError(f"{run_dir} is not a folder; pass the --out folder of `miaudit audit`")
    results_path = run_dir / RESULTS_FILE
    if not results_path.is_file():
        raise ReportError(f"{run_dir} has no {RESULTS_FILE}; pass the --out folder of `miaudit audit`")
    return _check_results(_read_json(results_path), results_path)


def read_run(run_dir: Path, audit_dir: Path | None = None) -> RunInputs:
    """Everything the report shows, read and checked from ``run_dir`` (the audit's own files
    from ``audit_dir`` when given: a defend folder's first audit)."""
    audit_dir = audit_dir or run_dir
    results = read_results(audit_dir)
    results_path = audit_dir / RESULTS_FILE
    if not results["attacks"]:
        raise ReportError(f"{results_path} reports no attack (all were skipped); rerun the audit with a wider threat model")
    scores_path = audit_dir / SCORES_FILE
    if not scores_path.is_file():
        raise ReportError(f"{audit_dir} has no {SCORES_FILE}; rerun `miaudit audit` to write it")
    scores = read_scores(scores_path, list(results["attacks"]))
    defenses = baseline = None
    if (run_dir / DEFENSES_FILE).is_file():
        defenses, baseline = _read_defenses(run_dir / DEFENSES_FILE)
    excerpts = read_excerpts(audit_dir / EXCERPTS_FILE) if (audit_dir / EXCERPTS_FILE).exists() else None
    return RunInputs(run_dir, results, scores, defenses, baseline, _read_studies(run_dir / STUDIES_DIR), excerpts=excerpts)


def read_excerpts(path: Path) -> dict[int, str]:
    """``documents.jsonl`` (:mod:`miaudit.core.excerpts`): record index -> excerpt, checked line by
    line (a JSON object with an integer ``record_index`` and a string ``text`` of at most
    :data:`MAX_EXCERPT_CHARS` characters), the whole file within :data:`MAX_EXCERPTS_BYTES`."""
    regular_file(path, "document excerpts")
    if path.stat().st_size > MAX_EXCERPTS_BYTES:
        raise ReportError(f"{path} is over {MAX_EXCERPTS_BYTES} bytes; it is not a miaudit documents.jsonl (rerun the text audit)")
    out: dict[int, str] = {}
    with path.open("rb") as f:
        for number, raw in enumerate(f.read(MAX_EXCERPTS_BYTES + 1).splitlines(), start=1):
            try:
                row = json.loads(raw)
            except (ValueError, UnicodeDecodeError):
                raise ReportError(f"{path} line {number} is not JSON; rerun the text audit to rewrite it") from None
            index, text = (row.get("record_index"), row.get("text")) if isinstance(row, dict) else (None, None)
            if isinstance(index, bool) or not isinstance(index, int) or not isinstance(text, str) or len(text) > MAX_EXCERPT_CHARS:
                raise ReportError(f"{path} line {number} needs an integer record_index and a text of at most {MAX_EXCERPT_CHARS} characters")
            out[index] = text
    return out
