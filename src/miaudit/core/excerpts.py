"""``documents.jsonl``: a short excerpt of each evaluated document, for the report's most exposed records.

A text audit's records are documents; the report shows the most exposed members as text so a
reviewer sees *what* leaks, not only a row number. Only the first :data:`MAX_EXCERPT_CHARS`
characters of each document are kept (the report is handed on; whole documents stay in the
user's files). One JSON object per line: ``{"record_index": int, "text": str}``, in the order of
``scores.csv``. The report reads it back within :data:`MAX_EXCERPTS_BYTES` and escapes every
character (Jinja autoescaping), so a hostile document cannot inject markup.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from miaudit.io_utils import atomic_path

EXCERPTS_FILE = "documents.jsonl"
MAX_EXCERPT_CHARS = 200
MAX_EXCERPTS_BYTES = 16 * 2**20  # 200 characters x up to 4 bytes each x 20,000 documents


def excerpt(text: str, limit: int = MAX_EXCERPT_CHARS) -> str:
    """``text`` on one line (whitespace runs collapsed), cut to ``limit`` characters with an ellipsis."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "\u2026"


def write_excerpts(path: Path, record_indices: Sequence[int], texts: Sequence[str]) -> None:
    """Write one excerpt per evaluated document to ``path`` (atomically)."""
    if len(record_indices) != len(texts):
        raise ValueError(f"{len(record_indices)} record indices for {len(texts)} documents")
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        for index, text in zip(record_indices, texts):
            f.write(json.dumps({"record_index": int(index), "text": excerpt(text)}, ensure_ascii=False) + "\n")
