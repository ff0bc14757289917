"""Saving a target for ``miaudit serve`` and loading whatever ``serve`` is pointed at.

- :func:`save_target`: a model miaudit trained (torch or scikit-learn) as a model folder
  (:mod:`miaudit.targets.model_dir`: ``model.safetensors`` or ``model.skops`` + ``model.json``).
- :func:`load_target`: a model folder, or a model file trained elsewhere (``.skops`` or
  ``.onnx``), as a :class:`ServedModel`: the classifier plus the input shape and class names
  the HTTP app needs. TorchScript files are not served.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from miaudit.errors import ConfigError
from miaudit.models.architectures import ArchConfig
from miaudit.models.classifier import SklearnClassifier, TorchClassifier
from miaudit.targets.model_dir import load_model_dir, read_model_meta, save_model_dir, save_sklearn_dir

SERVABLE_FILES = (".skops", ".onnx")


def save_target(
    classifier: Any,
    path: str | Path,
    *,
    num_classes: int,
    input_shape: Sequence[int],
    class_names: Sequence[str] = (),
    arch: ArchConfig | None = None,
) -> Path:
    """Write a trained target to folder ``path`` for ``miaudit serve``; returns the folder.

    A :class:`TorchClassifier` needs its architecture ``arch`` (weights in safetensors); a
    :class:`SklearnClassifier` is written with skops (no pickle). Anything else is a ConfigError.
    """
    if isinstance(classifier, TorchClassifier):
        if arch is None:
            raise ConfigError("saving a torch target needs its architecture (arch=ArchConfig(name, options))")
        return save_model_dir(classifier, arch, path, num_classes=num_classes, input_shape=input_shape, class_names=class_names)
    if isinstance(classifier, SklearnClassifier):
        return save_sklearn_dir(classifier, path, num_classes=num_classes, input_shape=input_shape, class_names=class_names)
    raise ConfigError(
        f"cannot save a {type(classifier).__name__} as a target: miaudit saves torch models and scikit-learn estimators"
    )


@dataclass(frozen=True)
class ServedModel:
    """What ``miaudit serve`` puts behind the API: the classifier, one record's shape, class names."""

    classifier: Any
    input_shape: tuple[int, ...]
    class_names: tuple[str, ...] = ()


def load_target(
    path: str | Path,
    *,
    input_shape: Sequence[int] | None = None,
    outputs: str = "logits",
    trusted_types: Sequence[str] = (),
) -> ServedModel:
    """A model folder (torch or scikit-learn) or a model file trained elsewhere (``.skops``, ``.onnx``).

    ``input_shape`` is needed for an ONNX model whose input does not fix it, and may reshape a
    skops estimator's flat input (e.g. ``(8, 8)`` for 64 features); a folder records its own.
    ``outputs`` says whether an ONNX model returns logits or probabilities; ``trusted_types``
    extends the skops type policy.
    """
    from miaudit.targets.external import TORCHSCRIPT_SUFFIXES, OnnxClassifier, load_skops_estimator

    p = Path(path).expanduser()
    shape = None if input_shape is None else _checked_shape(input_shape)
    if p.is_dir():
        if shape is not None:
            raise ConfigError(f"{p} is a model folder, which records its input shape; drop --input-shape")
        classifier = load_model_dir(p, trusted_types=trusted_types)
        meta = read_model_meta(p)
        return ServedModel(classifier, tuple(meta["input_shape"]), tuple(meta.get("class_names", ())))
    suffix = p.suffix.lower()
    if suffix == ".skops":
        estimator = load_skops_estimator(p, trusted_types=trusted_types, input_shape=shape)
        if estimator.input_shape is None:
            raise ConfigError(f"{p.name} does not record its number of features; pass --input-shape")
        return ServedModel(estimator, tuple(estimator.input_shape), tuple(estimator.class_names))
    if suffix == ".onnx":
        onnx = OnnxClassifier(p, outputs=outputs, input_shape=shape)
        if onnx.input_shape is None:
            raise ConfigError(f"{p.name} does not fix its input shape; pass --input-shape (e.g. 64 or 1,28,28)")
        onnx.bind(np.zeros((1, *onnx.input_shape), dtype=np.float32))  # learn the number of classes
        return ServedModel(onnx, tuple(onnx.input_shape))
    if suffix in TORCHSCRIPT_SUFFIXES:  # a program, not data: never loaded by the server (see external.py)
        raise ConfigError(f"miaudit serve does not serve TorchScript files ({p.name}): they run their own code; serve a model folder, a .skops or an .onnx file")
    if not p.exists():
        raise ConfigError(f"{p} does not exist; give a model folder (model.json) or a .skops / .onnx file")
    raise ConfigError(f"unsupported model file {p.name!r}: give a model folder (model.json) or a .skops / .onnx file")


def _checked_shape(input_shape: Sequence[int]) -> tuple[int, ...]:
    shape = tuple(int(d) for d in input_shape)
    if not shape or any(d < 1 for d in shape):
        raise ConfigError(f"input shape must be positive integers, got {list(input_shape)}")
    return shape


def parse_input_shape(text: str) -> tuple[int, ...]:
    """``"64"`` or ``"1,28,28"`` (also ``"1x28x28"``) as a shape; ConfigError if malformed."""
    parts = [t.strip() for t in str(text).replace("x", ",").split(",")]
    try:
        shape = tuple(int(t) for t in parts)
    except ValueError:
        raise ConfigError(f"--input-shape must be positive integers separated by commas (e.g. 64 or 1,28,28), got {text!r}") from None
    return _checked_shape(shape)
