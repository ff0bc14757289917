"""``miaudit datasets list|fetch|verify``."""

from __future__ import annotations

import argparse
import json

from rich.table import Table

from miaudit.cli.common import COMMANDS, Command, add_data_dir_flag, add_output_flags, console


def _configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=["list", "fetch", "verify"], help="list the data sets, fetch their files, or verify checksums")
    p.add_argument("names", nargs="*", help="data set names (default for fetch/verify: all)")
    add_data_dir_flag(p)
    add_output_flags(p)


def _run(args: argparse.Namespace) -> int:
    from miaudit import data

    out = console(args)
    specs = data.list_datasets()
    if args.action == "list":
        rows = [
            {"name": s.name, "files": ", ".join(f.name for f in s.files) or "(embedded)", "description": s.description}
            for s in specs
        ]
        if args.json:
            print(json.dumps(rows, indent=2))
            return 0
        table = Table(title="Data sets")
        for col in ("name", "files", "description"):
            table.add_column(col)
        for row in rows:
            table.add_row(*row.values())
        out.print(table)
        return 0
    names = args.names or [s.name for s in specs]
    action = data.fetch_dataset if args.action == "fetch" else data.verify_dataset
    reports = {name: action(name, args.data_dir) for name in names}
    if args.json:
        print(json.dumps(reports, indent=2, default=str))
        return 0
    for name, report in reports.items():
        out.print(f"{name}: {report}")
    return 0


COMMANDS.add("datasets", Command("List, fetch or verify data sets.", _configure, _run))
