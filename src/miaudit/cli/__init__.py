"""The ``miaudit`` command line: thin; parses, calls the library, prints.

Exit codes: 0 done; 1 the audit found leakage at ``--fail-on-leak``'s level; 2 a user error;
70 an internal bug; 130 interrupted. Every failure a user or a file can cause (miaudit's own
errors, bad options, the file system, memory, recursion) prints one line on stderr and exits 2,
with no traceback (:mod:`miaudit.cli.errors`); an internal bug prints its traceback and asks to
be reported. Library warnings are hidden unless ``--verbose``; miaudit's own print as one line.
Each subcommand lives in its own module and registers itself in :data:`COMMANDS`.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Sequence

from miaudit.cli import (
    audit_cmd,
    datasets_cmd,
    defend_cmd,
    many_targets_cmd,
    own_cmd,
    privacy_audit_cmd,
    registry_cmds,
    report_cmd,
    reproduce_cmd,
    run_cmd,
    serve_cmd,
    serve_text_cmd,
    study_cmd,
    text_audit_cmd,
)
from miaudit.cli.common import COMMANDS, Command, UsageError
from miaudit.cli.errors import quiet_warnings, report_failure
from miaudit.limits import parse_limit, use_limits

_MODULES = (
    audit_cmd, datasets_cmd, defend_cmd, many_targets_cmd, own_cmd, privacy_audit_cmd, registry_cmds, report_cmd,
    reproduce_cmd, run_cmd, serve_cmd, serve_text_cmd, study_cmd, text_audit_cmd,
)  # importing them fills COMMANDS


class _OneLineParser(argparse.ArgumentParser):
    """argparse prints the whole usage on an error; we print one line and exit 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self.prog}: {message} (see --help)")


def build_parser() -> argparse.ArgumentParser:
    parser = _OneLineParser(prog="miaudit", description="Membership-inference audits of machine-learning models.")
    parser.add_argument("--version", action="version", version=f"miaudit {__import__('miaudit').__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_OneLineParser)
    for name, command in COMMANDS.items():
        command.add_parser(sub, name)
    return parser


def _device(args: argparse.Namespace, command: Command) -> contextlib.AbstractContextManager[object]:
    """The run's torch device for a command that takes ``--device`` (torch loads only then)."""
    if not command.torch:
        return contextlib.nullcontext()
    from miaudit.models.device import use_device

    return use_device(args.device)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    verbose = "--verbose" in (sys.argv[1:] if argv is None else argv)
    try:
        args = parser.parse_args(argv)
        if not getattr(args, "command", None):
            parser.print_help()
            return 2
        changes = dict(parse_limit(text) for text in args.limit)
        command = COMMANDS.get(args.command)
        with quiet_warnings(verbose), use_limits(**changes), _device(args, command):
            return int(command.run(args) or 0)
    except KeyboardInterrupt:
        print("interrupted; finished models are cached, rerun to resume", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - one mapping of every failure to its exit code
        return report_failure(exc, verbose=verbose)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
