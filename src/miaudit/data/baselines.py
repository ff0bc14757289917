"""Baselines a trained target should beat: below them, an audit of its leakage says little."""

from __future__ import annotations

import numpy as np

MAJORITY_TOLERANCE = 0.01
"""A target whose test accuracy is at most ``majority_class_rate + MAJORITY_TOLERANCE`` has
learned (next to) nothing beyond the class frequencies; the audit warns about it."""


def majority_class_rate(y_train: np.ndarray, y_test: np.ndarray) -> float:
    """Test accuracy of always predicting the training set's most frequent class.

    Ties go to the smallest class index (``np.bincount(...).argmax()``). A model at or below
    this rate (plus :data:`MAJORITY_TOLERANCE`) predicts no better than the class prior, e.g. a
    linear model trained on unscaled features that never left its starting point.
    """
    y_train = np.asarray(y_train, dtype=np.int64)
    y_test = np.asarray(y_test, dtype=np.int64)
    if len(y_train) == 0 or len(y_test) == 0:
        raise ValueError("majority_class_rate needs non-empty training and test labels")
    majority = int(np.bincount(y_train).argmax())
    return float(np.mean(y_test == majority))


def at_majority_rate(test_accuracy: float, y_train: np.ndarray, y_test: np.ndarray) -> bool:
    """Whether ``test_accuracy`` is at or below the majority-class rate plus :data:`MAJORITY_TOLERANCE`."""
    return test_accuracy <= majority_class_rate(y_train, y_test) + MAJORITY_TOLERANCE
