"""MNIST, read from the standard IDX files (gzip-compressed or not).

MNIST: Y. LeCun, L. Bottou, Y. Bengio, P. Haffner, "Gradient-based learning applied to document
recognition", Proc. IEEE 86(11), 1998; files as published by LeCun, Cortes and Burges.

IDX format: two zero bytes, a type code, the number of dimensions, then each dimension as a
big-endian uint32, then the values in C order (big-endian for multi-byte types).
"""

from __future__ import annotations

import gzip
import math
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np

from miaudit.data.base import DATASETS, Dataset, DatasetSpec, RemoteFile
from miaudit.data.files import DataFile, locate_all
from miaudit.errors import DataError

CITATION = (
    "Y. LeCun, L. Bottou, Y. Bengio, P. Haffner. Gradient-based learning applied to document "
    "recognition. Proceedings of the IEEE 86(11), 1998."
)
_URL = "https://ossci-datasets.s3.amazonaws.com/mnist/"
_GZIP_MAGIC = b"\x1f\x8b"
_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
MAX_IDX_BYTES = 1 << 31  # far above MNIST's 47 MB; a bigger header claim means corruption


def read_idx(path: Path) -> np.ndarray:
    """The array stored in an IDX file, validating header, sizes and (for .gz) the stream."""
    try:
        with open(path, "rb") as raw:
            compressed = raw.read(2) == _GZIP_MAGIC
        with gzip.open(path, "rb") if compressed else open(path, "rb") as f:
            header = f.read(4)
            if len(header) < 4 or header[:2] != b"\x00\x00" or header[2] not in _DTYPES or header[3] == 0:
                raise DataError(
                    f"{path} is not an IDX file (magic bytes {header.hex() or 'missing'}); delete it and fetch it again"
                )
            dtype = np.dtype(_DTYPES[header[2]])
            ndim = header[3]
            dims_raw = f.read(4 * ndim)
            if len(dims_raw) < 4 * ndim:
                raise DataError(f"{path} is truncated inside its header; delete it and fetch it again")
            dims = struct.unpack(f">{ndim}I", dims_raw)
            expected = math.prod(dims) * dtype.itemsize  # Python ints: no overflow on hostile dims
            if expected > MAX_IDX_BYTES:
                raise DataError(
                    f"{path}: header claims dimensions {dims}, too large for real data; the file is corrupt"
                )
            payload = f.read(expected)
            extra = f.read(1)
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{path} cannot be read (corrupt or truncated: {exc}); delete it and fetch it again") from None
    if len(payload) < expected:
        raise DataError(
            f"{path} is truncated: its header promises {expected} bytes of data, found {len(payload)}; "
            "delete it and fetch it again"
        )
    if extra:
        raise DataError(f"{path} has data beyond what its header describes; the file is corrupt")
    return np.frombuffer(payload, dtype=dtype).reshape(dims).astype(dtype.newbyteorder("="))


def read_mnist_pair(images_path: Path, labels_path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 (n, 28, 28), labels uint8 (n,)) from an IDX image file and label file."""
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (28, 28):
        raise DataError(f"{images_path}: expected uint8 images of shape (n, 28, 28), got {images.dtype} {images.shape}")
    if labels.dtype != np.uint8 or labels.ndim != 1:
        raise DataError(f"{labels_path}: expected a uint8 vector of labels, got {labels.dtype} {labels.shape}")
    if len(images) != len(labels):
        raise DataError(
            f"{len(images)} images but {len(labels)} labels in {images_path} and {labels_path}; "
            "the two files do not belong together"
        )
    if len(labels) and labels.max() > 9:
        raise DataError(f"{labels_path}: labels must be digits 0..9, found {labels.max()}")
    return images, labels


def mnist_dataset(name: str, pairs: dict[str, tuple[np.ndarray, np.ndarray]]) -> Dataset:
    """Concatenate named parts (e.g. train then test) into one Dataset of (n, 1, 28, 28) floats."""
    xs, ys, parts, start = [], [], {}, 0
    for part, (images, labels) in pairs.items():
        xs.append(images)
        ys.append(labels)
        parts[part] = np.arange(start, start + len(labels))
        start += len(labels)
    x = np.concatenate(xs)[:, None, :, :].astype(np.float32) / np.float32(255.0)
    y = np.concatenate(ys).astype(np.int64)
    return Dataset(name, x, y, 10, class_names=tuple(str(d) for d in range(10)), parts=parts)


def _idx_file(stem: str, sha256: str, size_hint: str) -> DataFile:
    # The uncompressed copy (what `gunzip` leaves behind) is accepted as a stand-in; no checksum
    # of it is published, so only its structure is checked.
    return DataFile(
        f"{stem}.gz",
        _URL + f"{stem}.gz",
        sha256,
        size_hint,
        folder="mnist",
        alternatives=(RemoteFile(stem, None, None),),
    )


# sha256 values: the test files' from the shared data README; all four agree with TensorFlow
# Datasets' url_checksums/mnist.txt.
TRAIN_IMAGES = _idx_file(
    "train-images-idx3-ubyte", "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609", "9.9 MB"
)
TRAIN_LABELS = _idx_file(
    "train-labels-idx1-ubyte", "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c", "29 KB"
)
TEST_IMAGES = _idx_file(
    "t10k-images-idx3-ubyte", "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6", "1.6 MB"
)
TEST_LABELS = _idx_file(
    "t10k-labels-idx1-ubyte", "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6", "4.5 KB"
)
_PARTS = {"train": (TRAIN_IMAGES, TRAIN_LABELS, 60000), "test": (TEST_IMAGES, TEST_LABELS, 10000)}


def _loader(name: str, part_names: tuple[str, ...]) -> Callable[[Path], Dataset]:
    def load(data_dir: Path) -> Dataset:
        files = [f for p in part_names for f in _PARTS[p][:2]]
        paths = locate_all(files, data_dir, dataset=name)
        pairs = {}
        for p in part_names:
            images_file, labels_file, count = _PARTS[p]
            pairs[p] = read_mnist_pair(paths[images_file.name], paths[labels_file.name])
            if len(pairs[p][1]) != count:
                raise DataError(f"{name}: the {p} files hold {len(pairs[p][1])} records, MNIST has {count}")
        return mnist_dataset(name, pairs)

    return load


DATASETS.add(
    "mnist",
    DatasetSpec(
        "mnist",
        "MNIST handwritten digits: 60000 train + 10000 test images, 1x28x28 in [0, 1], 10 classes.",
        (TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS),
        _loader("mnist", ("train", "test")),
        citation=CITATION,
    ),
)
DATASETS.add(
    "mnist-test",
    DatasetSpec(
        "mnist-test",
        "MNIST's 10000 test images alone (1x28x28 in [0, 1], 10 classes), for data directories "
        "without the training files.",
        (TEST_IMAGES, TEST_LABELS),
        _loader("mnist-test", ("test",)),
        citation=CITATION,
    ),
)
