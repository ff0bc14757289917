"""A trained torch classifier on disk, ready to serve: a folder with two files.

- ``model.safetensors``: the weights (safetensors, never pickle: loading a pickle can run code);
- ``model.json``: the architecture (name and options), number of classes, input shape, class
  names, a format version and the sha256 of ``model.safetensors``.

Both files are written atomically. :func:`load_model_dir` checks every field, the checksum and
that the weights fit the architecture, and reports any problem as :class:`ModelDirError`.
Only torch models can be saved: a scikit-learn estimator would need pickle, which is refused.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from miaudit.errors import MiauditError
from miaudit.io_utils import atomic_path, sha256_file
from miaudit.models.architectures import ArchConfig, build_module
from miaudit.models.classifier import TorchClassifier
from miaudit.models.standardize import Standardized

MODEL_DIR_FORMAT = "miaudit-model-dir"
MODEL_DIR_VERSION = 1
WEIGHTS_FILE = "model.safetensors"
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
            f"only torch models can be saved to a model folder, not {type(classifier).__name__}: "
            "a scikit-learn estimator would need pickle, which miaudit never writes or loads; "
            "train a torch architecture (mlp, cnn) instead"
        )
    shape = [int(d) for d in input_shape]
    if classifier.input_shape is not None and tuple(classifier.input_shape) != tuple(shape):
        raise ModelDirError(f"the classifier takes inputs shaped {list(classifier.input_shape)}, not {shape}")
    if int(num_classes) != classifier.num_classes:
        raise ModelDirError(f"the classifier has {classifier.num_classes} classes, not {num_classes}")
    names = [str(c) for c in class_names]
    if names and len(names) != int(num_classes):
        raise ModelDirError(f"{len(names)} class names given for {num_classes} classes; give one per class or none")
    resolved = arch.resolved()
    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise ModelDirError(f"{folder} exists and is not a folder; choose another path")
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {k: t.detach().cpu().contiguous().clone() for k, t in classifier.module.state_dict().items()}
    weights = folder / WEIGHTS_FILE
    with atomic_path(weights) as tmp:
        save_file(tensors, str(tmp), metadata={"format": MODEL_DIR_FORMAT})
        digest = sha256_file(tmp)
    meta = {
        "format": MODEL_DIR_FORMAT,
        "format_version": MODEL_DIR_VERSION,
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


def read_model_meta(path: str | Path) -> dict[str, Any]:
    """The validated contents of ``path/model.json``."""
    folder = Path(path)
    if not folder.is_dir():
        raise ModelDirError(f"model folder {folder} does not exist; save one with save_model_dir or check the path")
    meta_path = folder / META_FILE
    try:
        meta = json.loads(meta_path.read_text())
    except FileNotFoundError:
        raise ModelDirError(f"{meta_path} is missing; this is not a model folder (save one with save_model_dir)") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelDirError(f"{meta_path} is unreadable ({exc}); save the model again") from None
    problem = _meta_problem(meta)
    if problem:
        raise ModelDirError(f"{meta_path} {problem}; save the model again")
    return meta


def _meta_problem(meta: Any) -> str:
    if not isinstance(meta, dict) or meta.get("format") != MODEL_DIR_FORMAT:
        return "is not a miaudit model description"
    if meta.get("format_version") != MODEL_DIR_VERSION:
        return f"has format version {meta.get('format_version')!r}; this miaudit reads version {MODEL_DIR_VERSION}"
    arch = meta.get("arch")
    if not isinstance(arch, dict) or not isinstance(arch.get("name"), str) or not isinstance(arch.get("options", {}), dict):
        return "has no valid architecture (arch.name, arch.options)"
    n = meta.get("num_classes")
    if isinstance(n, bool) or not isinstance(n, int) or n < 2:
        return f"has an invalid num_classes {n!r}"
    shape = meta.get("input_shape")
    if not isinstance(shape, list) or not shape or not all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in shape):
        return f"has an invalid input_shape {shape!r}"
    names = meta.get("class_names", [])
    if not isinstance(names, list) or (names and len(names) != n) or not all(isinstance(c, str) for c in names):
        return "has invalid class_names (one string per class, or none)"
    if meta.get("weights_file") != WEIGHTS_FILE:
        return f"names weights file {meta.get('weights_file')!r}, expected {WEIGHTS_FILE!r}"
    digest = meta.get("weights_sha256")
    if not isinstance(digest, str) or len(digest) != 64:
        return "has no valid weights_sha256"
    return ""


def load_model_dir(path: str | Path) -> TorchClassifier:
    """The classifier saved in folder ``path``; :class:`ModelDirError` if anything is off."""
    folder = Path(path)
    meta = read_model_meta(folder)
    weights = folder / WEIGHTS_FILE
    if not weights.is_file():
        raise ModelDirError(f"{weights} is missing; copy it next to {META_FILE} or save the model again")
    if sha256_file(weights) != meta["weights_sha256"]:
        raise ModelDirError(
            f"{weights} does not match the checksum in {META_FILE} (damaged or replaced file); save the model again"
        )
    try:
        with safe_open(str(weights), framework="pt") as f:
            tensors = {name: f.get_tensor(name) for name in f.keys()}
    except Exception as exc:  # safetensors raises its own error types for damaged files
        raise ModelDirError(f"{weights} is unreadable ({exc}); save the model again") from None
    input_shape = tuple(meta["input_shape"])
    num_classes = int(meta["num_classes"])
    try:
        arch = ArchConfig.from_dict(meta["arch"])
        module = build_module(arch, input_shape, num_classes, empty=True)
        if meta.get("standardized") is True:  # TrainingRecipe.standardize: mean/std come with the weights
            module = Standardized(module, np.zeros(input_shape, np.float32), np.ones(input_shape, np.float32))
    except MiauditError as exc:
        raise ModelDirError(f"{folder / META_FILE} describes an architecture miaudit cannot build ({exc})") from None
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
