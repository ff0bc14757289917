"""Labels as users have them (strings, integers, booleans) -> class indices and class names.

Shared by the single-file reader (:mod:`miaudit.data.user`) and the train/test/pool tabular
loader (:mod:`miaudit.data.tabular`), so both encode labels the same way.
"""

from __future__ import annotations

import numpy as np

from miaudit.errors import DataError

LABEL_COLUMN_NAMES = ("label", "labels", "y", "class", "target")


def encode_labels(values: np.ndarray, *, source: str) -> tuple[np.ndarray, tuple[str, ...]]:
    """Labels -> (int64 indices, class names).

    Non-negative integers are kept as they are (class ``k`` stays ``k``); anything else
    (strings, negative numbers) is mapped to indices in sorted order.
    """
    values = np.asarray(values)
    if values.dtype.kind in "US":
        as_int = _integers(values)
        if as_int is None:
            names, y = np.unique(values.astype(str), return_inverse=True)
            if any(n.strip() == "" for n in names):
                raise DataError(f"{source}: some labels are empty; fill them in or drop those rows")
            return y.astype(np.int64), tuple(str(n) for n in names)
        values = as_int
    if values.dtype.kind == "b":
        values = values.astype(np.int64)
    if values.dtype.kind == "f":
        if not np.isfinite(values).all() or (values != np.round(values)).any():
            raise DataError(f"{source}: labels are fractional or NaN; labels must be class names or integers")
        values = values.astype(np.int64)
    if values.dtype.kind not in "iu":
        raise DataError(f"{source}: labels of type {values.dtype} are not supported; use integers or strings")
    values = values.astype(np.int64)
    if len(values) and values.min() >= 0:
        return values, tuple(str(i) for i in range(int(values.max()) + 1))
    names, y = np.unique(values, return_inverse=True)
    return y.astype(np.int64), tuple(str(n) for n in names)


def _integers(values: np.ndarray) -> np.ndarray | None:
    try:
        return np.array([int(v) for v in values.astype(str)], dtype=np.int64)
    except ValueError:
        return None


