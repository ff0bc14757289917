"""Location30, Purchase100 and Texas100, read from their authors' original archives.

These are the tabular data sets of Shokri, Stronati, Song and Shmatikov, "Membership Inference
Attacks Against Machine Learning Models", IEEE S&P 2017, as distributed by the authors in the
``privacytrustlab/datasets`` GitHub repository. Features are binary; labels are 1-based in the
files and become 0-based here.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import numpy as np

from miaudit.data.archives import read_member
from miaudit.data.base import DATASETS, Dataset, DatasetSpec
from miaudit.data.files import DataFile, locate_all
from miaudit.errors import DataError

CITATION = (
    "R. Shokri, M. Stronati, C. Song, V. Shmatikov. Membership Inference Attacks Against "
    "Machine Learning Models. IEEE S&P 2017."
)
_BASE_URL = "https://github.com/privacytrustlab/datasets/raw/master/"

LOCATION_FILE = DataFile(
    "dataset_location.tgz",
    _BASE_URL + "dataset_location.tgz",
    "927203f85a868f8ee17a0ded1dc61699efe602167beabe34fbf45b4b1de94b33",
    "287 KB",
    folder="location30",
)
# No checksum of these two archives is published; they are used as found and the loaded
# data set's content fingerprint identifies them instead.
PURCHASE_FILE = DataFile("dataset_purchase.tgz", _BASE_URL + "dataset_purchase.tgz", None, folder="purchase100")
TEXAS_FILE = DataFile("dataset_texas.tgz", _BASE_URL + "dataset_texas.tgz", None, folder="texas100")


# ----------------------------------------------------------------------------- parsing


def _binary_matrix_fast(text: bytes) -> np.ndarray | None:
    """Rows of single 0/1 digits separated by commas, viewed as a byte grid (no per-value parse).

    Returns None when the text is not in exactly that shape; the caller then parses generally.
    """
    first = text.find(b"\n")
    row_len = first + 1
    if first <= 0 or first % 2 == 0 or len(text) % row_len:
        return None
    grid = np.frombuffer(text, dtype=np.uint8).reshape(-1, row_len)
    digits = grid[:, 0::2] - ord("0")  # uint8 wraps, so anything below '0' becomes large
    if (digits > 1).any() or not (grid[:, 1:-1:2] == ord(",")).all() or not (grid[:, -1] == ord("\n")).all():
        return None
    return digits


def binary_matrix(text: bytes, *, source: str, n_features: int | None = None) -> np.ndarray:
    """Parse comma-separated 0/1 rows into a uint8 matrix, validating width and values."""
    if not text.strip():
        raise DataError(f"{source} holds no rows")
    if b"\r" in text:
        text = text.replace(b"\r", b"")
    if not text.endswith(b"\n"):
        text += b"\n"
    x = _binary_matrix_fast(text)
    if x is None:
        try:
            values = np.loadtxt(io.BytesIO(text), delimiter=",", dtype=np.float32, ndmin=2)
        except ValueError as exc:
            raise DataError(f"{source}: not a comma-separated table of numbers ({exc}); fetch the file again") from None
        if not np.isin(values, (0.0, 1.0)).all():
            raise DataError(f"{source}: features must be 0 or 1; the file is corrupt or not the published one")
        x = values.astype(np.uint8)
    if n_features is not None and x.shape[1] != n_features:
        raise DataError(f"{source}: rows have {x.shape[1]} features, expected {n_features}")
    return x


def parse_labels(raw: list[bytes], *, source: str, num_classes: int) -> np.ndarray:
    """1-based labels (optionally quoted, as in Location30) -> 0-based int64, range-checked."""
    try:
        labels = np.array([int(v.strip().strip(b'"')) for v in raw], dtype=np.int64)
    except ValueError:
        bad = next(i for i, v in enumerate(raw) if not v.strip().strip(b'"').lstrip(b"-").isdigit())
        raise DataError(f"{source}: label on row {bad + 1} is {raw[bad][:20]!r}, not an integer") from None
    if len(labels) and (labels.min() < 1 or labels.max() > num_classes):
        raise DataError(f"{source}: labels must lie in 1..{num_classes}, found {labels.min()}..{labels.max()}")
    return labels - 1


def _lines(text: bytes) -> list[bytes]:
    return [line.rstrip(b"\r") for line in text.split(b"\n") if line.strip()]


def parse_label_first_csv(
    text: bytes, *, source: str, num_classes: int, n_features: int | None
) -> tuple[np.ndarray, np.ndarray]:
    """CSV rows ``label,f1,...,fk`` (Location30's ``bangkok``, Purchase100's ``dataset_purchase``)."""
    labels, rows = [], []
    for line in _lines(text):
        label, _, rest = line.partition(b",")
        labels.append(label)
        rows.append(rest)
    if not rows:
        raise DataError(f"{source} holds no rows")
    x = binary_matrix(b"\n".join(rows), source=source, n_features=n_features)
    if len(x) != len(labels):
        raise DataError(f"{source}: some rows hold a label but no features; the file is corrupt")
    return x, parse_labels(labels, source=source, num_classes=num_classes)


def _dataset(name: str, x: np.ndarray, y: np.ndarray, num_classes: int) -> Dataset:
    return Dataset(
        name=name,
        x=x.astype(np.float32),
        y=y,
        num_classes=num_classes,
        class_names=tuple(str(i) for i in range(1, num_classes + 1)),  # the files' own 1-based labels
    )


# ----------------------------------------------------------------------------- loaders


def load_location_archive(archive: Path, *, name: str = "location30") -> Dataset:
    """Location30 from ``dataset_location.tgz`` (member ``bangkok``: quoted label, 446 features)."""
    x, y = parse_label_first_csv(
        read_member(archive, "bangkok"), source=f"{archive}:bangkok", num_classes=30, n_features=446
    )
    return _dataset(name, x, y, 30)


def load_purchase_archive(archive: Path, *, name: str = "purchase100") -> Dataset:
    """Purchase100 from ``dataset_purchase.tgz`` (member ``dataset_purchase``: label, 600 features)."""
    x, y = parse_label_first_csv(
        read_member(archive, "dataset_purchase"),
        source=f"{archive}:dataset_purchase",
        num_classes=100,
        n_features=600,
    )
    return _dataset(name, x, y, 100)


def load_texas_archive(archive: Path, *, name: str = "texas100") -> Dataset:
    """Texas100 from ``dataset_texas.tgz`` (``texas/100/feats`` and ``texas/100/labels``)."""
    feats_src, labels_src = f"{archive}:texas/100/feats", f"{archive}:texas/100/labels"
    x = binary_matrix(read_member(archive, "texas/100/feats"), source=feats_src)
    y = parse_labels(_lines(read_member(archive, "texas/100/labels")), source=labels_src, num_classes=100)
    if len(y) != len(x):
        raise DataError(f"{archive}: {len(x)} feature rows but {len(y)} labels; the archive is corrupt")
    return _dataset(name, x, y, 100)


def _register(name: str, file: DataFile, reader: Callable[..., Dataset], description: str) -> None:
    def load(data_dir: Path) -> Dataset:
        return reader(locate_all([file], data_dir, dataset=name)[file.name], name=name)

    DATASETS.add(name, DatasetSpec(name, description, (file,), load, citation=CITATION))


_register(
    "location30",
    LOCATION_FILE,
    load_location_archive,
    "Location30 (Foursquare check-ins in Bangkok): 5010 records, 446 binary features, 30 classes.",
)
_register(
    "purchase100",
    PURCHASE_FILE,
    load_purchase_archive,
    "Purchase100 (Kaggle 'Acquire Valued Shoppers' purchase histories): 197324 records, "
    "600 binary features, 100 classes. "
    "No checksum of the archive is published; its content fingerprint is recorded instead.",
)
_register(
    "texas100",
    TEXAS_FILE,
    load_texas_archive,
    "Texas100 (Texas hospital discharge records): 67330 records, about 6170 binary features, "
    "100 classes. "
    "No checksum of the archive is published; its content fingerprint is recorded instead.",
)
