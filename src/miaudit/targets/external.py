"""Models trained outside miaudit, as miaudit classifiers ("audit your own model").

Every classifier here exposes ``predict_logits(x) -> (n, C)``, ``predict_proba(x) -> (n, C)``
(the softmax of the logits, see :class:`miaudit.models.classifier.LogitClassifier`),
``num_classes`` and ``input_shape``, so it can stand behind :class:`TargetAccess` like any
target miaudit trains itself.

- :class:`TorchScriptClassifier`: a TorchScript archive (``torch.jit.save``). TorchScript is a
  program: loading one runs its ``__setstate__`` and every query runs its ``forward``, and that
  code can read and write files (``torch.from_file(path, shared=True)`` overwrites any file the
  user can write). So TorchScript is refused unless the user passes ``trust_model_code=True``
  (``--trust-model-code``), and even then it is never loaded in this process: it runs in a
  child process confined by Landlock to writing inside a scratch folder
  (:mod:`miaudit.targets.model_process`, :mod:`miaudit.targets.sandbox`), and this class is the
  proxy that sends it the records. (miaudit never calls ``torch.load`` or unpickles anything a
  user hands in.)
- :class:`OnnxClassifier`: an ONNX model run by ``onnxruntime`` (an optional dependency), whose
  first output is logits or, with ``outputs="probabilities"``, probabilities.
- :class:`TorchModuleClassifier`: an in-process ``torch.nn.Module`` (Python API).
- :class:`EstimatorClassifier`: a scikit-learn classifier from a skops file
  (:func:`load_skops_estimator`, type policy in :mod:`miaudit.targets.skops_files`); its
  columns follow ``classes_``, which may hold any labels.
- :class:`PrecomputedOutputs`: no model at all, only its outputs on the evaluated records, read
  from ``.npz`` (``allow_pickle=False``) or CSV.
"""

from __future__ import annotations

import csv
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from miaudit.bounded_io import check_header_names, check_table_size, csv_first_row, pack_rows, read_npz, regular_file
from miaudit.errors import ConfigError, DataError, InputError
from miaudit.limits import check_at_most
from miaudit.models.classifier import (
    EVAL_BATCH,
    LogitClassifier,
    SklearnClassifier,
    TorchClassifier,
    _check_x,
)

PROBABILITY_TOLERANCE = 1e-3
"""Rows of a probability matrix must sum to 1 within this (float32 outputs are not exact)."""

_LOG_FLOOR = 1e-30


def _existing_file(path: str | Path, what: str) -> Path:
    return regular_file(path, what)


def _check_outputs(out: np.ndarray, n: int, num_classes: int | None, source: str) -> np.ndarray:
    arr = np.asarray(out)
    if arr.ndim != 2 or arr.shape[0] != n:
        raise InputError(f"{source} returned shape {arr.shape} for {n} records; it must return (n, num_classes)")
    if num_classes is not None and arr.shape[1] != num_classes:
        raise InputError(f"{source} returned {arr.shape[1]} classes, expected {num_classes}")
    if arr.dtype.kind not in "fiu":
        raise InputError(f"{source} returned non-numeric outputs (dtype {arr.dtype})")
    arr = arr.astype(np.float64)
    if not np.isfinite(arr).all():
        raise InputError(f"{source} returned NaN or infinite outputs; check the model and its inputs")
    return arr


def check_probabilities(p: np.ndarray, source: str) -> None:
    """Raise InputError unless every row of ``p`` is a probability vector (>= 0, sums to 1)."""
    if (p < 0).any() or (p > 1 + PROBABILITY_TOLERANCE).any():
        raise InputError(f"{source}: probabilities must lie in [0, 1]; are these logits? (use outputs='logits')")
    sums = p.sum(axis=1)
    bad = np.flatnonzero(np.abs(sums - 1.0) > PROBABILITY_TOLERANCE)
    if len(bad):
        raise InputError(
            f"{source}: probability rows must sum to 1, row {int(bad[0])} sums to {sums[bad[0]]:.6g}; "
            "are these logits? (use outputs='logits')"
        )


