"""The results store of ``miaudit run``: one folder per run, one subfolder per cell.

::

    RUN_DIR/
      experiment.toml     the file as given
      resolved.json       every cell with every setting spelled out (defaults filled in)
      versions.json       miaudit, Python, numpy, torch, scikit-learn, scipy, platform
      events.jsonl        what happened, one JSON line per event (appended, fsynced)
      table.csv / .json   one row per (cell, attack) across the grid
      cells/<cell_id>/
        cell.json         the cell's settings
        attacks/<a>.json  attack a's per-record scores, threshold and metrics (the unit of resume)
        results.json      written last: the cell is complete (same layout as ``miaudit audit``)
        scores.csv        one row per evaluated record: index, membership truth, each attack's score

Every file is written to a temporary name and renamed into place (``io_utils.atomic_path``), so
a run killed at any moment (SIGKILL included) leaves complete files or none; a rerun skips
finished cells and attacks and loads finished models from the model cache. Only
``events.jsonl`` is appended to, and its reader skips a torn last line.

Report hook: :data:`REPORTS` maps a name to ``writer(run_dir) -> Path``; ``[run] reports``
names the writers to call once the table is written (e.g. an HTML report registering itself
under ``"html"``).
"""

from __future__ import annotations

import csv
import json
import os
import platform
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from miaudit.core.record import write_scores_csv  # noqa: F401  (re-exported for the grid)
from miaudit.errors import ConfigError
from miaudit.folders import locked  # noqa: F401  (the run's lock, shared with every command)
from miaudit.io_utils import atomic_path
from miaudit.registry import Registry

REPORTS: Registry[Callable[[Path], Path]] = Registry("report")

TABLE_COLUMNS = (
    "cell", "dataset", "model", "defense", "threat_model", "seed", "reference_models",
    "target_in", "target_out", "attacker_pool", "train_accuracy", "test_accuracy",
    "attack", "status", "auc", "auc_ci_low", "auc_ci_high", "tpr_at_1%fpr", "tpr_at_0.1%fpr",
    "balanced_accuracy", "advantage", "threshold_source",
)  # fmt: skip


def write_json(path: Path, obj: Any) -> None:
    """``obj`` as indented JSON, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2) + "\n")


def read_json(path: Path) -> Any:
    """A JSON file of the store; :class:`ConfigError` if it is damaged (not written by miaudit)."""
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path} is damaged ({exc}); delete it and rerun to recompute it") from None


def versions() -> dict[str, str]:
    """Versions that a bit-for-bit result depends on, and the device off the CPU (``--device``)."""
    import numpy
    import scipy
    import sklearn
    import torch

    from miaudit import __version__
    from miaudit.models.device import current_device

    device = current_device().type
    return {
        **({"device": device} if device != "cpu" else {}),  # CPU runs: the keys of earlier runs, so they resume
        "miaudit": __version__,
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "torch": torch.__version__,
        "scikit-learn": sklearn.__version__,
        "scipy": scipy.__version__,
        "platform": f"{platform.system()}-{platform.machine()}",
    }


def log_event(run_dir: Path, **event: Any) -> None:
    """Append one event line and fsync it (a kill can tear only the last line)."""
    line = json.dumps(event, sort_keys=True) + "\n"
    with open(run_dir / "events.jsonl", "a") as f:
        f.write(line)
        f.flush()
        os.fsync(f.fileno())


def read_events(run_dir: Path) -> list[dict[str, Any]]:
    """The events logged so far; a torn last line (a run killed mid-write) is skipped."""
    path = run_dir / "events.jsonl"
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


def start_run(run_dir: Path, source: str, resolved: dict[str, Any]) -> None:
    """Write the run's header files, or check that ``run_dir`` holds this same experiment."""
    resolved_path = run_dir / "resolved.json"
    if resolved_path.exists():
        stored = read_json(resolved_path)
        if stored != json.loads(json.dumps(resolved)):
            raise ConfigError(
                f"{run_dir} holds the results of a different experiment (its resolved.json differs); "
                "choose another --out, or delete the folder to start over"
            )
        stored_versions = read_json(run_dir / "versions.json")
        if stored_versions != versions():
            diff = sorted(k for k in set(stored_versions) | set(versions()) if stored_versions.get(k) != versions().get(k))
            raise ConfigError(
                f"{run_dir} was started with other versions of {', '.join(diff)}; results would not be comparable "
                "bit for bit: finish it with those versions or choose another --out"
            )
        return
    with atomic_path(run_dir / "experiment.toml") as tmp:
        tmp.write_text(source)
    write_json(run_dir / "versions.json", versions())
    write_json(resolved_path, resolved)  # last: its presence says the header is complete


