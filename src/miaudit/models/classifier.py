"""A uniform view of trained models for attacks: logits and probabilities as numpy arrays.

Every classifier exposes ``predict_logits(x) -> (n, C)`` and ``predict_proba(x) -> (n, C)``,
where the probabilities are always the softmax of the logits, computed once and stably in
float64 (so attacks that use logits and attacks that use probabilities see the same model).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from miaudit.errors import InputError
from miaudit.models.device import current_device

LOG_PROB_FLOOR = 1e-12
"""Probabilities of scikit-learn estimators are clipped here before the log (log 0 = -inf)."""

EVAL_BATCH = 4096


@runtime_checkable
class Classifier(Protocol):
    """A trained model over ``num_classes`` classes."""

    num_classes: int

    def predict_logits(self, x: np.ndarray) -> np.ndarray: ...

    def predict_proba(self, x: np.ndarray) -> np.ndarray: ...


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row softmax over the last axis in float64, shifted by the row maximum (no overflow)."""
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=-1, keepdims=True)
    return z


class LogitClassifier:
    """Base: ``predict_proba`` and ``predict`` derived from ``predict_logits``."""

    num_classes: int

    def predict_logits(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        return softmax(self.predict_logits(x))

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Predicted class indices (argmax of the logits)."""
        return self.predict_logits(x).argmax(axis=-1)


def _check_x(x: Any, input_shape: tuple[int, ...] | None) -> np.ndarray:
    arr = np.asarray(x)
    if input_shape is not None and tuple(arr.shape[1:]) != tuple(input_shape):
        raise InputError(
            f"model expects inputs shaped (n, {', '.join(map(str, input_shape))}), got {arr.shape}"
        )
    if arr.ndim < 2:
        raise InputError(f"inputs must be shaped (n, features...), got {arr.shape}")
    return np.ascontiguousarray(arr, dtype=np.float32)


class TorchClassifier(LogitClassifier):
    """A trained torch module returning logits; evaluated in batches under ``inference_mode``."""

    def __init__(self, module: nn.Module, num_classes: int, input_shape: tuple[int, ...] | None = None) -> None:
        self.module = module.eval()
        self.num_classes = int(num_classes)
        self.input_shape = tuple(input_shape) if input_shape is not None else None

        self._placed: tuple[torch.device, nn.Module] | None = None  # a copy on the run's device, made once

    def predict_logits(self, x: np.ndarray) -> np.ndarray:
        arr = _check_x(x, self.input_shape)
        out = np.empty((len(arr), self.num_classes), dtype=np.float64)
        device = current_device()
        module = self.on_device(device)
        with torch.inference_mode():
            for start in range(0, len(arr), EVAL_BATCH):
                batch = torch.from_numpy(arr[start : start + EVAL_BATCH])
                if device.type != "cpu":
                    batch = batch.to(device)
                out[start : start + len(batch)] = module(batch).double().cpu().numpy()
        return out

    def on_device(self, device: torch.device) -> nn.Module:
        """The module on ``device``: itself on the CPU, else a copy kept for later queries."""
        if device.type == "cpu":
            return self.module
        if self._placed is None or self._placed[0] != device:
            self._placed = (device, copy.deepcopy(self.module).to(device))
        return self._placed[1]


class SklearnClassifier(LogitClassifier):
    """A fitted scikit-learn estimator; its "logits" are log-probabilities floored at ``floor``.

    An estimator trained on a subset missing some classes knows only ``estimator.classes_``;
    its probability columns are placed at those class indices and the absent classes get
    probability 0 (log-probability ``log(floor)``). ``columns`` overrides that placement (one
    output column per entry of ``classes_``); ``input_shape``, when given, fixes the number of
    features (records of any shape with that many values are flattened).
    """

    def __init__(
        self,
        estimator: Any,
        num_classes: int,
        floor: float = LOG_PROB_FLOOR,
        *,
        input_shape: tuple[int, ...] | None = None,
        columns: np.ndarray | None = None,
    ) -> None:
        if columns is None:
            classes = np.asarray(estimator.classes_)
            if classes.dtype.kind not in "iu" or classes.min() < 0 or classes.max() >= num_classes:
                raise InputError(f"estimator classes {classes.tolist()} are not indices in [0, {num_classes})")
            columns = classes
        self.estimator = estimator
        self.num_classes = int(num_classes)
        self.columns = np.asarray(columns).astype(np.int64)
        self.floor = floor
        self.input_shape = tuple(int(d) for d in input_shape) if input_shape is not None else None

    def predict_logits(self, x: np.ndarray) -> np.ndarray:
        arr = _check_x(x, None)
        if self.input_shape is not None and math.prod(arr.shape[1:]) != math.prod(self.input_shape):
            raise InputError(
                f"model expects records of {math.prod(self.input_shape)} features (shaped {list(self.input_shape)}), got {arr.shape}"
            )
        try:
            known = self.estimator.predict_proba(arr.reshape(len(arr), -1))
        except ValueError as exc:  # scikit-learn's own input checks, e.g. a wrong feature count
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise InputError(f"{type(self.estimator).__name__} failed on inputs shaped {arr.shape}: {first}") from None
        proba = np.zeros((len(arr), self.num_classes), dtype=np.float64)
        proba[:, self.columns] = known
        return np.log(np.maximum(proba, self.floor))


class BankClassifiers(Sequence[TorchClassifier]):
    """K trained modules of one architecture: a sequence of :class:`TorchClassifier` whose
    ``predict_logits_all`` / ``predict_proba_all`` evaluate all K models at once, (K, n, C)."""

    def __init__(self, modules: Sequence[nn.Module], num_classes: int, input_shape: tuple[int, ...]) -> None:
        self.modules = [m.eval() for m in modules]
        self.num_classes = int(num_classes)
        self.input_shape = tuple(input_shape)
        self._stacked: tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]] | None = None

    def __len__(self) -> int:
        return len(self.modules)

    def __getitem__(self, i: int | slice) -> Any:
        if isinstance(i, slice):
            return BankClassifiers(self.modules[i], self.num_classes, self.input_shape)
        return TorchClassifier(self.modules[i], self.num_classes, self.input_shape)

    def __iter__(self) -> Iterator[TorchClassifier]:
        return (self[i] for i in range(len(self)))

    def predict_logits_all(self, x: np.ndarray) -> np.ndarray:
        """Logits of every model on the same records: float64 (K, n, C)."""
        arr = _check_x(x, self.input_shape)
        out = np.empty((len(self), len(arr), self.num_classes), dtype=np.float64)
        if not len(self):
            return out
        params, buffers = self._stack()
        base = copy.deepcopy(self.modules[0]).to("meta")

        def one(p: dict[str, torch.Tensor], b: dict[str, torch.Tensor], xb: torch.Tensor) -> torch.Tensor:
            return functional_call(base, (p, b), (xb,))

        run = vmap(one, in_dims=(0, 0, None))
        batch = max(1, EVAL_BATCH // max(1, len(self) // 8))  # bound the (K, batch, width) activations
        device = current_device()
        if device.type != "cpu":
            params, buffers = ({k: v.to(device) for k, v in d.items()} for d in (params, buffers))
        with torch.inference_mode():
            for start in range(0, len(arr), batch):
                xb = torch.from_numpy(arr[start : start + batch])
                if device.type != "cpu":
                    xb = xb.to(device)
                out[:, start : start + len(xb)] = run(params, buffers, xb).double().cpu().numpy()
        return out

    def predict_proba_all(self, x: np.ndarray) -> np.ndarray:
        """Softmax of :meth:`predict_logits_all`: float64 (K, n, C)."""
        return softmax(self.predict_logits_all(x))

    def _stack(self) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        if self._stacked is None:
            params, buffers = stack_module_state(self.modules)
            self._stacked = (
                {k: v.detach() for k, v in params.items()},
                {k: v.detach() for k, v in buffers.items()},
            )
        return self._stacked
