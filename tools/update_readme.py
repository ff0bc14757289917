"""Regenerate the README's generated blocks from the code (run: .venv/bin/python tools/update_readme.py).

Blocks sit between ``<!-- NAME:start -->`` and ``<!-- NAME:end -->``; tests/test_readme.py fails
when the README and the code disagree.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def generated_blocks() -> dict[str, str]:
    from miaudit.cli.registry_cmds import attack_rows, limit_rows, markdown_table, threat_rows

    return {
        "attacks": markdown_table(attack_rows()),
        "threats": markdown_table(threat_rows()),
        "limits": markdown_table(limit_rows()),
    }


def render(text: str, blocks: dict[str, str]) -> str:
    for name, body in blocks.items():
        pattern = re.compile(rf"(<!-- {name}:start -->\n)(?:.*?\n)?(<!-- {name}:end -->)", re.S)
        if not pattern.search(text):
            raise SystemExit(f"README.md has no <!-- {name}:start/end --> block")
        text = pattern.sub(lambda m: m.group(1) + body + "\n" + m.group(2), text)
    return text


if __name__ == "__main__":
    current = README.read_text()
    updated = render(current, generated_blocks())
    if "--check" in sys.argv:
        sys.exit(0 if updated == current else "README.md is out of date: run tools/update_readme.py")
    README.write_text(updated)
