"""``miaudit attacks`` and ``miaudit models``: print registries, generated from the code."""

from __future__ import annotations

import argparse
import json

from rich.table import Table

from miaudit.cli.common import COMMANDS, Command, add_output_flags, console


def attack_rows() -> list[dict[str, str]]:
    """One row per registered attack: name, paper, type and required knowledge."""
    from miaudit.attacks import ATTACKS

    rows = []
    for name, cls in ATTACKS.items():
        rows.append({"attack": name, "paper": cls.paper, "type": cls.kind, **cls.requirements.describe()})
    return rows


def threat_rows() -> list[dict[str, str]]:
    """One row per threat-model preset: what the attacker sees and knows."""
    from miaudit.threat import THREAT_MODELS

    return [
        {
            "threat model": name,
            "output": t.output.name.lower().replace("_", "-"),
            "architecture": "yes" if t.knows_architecture else "no",
            "parameters": "yes" if t.knows_parameters else "no",
            "training recipe": "yes" if t.knows_training_recipe else "no",
            "data": t.data.name.lower().replace("_", "-"),
        }
        for name, t in THREAT_MODELS.items()
    ]


def markdown_table(rows: list[dict[str, str]]) -> str:
    """A GitHub markdown table of ``rows`` (the README embeds the attack table this way)."""
    header = list(rows[0])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row[h] for h in header) + " |" for row in rows]
    return "\n".join(lines)


def _print_rows(args: argparse.Namespace, title: str, rows: list[dict[str, str]]) -> int:
    if getattr(args, "markdown", False):
        print(markdown_table(rows))
        return 0
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    table = Table(title=title)
    for col in rows[0] if rows else ():
        table.add_column(col)
    for row in rows:
        table.add_row(*row.values())
    console(args).print(table)
    return 0


def _run_attacks(args: argparse.Namespace) -> int:
    return _print_rows(args, "Attacks and the knowledge they need (survey Table 2)", attack_rows())


def _run_models(args: argparse.Namespace) -> int:
    from miaudit.models import ARCHITECTURES, ESTIMATORS, make_estimator

    rows = [{"model": n, "kind": "torch (ModelBank)", "about": spec.description} for n, spec in ARCHITECTURES.items()]
    rows += [{"model": n, "kind": "scikit-learn", "about": type(make_estimator(n, 0)).__name__} for n in ESTIMATORS.names()]
    return _print_rows(args, "Target and shadow models", rows)


def _configure_attacks(parser: argparse.ArgumentParser) -> None:
    add_output_flags(parser)
    parser.add_argument("--markdown", action="store_true", help="print a markdown table (as in the README)")


COMMANDS.add("attacks", Command("List the registered attacks and what each needs.", _configure_attacks, _run_attacks))
COMMANDS.add("models", Command("List the model architectures and estimators.", add_output_flags, _run_models))


def _run_threats(args: argparse.Namespace) -> int:
    return _print_rows(args, "Threat-model presets (survey Table 1)", threat_rows())


COMMANDS.add("threat-models", Command("List the threat-model presets.", _configure_attacks, _run_threats))


def defense_rows() -> list[dict[str, str]]:
    """One row per registered defense: name, stage, paper and parameters with their defaults."""
    from miaudit.defenses import DEFENSES

    return [
        {
            "defense": name,
            "stage": cls.stage,
            "paper": cls.paper,
            "reference data": "yes" if cls.needs_reference else "no",
            "parameters (defaults)": ", ".join(f"{k}={v}" for k, v in cls.defaults.items()) or "-",
        }
        for name, cls in DEFENSES.items()
    ]


def _run_defenses(args: argparse.Namespace) -> int:
    return _print_rows(args, "Defenses (miaudit defend --defenses NAME:key=value,...)", defense_rows())


COMMANDS.add("defenses", Command("List the registered defenses and their parameters.", _configure_attacks, _run_defenses))


def limit_rows() -> list[dict[str, str]]:
    """One row per input bound (:mod:`miaudit.limits`): name, default and what it bounds."""
    from miaudit.limits import Limits, format_limit

    defaults = Limits()
    return [
        {"limit": f"`{name}`", "default": format_limit(name, getattr(defaults, name)), "bounds": Limits.description(name)}
        for name in Limits.names()
    ]


def _run_limits(args: argparse.Namespace) -> int:
    return _print_rows(args, "Input bounds (raise one with --limit NAME=VALUE)", limit_rows())


COMMANDS.add("limits", Command("List the bounds on inputs and their defaults (raise with --limit).", _configure_attacks, _run_limits))
