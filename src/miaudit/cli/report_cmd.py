"""``miaudit report RUN_DIR``: one self-contained HTML file from an audit's results folder."""

from __future__ import annotations

import argparse
from pathlib import Path

from miaudit.cli.common import COMMANDS, Command, add_output_flags, console


def _configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", help="an audit's --out folder (results.json, scores.csv; optional defenses.json, studies/<name>/ and privacy_audit.json), or a privacy-audit's")
    p.add_argument("--out", default=None, help="HTML file to write (default RUN_DIR/report.html)")
    add_output_flags(p)


def _run(args: argparse.Namespace) -> int:
    from miaudit.report import write_report

    path = write_report(Path(args.run_dir), Path(args.out) if args.out else None)
    if args.json:
        print(f'{{"report": "{path.as_posix()}"}}')
    else:
        console(args).print(f"wrote {path}")
    return 0


COMMANDS.add("report", Command("Write the self-contained HTML report of an audit's results folder.", _configure, _run))
