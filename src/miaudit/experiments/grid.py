"""``miaudit run``: every cell of an experiment grid, resumable at any point.

The unit of work is one attack of one cell: its scores, threshold and metrics go into
``cells/<id>/attacks/<attack>.json`` as soon as it finishes; a cell's ``results.json`` is
written once all its attacks are there. Models (target, shadow and reference models) resume
through the content-addressed :class:`miaudit.models.ModelCache`. A rerun after a crash or a
SIGKILL therefore redoes only the unfinished attack of the unfinished cell, and at most one
unfinished block of models. Every random choice derives from the cell's seed, so a resumed run
writes the same bytes as an uninterrupted one (tests/test_grid.py).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from miaudit.errors import ConfigError
from miaudit.experiments.audit import AuditConfig, audit_result, prepare_audit, run_attack
from miaudit.experiments.config import NO_DEFENSE, Cell, Experiment, resolve_experiment
from miaudit.core.record import attack_summary, summary_of, verdict_of
from miaudit.experiments.store import (
    REPORTS,
    cell_dir,
    locked,
    log_event,
    read_json,
    start_run,
    write_json,
    write_scores_csv,
    write_table,
)

Say = Callable[[str], None]


@dataclass(frozen=True)
class RunOptions:
    """How to run (never what): where data and models live, where models train, what to print."""

    data_dir: str | None = None
    cache_dir: str | None = None
    executor: str | None = None  # default: [run] executor, else "local"
    ray_address: str | None = None
    workers: int | None = None
    progress: bool = False


@dataclass(frozen=True)
class GridSummary:
    run_dir: Path
    cells: list[Cell]
    computed_attacks: int  # attacks run by this call (not loaded from the store)
    table_csv: Path
    table_json: Path


def audit_config(cell: Cell, exp: Experiment, opts: RunOptions) -> AuditConfig:
    """The :class:`AuditConfig` of one cell."""
    from miaudit.data.split import SplitSizes

    s = cell.settings
    threat = s["threat_model"]
    extra: dict[str, Any] = {}
    if s["defense"] != NO_DEFENSE:
        extra["defense"] = s["defense"]  # checked in check_defenses: AuditConfig has the field
    return AuditConfig(
        dataset=s["dataset"],
        label_column=exp.run.get("label_column"),
        model=s["model"],
        model_options=s["model_options"],
        recipe=s["recipe"],
        seed=s["seed"],
        split=SplitSizes(**s["split"]) if s["split"] else None,
        threat_model=threat["name"],
        output=threat.get("output"),
        query_budget=threat.get("query_budget"),
        price_per_query=threat.get("price_per_query"),
        attacks=tuple(s["attacks"]),
        n_shadow_models=s["reference_models"],
        n_bootstrap=s["bootstrap"],
        data_dir=opts.data_dir or exp.run.get("data_dir"),
        cache_dir=opts.cache_dir or exp.run.get("cache_dir"),
        **extra,
    )


def check_defenses(cells: list[Cell]) -> None:
    """A defense other than ``none`` needs an audit that can apply it (AuditConfig.defense)."""
    has_field = any(f.name == "defense" for f in dataclasses.fields(AuditConfig))
    for cell in cells:
        if cell.settings["defense"] != NO_DEFENSE and not has_field:
            raise ConfigError(f"grid.defenses: this miaudit cannot apply defense {cell.settings['defense']!r} in an audit yet")


def run_grid(exp: Experiment, run_dir: Path, opts: RunOptions = RunOptions(), *, say: Say = lambda _: None) -> GridSummary:
    """Run (or finish) every cell of ``exp`` into ``run_dir``."""
    from miaudit.models.executors import executor_from_options

    cells = resolve_experiment(exp, data_dir=opts.data_dir)  # every config error before any training
    check_defenses(cells)
    for i, name in enumerate(exp.run.get("reports", [])):
        if name not in REPORTS:
            raise ConfigError(f"run.reports[{i}]: unknown report {name!r}; choose one of: {', '.join(REPORTS.names()) or '(none registered)'}")
    executor = executor_from_options(
        opts.executor or exp.run.get("executor", "local"),
        ray_address=opts.ray_address or exp.run.get("ray_address"),
        workers=opts.workers or exp.run.get("workers"),
    )
    resolved = {"experiment": exp.name, "cells": {c.cell_id: c.settings for c in cells}}
    computed = 0
    try:
        with locked(run_dir):
            # A run killed inside an atomic write leaves its temporary file (".<name>.<random>.tmp");
            # under the lock no writer is alive, so they are debris: the final files never depended on them.
            for stray in run_dir.rglob(".*.tmp"):
                stray.unlink()
            start_run(run_dir, exp.source, resolved)
            log_event(run_dir, event="start", cells=len(cells))
            for n, cell in enumerate(cells, 1):
                computed += _run_cell(cell, exp, opts, run_dir, executor, say=lambda m, n=n: say(f"[{n}/{len(cells)}] {m}"))
            ids = [c.cell_id for c in cells]
            csv_path, json_path = write_table(run_dir, ids)
            for name in exp.run.get("reports", []):
                say(f"report {name}: {REPORTS.get(name)(run_dir)}")
            log_event(run_dir, event="finished", computed_attacks=computed)
    finally:
        executor.close()
    return GridSummary(run_dir, cells, computed, csv_path, json_path)


def _run_cell(cell: Cell, exp: Experiment, opts: RunOptions, run_dir: Path, executor: Any, *, say: Say) -> int:
    """Finish one cell; returns how many attacks this call computed."""
    here = cell_dir(run_dir, cell.cell_id)
    if (here / "results.json").exists():
        say(f"{cell.cell_id}: done earlier")
        return 0
    write_json(here / "cell.json", cell.settings)
    setup = prepare_audit(audit_config(cell, exp, opts), progress=opts.progress, executor=executor)
    price = setup.threat.price_per_query
    summaries: dict[str, Any] = {}
    scores: dict[str, list[float]] = {}
    skipped = dict(cell.settings["skipped"])
    computed = 0
    for name in setup.permitted:
        path = here / "attacks" / f"{name}.json"
        if path.exists():
            stored = read_json(path)
        else:
            outcome = run_attack(setup, name)
            if isinstance(outcome, str):
                stored = {"attack": name, "status": "skipped", "reason": outcome}
            else:
                stored = {
                    "attack": name,
                    "status": "ok",
                    "scores": [float(v) for v in outcome.result.scores],
                    "summary": attack_summary(outcome, price, name not in setup.uncalibrated),
                }
            write_json(path, stored)
            log_event(run_dir, event="attack", cell=cell.cell_id, attack=name)
            computed += 1
        if stored["status"] == "ok":
            summaries[name] = stored["summary"]
            scores[name] = stored["scores"]
            say(f"{cell.cell_id}: {name} AUC {stored['summary']['auc']:.4f}")
        else:
            skipped[name] = stored["reason"]
    setup.close()
    summary = summary_of(audit_result(setup, [], skipped), verdict_of(scores, setup.is_member))
    summary["attacks"] = summaries
    summary["cell"] = cell.cell_id
    for where in ("data_dir", "cache_dir"):  # where files live is not part of the result
        summary["config"].pop(where, None)
    write_scores_csv(here / "scores.csv", setup.record_indices, setup.is_member, scores)
    write_json(here / "results.json", summary)  # last: the cell is complete
    log_event(run_dir, event="cell", cell=cell.cell_id)
    return computed
