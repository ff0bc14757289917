"""Checks of the arrays handed to training, with messages that say what to fix."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from miaudit.errors import InputError


def as_features(x: object) -> np.ndarray:
    """``x`` as a C-contiguous float32 array of shape (n, features...)."""
    arr = np.ascontiguousarray(np.asarray(x), dtype=np.float32)
    if arr.ndim < 2:
        raise InputError(f"features must be shaped (n, features...), got shape {arr.shape}")
    if 0 in arr.shape[1:]:
        raise InputError(f"the records have no features (shape {arr.shape}); give at least one feature")
    if not np.isfinite(arr).all():
        raise InputError("features contain NaN or infinity; clean or impute them first")
    return arr


def as_labels(y: object, n: int, num_classes: int) -> np.ndarray:
    """``y`` as an int64 vector of n class indices in [0, num_classes)."""
    arr = np.asarray(y)
    if arr.ndim != 1 or len(arr) != n:
        raise InputError(f"labels must be a vector of {n} class indices, got shape {arr.shape}")
    if arr.dtype.kind not in "iu":
        raise InputError(f"labels must be integer class indices, got dtype {arr.dtype}")
    arr = arr.astype(np.int64)
    if n and (arr.min() < 0 or arr.max() >= num_classes):
        raise InputError(f"labels must lie in [0, {num_classes}), got [{arr.min()}, {arr.max()}]")
    return arr


def as_index_array(indices: object, n: int, what: str = "training indices") -> np.ndarray:
    """Non-empty int64 record indices into a data set of n records."""
    arr = np.asarray(indices)
    if arr.ndim != 1 or arr.dtype.kind not in "iu":
        raise InputError(f"{what} must be a 1-D integer array, got shape {arr.shape} dtype {arr.dtype}")
    if len(arr) == 0:
        raise InputError(f"{what} are empty: a model needs at least one training record")
    arr = arr.astype(np.int64)
    if arr.min() < 0 or arr.max() >= n:
        raise InputError(f"{what} must lie in [0, {n}), got [{arr.min()}, {arr.max()}]")
    return arr


def check_num_classes(num_classes: object) -> int:
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < 2:
        raise InputError(f"num_classes must be an integer >= 2, got {num_classes!r}")
    return int(num_classes)


def to_tensors(x: np.ndarray, y: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Zero-copy torch views of checked arrays."""
    return torch.from_numpy(x), torch.from_numpy(y)


def same_length(subsets: Sequence[object], seeds: Sequence[object]) -> None:
    if len(subsets) != len(seeds):
        raise InputError(f"got {len(subsets)} training subsets but {len(seeds)} seeds; give one seed per model")
