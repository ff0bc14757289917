"""Precomputed outputs as a data set and split, so an outputs-only audit runs the one pipeline.

Each row of the outputs file is one record; its "features" are its row number (a one-feature
vector), which :class:`~miaudit.core.sources.OutputsLookup` answers with that row's outputs.
Members are the rows with ``is_member`` = 1, non-members the others; all rows are evaluated,
none subsampled, and there is no attacker pool (the outputs come without other data).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from miaudit.data.base import Dataset
from miaudit.data.split import Split
from miaudit.io_utils import sha256_arrays


def outputs_dataset(outputs: Any, *, seed: int) -> tuple[Dataset, Split, list[str]]:
    """The rows of :class:`~miaudit.targets.external.PrecomputedOutputs` as a data set and split."""
    n = len(outputs.labels)
    dataset = Dataset(
        name=outputs.source,
        x=np.arange(n, dtype=np.float32).reshape(n, 1),
        y=outputs.labels,
        num_classes=outputs.num_classes,
        fingerprint=sha256_arrays(outputs.proba(), outputs.labels, outputs.is_member),
    )
    rows = np.arange(n)
    split = Split(rows[outputs.is_member], rows[~outputs.is_member], np.arange(0), np.arange(0), seed=seed)
    notes = [f"precomputed outputs: all {n} rows evaluated, no attacker pool; attacks that query other records are skipped"]
    return dataset, split, notes
