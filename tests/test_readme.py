"""The README's generated tables match the code, and its quick start is the two make commands."""

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _tool():
    spec = importlib.util.spec_from_file_location("update_readme", ROOT / "tools" / "update_readme.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_attack_table_in_readme_is_generated_from_the_registry():
    tool = _tool()
    text = (ROOT / "README.md").read_text()
    assert tool.render(text, tool.generated_blocks()) == text, "run: .venv/bin/python tools/update_readme.py"


def test_quick_start_is_make_demo_and_make_test():
    text = (ROOT / "README.md").read_text()
    assert "make demo" in text and "make test" in text
    assert "make test" in (ROOT / ".ci" / "run").read_text()
