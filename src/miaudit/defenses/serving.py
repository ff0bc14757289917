"""Output-time defenses in front of a served model (``miaudit serve --defense``).

Only output-time defenses apply to a model that is already trained; MemGuard also needs the
defender's data to train its membership classifier: an ``.npz`` file (loaded without pickle)
with ``members`` (records the model was trained on) and ``nonmembers`` (reference records it
never saw), each shaped like the model's inputs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from miaudit.bounded_io import read_npz
from miaudit.defenses.base import TrainingTask, parse_defense
from miaudit.defenses.output import DefendedOutputs, OutputDefense
from miaudit.errors import ConfigError, InputError


def load_defense_data(path: str | Path, input_shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """``(members, nonmembers)`` from an .npz, checked: shapes, finite numbers, no pickles."""
    arrays = read_npz(path, "defense data", how="save 'members' and 'nonmembers' with numpy.savez")
    for key in ("members", "nonmembers"):
        if key not in arrays:
            raise InputError(f"defense data {str(path)!r} needs an array named {key!r}")
        a = arrays[key]
        if a.dtype.kind not in "fiu" or a.ndim < 1 or len(a) == 0:
            raise InputError(f"defense data {key!r} must be a non-empty numeric array, got dtype {a.dtype} shape {a.shape}")
        a = a.reshape(len(a), *input_shape) if a[0].size == int(np.prod(input_shape)) else a
        if tuple(a.shape[1:]) != tuple(input_shape):
            raise InputError(f"defense data {key!r} records must have shape {tuple(input_shape)}, got {a.shape[1:]}")
        if not np.isfinite(a).all():
            raise InputError(f"defense data {key!r} holds NaN or infinite values")
        arrays[key] = a.astype(np.float32)
    return arrays["members"], arrays["nonmembers"]


def defend_served_model(model: Any, spec: str, data_path: str | None = None, *, seed: int = 0) -> DefendedOutputs:
    """``model`` wrapped in the output-time defense ``spec`` (fitted on ``data_path`` where it needs data)."""
    defense = parse_defense(spec)
    if not isinstance(defense, OutputDefense):
        raise ConfigError(
            f"defense {defense.name!r} is a training-time defense; train the model with it "
            "(miaudit defend / audit --defense) and serve that model"
        )
    if not defense.needs_reference:
        if data_path is not None:
            raise ConfigError(f"defense {defense.name!r} needs no --defense-data")
        return defense.wrap(model)
    if data_path is None:
        raise ConfigError(f"defense {defense.name!r} needs --defense-data: an .npz with 'members' and 'nonmembers' records")
    shape = tuple(getattr(model, "input_shape", ()) or ())
    members, nonmembers = load_defense_data(data_path, shape)
    x = np.concatenate([members, nonmembers])
    task = TrainingTask(
        x=x, y=np.zeros(len(x), dtype=np.int64), private_idx=np.arange(len(members)),
        reference_idx=np.arange(len(members), len(x)), num_classes=int(model.num_classes), seed=seed,
        model="served", options={}, recipe=None,
    )  # fmt: skip
    return defense.wrap(model, task)
