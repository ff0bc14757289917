"""A trained classifier on disk, ready to serve: a folder with two files.

A torch model (format version 1, ``kind`` "torch" or absent):

- ``model.safetensors``: the weights (safetensors, never pickle: loading a pickle can run code);
- ``model.json``: the architecture (name and options), number of classes, input shape, class
  names, a format version and the sha256 of ``model.safetensors``.

A scikit-learn estimator (format version 2, ``kind`` "sklearn"; torch folders stay version 1
so that older miaudit still reads them):

- ``model.skops``: the estimator in skops' format (a schema, never pickle), read back under
  miaudit's type policy (:mod:`miaudit.targets.skops_files`);
- ``model.json``: number of classes, input shape, class names, the output column of each of the
  estimator's ``classes_`` and the sha256 of ``model.skops``.

Both files are written atomically. :func:`load_model_dir` checks every field and the checksum
(and, for torch, that the weights fit the architecture), and reports any problem as
:class:`ModelDirError`. :func:`miaudit.targets.saving.save_target` writes either kind.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from miaudit.bounded_io import read_json, regular_file
from miaudit.errors import DataError, MiauditError
from miaudit.io_utils import atomic_path, sha256_file
from miaudit.limits import LimitError, check_at_most
from miaudit.models.architectures import ArchConfig, build_module
from miaudit.models.classifier import SklearnClassifier, TorchClassifier
from miaudit.models.standardize import Standardized

MODEL_DIR_FORMAT = "miaudit-model-dir"
MODEL_DIR_VERSION = 1
SKLEARN_DIR_VERSION = 2
WEIGHTS_FILE = "model.safetensors"
ESTIMATOR_FILE = "model.skops"
META_FILE = "model.json"


class ModelDirError(MiauditError):
    """A model folder that is missing, damaged, or does not match its description."""


def save_model_dir(
    classifier: TorchClassifier,
    arch: ArchConfig,
    path: str | Path,
    *,
    num_classes: int,
    input_shape: Sequence[int],
    class_names: Sequence[str] = (),
) -> Path:
    """Write ``classifier`` (a torch model of architecture ``arch``) to folder ``path``; returns it."""
    if not isinstance(classifier, TorchClassifier):
        raise ModelDirError(
            f"save_model_dir writes torch models, not {type(classifier).__name__}: "
            "save a scikit-learn estimator with miaudit.targets.saving.save_target (skops, never pickle)"
        )
    shape, names = _description(classifier, num_classes, input_shape, class_names, flat=False)
    resolved = arch.resolved()
    folder = _make_folder(path)
    tensors = {k: t.detach().cpu().contiguous().clone() for k, t in classifier.module.state_dict().items()}
    weights = folder / WEIGHTS_FILE
    with atomic_path(weights) as tmp:
        save_file(tensors, str(tmp), metadata={"format": MODEL_DIR_FORMAT})
        digest = sha256_file(tmp)
    meta = {
        "format": MODEL_DIR_FORMAT,
        "format_version": MODEL_DIR_VERSION,
        "kind": "torch",
        "arch": resolved.to_dict(),
        "num_classes": int(num_classes),
        "input_shape": shape,
        "class_names": names,
        "weights_file": WEIGHTS_FILE,
        "weights_sha256": digest,
        **({"standardized": True} if isinstance(classifier.module, Standardized) else {}),
    }
    with atomic_path(folder / META_FILE) as tmp:
        tmp.write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return folder


def _description(
    classifier: TorchClassifier | SklearnClassifier,
    num_classes: int,
    input_shape: Sequence[int],
    class_names: Sequence[str],
    *,
    flat: bool,
) -> tuple[list[int], list[str]]:
    """The checked input shape and class names; ``flat``: only the feature count must match."""
    shape = [int(d) for d in input_shape]
    if not shape or any(d < 1 for d in shape):
        raise ModelDirError(f"invalid input shape {shape}; give the shape of one record")
    own = classifier.input_shape
    if own is not None and (math.prod(own) != math.prod(shape) if flat else tuple(own) != tuple(shape)):
        raise ModelDirError(f"the classifier takes inputs shaped {list(own)}, not {shape}")
    if int(num_classes) != classifier.num_classes:
        raise ModelDirError(f"the classifier has {classifier.num_classes} classes, not {num_classes}")
    names = [str(c) for c in class_names]
    if names and len(names) != int(num_classes):
        raise ModelDirError(f"{len(names)} class names given for {num_classes} classes; give one per class or none")
    return shape, names


def _make_folder(path: str | Path) -> Path:
    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise ModelDirError(f"{folder} exists and is not a folder; choose another path")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def save_sklearn_dir(
    classifier: SklearnClassifier,
    path: str | Path,
    *,
    num_classes: int,
    input_shape: Sequence[int],
    class_names: Sequence[str] = (),
) -> Path:
    """Write a scikit-learn ``classifier`` to folder ``path`` (``model.skops`` + ``model.json``); returns it."""
    from miaudit.targets.skops_files import write_skops

    if not isinstance(classifier, SklearnClassifier):
        raise ModelDirError(f"expected a scikit-learn classifier (SklearnClassifier), not {type(classifier).__name__}")
    shape, names = _description(classifier, num_classes, input_shape, class_names, flat=True)
    n_features = getattr(classifier.estimator, "n_features_in_", None)
    if isinstance(n_features, int) and n_features != math.prod(shape):
        raise ModelDirError(f"the estimator takes {n_features} features, input shape {shape} has {math.prod(shape)}")
    folder = _make_folder(path)
    estimator_path = folder / ESTIMATOR_FILE
    with atomic_path(estimator_path) as tmp:
        write_skops(classifier.estimator, tmp)
        digest = sha256_file(tmp)
    meta = {
        "format": MODEL_DIR_FORMAT,
        "format_version": SKLEARN_DIR_VERSION,
        "kind": "sklearn",
        "num_classes": int(num_classes),
        "input_shape": shape,
        "class_names": names,
        "columns": [int(c) for c in classifier.columns],
        "estimator_file": ESTIMATOR_FILE,
        "estimator_sha256": digest,
    }
    with atomic_path(folder / META_FILE) as tmp:
        tmp.write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return folder


def read_model_meta(path: str | Path) -> dict[str, Any]:
    """The validated contents of ``path/model.json``."""
    folder = Path(path)
    if not folder.is_dir():
        raise ModelDirError(f"model folder {folder} does not exist; save one with save_model_dir or check the path")
    meta_path = folder / META_FILE
    if not meta_path.exists() and not meta_path.is_symlink():
        raise ModelDirError(f"{meta_path} is missing; this is not a model folder (save one with save_model_dir)")
    try:
        # Bounded in size and depth, regular files only: a model.json linked to /dev/zero or
        # nested 10,000 deep is one line, not an endless read or a RecursionError.
        meta = read_json(meta_path, "model description")
    except DataError as exc:
        raise ModelDirError(f"{meta_path} is unreadable ({exc}); save the model again") from None
    problem = _meta_problem(meta)
    if problem:
        raise ModelDirError(f"{meta_path} {problem}; save the model again")
    return meta


def model_kind(meta: dict[str, Any]) -> str:
    """``"torch"`` or ``"sklearn"``: what a validated ``model.json`` describes."""
    return str(meta.get("kind", "torch"))


def _meta_problem(meta: Any) -> str:
    if not isinstance(meta, dict) or meta.get("format") != MODEL_DIR_FORMAT:
        return "is not a miaudit model description"
    version = meta.get("format_version")
    if version not in (MODEL_DIR_VERSION, SKLEARN_DIR_VERSION) or isinstance(version, bool):
        return f"has format version {version!r}; this miaudit reads versions {MODEL_DIR_VERSION} and {SKLEARN_DIR_VERSION}"
    kind = meta.get("kind", "torch")
    if (version, kind) not in ((MODEL_DIR_VERSION, "torch"), (SKLEARN_DIR_VERSION, "sklearn")):
        return f"describes a model of kind {kind!r} in format version {version}; expected torch (1) or sklearn (2)"
    problem = _common_problem(meta)
    if problem:
        return problem
    if kind == "sklearn":
        columns = meta.get("columns")
        n = meta["num_classes"]
        if not isinstance(columns, list) or len(columns) < 2 or len(set(map(str, columns))) != len(columns) or not all(
            isinstance(c, int) and not isinstance(c, bool) and 0 <= c < n for c in columns
        ):
            return "has invalid columns (distinct output columns in [0, num_classes), one per estimator class)"
        if meta.get("estimator_file") != ESTIMATOR_FILE:
            return f"names estimator file {meta.get('estimator_file')!r}, expected {ESTIMATOR_FILE!r}"
        digest = meta.get("estimator_sha256")
        if not isinstance(digest, str) or len(digest) != 64:
            return "has no valid estimator_sha256"
        return ""
    arch = meta.get("arch")
    if not isinstance(arch, dict) or not isinstance(arch.get("name"), str) or not isinstance(arch.get("options", {}), dict):
        return "has no valid architecture (arch.name, arch.options)"
    if meta.get("weights_file") != WEIGHTS_FILE:
        return f"names weights file {meta.get('weights_file')!r}, expected {WEIGHTS_FILE!r}"
    digest = meta.get("weights_sha256")
    if not isinstance(digest, str) or len(digest) != 64:
        return "has no valid weights_sha256"
    return ""


def _common_problem(meta: dict[str, Any]) -> str:
    n = meta.get("num_classes")
    if isinstance(n, bool) or not isinstance(n, int) or n < 2:
        return f"has an invalid num_classes {n!r}"
    shape = meta.get("input_shape")
    if not isinstance(shape, list) or not shape or not all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in shape):
        return f"has an invalid input_shape {shape!r}"
    check_at_most("classes", n, "model.json's num_classes")
    check_at_most("features", math.prod(shape), f"model.json's input_shape {shape}: features per record")
    names = meta.get("class_names", [])
    if not isinstance(names, list) or (names and len(names) != n) or not all(isinstance(c, str) for c in names):
        return "has invalid class_names (one string per class, or none)"
    return ""


def load_model_dir(path: str | Path, *, trusted_types: Sequence[str] = ()) -> TorchClassifier | SklearnClassifier:
    """The classifier saved in folder ``path`` (torch or scikit-learn); :class:`ModelDirError` if
    anything is off. ``trusted_types`` extends the skops type policy for a scikit-learn folder."""
    folder = Path(path)
    meta = read_model_meta(folder)
    if model_kind(meta) == "sklearn":
        return _load_sklearn_dir(folder, meta, trusted_types)
    weights = folder / WEIGHTS_FILE
    if not weights.is_file():
        raise ModelDirError(f"{weights} is missing; copy it next to {META_FILE} or save the model again")
    input_shape = tuple(meta["input_shape"])
    num_classes = int(meta["num_classes"])
    try:
        arch = ArchConfig.from_dict(meta["arch"])
        # Before the weights are read: build_module counts the parameters on the meta device
        # and refuses sizes past model_parameters before allocating them.
        module = build_module(arch, input_shape, num_classes, empty=True)
        if meta.get("standardized") is True:  # TrainingRecipe.standardize: mean/std come with the weights
            module = Standardized(module, np.zeros(input_shape, np.float32), np.ones(input_shape, np.float32))
    except LimitError:
        raise
    except MiauditError as exc:
        raise ModelDirError(f"{folder / META_FILE} describes an architecture miaudit cannot build ({exc})") from None
    regular_file(weights, "model weights")
    if sha256_file(weights) != meta["weights_sha256"]:
        raise ModelDirError(
            f"{weights} does not match the checksum in {META_FILE} (damaged or replaced file); save the model again"
        )
    try:
        with safe_open(str(weights), framework="pt") as f:
            tensors = {name: f.get_tensor(name) for name in f.keys()}
    except Exception as exc:  # safetensors raises its own error types for damaged files
        raise ModelDirError(f"{weights} is unreadable ({exc}); save the model again") from None
    try:
        module.load_state_dict(tensors, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelDirError(
            f"the weights in {weights} do not fit the architecture in {META_FILE} ({first}); save the model again"
        ) from None
    if any(not torch.isfinite(t).all() for t in tensors.values() if t.is_floating_point()):
        raise ModelDirError(f"{weights} holds NaN or infinite weights; retrain and save the model again")
    return TorchClassifier(module, num_classes, input_shape)


def _load_sklearn_dir(folder: Path, meta: dict[str, Any], trusted_types: Sequence[str]) -> SklearnClassifier:
    from miaudit.targets.skops_files import read_skops

    path = folder / ESTIMATOR_FILE
    if not path.is_file():
        raise ModelDirError(f"{path} is missing; copy it next to {META_FILE} or save the model again")
    if sha256_file(path) != meta["estimator_sha256"]:
        raise ModelDirError(f"{path} does not match the checksum in {META_FILE} (damaged or replaced file); save the model again")
    try:
        estimator = read_skops(path, trusted_types=trusted_types)
    except MiauditError as exc:
        raise ModelDirError(str(exc)) from None
    classes = getattr(estimator, "classes_", None)
    if classes is None or not hasattr(estimator, "predict_proba"):
        raise ModelDirError(f"{path} is not a fitted classifier with predict_proba; save the model again")
    if len(classes) != len(meta["columns"]):
        raise ModelDirError(f"{path} has {len(classes)} classes, {META_FILE} gives {len(meta['columns'])} columns; save the model again")
    input_shape = tuple(meta["input_shape"])
    n_features = getattr(estimator, "n_features_in_", None)
    if isinstance(n_features, int) and n_features != math.prod(input_shape):
        raise ModelDirError(f"{path} takes {n_features} features, {META_FILE} gives input shape {list(input_shape)}; save the model again")
    return SklearnClassifier(estimator, int(meta["num_classes"]), input_shape=input_shape, columns=np.asarray(meta["columns"]))
