"""The in-memory data set every loader returns, and the registry of named data sets."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from miaudit.errors import InputError
from miaudit.io_utils import sha256_arrays
from miaudit.limits import check_at_most
from miaudit.registry import Registry


@dataclass(frozen=True)
class Dataset:
    """Features and labels of one data set, with a content fingerprint.

    ``x`` is float32 with shape ``(n, *feature_shape)`` (images are ``(n, C, H, W)`` in [0, 1]),
    ``y`` is int64 class indices in ``[0, num_classes)``. ``parts`` optionally names the
    publisher's own partition (e.g. CIFAR-10's ``train`` / ``test``) as index arrays into x.
    The fingerprint (sha256 of x and y) is part of every cache key built on this data set.
    """

    name: str
    x: np.ndarray
    y: np.ndarray
    num_classes: int
    class_names: tuple[str, ...] = ()
    parts: dict[str, np.ndarray] = field(default_factory=dict)
    fingerprint: str = ""

    def __post_init__(self) -> None:
        if self.x.ndim < 2 or self.y.ndim != 1 or len(self.x) != len(self.y):
            raise InputError(
                f"data set {self.name!r}: x must be (n, features...) and y (n,), "
                f"got {self.x.shape} and {self.y.shape}"
            )
        # Every loader returns a Dataset, so the bounds on records, features and classes hold
        # for all of them here (readers check them earlier too, before allocating).
        if math.prod(self.x.shape[1:]) == 0:
            raise InputError(f"data set {self.name!r}: the records have no features (x is shaped {self.x.shape}); give at least one feature")
        check_at_most("records", len(self.x), f"data set {self.name!r}'s records")
        check_at_most("features", math.prod(self.x.shape[1:]), f"data set {self.name!r}'s features per record")
        check_at_most("classes", int(self.num_classes), f"data set {self.name!r}'s classes")
        if self.x.dtype != np.float32:
            object.__setattr__(self, "x", self.x.astype(np.float32))
        if self.y.dtype != np.int64:
            object.__setattr__(self, "y", self.y.astype(np.int64))
        if not np.isfinite(self.x).all():
            raise InputError(f"data set {self.name!r}: features contain NaN or infinity; clean the file")
        if len(self.y) and (self.y.min() < 0 or self.y.max() >= self.num_classes):
            raise InputError(
                f"data set {self.name!r}: labels must lie in [0, {self.num_classes}), "
                f"got [{self.y.min()}, {self.y.max()}]"
            )
        if not self.fingerprint:
            object.__setattr__(self, "fingerprint", sha256_arrays(self.x, self.y))

    def __len__(self) -> int:
        return len(self.y)

    @property
    def feature_shape(self) -> tuple[int, ...]:
        return tuple(self.x.shape[1:])

    @property
    def num_features(self) -> int:
        return int(np.prod(self.feature_shape))


@dataclass(frozen=True)
class RemoteFile:
    """A file a loader needs: its name in the data directory, public address and sha256.

    ``sha256`` is None only where no checksum of the original is published; such files are
    used as they are and their content fingerprint is recorded instead.
    """

    name: str
    url: str | None
    sha256: str | None
    size_hint: str = ""


@dataclass(frozen=True)
class DatasetSpec:
    """A registered data set: how to load it from a data directory and which files it needs."""

    name: str
    description: str
    files: tuple[RemoteFile, ...]
    load: Callable[[Path], Dataset]
    citation: str = ""
    embedded: bool = False  # ships with a library (no file, no download)


DATASETS: Registry[DatasetSpec] = Registry("data set")
