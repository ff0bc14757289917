"""Data sets: registered public ones (loaded by name) and a user's own files.

Importing this package registers every built-in data set in :data:`DATASETS`. Loaders read
their files from a data directory (``$MIAUDIT_DATA_DIR`` by default), downloading and verifying
absent files when allowed.
"""

from __future__ import annotations

import os
from pathlib import Path

# Imported for their side effect: each module registers its data sets.
from miaudit.data import cifar10, digits, idx, shokri_archives  # noqa: F401
from miaudit.data.base import DATASETS, Dataset, DatasetSpec, RemoteFile
from miaudit.data.files import DataFile, FileReport, locate, locate_all, verify_files
from miaudit.data.user import USER_FORMATS, load_csv, load_image_folder, load_npz, load_user_data
from miaudit.paths import data_dir as _data_dir

__all__ = [
    "DATASETS",
    "DataFile",
    "Dataset",
    "DatasetSpec",
    "FileReport",
    "RemoteFile",
    "USER_FORMATS",
    "fetch_dataset",
    "list_datasets",
    "load_csv",
    "load_dataset",
    "load_image_folder",
    "load_npz",
    "load_user_data",
    "locate",
    "verify_dataset",
]

PathLike = str | os.PathLike[str]


def list_datasets() -> list[DatasetSpec]:
    """Every registered data set, sorted by name."""
    return [spec for _, spec in DATASETS.items()]


def fetch_dataset(name: str, data_dir: PathLike | None = None, *, download: bool = True) -> dict[str, Path]:
    """Make sure a data set's files are present and verified; return {file name: path}.

    Embedded data sets need no files and return an empty dict.
    """
    spec = DATASETS.get(name)
    if spec.embedded:
        return {}
    return locate_all(spec.files, _data_dir(data_dir), dataset=name, download=download)


def load_dataset(name: str, data_dir: PathLike | None = None, *, download: bool = True) -> Dataset:
    """Load a registered data set by name (see :func:`list_datasets`).

    Files are looked for in ``data_dir`` (default ``$MIAUDIT_DATA_DIR``), in a subfolder named
    after the data set or at its top level; absent ones are downloaded unless ``download`` is
    False. Raises UnknownNameError, DataMissingError, ChecksumError or DataError.
    """
    spec = DATASETS.get(name)
    root = _data_dir(data_dir)
    fetch_dataset(name, root, download=download)  # all files at once: one message for all missing
    return spec.load(root)


def verify_dataset(name: str, data_dir: PathLike | None = None) -> list[FileReport]:
    """Re-hash a data set's files and report each: ok, unverified (no published checksum), mismatch, missing."""
    spec = DATASETS.get(name)
    return verify_files(spec.files, _data_dir(data_dir), dataset=name)
