"""Target sources: where the audited model comes from, as a registry.

Every source resolves to a miaudit classifier (``predict_logits`` / ``predict_proba`` over
``num_classes`` columns) or a query backend, so the one audit pipeline
(:func:`miaudit.experiments.audit.run_audit`) attacks it through :class:`TargetAccess` like any
other. Number of classes and input shape come from the data (and are checked against the
model's answers), never from attributes the user must set.

| source | what it is |
|---|---|
| ``trained`` | a miaudit model name + recipe, trained here on the split's members (the default) |
| ``file`` | a model file: ONNX, skops (scikit-learn), or TorchScript with ``trust_model_code=True`` (run in a sandboxed process; see :mod:`miaudit.targets.external`) |
| ``object`` | a Python object: a fitted scikit-learn estimator or pipeline, a torch module, anything with ``predict_proba``, or a callable returning logits or probabilities |
| ``url`` | a model served over HTTP (``miaudit serve`` or any server speaking its protocol) |
| ``outputs`` | precomputed outputs only: the model's logits or probabilities on the evaluated records |
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from miaudit.errors import ConfigError, InputError
from miaudit.registry import Registry


@dataclass(frozen=True)
class TargetSource:
    """A target, not yet resolved: its ``kind`` (a :data:`TARGET_SOURCES` name) and what it needs.

    ``value`` is the kind's payload: a path (``file``), a Python object (``object``), a URL
    (``url``), a :class:`~miaudit.targets.external.PrecomputedOutputs` (``outputs``), or None
    (``trained``: the model comes from the audit's model name and recipe). ``options`` are the
    kind's options (e.g. ``outputs="probabilities"`` for an ONNX file, ``api_key`` for a URL,
    ``trusted_types`` for a skops file, ``trust_model_code=True`` for a TorchScript file).
    """

    kind: str
    value: Any = None
    options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        TARGET_SOURCES.get(self.kind)  # unknown kinds fail here, with the known ones listed

    def describe(self) -> str:
        """One line naming the source, for the record and the report."""
        return TARGET_SOURCES.get(self.kind).describe(self)


@dataclass(frozen=True)
class SourceKind:
    """How one kind of source is described and turned into a classifier."""

    describe: Callable[[TargetSource], str]
    # (source, x_probe, num_classes) -> classifier; None for ``trained`` (the audit trains it) and
    # ``url`` (connected by :func:`connect_url` before the data loads).
    resolve: Callable[[TargetSource, np.ndarray, int], Any] | None
    trained_here: bool = False


TARGET_SOURCES: Registry[SourceKind] = Registry("target source")


def _check_answers(classifier: Any, x_probe: np.ndarray, num_classes: int, what: str) -> Any:
    """Query the model once on a few records: it must answer (n, num_classes) finite outputs."""
    if len(x_probe) == 0:
        return classifier
    out = np.asarray(classifier.predict_proba(x_probe[: min(8, len(x_probe))]))
    if out.ndim != 2 or out.shape[1] != num_classes:
        raise InputError(
            f"{what} answers {out.shape[1] if out.ndim == 2 else out.shape} columns but the data has {num_classes} classes; "
            "the labels of the data must be the model's classes (0..C-1 in the model's column order)"
        )
    if not np.isfinite(out).all():
        raise InputError(f"{what} returned NaN or infinite outputs on the data; check the model and its inputs")
    return classifier


# --------------------------------------------------------------------------- python objects


class CallableClassifier:
    """A callable ``f(x) -> (n, C)`` logits or probabilities, as a miaudit classifier.

    Whether ``f`` returns probabilities is decided once, from its first answer: rows in [0, 1]
    that sum to 1 are probabilities, anything else logits (recorded in ``outputs``).
    """

    def __init__(self, fn: Callable[[np.ndarray], Any], num_classes: int, source: str) -> None:
        self.fn = fn
        self.num_classes = int(num_classes)
        self.source = source
        self.outputs: str | None = None

    def predict_logits(self, x: np.ndarray) -> np.ndarray:
        from miaudit.targets.external import probabilities_to_logits

        out = _as_numpy(self.fn(np.ascontiguousarray(x, dtype=np.float32)))
        if out.ndim != 2 or out.shape[0] != len(x):
            raise InputError(f"{self.source} returned shape {out.shape} for {len(x)} records; it must return (n, num_classes)")
        if self.outputs is None:
            rows_sum_to_one = np.allclose(out.sum(axis=1), 1.0, atol=1e-3)
            self.outputs = "probabilities" if rows_sum_to_one and out.min() >= 0 and out.max() <= 1 + 1e-3 else "logits"
        return probabilities_to_logits(out) if self.outputs == "probabilities" else out

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        from miaudit.models.classifier import softmax

        return softmax(self.predict_logits(x))


def _as_numpy(out: Any) -> np.ndarray:
    if hasattr(out, "detach"):  # a torch tensor
        out = out.detach().cpu().numpy()
    arr = np.asarray(out)
    if arr.dtype.kind not in "fiu":
        raise InputError(f"the model returned non-numeric outputs (dtype {arr.dtype})")
    return arr.astype(np.float64)


def classifier_from_object(obj: Any, num_classes: int, input_shape: tuple[int, ...]) -> Any:
    """A miaudit classifier around a user's Python object.

    - a fitted scikit-learn estimator or pipeline (``predict_proba`` and ``classes_``): its
      columns are the classes in ``classes_`` order, which must be 0..C-1 of the data's labels;
    - a ``torch.nn.Module`` returning logits;
    - a miaudit classifier (``predict_logits`` and ``num_classes``) as it is;
    - any other object with ``predict_proba``, or a plain callable returning logits or
      probabilities.
    """
    from miaudit.models.classifier import SklearnClassifier

    if hasattr(obj, "predict_logits") and hasattr(obj, "num_classes"):
        return obj
    try:
        from torch import nn
    except ImportError:  # pragma: no cover - torch is a dependency
        nn = None  # type: ignore[assignment]
    if nn is not None and isinstance(obj, nn.Module):
        from miaudit.targets.external import TorchModuleClassifier

        return TorchModuleClassifier(obj, num_classes, input_shape)
    if hasattr(obj, "predict_proba") and hasattr(obj, "classes_"):
        classes = np.asarray(obj.classes_)
        if classes.dtype.kind not in "iu" or len(classes) > num_classes or classes.min() < 0 or classes.max() >= num_classes:
            raise InputError(
                f"the estimator's classes_ {classes.tolist()[:10]} are not class indices 0..{num_classes - 1} of the data's labels; "
                "fit it on integer labels 0..C-1 (or encode the labels as the data loader does)"
            )
        return SklearnClassifier(obj, num_classes)
    if hasattr(obj, "predict_proba"):
        return CallableClassifier(obj.predict_proba, num_classes, type(obj).__name__)
    if callable(obj):
        return CallableClassifier(obj, num_classes, getattr(obj, "__name__", type(obj).__name__))
    raise ConfigError(
        f"cannot audit a {type(obj).__name__}: give a fitted scikit-learn estimator, a torch.nn.Module, "
        "an object with predict_proba, or a callable returning logits or probabilities"
    )


# --------------------------------------------------------------------------- the registry


def _resolve_file(source: TargetSource, x_probe: np.ndarray, num_classes: int) -> Any:
    from miaudit.targets.external import load_model_file

    classifier = load_model_file(source.value, **source.options)
    try:
        if hasattr(classifier, "bind"):
            classifier.bind(x_probe)
        return _check_answers(classifier, x_probe, num_classes, f"model file {Path(source.value).name!r}")
    except BaseException:
        if callable(getattr(classifier, "close", None)):  # a sandboxed TorchScript model's process
            classifier.close()
        raise


def _resolve_object(source: TargetSource, x_probe: np.ndarray, num_classes: int) -> Any:
    classifier = classifier_from_object(source.value, num_classes, tuple(x_probe.shape[1:]))
    return _check_answers(classifier, x_probe, num_classes, f"the {type(source.value).__name__}")


def connect_url(source: TargetSource) -> Any:
    """The served model behind a ``url`` source. Connected before the data loads: what the server
    releases caps the threat model, and so which attacks run (the audit checks the input shape)."""
    from miaudit.targets.http_target import HttpTarget

    return HttpTarget(source.value, api_key=source.options.get("api_key"))


def _resolve_outputs(source: TargetSource, x_probe: np.ndarray, num_classes: int) -> Any:
    return OutputsLookup(source.value)


def _describe_object(source: TargetSource) -> str:
    obj = source.value
    return f"Python object {type(obj).__module__}.{type(obj).__name__}"


TARGET_SOURCES.add("trained", SourceKind(lambda s: "trained here by miaudit", None, trained_here=True))
TARGET_SOURCES.add("file", SourceKind(lambda s: f"model file {Path(str(s.value)).name!r}", _resolve_file))
TARGET_SOURCES.add("object", SourceKind(_describe_object, _resolve_object))
TARGET_SOURCES.add("url", SourceKind(lambda s: f"served model at {s.value}", None))
TARGET_SOURCES.add("outputs", SourceKind(lambda s: f"precomputed outputs ({s.value.source})", _resolve_outputs))


# --------------------------------------------------------------------------- precomputed outputs


class UnanswerableQueryError(InputError):
    """A query on a record whose output was not precomputed (e.g. a perturbed copy)."""


class OutputsLookup:
    """Precomputed outputs as a classifier over record *row numbers*.

    The audit's records for an outputs-only target are the rows of the outputs file, each fed
    to the attacks as a one-feature vector holding its row number; a query answers that row's
    precomputed logits. A query on anything else (a perturbed record, a shadow model's data)
    cannot be answered, so the attacks that need one are skipped with the reason.
    """

    def __init__(self, outputs: Any) -> None:
        from miaudit.targets.external import probabilities_to_logits

        self.outputs = outputs
        self.num_classes = outputs.num_classes
        self.input_shape = (1,)
        self.source = outputs.source
        self._logits = outputs.logits if outputs.logits is not None else probabilities_to_logits(outputs.proba())

    def predict_logits(self, x: np.ndarray) -> np.ndarray:
        arr = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
        rows = arr[:, 0] if arr.shape[1] == 1 else np.full(len(arr), -1.0)
        idx = rows.astype(np.int64)
        if (rows != idx).any() or (idx < 0).any() or (idx >= len(self._logits)).any():
            raise UnanswerableQueryError("precomputed outputs answer only the records they hold (this attack queries others)")
        return self._logits[idx]

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        from miaudit.models.classifier import softmax

        return softmax(self.predict_logits(x))
