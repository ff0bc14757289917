"""Labels as users have them (strings, integers, booleans) -> class indices and class names.

Shared by the single-file reader (:mod:`miaudit.data.user`) and the train/test/pool tabular
loader (:mod:`miaudit.data.tabular`), so both encode labels the same way.
"""

from __future__ import annotations

import numpy as np

from miaudit.errors import DataError
from miaudit.limits import check_at_most, limits

LABEL_COLUMN_NAMES = ("label", "labels", "y", "class", "target")


def encode_labels(values: np.ndarray, *, source: str) -> tuple[np.ndarray, tuple[str, ...]]:
    """Labels -> (int64 indices, class names).

    Non-negative integers are kept as class indices (class ``k`` stays ``k``, the names are
    ``"0"`` .. ``str(max)``) while ``max + 1`` is within the ``classes`` limit: a model whose
    output columns are indexed by class (a torch or ONNX model trained on these labels) then
    lines up column ``k`` with label ``k``, even when a class is absent from the file.

    Beyond that bound no model has a column for every index, so sparse integer labels (e.g.
    ``{0, 2**40}``) are encoded like strings, by their sorted distinct values, and the integers
    are kept as class names: a model that names its classes (a scikit-learn ``classes_``) is
    matched to them by name, and nothing allocates ``max + 1`` of anything. Anything else
    (strings, negative numbers) is mapped to indices in sorted order. More distinct labels than
    the ``classes`` limit is a :class:`~miaudit.limits.LimitError`.
    """
    values = np.asarray(values)
    if values.dtype.kind in "US":
        as_int = _integers(values)
        if as_int is None:
            names, y = np.unique(values.astype(str), return_inverse=True)
            if any(n.strip() == "" for n in names):
                raise DataError(f"{source}: some labels are empty; fill them in or drop those rows")
            check_at_most("classes", len(names), f"{source}: the number of distinct labels")
            return y.astype(np.int64), tuple(str(n) for n in names)
        values = as_int
    if values.dtype.kind == "b":
        values = values.astype(np.int64)
    if values.dtype.kind == "f":
        if not np.isfinite(values).all() or (values != np.round(values)).any():
            raise DataError(f"{source}: labels are fractional or NaN; labels must be class names or integers")
        if np.abs(values).max(initial=0) >= 2.0**63:
            raise DataError(f"{source}: labels beyond 2**63 are not class labels; use strings or smaller integers")
        values = values.astype(np.int64)
    if values.dtype.kind not in "iu":
        raise DataError(f"{source}: labels of type {values.dtype} are not supported; use integers or strings")
    if values.dtype.kind == "u" and len(values) and values.max() >= 2**63:
        raise DataError(f"{source}: labels beyond 2**63 are not class labels; use strings or smaller integers")
    values = values.astype(np.int64)
    if len(values) and values.min() >= 0 and int(values.max()) < limits().classes:
        return values, tuple(str(i) for i in range(int(values.max()) + 1))
    names, y = np.unique(values, return_inverse=True)
    check_at_most("classes", len(names), f"{source}: the number of distinct labels")
    return y.astype(np.int64), tuple(str(n) for n in names)


def _integers(values: np.ndarray) -> np.ndarray | None:
    try:
        return np.array([int(v) for v in values.astype(str)], dtype=np.int64)
    except (ValueError, OverflowError):  # not integers, or beyond int64: names, not indices
        return None


