"""Shared by the report tests: a small audit run folder, and an HTML parser for the report."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path

from miaudit.cli import main

DEFENSES = {
    "baseline": {"name": "none", "test_accuracy": 0.95, "auc": 0.62},
    "defenses": [
        {"name": "dp-sgd eps=8", "test_accuracy": 0.88, "auc": 0.52, "attack": "lira"},
        {"name": "l2 <1e-2>", "test_accuracy": 0.93, "auc": 0.56, "attack": "lira", "tpr_at_1pct_fpr": 0.02},
    ],
}


def make_run(root: Path) -> Path:
    """An audit of digits (logistic regression: fast) with a study and a defenses table beside it.

    The audit writes report.html itself; the test then rewrites it once the optional files exist.
    """
    run = root / "run"
    common = ["--dataset", "digits", "--model", "logreg", "--shadow-models", "2", "--quiet"]
    assert main(["audit", *common, "--attacks", "loss,lira-offline,correctness", "--bootstrap", "50", "--out", str(run)]) == 0
    assert (run / "report.html").is_file()  # written automatically by the audit
    assert main(["study", "per-record-risk", *common, "--attacks", "lira-offline", "--grid", "top=5", "--out", str(run / "studies" / "per-record-risk")]) == 0
    (run / "defenses.json").write_text(json.dumps(DEFENSES))
    assert main(["report", str(run), "--quiet"]) == 0
    return run


class ReportParser(HTMLParser):
    """Collects the report's tables (by id: rows of cells, each cell's text and data-value),
    figures (by id: attributes and their <img> src), the figure-data JSON and every URL used."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[list[dict]]] = {}
        self.figures: dict[str, dict] = {}
        self.by_id: dict[str, dict] = {}
        self.urls: list[str] = []
        self.scripts: list[dict] = []
        self.tags: set[str] = set()
        self._table = self._row = self._cell = self._figure = self._id_text = None
        self._script = self._id_tag = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.add(tag)
        for key in ("src", "href"):
            if key in a:
                self.urls.append(a[key])
        if "id" in a and tag not in ("table", "figure"):
            self.by_id[a["id"]] = {"attrs": a, "text": ""}
            self._id_text, self._id_tag = a["id"], tag
        if tag == "table" and "id" in a:
            self._table = self.tables.setdefault(a["id"], [])
        elif tag == "tr" and self._table is not None:
            self._row = []
            self._table.append(self._row)
        elif tag in ("td", "th") and self._row is not None:
            self._cell = {"tag": tag, "text": "", "value": a.get("data-value")}
            self._row.append(self._cell)
        elif tag == "figure":
            self._figure = self.figures[a.get("id", f"fig{len(self.figures)}")] = {"attrs": a, "img": []}
        elif tag == "img" and self._figure is not None:
            self._figure["img"].append(a.get("src", ""))
        elif tag == "script":
            self._script = {"attrs": a, "text": ""}
            self.scripts.append(self._script)

    def handle_endtag(self, tag):
        if tag == self._id_tag:
            self._id_text = self._id_tag = None
        if tag == "table":
            self._table = None
        elif tag == "tr":
            self._row = None
        elif tag in ("td", "th"):
            self._cell = None
        elif tag == "figure":
            self._figure = None
        elif tag == "script":
            self._script = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell["text"] += data
        if self._id_text is not None:
            self.by_id[self._id_text]["text"] += data
        if self._script is not None:
            self._script["text"] += data


def parse_report(path: Path) -> ReportParser:
    parser = ReportParser()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser
