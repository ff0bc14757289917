"""The ``miaudit`` command line: thin; parses, calls the library, prints.

User errors (:class:`MiauditError`, bad options) print one line on stderr and exit 2, no traceback.
Each subcommand lives in its own module and registers itself in :data:`COMMANDS`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from miaudit.cli import (
    audit_cmd,
    datasets_cmd,
    defend_cmd,
    many_targets_cmd,
    own_cmd,
    registry_cmds,
    report_cmd,
    reproduce_cmd,
    run_cmd,
    serve_cmd,
    study_cmd,
)
from miaudit.cli.common import COMMANDS, UsageError
from miaudit.errors import MiauditError

_MODULES = (
    audit_cmd, datasets_cmd, defend_cmd, many_targets_cmd, own_cmd, registry_cmds, report_cmd,
    reproduce_cmd, run_cmd, serve_cmd, study_cmd,
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


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if not getattr(args, "command", None):
            parser.print_help()
            return 2
        return int(COMMANDS.get(args.command).run(args) or 0)
    except (MiauditError, UsageError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; finished models are cached, rerun to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