def probabilities_to_logits(p: np.ndarray) -> np.ndarray:
    """Log-probabilities: logits whose softmax is ``p`` (renormalised), floored at 1e-30."""
    return np.log(np.maximum(p, _LOG_FLOOR))


class _ExternalClassifier(LogitClassifier):
    """Shared: input checks, batching, and ``num_classes`` learnt from the first answer."""

    source = "model"

    def __init__(self, num_classes: int | None, input_shape: tuple[int, ...] | None) -> None:
        if num_classes is not None and (isinstance(num_classes, bool) or int(num_classes) < 2):
            raise ConfigError(f"num_classes must be an integer >= 2, got {num_classes!r}")
        self.num_classes = int(num_classes) if num_classes is not None else None  # type: ignore[assignment]
        self.input_shape = tuple(int(d) for d in input_shape) if input_shape is not None else None

    def _run(self, batch: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def predict_logits(self, x: np.ndarray) -> np.ndarray:
        arr = _check_x(x, self.input_shape)
        parts = []
        for start in range(0, len(arr), EVAL_BATCH):
            batch = arr[start : start + EVAL_BATCH]
            try:
                raw = self._run(batch)
            except (RuntimeError, ValueError, TypeError) as exc:  # the model's own errors, e.g. a bad input shape
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise InputError(f"{self.source} failed on inputs shaped {batch.shape}: {first}") from None
            parts.append(_check_outputs(raw, len(batch), self.num_classes, self.source))
            if self.num_classes is None:
                if parts[-1].shape[1] < 2:
                    raise InputError(f"{self.source} returned {parts[-1].shape[1]} class(es); miaudit needs >= 2")
                self.num_classes = parts[-1].shape[1]
        if not parts:
            return np.empty((0, self.num_classes or 0), dtype=np.float64)
        return np.concatenate(parts)

    def bind(self, x: np.ndarray) -> _ExternalClassifier:
        """Fix ``input_shape`` from records ``x`` and learn ``num_classes`` with one query."""
        arr = np.asarray(x)
        if self.input_shape is None:
            self.input_shape = tuple(arr.shape[1:])
        if self.num_classes is None and len(arr):
            self.predict_logits(arr[:1])
        return self


TORCHSCRIPT_SUFFIXES = (".pt", ".pth", ".ts", ".torchscript")
"""Suffixes of TorchScript archives (``torch.jit.save``)."""


def refuse_model_code(name: str) -> ConfigError:
    """The one-line refusal of a model file whose loading or inference runs the file's own code."""
    return ConfigError(
        f"refusing {name!r}: a TorchScript file is a program (loading and running it executes the file's code, "
        "which can overwrite any file you can write); audit an ONNX export (.onnx), a miaudit model folder "
        "(safetensors weights + architecture), or your torch module in Python (miaudit.audit(module, ...)); "
        "only for a file you trust: --trust-model-code (trust_model_code=True) runs it in a sandboxed process"
    )


class TorchScriptClassifier(_ExternalClassifier):
    """A TorchScript archive (``torch.jit.save`` of a scripted or traced module returning logits),
    run in a sandboxed child process (:class:`~miaudit.targets.model_process.ModelProcess`).

    Refused (:func:`refuse_model_code`) unless ``trust_model_code=True``, and then refused too
    where Linux's Landlock is unavailable: the file's code never runs unsandboxed, and never in
    this process. Call :meth:`close` (or use ``with``) to stop the child; it is stopped on
    garbage collection and at exit too.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        num_classes: int | None = None,
        input_shape: tuple[int, ...] | None = None,
        trust_model_code: bool = False,
    ) -> None:
        from miaudit.targets.model_process import ModelProcess
        from miaudit.targets.sandbox import landlock_abi

        if not trust_model_code:
            raise refuse_model_code(Path(path).name)
        abi, why = landlock_abi()
        if abi < 1:
            raise ConfigError(
                f"--trust-model-code runs TorchScript only inside a Landlock sandbox, which this machine lacks ({why}); "
                "miaudit never runs model code unsandboxed: audit an ONNX export or your torch module in Python instead"
            )
        p = _existing_file(path, "TorchScript file")
        if not zipfile.is_zipfile(p):
            raise DataError(f"{str(p)!r} is not a TorchScript archive (save one with torch.jit.save)")
        super().__init__(num_classes, input_shape)
        self.path = p
        self.source = f"TorchScript model {p.name!r}"
        self.process = ModelProcess(p.read_bytes(), self.source)

    def _run(self, batch: np.ndarray) -> np.ndarray:
        return self.process.run(batch)

    def close(self) -> None:
        """Stop the model's process."""
        self.process.close()

    def __enter__(self) -> TorchScriptClassifier:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class OnnxClassifier(_ExternalClassifier):
    """An ONNX model run on the CPU by ``onnxruntime``; its first input takes float32 records,
    its first output is ``outputs="logits"`` (default) or ``"probabilities"``."""

    def __init__(
        self,
        path: str | Path,
        *,
        outputs: str = "logits",
        num_classes: int | None = None,
        input_shape: tuple[int, ...] | None = None,
    ) -> None:
        if outputs not in ("logits", "probabilities"):
            raise ConfigError(f"outputs must be 'logits' or 'probabilities', got {outputs!r}")
        try:
            import onnxruntime as ort
        except ImportError:
            raise ConfigError("ONNX models need onnxruntime: pip install onnxruntime") from None
        p = _existing_file(path, "ONNX file")
        try:
            options = ort.SessionOptions()
            options.log_severity_level = 3
            session = ort.InferenceSession(str(p), sess_options=options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise DataError(f"cannot load ONNX model {str(p)!r}: {first[:300]}") from None
        inputs = session.get_inputs()
        if len(inputs) != 1:
            raise DataError(f"ONNX model {str(p)!r} has {len(inputs)} inputs; miaudit needs exactly one (the records)")
        if input_shape is None:
            dims = inputs[0].shape[1:]
            if dims and all(isinstance(d, int) and d > 0 for d in dims):
                input_shape = tuple(dims)
        super().__init__(num_classes, input_shape)
        self.path = p
        self.outputs = outputs
        self.session = session
        self.input_name = inputs[0].name
        self.output_name = session.get_outputs()[0].name
        self.source = f"ONNX model {p.name!r}"

    def _run(self, batch: np.ndarray) -> np.ndarray:
        try:
            (out,) = self.session.run([self.output_name], {self.input_name: batch})
        except Exception as exc:  # onnxruntime raises its own exception types  # noqa: BLE001
            raise ValueError(str(exc)) from None
        out = np.asarray(out, dtype=np.float64)
        if self.outputs == "probabilities":
            if out.ndim == 2:
                check_probabilities(out, self.source)
            out = probabilities_to_logits(out)
        return out


class TorchModuleClassifier(TorchClassifier):
    """An in-process ``torch.nn.Module`` returning logits (``TorchClassifier`` for the Python API)."""

    def __init__(self, module: Any, num_classes: int, input_shape: tuple[int, ...] | None = None) -> None:
        from torch import nn

        if not isinstance(module, nn.Module):
            raise ConfigError(f"expected a torch.nn.Module, got {type(module).__name__}")
        super().__init__(module, num_classes, input_shape)


class EstimatorClassifier(SklearnClassifier):
    """A fitted scikit-learn classifier trained elsewhere: output column ``j`` is the class
    ``classes_[j]`` (string labels, non-contiguous integers, any order scikit-learn keeps).

    ``classes_`` and :meth:`encode_labels` map the user's labels to those columns;
    ``input_shape`` defaults to ``(n_features_in_,)`` when the estimator records it.
    """

    def __init__(self, estimator: Any, *, input_shape: tuple[int, ...] | None = None, source: str = "estimator") -> None:
        classes = getattr(estimator, "classes_", None)
        if classes is None or not hasattr(estimator, "predict_proba"):
            raise DataError(f"{source} is not a fitted classifier with predict_proba (no classes_)")
        classes = np.asarray(classes)
        if classes.ndim != 1 or len(classes) < 2:
            raise DataError(f"{source} has classes_ shaped {classes.shape}; miaudit needs one label per class, two or more")
        if len(set(classes.tolist())) != len(classes):
            raise DataError(f"{source} has repeated labels in classes_")
        n_features = getattr(estimator, "n_features_in_", None)
        if input_shape is None and isinstance(n_features, (int, np.integer)) and n_features > 0:
            input_shape = (int(n_features),)
        elif input_shape is not None and isinstance(n_features, (int, np.integer)):
            if int(np.prod(input_shape)) != int(n_features):
                raise ConfigError(f"input shape {list(input_shape)} has {int(np.prod(input_shape))} features; {source} takes {int(n_features)}")
        super().__init__(estimator, len(classes), input_shape=input_shape, columns=np.arange(len(classes)))
        self.classes_ = classes
        self.source = source

    @property
    def class_names(self) -> list[str]:
        """The labels of the output columns, as strings."""
        return [str(c) for c in self.classes_.tolist()]

    def encode_labels(self, labels: Any) -> np.ndarray:
        """Column indices (int64) of ``labels`` given in the estimator's own labels; a label the
        estimator does not know is an :class:`InputError`. Integer labels that are already
        ``0..C-1`` in ``classes_`` order come back unchanged."""
        y = np.asarray(labels)
        if y.ndim != 1:
            raise InputError(f"labels must be one-dimensional, got shape {y.shape}")
        index = {c: i for i, c in enumerate(self.classes_.tolist())}
        try:
            out = np.fromiter((index[v] for v in y.tolist()), dtype=np.int64, count=len(y))
        except KeyError as exc:
            shown = ", ".join(self.class_names[:10]) + (", ..." if len(self.class_names) > 10 else "")
            raise InputError(f"label {exc.args[0]!r} is not one of {self.source}'s classes ({shown})") from None
        except TypeError:  # unhashable values
            raise InputError(f"labels of dtype {y.dtype} cannot be matched to {self.source}'s classes") from None
        return out


def load_skops_estimator(
    path: str | Path, *, trusted_types: Iterable[str] = (), input_shape: tuple[int, ...] | None = None
) -> EstimatorClassifier:
    """A scikit-learn classifier saved with skops (``skops.io.dump``), never unpickled.

    Types outside miaudit's policy (:mod:`miaudit.targets.skops_files`: scikit-learn's own
    estimators, numpy data, plain Python data; no callables) are refused with their names
    unless listed in ``trusted_types``. The number of classes comes from ``classes_``.
    """
    from miaudit.targets.skops_files import read_skops

    p = Path(path)
    estimator = read_skops(p, trusted_types=trusted_types)
    return EstimatorClassifier(estimator, input_shape=input_shape, source=p.name)


def load_model_file(
    path: str | Path,
    *,
    outputs: str = "logits",
    trusted_types: Iterable[str] = (),
    input_shape: tuple[int, ...] | None = None,
    trust_model_code: bool = False,
) -> _ExternalClassifier | EstimatorClassifier:
    """A TorchScript (``.pt``/``.pth``/``.ts``), ONNX (``.onnx``) or skops (``.skops``) model file,
    by its suffix. ``trusted_types`` applies to skops files, ``outputs`` to ONNX models.

    TorchScript runs the file's own code, so it is refused before the file is opened unless
    ``trust_model_code=True``, and then runs in a sandboxed process (:class:`TorchScriptClassifier`).
    """
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix in TORCHSCRIPT_SUFFIXES:
        if not trust_model_code:
            raise refuse_model_code(p.name)
        if outputs != "logits":
            raise ConfigError("TorchScript models must return logits")
        return TorchScriptClassifier(p, input_shape=input_shape, trust_model_code=True)
    if suffix == ".skops":
        return load_skops_estimator(p, trusted_types=trusted_types, input_shape=input_shape)
    if suffix == ".onnx":
        return OnnxClassifier(p, outputs=outputs, input_shape=input_shape)
    raise ConfigError(f"unsupported model file {p.name!r}: give a TorchScript archive (.pt), an ONNX model (.onnx) or a skops file (.skops)")


# --------------------------------------------------------------------------- precomputed outputs


@dataclass(frozen=True)
class PrecomputedOutputs:
    """A model's outputs on evaluated records: ``logits`` or ``probabilities`` (n, C), the true
    ``labels`` (n,) and the membership truth ``is_member`` (n,). Validated on construction."""

    labels: np.ndarray
    is_member: np.ndarray
    logits: np.ndarray | None = None
    probabilities: np.ndarray | None = None
    source: str = "precomputed outputs"

    def __post_init__(self) -> None:
        src = self.source
        if (self.logits is None) == (self.probabilities is None):
            raise InputError(f"{src}: give exactly one of 'logits' or 'probabilities'")
        kind = "logits" if self.logits is not None else "probabilities"
        out = _as_float_matrix(self.logits if self.logits is not None else self.probabilities, kind, src)
        n, c = out.shape
        if c < 2:
            raise InputError(f"{src}: {kind} has {c} column(s); need one column per class (>= 2)")
        check_at_most("classes", c, f"{src}: {kind} columns")
        if kind == "probabilities":
            check_probabilities(out, src)
        labels = np.asarray(self.labels)
        if labels.shape != (n,):
            raise InputError(f"{src}: 'labels' must have shape ({n},) like the {kind} rows, got {labels.shape}")
        if labels.dtype.kind == "f":
            if not np.isfinite(labels).all() or (labels != np.round(labels)).any():
                raise InputError(f"{src}: 'labels' must be integer class indices")
        elif labels.dtype.kind not in "iu":
            raise InputError(f"{src}: 'labels' must be integer class indices, got dtype {labels.dtype}")
        labels = labels.astype(np.int64)
        if n and (labels.min() < 0 or labels.max() >= c):
            raise InputError(f"{src}: 'labels' must lie in [0, {c}) (one per {kind} column), found {int(labels.min())}..{int(labels.max())}")
        member = np.asarray(self.is_member)
        if member.shape != (n,):
            raise InputError(f"{src}: 'is_member' must have shape ({n},), got {member.shape}")
        if member.dtype.kind not in "biuf" or not np.isin(member, (0, 1)).all():
            raise InputError(f"{src}: 'is_member' must be boolean or 0/1")
        member = member.astype(bool)
        if member.all() or not member.any():
            raise InputError(f"{src}: 'is_member' needs at least one member and one non-member")
        object.__setattr__(self, "labels", labels)
        object.__setattr__(self, "is_member", member)
        object.__setattr__(self, kind, out)

    @property
    def num_classes(self) -> int:
        return int(self.proba().shape[1])

    def proba(self) -> np.ndarray:
        """Probabilities (the softmax of the logits, or the given probabilities renormalised)."""
        from miaudit.models.classifier import softmax

        if self.logits is not None:
            return softmax(self.logits)
        p = np.asarray(self.probabilities, dtype=np.float64)
        return p / p.sum(axis=1, keepdims=True)

    @classmethod
    def load(cls, path: str | Path) -> PrecomputedOutputs:
        """From ``.npz`` (arrays ``logits`` or ``probabilities``, ``labels``, ``is_member``;
        never unpickled) or ``.csv`` (columns ``label``, ``is_member`` and ``logit_0..logit_{C-1}``
        or ``prob_0..prob_{C-1}``)."""
        p = _existing_file(path, "outputs file")
        if p.suffix.lower() == ".npz":
            return cls._load_npz(p)
        if p.suffix.lower() == ".csv":
            return cls._load_csv(p)
        raise ConfigError(f"unsupported outputs file {p.name!r}: give a .npz or .csv file")

    @classmethod
    def _load_npz(cls, p: Path) -> PrecomputedOutputs:
        arrays = read_npz(p, "outputs file")
        extra = sorted(set(arrays) - {"logits", "probabilities", "labels", "is_member"})
        if extra:
            raise InputError(f"{p.name}: unexpected arrays {extra}; expected logits or probabilities, labels, is_member")
        for key in ("labels", "is_member"):
            if key not in arrays:
                raise InputError(f"{p.name}: missing array {key!r} (need logits or probabilities, labels, is_member)")
        return cls(
            labels=arrays["labels"],
            is_member=arrays["is_member"],
            logits=arrays.get("logits"),
            probabilities=arrays.get("probabilities"),
            source=p.name,
        )

    @classmethod
    def _load_csv(cls, p: Path) -> PrecomputedOutputs:
        header = csv_first_row(p, "outputs file")
        if header is None:
            raise InputError(f"{p.name}: needs a header row and at least one record")
        check_header_names(header, p.name)  # two 'label' columns must not resolve to the first
        for key in ("label", "is_member"):
            if key not in header:
                raise InputError(f"{p.name}: missing column {key!r} (need label, is_member, logit_0.. or prob_0..)")
        logit_cols = _numbered(header, "logit_")
        prob_cols = _numbered(header, "prob_")
        if bool(logit_cols) == bool(prob_cols):
            raise InputError(f"{p.name}: give exactly one of the column sets logit_0..logit_{{C-1}} or prob_0..prob_{{C-1}}")
        cols = logit_cols or prob_cols
        check_at_most("classes", len(cols), f"{p.name}'s output columns")
        check_table_size(p, len(header), np.dtype(np.float64).itemsize, "outputs file")
        table = _numeric_rows(p, len(header))
        if len(table) == 0:
            raise InputError(f"{p.name}: needs a header row and at least one record")
        out = table[:, [header.index(c) for c in cols]]
        return cls(
            labels=table[:, header.index("label")],
            is_member=table[:, header.index("is_member")],
            logits=out if logit_cols else None,
            probabilities=out if prob_cols else None,
            source=p.name,
        )


def _numeric_rows(p: Path, width: int) -> np.ndarray:
    """The rows after the header as one float64 table, streamed (never a list of every row)."""
    return pack_rows(_float_rows(p, width), width, np.float64)


def _float_rows(p: Path, width: int) -> Iterator[list[float]]:
    try:
        with open(p, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            next(reader, None)
            for line, r in enumerate(reader, start=2):
                if not r:
                    continue
                if len(r) != width:
                    raise InputError(f"{p.name}: row {line} has {len(r)} values; every row must have {width} values like the header")
                try:
                    yield [float(v) for v in r]
                except ValueError as exc:
                    raise InputError(f"{p.name}: row {line}: non-numeric value ({exc})") from None
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"cannot read {p.name}: {exc}") from None


def _numbered(header: list[str], prefix: str) -> list[str]:
    cols = [h for h in header if h.startswith(prefix)]
    if not cols:
        return []
    expected = [f"{prefix}{i}" for i in range(len(cols))]
    if sorted(cols, key=lambda h: (len(h), h)) != expected:
        raise InputError(f"columns {prefix}* must be numbered {prefix}0..{prefix}{len(cols) - 1}, got {cols}")
    return expected


def _as_float_matrix(arr: Any, kind: str, src: str) -> np.ndarray:
    a = np.asarray(arr)
    if a.ndim != 2:
        raise InputError(f"{src}: {kind!r} must be a 2-D array (n, num_classes), got shape {a.shape}")
    if a.dtype.kind not in "fiu":
        raise InputError(f"{src}: {kind!r} must be numeric, got dtype {a.dtype}")
    a = a.astype(np.float64)
    if np.isnan(a).any():
        raise InputError(f"{src}: {kind!r} contains NaN (row {int(np.flatnonzero(np.isnan(a).any(axis=1))[0])})")
    if not np.isfinite(a).all():
        raise InputError(f"{src}: {kind!r} contains infinite values")
    return a
