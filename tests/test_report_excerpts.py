"""A text audit's most exposed documents in the report: excerpts written, read back checked, escaped."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from miaudit.core.excerpts import EXCERPTS_FILE, MAX_EXCERPT_CHARS, excerpt
from miaudit.core.record import record_from_scores
from miaudit.report import render_report

HOSTILE = '<script>alert("x")</script> & <img src=x onerror=alert(1)>'


def _record(n: int = 40):
    rng = np.random.default_rng(0)
    is_member = np.r_[np.ones(n // 2, bool), np.zeros(n // 2, bool)]
    score = rng.normal(size=n) + 2.0 * is_member
    score[3] = 50.0  # member #3 is the most exposed under "loss"
    texts = [f"document number {i} " + "word " * (i % 7) for i in range(n)]
    texts[3] = HOSTILE + " " + "long " * 100  # hostile and longer than an excerpt
    record = record_from_scores(
        kind="text", dataset={"name": "own documents", "kind": "text", "records": n, "num_classes": "none (text)", "fingerprint": "x"},
        target={"source": "test", "perplexity_members": 10.0, "perplexity_nonmembers": 20.0}, config={}, threat_model="gray-box (token log-probabilities)", scores={"loss": score},
        is_member=is_member, record_indices=np.arange(n), headline_order=("loss",),
    )  # fmt: skip
    return record.with_excerpts(texts), texts


def test_excerpts_are_written_in_record_order_and_cut(tmp_path):
    record, texts = _record()
    paths = record.write(tmp_path, report=False)
    rows = [json.loads(line) for line in paths["documents"].read_text(encoding="utf-8").splitlines()]
    assert [r["record_index"] for r in rows] == list(range(len(texts)))
    assert rows[0]["text"] == " ".join(texts[0].split())
    assert len(rows[3]["text"]) == MAX_EXCERPT_CHARS and rows[3]["text"].endswith("\u2026")
    assert excerpt("a\n\n b\tc") == "a b c"


def test_the_report_shows_the_most_exposed_documents_escaped(tmp_path):
    record, texts = _record()
    record.write(tmp_path, report=False)
    html = render_report(tmp_path)
    section = html[html.index('<section id="exposed">') : html.index("</section>", html.index('<section id="exposed">'))]
    assert "document (first characters)" in section
    assert "document number 0" in section  # a member's excerpt is shown
    assert "document number 39" not in section  # non-members are never listed as exposed
    assert "<script>alert" not in html and "&lt;script&gt;alert" in section  # escaped, not markup
    first_row = section[section.index("<tbody>") :].split("</tr>")[0]
    assert "&lt;script&gt;" in first_row  # the top member (score 50) carries its own text


def test_a_record_without_excerpts_has_no_document_column(tmp_path):
    record, _ = _record()
    from dataclasses import replace

    replace(record, excerpts=None).write(tmp_path, report=False)
    assert not (tmp_path / EXCERPTS_FILE).exists()
    assert "document (first characters)" not in render_report(tmp_path)


@pytest.mark.parametrize(
    "content, fragment",
    [
        ("not json\n", "line 1 is not JSON"),
        ('{"record_index": "3", "text": "x"}\n', "integer record_index"),
        (json.dumps({"record_index": 1, "text": "x" * (MAX_EXCERPT_CHARS + 1)}) + "\n", "at most"),
    ],
)
def test_a_damaged_documents_file_is_one_line_and_exit_2(tmp_path, content, fragment):
    record, _ = _record()
    record.write(tmp_path, report=False)
    (tmp_path / EXCERPTS_FILE).write_text(content)
    proc = subprocess.run([sys.executable, "-m", "miaudit", "report", str(tmp_path)], capture_output=True, text=True)
    assert proc.returncode == 2
    assert fragment in proc.stderr and len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
