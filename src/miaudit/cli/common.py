"""Shared pieces of the CLI: the command registry and console helpers."""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from miaudit.registry import Registry


class UsageError(Exception):
    """A command-line usage mistake (argparse's errors, re-raised to print on one line)."""


@dataclass(frozen=True)
class Command:
    """A subcommand: its help, its flags, what it runs; ``torch`` when it trains or queries torch
    models (it then takes ``--device`` and runs inside :func:`miaudit.models.device.use_device`)."""

    help: str
    configure: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]
    torch: bool = False

    def add_parser(self, sub: argparse._SubParsersAction, name: str) -> None:  # type: ignore[type-arg]
        parser = sub.add_parser(name, help=self.help, description=self.help)
        self.configure(parser)
        if self.torch:
            add_device_flag(parser)
        add_safety_flags(parser)


def add_device_flag(parser: argparse.ArgumentParser) -> None:
    """``--device auto|cpu|cuda``: where torch models train and answer (:mod:`miaudit.models.device`)."""
    parser.add_argument(
        "--device", default="auto", choices=("auto", "cpu", "cuda"),
        help="where torch models train and answer queries: auto (CUDA when torch sees a GPU, else the CPU; default), cpu, cuda",
    )  # fmt: skip


def add_safety_flags(parser: argparse.ArgumentParser) -> None:
    """``--limit NAME=VALUE`` and ``--verbose``, on every command (see :mod:`miaudit.limits`)."""
    from miaudit.limits import Limits

    names = ", ".join(Limits.names())
    parser.add_argument(
        "--limit", action="append", default=[], metavar="NAME=VALUE",
        help=f"raise (or lower) a bound on inputs, repeatable; sizes take k/m/g; NAME is one of {names} (README: What miaudit refuses)",
    )
    parser.add_argument("--verbose", action="store_true", help="show library warnings and, on an error, its full traceback")


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


def add_executor_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--executor", default=None, help="where shadow/reference models train: local (default), process, ray")
    parser.add_argument("--ray-address", default=None, metavar="ADDRESS", help="Ray cluster to train on (e.g. ray://head:10001 or auto); with --executor ray")
    parser.add_argument("--workers", type=int, default=None, help="processes of --executor process, or CPUs of a local Ray instance")


def parse_name_list(flag: str, text: str | None) -> tuple[str, ...] | None:
    """``"loss, lira"`` -> ``("loss", "lira")``; None stays None (the default); a list naming
    nothing (``","``) is a ConfigError, never an empty run that would replace earlier results."""
    from miaudit.errors import ConfigError

    if text is None:
        return None
    names = tuple(s.strip() for s in text.split(",") if s.strip())
    if not names:
        raise ConfigError(f"{flag} names nothing ({text!r}); give comma-separated names (see `miaudit attacks`) or leave it out")
    return names


def out_options(args: argparse.Namespace, default: str) -> dict[str, Any]:
    """The folder arguments of :mod:`miaudit.folders`' checks, from a command's flags."""
    out = args.out if args.out is not None else default
    return {"path": out, "cache_dir": getattr(args, "cache_dir", None), "data_dir": getattr(args, "data_dir", None)}


def claimed_out(args: argparse.Namespace, default: str, *, uses_cache: bool = True) -> contextlib.AbstractContextManager[Path]:
    """``--out`` (or ``default``) checked before any work, and locked while the command runs;
    the cache is checked too when the command trains models (see :mod:`miaudit.folders`)."""
    from miaudit.folders import claim_out_dir

    return claim_out_dir(uses_cache=uses_cache, **out_options(args, default))


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
