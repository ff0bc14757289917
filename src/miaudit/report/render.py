"""``write_report(run_dir)``: one self-contained HTML file from a run folder.

The page is rendered by Jinja2 from ``templates/report.html.j2`` with autoescaping on (every
string from the run folder is escaped); figures are PNG images embedded as base64 data URIs and
the style sheet is inline, so the file opens with no network and can be handed on alone.
"""

from __future__ import annotations

from pathlib import Path

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from miaudit.io_utils import atomic_path
from miaudit.report.build import build_context, fmt
from miaudit.report.defend_inputs import read_report_inputs

REPORT_FILE = "report.html"


def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("miaudit.report", "templates"),
        autoescape=select_autoescape(["html", "j2"], default=True),
        undefined=StrictUndefined,  # a missing field is a bug, not an empty cell
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["num"] = fmt
    return env


def render_report(run_dir: Path) -> str:
    """The report's HTML for ``run_dir`` (see :mod:`miaudit.report.inputs` and :mod:`miaudit.report.defend_inputs` for its files)."""
    return _environment().get_template("report.html.j2").render(**build_context(read_report_inputs(run_dir)))


def write_report(run_dir: Path, out: Path | None = None) -> Path:
    """Render and write the report (default ``run_dir/report.html``) atomically; return its path."""
    html = render_report(run_dir)
    out = out or run_dir / REPORT_FILE
    with atomic_path(out) as tmp:
        tmp.write_text(html, encoding="utf-8")
    return out
