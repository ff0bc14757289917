"""``miaudit reproduce``: run a published result's protocol over its seeds and compare with the paper."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from rich.table import Table

from miaudit.cli.common import COMMANDS, Command, UsageError, add_data_dir_flag, add_output_flags, claimed_out, console, parse_int_list
from miaudit.errors import ConfigError


def _configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("preset", nargs="?", default=None, help="a reproduction preset (see --list)")
    p.add_argument("--list", action="store_true", help="list the presets and exit")
    p.add_argument("--seeds", default=None, help="comma-separated seeds (default: the preset's, e.g. 0,1,2,3,4)")
    p.add_argument("--out", default=None, help="results folder (default: results/<preset>)")
    p.add_argument(
        "--epochs",
        type=int,
        default=None,
        help="override the recipe's epochs for a quick run; the table is then marked as not the protocol",
    )
    p.add_argument(
        "--authors-split",
        action="store_true",
        help="every seed on the authors' own fixed split (their index file in the data directory, e.g. "
        "reference/memguard-location30/shuffle_index.npz) instead of a random split per seed",
    )
    p.add_argument("--cache-dir", default=None, help="model cache (default: $MIAUDIT_CACHE_DIR or ~/.miaudit/cache)")
    add_data_dir_flag(p)
    add_output_flags(p)


def parse_seeds(text: str) -> tuple[int, ...]:
    """``"0,1,2"`` -> ``(0, 1, 2)``; ConfigError on anything else."""
    return parse_int_list("--seeds", text)


def _list(args: argparse.Namespace) -> int:
    from miaudit.experiments.presets import PRESETS

    rows = [
        {"preset": name, "title": p.title, "seeds": ",".join(map(str, p.seeds)), "attacks": ", ".join(a.name for a in p.attacks)}
        for name, p in PRESETS.items()
    ]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    table = Table(title="reproduction presets")
    for col in ("preset", "title", "seeds", "attacks"):
        table.add_column(col)
    for row in rows:
        table.add_row(*row.values())
    console(args).print(table)
    return 0


def _command_line(args: argparse.Namespace, seeds: tuple[int, ...] | None) -> str:
    parts = ["miaudit", "reproduce", args.preset]
    if seeds is not None:
        parts += ["--seeds", ",".join(map(str, seeds))]
    for flag, value in (("--epochs", args.epochs), ("--out", args.out), ("--data-dir", args.data_dir), ("--cache-dir", args.cache_dir)):
        if value is not None:
            parts += [flag, str(value)]
    if args.authors_split:
        parts.append("--authors-split")
    return shlex.join(parts)


def _run(args: argparse.Namespace) -> int:
    if args.list:
        return _list(args)
    if args.preset is None:
        raise UsageError("miaudit reproduce: give a preset name, or --list to see them (see --help)")

    from miaudit.experiments.presets import PRESETS
    from miaudit.experiments.reproduce import markdown, run_preset, write_reproduction

    preset = PRESETS.get(args.preset)  # unknown: UnknownNameError, one line, exit 2
    seeds = parse_seeds(args.seeds) if args.seeds is not None else None
    if args.epochs is not None and args.epochs < 1:
        raise ConfigError(f"--epochs must be >= 1, got {args.epochs}")
    if args.authors_split:
        preset.load_authors_split(args.data_dir)  # a missing or malformed index file fails before --out is made
    out = console(args)
    quiet = args.quiet or args.json

    def log(message: str) -> None:
        if message.startswith("note:"):
            print(message, file=sys.stderr)  # a skipped attack is worth seeing even with --quiet/--json
        else:
            out.print(message)

    with claimed_out(args, str(Path("results") / preset.name)) as out_dir:
        rep = run_preset(
            preset, seeds=seeds, epochs=args.epochs, data_dir=args.data_dir, cache_dir=args.cache_dir,
            out_dir=out_dir, progress=not quiet, log=log, command=_command_line(args, seeds),
            authors_split=args.authors_split,
        )  # fmt: skip
        json_path, md_path = write_reproduction(rep, out_dir)
    if args.json:
        print(json.dumps(rep.to_dict(), indent=2))
        return 0
    out.print(markdown(rep), markup=False, highlight=False, soft_wrap=True)
    out.print(f"wrote {json_path} and {md_path}")
    return 0


COMMANDS.add(
    "reproduce",
    Command("Reproduce a published result: run its protocol over seeds, compare with the paper.", _configure, _run, torch=True),
)
