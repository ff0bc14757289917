"""``miaudit run EXPERIMENT.toml``: a grid of audits into a resumable results store;
``miaudit results RUN_DIR``: its combined table."""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path
from statistics import mean, stdev
from typing import Any

from rich.table import Table

from miaudit.cli.common import COMMANDS, Command, add_data_dir_flag, add_executor_flags, add_output_flags, console, out_options
from miaudit.folders import check_folders


def _configure_run(p: argparse.ArgumentParser) -> None:
    p.add_argument("experiment", help="experiment file (TOML; see examples/)")
    p.add_argument("--out", default=None, help="results folder (default: results/<experiment name>); rerun with the same folder to resume")
    p.add_argument("--cache-dir", default=None, help="model cache (default: [run] cache_dir, $MIAUDIT_CACHE_DIR or ~/.miaudit/cache)")
    p.add_argument("--check", action="store_true", help="check the file and list the cells; train nothing")
    add_executor_flags(p)
    add_data_dir_flag(p)
    add_output_flags(p)


def _run(args: argparse.Namespace) -> int:
    from miaudit.experiments.config import load_experiment, resolve_experiment
    from miaudit.experiments.grid import RunOptions, check_defenses, run_grid

    out = console(args)
    exp = load_experiment(args.experiment)
    if args.check:
        cells = resolve_experiment(exp, data_dir=args.data_dir)
        check_defenses(cells)
        for c in cells:
            out.print(f"{c.cell_id}: {', '.join(c.settings['attacks']) or '(no attack permitted)'}")
        out.print(f"{len(cells)} cells; the file is valid")
        return 0
    # run_grid takes the folder's lock itself (and keeps it across resumes); checked here first
    run_dir = check_folders(**out_options(args, str(Path("results") / exp.name)))
    opts = RunOptions(
        data_dir=args.data_dir, cache_dir=args.cache_dir, executor=args.executor,
        ray_address=args.ray_address, workers=args.workers, progress=not (args.quiet or args.json),
    )  # fmt: skip
    summary = run_grid(exp, run_dir, opts, say=out.print)
    if args.json:
        print(json.dumps({"run_dir": str(run_dir), "cells": len(summary.cells), "computed_attacks": summary.computed_attacks}))
        return 0
    out.print(f"{len(summary.cells)} cells, {summary.computed_attacks} attacks computed now; wrote {summary.table_csv} and {summary.table_json}")
    out.print(f"see them with: miaudit results {run_dir}")
    return 0


def _configure_results(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", help="a results folder written by `miaudit run`")
    p.add_argument("--per-seed", action="store_true", help="one row per seed instead of mean ± std over seeds")
    p.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    add_output_flags(p)


_GROUP = ("dataset", "model", "defense", "threat_model", "reference_models", "target_in", "target_out", "attack")


def aggregate(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean and sample std (ddof=1) of the metrics over seeds, per everything else."""
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        if r["status"] == "ok":
            groups[tuple(r[k] for k in _GROUP)].append(r)
    out = []
    for key, rs in groups.items():
        row: dict[str, Any] = dict(zip(_GROUP, key))
        row["seeds"] = len(rs)
        for metric in ("auc", "tpr_at_1%fpr", "balanced_accuracy", "test_accuracy"):
            vals = [r[metric] for r in rs if r[metric] is not None]
            row[metric] = (mean(vals), stdev(vals) if len(vals) > 1 else None) if vals else None
        out.append(row)
    return out


def _fmt(v: Any) -> str:
    if v is None:
        return "n/m"
    if isinstance(v, tuple):
        return f"{v[0]:.4f}" + (f" ± {v[1]:.4f}" if v[1] is not None else "")
    return f"{v:.4f}" if isinstance(v, float) else str(v)


def _results(args: argparse.Namespace) -> int:
    from miaudit.experiments.store import load_table

    rows = load_table(Path(args.run_dir))
    if args.json:
        print(json.dumps(rows if args.per_seed else [{k: list(v) if isinstance(v, tuple) else v for k, v in r.items()} for r in aggregate(rows)], indent=2))
        return 0
    out = console(args)
    if args.per_seed:
        cols = ["dataset", "model", "defense", "threat_model", "seed", "reference_models", "attack", "auc", "tpr_at_1%fpr", "balanced_accuracy", "test_accuracy"]
        shown = [r for r in rows if r["status"] == "ok"]
        caption = "one row per seed; n/m = not measurable"
    else:
        cols = ["dataset", "model", "defense", "threat_model", "reference_models", "target_in", "attack", "seeds", "auc", "tpr_at_1%fpr", "balanced_accuracy", "test_accuracy"]
        shown = aggregate(rows)
        caption = "mean ± sample std over seeds (ddof=1); n/m = not measurable"
    if args.markdown:
        print("| " + " | ".join(cols) + " |")
        print("|" + "---|" * len(cols))
        for r in shown:
            print("| " + " | ".join(_fmt(r[c]) for c in cols) + " |")
        print(f"\n{caption}")
        return 0
    table = Table(title=f"miaudit results {args.run_dir}", caption=caption)
    for c in cols:
        table.add_column(c)
    for r in shown:
        table.add_row(*(_fmt(r[c]) for c in cols))
    out.print(table)
    for attack, status in sorted({(r["attack"], r["status"]) for r in rows if r["status"] != "ok"}):
        out.print(f"{attack}: {status}")
    return 0


COMMANDS.add("run", Command("Run an experiment grid from a TOML file (resumable).", _configure_run, _run, torch=True))
COMMANDS.add("results", Command("Print the combined table of a `miaudit run` results folder.", _configure_results, _results))