def cell_dir(run_dir: Path, cell_id: str) -> Path:
    return run_dir / "cells" / cell_id


def table_rows(run_dir: Path, cell_ids: Sequence[str]) -> list[dict[str, Any]]:
    """One row per (finished cell, attack), skipped attacks included with their reason."""
    rows: list[dict[str, Any]] = []
    for cell_id in cell_ids:
        path = cell_dir(run_dir, cell_id) / "results.json"
        if not path.exists():
            continue
        res = read_json(path)
        cell = read_json(cell_dir(run_dir, cell_id) / "cell.json")
        base = {
            "cell": cell_id,
            "dataset": cell["dataset"],
            "model": cell["model"],
            "defense": cell["defense"],
            "threat_model": res["threat_model"],
            "seed": cell["seed"],
            "reference_models": cell["reference_models"],
            **{k: res["config"]["split"][k] for k in ("target_in", "target_out", "attacker_pool")},
            "train_accuracy": res["target"]["train_accuracy"],
            "test_accuracy": res["target"]["test_accuracy"],
        }
        for attack, m in res["attacks"].items():
            ci = m.get("auc_ci") or [None, None]
            rows.append({
                **base, "attack": attack, "status": "ok", "auc": m["auc"], "auc_ci_low": ci[0], "auc_ci_high": ci[1],
                "tpr_at_1%fpr": m["tpr_at_fpr"].get("0.01"), "tpr_at_0.1%fpr": m["tpr_at_fpr"].get("0.001"),
                "balanced_accuracy": m["balanced_accuracy"], "advantage": m["advantage"],
                "threshold_source": m["threshold_source"],
            })  # fmt: skip
        for attack, reason in res["skipped"].items():
            rows.append({**base, "attack": attack, "status": f"skipped: {reason}"})
    return [{c: r.get(c) for c in TABLE_COLUMNS} for r in rows]


def write_table(run_dir: Path, cell_ids: Sequence[str]) -> tuple[Path, Path]:
    """The combined table across the grid as ``table.csv`` and ``table.json``."""
    rows = table_rows(run_dir, cell_ids)
    write_json(run_dir / "table.json", {"columns": list(TABLE_COLUMNS), "rows": rows})
    with atomic_path(run_dir / "table.csv") as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(TABLE_COLUMNS))
        writer.writeheader()
        for r in rows:
            writer.writerow({k: "" if v is None else (repr(v) if isinstance(v, float) else v) for k, v in r.items()})
    return run_dir / "table.csv", run_dir / "table.json"


def load_table(run_dir: Path) -> list[dict[str, Any]]:
    """The combined table of a run folder (for ``miaudit results``)."""
    if not run_dir.is_dir():
        raise ConfigError(f"{run_dir} is not a folder; give the --out folder of a `miaudit run`")
    path = run_dir / "table.json"
    if not path.exists():
        if (run_dir / "resolved.json").exists():
            raise ConfigError(f"{run_dir} has no finished cell yet; rerun `miaudit run` to finish it")
        raise ConfigError(f"{run_dir} is not a results folder of `miaudit run` (no table.json)")
    table = read_json(path)
    if not isinstance(table, dict) or not isinstance(table.get("rows"), list):
        raise ConfigError(f"{path} is not a miaudit results table")
    return table["rows"]
