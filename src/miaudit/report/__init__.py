"""The self-contained HTML audit report (``miaudit report RUN_DIR``)."""

from miaudit.report.inputs import DEFENSES_FILE, ReportError
from miaudit.report.render import REPORT_FILE, render_report, write_report

__all__ = ["DEFENSES_FILE", "REPORT_FILE", "ReportError", "render_report", "write_report"]
