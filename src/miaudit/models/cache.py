"""On-disk cache of trained torch models: safetensors weights keyed by everything that made them.

A model is a deterministic function of its data set, training records, architecture, recipe,
seed, number of classes and input shape; the key is a hash of all of them (plus a format
version). Files are safetensors (never pickle: loading a pickle can run code), written
atomically, with the key's inputs and a checksum of the weights in the file's metadata. A load
checks both, so a stale, renamed or damaged file is reported instead of silently used.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from miaudit.errors import CacheError
from miaudit.io_utils import atomic_path, sha256_arrays, stable_hash
from miaudit.models.device import cache_tag
from miaudit.models.architectures import ArchConfig
from miaudit.models.recipe import TrainingRecipe
from miaudit.paths import cache_dir

FORMAT_VERSION = 1
_FORMAT_TAG = "miaudit-model"


@dataclass(frozen=True)
class ModelKey:
    """The inputs that determine a trained model, and their hash (``digest``)."""

    inputs: dict[str, Any] = field(hash=False)
    digest: str

    @classmethod
    def build(
        cls,
        *,
        arch: ArchConfig,
        recipe: TrainingRecipe,
        seed: int,
        num_classes: int,
        input_shape: tuple[int, ...],
        data_fingerprint: str,
        train_indices: np.ndarray,
    ) -> ModelKey:
        inputs = {
            "format_version": FORMAT_VERSION,
            "data_fingerprint": str(data_fingerprint),
            "train_indices_sha256": sha256_arrays(np.asarray(train_indices, dtype=np.int64)),
            "num_train": int(len(train_indices)),
            "arch": arch.resolved().to_dict(),
            "recipe": recipe.to_dict(),
            "seed": int(seed),
            "num_classes": int(num_classes),
            "input_shape": [int(d) for d in input_shape],
        }
        if cache_tag():  # trained off the CPU: other kernels, other weights (CPU keys stay as they were)
            inputs["device"] = cache_tag()
        # A JSON round trip makes the stored form and the requested form compare equal.
        inputs = json.loads(json.dumps(inputs, sort_keys=True))
        return cls(inputs=inputs, digest=stable_hash(inputs))


def tensors_sha256(tensors: dict[str, torch.Tensor]) -> str:
    """Hex sha256 of a state dict's names, dtypes, shapes and values (a weights fingerprint)."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().contiguous()
        h.update(name.encode())
        h.update(str(t.dtype).encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()


class ModelCache:
    """Trained weights under ``root`` (default ``cache_dir()/models``), one file per model.

    ``saves`` and ``loads`` count this object's writes and successful reads.
    """

    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(root) if root is not None else cache_dir() / "models"
        self.saves = 0
        self.loads = 0

    def path(self, key: ModelKey) -> Path:
        return self.root / key.digest[:2] / f"{key.digest}.safetensors"

    def __contains__(self, key: ModelKey) -> bool:
        path = self.path(key)
        if path.exists() and not path.is_file():  # checked before training, not when saving after it
            raise CacheError(f"cache entry {path} is not a regular file; delete it and rerun")
        return path.is_file()

    def save(self, key: ModelKey, state: dict[str, torch.Tensor]) -> Path:
        """Write ``state`` (a state dict) for ``key`` atomically; returns the file."""
        tensors = {name: t.detach().cpu().contiguous().clone() for name, t in state.items()}
        metadata = {
            "format": _FORMAT_TAG,
            "key": key.digest,
            "inputs": json.dumps(key.inputs, sort_keys=True),
            "tensors_sha256": tensors_sha256(tensors),
        }
        final = self.path(key)
        with atomic_path(final) as tmp:
            save_file(tensors, str(tmp), metadata=metadata)
        self.saves += 1
        return final

    def load(self, key: ModelKey) -> dict[str, torch.Tensor]:
        """The state dict stored for ``key``; :class:`CacheError` if it is damaged or not ``key``'s."""
        path = self.path(key)
        try:
            with safe_open(str(path), framework="pt") as f:
                metadata = f.metadata() or {}
                tensors = {name: f.get_tensor(name) for name in f.keys()}
        except FileNotFoundError:
            raise CacheError(f"no cached model {key.digest} at {path}") from None
        except Exception as exc:  # safetensors raises its own error types for damaged files
            raise CacheError(f"cached model {path} is unreadable ({exc}); delete the file and rerun") from None
        problem = _check_metadata(metadata, key, tensors)
        if problem:
            raise CacheError(f"cached model {path} {problem}; delete the file and rerun")
        self.loads += 1
        return tensors


def _check_metadata(metadata: dict[str, str], key: ModelKey, tensors: dict[str, torch.Tensor]) -> str:
    """Why the file does not hold ``key``'s model, or '' if it does."""
    if metadata.get("format") != _FORMAT_TAG:
        return "is not a miaudit model file"
    if metadata.get("key") != key.digest:
        return f"holds key {metadata.get('key')!r}, not {key.digest!r}"
    try:
        stored = json.loads(metadata.get("inputs", ""))
    except json.JSONDecodeError:
        return "has unreadable metadata"
    if stored != key.inputs:
        differing = sorted(k for k in set(stored) | set(key.inputs) if stored.get(k) != key.inputs.get(k))
        return f"was trained with different {', '.join(differing)}"
    if metadata.get("tensors_sha256") != tensors_sha256(tensors):
        return "has weights that do not match their checksum (damaged file)"
    return ""
