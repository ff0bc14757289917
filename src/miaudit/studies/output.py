"""Writing a study: ``study.json`` (claim, findings, context, tables, versions), one CSV per table
(``table.csv`` is the main one) and the figure ``plot.png``."""

from __future__ import annotations

import csv
import dataclasses
import json
import math
from pathlib import Path
from typing import Any

from miaudit.io_utils import atomic_path
from miaudit.provenance import versions
from miaudit.studies.base import StudyConfig, StudyResult
from miaudit.studies.plots import save_png

STUDY_JSON = "study.json"
STUDY_PLOT = "plot.png"


def jsonable(value: Any) -> Any:
    """NaN / infinity -> None (JSON has no NaN), tuples -> lists, numpy scalars -> Python."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _write_csv(rows: list[dict[str, Any]], path: Path) -> None:
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ("" if v is None else v) for k, v in jsonable(row).items()})


def write_study(result: StudyResult, config: StudyConfig, out_dir: Path) -> dict[str, Path]:
    """Write the study's files into ``out_dir`` (created); return them by role."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    for name, rows in result.tables.items():
        paths[name] = out_dir / f"{name}.csv"
        _write_csv(rows, paths[name])
    if result.plot is not None:
        paths["plot"] = save_png(result.plot, out_dir / STUDY_PLOT, width=9.0, height=4.6)
    doc = {
        "study": result.study,
        "claim": result.claim,
        "description": result.description,
        "findings": result.findings,
        "context": result.context,
        "config": dataclasses.asdict(config),
        "tables": result.tables,
        "files": {k: p.name for k, p in paths.items()},
        "versions": versions(),
    }
    paths["json"] = out_dir / STUDY_JSON
    with atomic_path(paths["json"]) as tmp:
        tmp.write_text(json.dumps(jsonable(doc), indent=2) + "\n")
    return paths
