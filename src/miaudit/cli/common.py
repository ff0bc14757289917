"""Shared pieces of the CLI: the command registry and console helpers."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass

from rich.console import Console

from miaudit.registry import Registry


class UsageError(Exception):
    """A command-line usage mistake (argparse's errors, re-raised to print on one line)."""


@dataclass(frozen=True)
class Command:
    help: str
    configure: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]

    def add_parser(self, sub: argparse._SubParsersAction, name: str) -> None:  # type: ignore[type-arg]
        parser = sub.add_parser(name, help=self.help, description=self.help)
        self.configure(parser)


COMMANDS: Registry[Command] = Registry("command")


def console(args: argparse.Namespace) -> Console:
    """Console for human output; silent with --quiet or --json (JSON goes to stdout alone)."""
    quiet = getattr(args, "quiet", False) or getattr(args, "json", False)
    # Piped output (logs, tests) would otherwise be cut to 80 columns and truncate names.
    width = None if sys.stdout.isatty() else 160
    return Console(quiet=quiet, highlight=False, width=width)


def add_output_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quiet", action="store_true", help="print nothing but errors")
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON on stdout")


def add_data_dir_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", default=None, help="data directory (default: $MIAUDIT_DATA_DIR or ~/.miaudit/data)")


def parse_int_list(flag: str, text: str) -> tuple[int, ...]:
    """``"0,1,2"`` -> ``(0, 1, 2)``; ConfigError naming ``flag`` on anything else."""
    from miaudit.errors import ConfigError

    parts = [s.strip() for s in text.split(",") if s.strip()]
    try:
        values = tuple(int(s) for s in parts)
    except ValueError:
        raise ConfigError(f"{flag} must be comma-separated integers, got {text!r}") from None
    if not values:
        raise ConfigError(f"{flag} must name at least one number, got {text!r}")
    return values
