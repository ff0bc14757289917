"""Input standardization as part of a model trained here, fitted on that model's own records.

A model trained with ``TrainingRecipe(standardize=True)`` sees ``(x - mean) / std``, where the
per-feature mean and standard deviation come from *its* training subset only (a target from its
members, each shadow or reference model from its own half). The statistics then travel with the
model: torch models are wrapped in :class:`Standardized` (buffers ``mean`` / ``std``, the
trained network as ``net``), so every caller of the module, predictions and white-box access
alike, feeds it raw features; scikit-learn estimators become ``Pipeline(StandardScaler, est)``.

The statistics are a deterministic function of the data and the subset, so the model cache
stores only the network's weights (under a key whose recipe says ``standardize``) and the
statistics are recomputed on load.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

MIN_STD = 1e-12
"""A feature whose standard deviation on the training subset is below this (a constant
column) is divided by 1 instead, as scikit-learn's StandardScaler does."""


def input_stats(x: np.ndarray, indices: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature float32 (mean, std) of ``x[indices]`` (default all rows), shaped like one record.

    Computed in float64 (population std, ``ddof=0``, like StandardScaler); constant features
    get std 1.
    """
    rows = x if indices is None else x[indices]
    flat = rows.reshape(len(rows), -1).astype(np.float64)
    mean = flat.mean(axis=0)
    std = flat.std(axis=0)
    std[std < MIN_STD] = 1.0
    shape = x.shape[1:]
    return mean.astype(np.float32).reshape(shape), std.astype(np.float32).reshape(shape)


def standardize(x: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """``(x - mean) / std`` in float32: the same operations :class:`Standardized` applies."""
    return ((np.asarray(x, dtype=np.float32) - mean) / std).astype(np.float32)


class Standardized(nn.Module):
    """``net`` behind a fixed standardization of its inputs: ``net((x - mean) / std)``."""

    def __init__(self, net: nn.Module, mean: np.ndarray | torch.Tensor, std: np.ndarray | torch.Tensor) -> None:
        super().__init__()
        self.net = net
        self.register_buffer("mean", torch.as_tensor(np.asarray(mean, dtype=np.float32)).clone())
        self.register_buffer("std", torch.as_tensor(np.asarray(std, dtype=np.float32)).clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net((x - self.mean) / self.std)


def inner_module(module: nn.Module) -> nn.Module:
    """The trained network itself: ``module.net`` for a :class:`Standardized`, else ``module``."""
    return module.net if isinstance(module, Standardized) else module


def standardized_estimator(estimator: Any) -> Any:
    """``Pipeline(StandardScaler(), estimator)``: the scaler is fitted on what the pipeline is fitted on."""
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    return Pipeline([("standardize", StandardScaler()), ("model", estimator)])
