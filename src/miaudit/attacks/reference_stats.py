"""Statistics over reference models' scores, shared by LiRA, RMIA and Attack-R.

Arrays of reference scores are shaped ``(R, N)`` (reference models x records) and come with a
boolean ``mask`` of the same shape saying which (model, record) values an attack may use:
OUT references only for the offline attacks, IN and OUT ones (two masks) for the online attacks.
A mask, not a ragged list, keeps everything vectorised and lets each record have its own set of
references (in the many-target protocol every record is IN for a different half of the models).
"""

from __future__ import annotations

import numpy as np

from miaudit.errors import ConfigError

SIGMA_FLOOR = 1e-30  # a zero standard deviation (identical references) would divide by zero


def first_per_record(mask: np.ndarray, k: int) -> np.ndarray:
    """Keep, for every record (column), only the first ``k`` True entries of ``mask`` (by row).

    Used to give every record exactly ``k`` references of a kind out of a longer list of models.
    Records with fewer than ``k`` keep all they have; :func:`require_counts` says when that is too few.
    """
    mask = np.asarray(mask, dtype=bool)
    return mask & (np.cumsum(mask, axis=0) <= k)


def require_counts(mask: np.ndarray, minimum: int, what: str) -> None:
    """Fail with one line when some record has fewer than ``minimum`` references in ``mask``."""
    counts = np.asarray(mask).sum(axis=0)
    if counts.size and counts.min() < minimum:
        raise ConfigError(
            f"{what}: some records have {int(counts.min())} reference models, the attack needs at least {minimum}; "
            "train more reference models"
        )


def masked_mean(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Per record, the mean of ``values`` over the rows where ``mask`` holds (NaN where none)."""
    values = np.asarray(values, dtype=np.float64)
    counts = mask.sum(axis=0)
    total = np.where(mask, values, 0.0).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return total / counts


def masked_std(values: np.ndarray, mask: np.ndarray, *, per_record: bool) -> np.ndarray:
    """Standard deviation of the references' ``values`` per record, or one global value for all.

    The global value is the pooled within-record standard deviation (each record's values about
    its own mean), so differences between records' means do not inflate it. With one reference
    per record there is no within-record spread to pool; the spread of all values is used then.
    """
    values = np.asarray(values, dtype=np.float64)
    mean = masked_mean(values, mask)
    sq = np.where(mask, (values - mean) ** 2, 0.0)
    counts = mask.sum(axis=0)
    if per_record:
        if counts.min(initial=2) < 2:
            raise ConfigError("a per-record variance needs at least 2 reference models per record")
        return np.maximum(np.sqrt(sq.sum(axis=0) / counts), SIGMA_FLOOR)
    dof = int(counts.sum() - (counts > 0).sum())
    if dof > 0:
        sigma = float(np.sqrt(sq.sum() / dof))
    else:  # one value per record
        sigma = float(values[mask].std()) if mask.any() else 0.0
    return np.full(values.shape[1], max(sigma, SIGMA_FLOOR))
