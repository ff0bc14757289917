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
    names = args.names or [s.name for s in specs if not s.embedded]
    if args.action == "fetch":
        fetched = {name: {f: str(p) for f, p in data.fetch_dataset(name, args.data_dir).items()} for name in names}
        if args.json:
            print(json.dumps(fetched, indent=2))
        for name, files in fetched.items():
            out.print(f"{name}: " + ", ".join(files.values()))
        return 0
    reports = {name: data.verify_dataset(name, args.data_dir) for name in names}
    if args.json:
        print(json.dumps({n: [r.to_dict() for r in rs] for n, rs in reports.items()}, indent=2))
    for name, file_reports in reports.items():
        for report in file_reports:
            out.print(f"{name}: {report}")
    # Exit 2 when a present file fails its checksum: the user must replace it.
    return 2 if any(r.status == "mismatch" for rs in reports.values() for r in rs) else 0


COMMANDS.add("datasets", Command("List, fetch or verify data sets.", _configure, _run))
