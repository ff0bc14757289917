"""The user's own records as one data set and one split, so their audit runs the one pipeline.

A user auditing their own model hands in its training records (the members), records it never
saw (the non-members) and, optionally, further same-distribution records the attacker may use
(the pool). They become one :class:`~miaudit.data.base.Dataset` (train, then test, then pool
rows, in the order given) and a :class:`~miaudit.data.split.Split` over it:

- ``target_in``: the training rows, subsampled (seeded) to as many as there are evaluated
  non-members when there are more, so members and non-members are balanced (stated in notes);
- ``target_out``: the test rows that are evaluated;
- ``attacker_pool``: the pool rows; without a pool, a stated share (``pool_share``) of the test
  rows is held out for the attacker and not evaluated;
- ``population``: empty.

Given the same records in the same order, this is the split the trained-here audit uses, so
both paths score the same records identically (tests/test_core.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from miaudit.data.base import Dataset
from miaudit.data.split import Split
from miaudit.errors import ConfigError, InputError
from miaudit.io_utils import sha256_arrays
from miaudit.models.seeding import derive_seed

DEFAULT_POOL_SHARE = 0.5
"""Share of the test records held out as the attacker's pool when no pool is given."""


@dataclass(frozen=True)
class OwnData:
    """The user's records: ``train`` (members), ``test`` (non-members), optional ``pool``.

    Each is ``(x, y)`` with x numeric (n, features...) and y integer class indices. ``is_member``
    may instead be given with ``records`` (one array of records and their truth), the form of
    the older ``--data file.npz`` with an ``is_member`` array.
    """

    train: tuple[Any, Any]
    test: tuple[Any, Any]
    pool: tuple[Any, Any] | None = None
    num_classes: int | None = None
    class_names: tuple[str, ...] = ()
    name: str = "own data"
    pool_share: float = DEFAULT_POOL_SHARE
    balance: bool = True
    preprocessing: dict[str, Any] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()

    @classmethod
    def from_membership(cls, x: Any, y: Any, is_member: Any, **kw: Any) -> OwnData:
        """Records with their membership truth: members are the training set, the others the test set."""
        xa, member = np.asarray(x), np.asarray(is_member)
        if member.shape != (len(xa),) or member.dtype.kind not in "biuf" or not np.isin(member, (0, 1)).all():
            raise InputError(f"is_member must be boolean or 0/1 shaped ({len(xa)},)")
        member = member.astype(bool)
        ya = np.asarray(y)
        if ya.shape[:1] != (len(xa),):
            raise InputError(f"labels y must have one entry per record: {len(xa)} records, y shaped {ya.shape}")
        return cls(train=(xa[member], ya[member]), test=(xa[~member], ya[~member]), **kw)


def _records(part: tuple[Any, Any], what: str) -> tuple[np.ndarray, np.ndarray]:
    """Checked features and the labels as given (encoded over all parts by :func:`_labels`)."""
    from miaudit.models.inputs import as_features

    try:
        x = as_features(part[0])
    except InputError as exc:
        raise InputError(f"{what}: {exc}") from None
    y = np.asarray(part[1])
    if y.ndim != 1 or len(y) != len(x):
        raise InputError(f"{what}: labels must be a vector of {len(x)} labels, one per record, got shape {y.shape}")
    return x, y


def _labels(y: np.ndarray, data: OwnData) -> tuple[np.ndarray, int, tuple[str, ...]]:
    """(class indices, number of classes, class names) of the labels of all parts.

    Given ``num_classes`` (the tabular loader encoded them already), labels must be indices.
    Otherwise they are encoded like a data file's (:func:`miaudit.data.labels.encode_labels`):
    integers ``0..C-1`` stay the model's column indices; strings, negative or sparse integers
    (``{0, 10**9}``) become sorted indices whose names are the labels, matched by name to a
    model that names its classes (a scikit-learn ``classes_``).
    """
    from miaudit.data.labels import encode_labels
    from miaudit.models.inputs import as_labels

    if data.num_classes is not None:
        return as_labels(y, len(y), data.num_classes), data.num_classes, tuple(data.class_names)
    indices, names = encode_labels(y, source="the records' labels")
    as_indices = y.dtype.kind in "iu" and names == tuple(str(i) for i in range(len(names)))
    return indices, len(names), tuple(data.class_names) if as_indices else names


def own_dataset(data: OwnData, *, seed: int, needs_pool: bool) -> tuple[Dataset, Split, list[str]]:
    """One data set and split from the user's records; returns the notes that state what was done."""
    train_x, train_y = _records(data.train, "training records")
    test_x, test_y = _records(data.test, "test records")
    parts = [(train_x, train_y), (test_x, test_y)]
    if data.pool is not None:
        parts.append(_records(data.pool, "pool records"))
    shapes = {tuple(x.shape[1:]) for x, _ in parts}
    if len(shapes) > 1:
        raise InputError(f"training, test and pool records must have the same feature shape, got {sorted(shapes)}")
    if not 0.0 <= data.pool_share < 1.0:
        raise ConfigError(f"pool share must lie in [0, 1), got {data.pool_share}")
    x = np.concatenate([p[0] for p in parts])
    y, num_classes, class_names = _labels(np.concatenate([p[1] for p in parts]), data)
    n_train, n_test = len(train_y), len(test_y)
    train_idx = np.arange(n_train)
    test_idx = np.arange(n_train, n_train + n_test)
    notes: list[str] = []
    if data.pool is not None:
        pool_idx = np.arange(n_train + n_test, len(y))
    elif needs_pool and data.pool_share > 0:
        rng = np.random.default_rng(derive_seed(seed, "own-data/pool"))
        held = np.sort(rng.choice(n_test, int(round(data.pool_share * n_test)), replace=False))
        pool_idx = test_idx[held]
        test_idx = np.setdiff1d(test_idx, pool_idx)
        notes.append(
            f"no pool given: {len(pool_idx)} of the {n_test} test records ({data.pool_share:.0%}) are the attacker's pool "
            "and are not evaluated"
        )
    else:
        pool_idx = np.arange(0)
    if data.balance and len(train_idx) != len(test_idx):
        rng = np.random.default_rng(derive_seed(seed, "own-data/balance"))
        k = min(len(train_idx), len(test_idx))
        if len(train_idx) > k:
            notes.append(f"members subsampled to {k} of {len(train_idx)} training records, as many as the evaluated non-members")
            train_idx = np.sort(rng.choice(train_idx, k, replace=False))
        else:
            notes.append(f"non-members subsampled to {k} of {len(test_idx)} test records, as many as the members")
            test_idx = np.sort(rng.choice(test_idx, k, replace=False))
    if len(train_idx) == 0 or len(test_idx) == 0:
        raise InputError("the audit needs at least one member (training record) and one non-member (test record)")
    dataset = Dataset(
        name=data.name,
        x=x,
        y=y,
        num_classes=num_classes,
        class_names=class_names,
        fingerprint=sha256_arrays(x, y),
    )
    split = Split(train_idx, test_idx, pool_idx, np.arange(0), seed=seed)
    return dataset, split, notes
