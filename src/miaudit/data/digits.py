"""scikit-learn's bundled 8x8 handwritten digits: an MNIST-like data set that needs no file.

The data are the UCI "Optical Recognition of Handwritten Digits" test set (E. Alpaydin,
C. Kaynak, 1998), as shipped inside scikit-learn (``sklearn.datasets.load_digits``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from miaudit.data.base import DATASETS, Dataset, DatasetSpec

CITATION = (
    "E. Alpaydin, C. Kaynak. Optical Recognition of Handwritten Digits. UCI Machine Learning "
    "Repository, 1998 (as bundled with scikit-learn)."
)


def load_digits_dataset(_data_dir: Path | None = None) -> Dataset:
    """1797 records, 64 features (8x8 pixel counts 0..16 scaled to [0, 1]), 10 classes."""
    from sklearn.datasets import load_digits  # imported here: scikit-learn is slow to import

    bunch = load_digits()
    x = (bunch.data / 16.0).astype(np.float32)
    return Dataset("digits", x, bunch.target, 10, class_names=tuple(str(d) for d in range(10)))


DATASETS.add(
    "digits",
    DatasetSpec(
        "digits",
        "scikit-learn's 8x8 handwritten digits: 1797 records, 64 features in [0, 1], 10 classes (no download).",
        (),
        load_digits_dataset,
        citation=CITATION,
        embedded=True,
    ),
)
