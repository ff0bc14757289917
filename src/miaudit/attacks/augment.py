"""Query augmentations: several views of each record, queried separately and combined by the attack.

LiRA (Carlini et al., S&P 2022, section VI.C) queries the target and every reference model on
augmented copies of an image, the augmentations the model was trained with (horizontal flips and
small translations), and averages the per-view likelihoods: a member is fitted under all its
views, so the averaged test is less noisy. Each view costs one query per record.

Views are defined for images shaped (N, C, H, W); "auto" picks flips and shifts for images and no
augmentation for anything else (tabular records have no natural label-preserving transform).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from miaudit.errors import ConfigError
from miaudit.registry import Registry

View = Callable[[np.ndarray], np.ndarray]
AUGMENTATIONS: Registry[Callable[[], list[View]]] = Registry("query augmentation")

SHIFTS = ((0, 0), (1, 0), (-1, 0), (0, 1), (0, -1))  # one pixel each way, and none


def _identity(x: np.ndarray) -> np.ndarray:
    return x


def _flip(x: np.ndarray) -> np.ndarray:
    return x[..., ::-1].copy()


def shift(x: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """Translate images by (dy, dx) pixels, filling the uncovered border by reflection."""
    pad = max(abs(dy), abs(dx))
    if pad == 0:
        return x
    padded = np.pad(x, [(0, 0)] * (x.ndim - 2) + [(pad, pad), (pad, pad)], mode="reflect")
    h, w = x.shape[-2:]
    top, left = pad - dy, pad - dx
    return padded[..., top : top + h, left : left + w].copy()


def _shifted(dy: int, dx: int, flip: bool) -> View:
    def view(x: np.ndarray) -> np.ndarray:
        return shift(_flip(x) if flip else x, dy, dx)

    return view


@AUGMENTATIONS.register("none")
def _none() -> list[View]:
    return [_identity]


@AUGMENTATIONS.register("flip")
def _flips() -> list[View]:
    return [_identity, _flip]


@AUGMENTATIONS.register("flip-shift")
def _flips_and_shifts() -> list[View]:
    return [_shifted(dy, dx, flip) for flip in (False, True) for dy, dx in SHIFTS]


_AUTO_VIEWS = {"flip-crop": "flip", "none": "none"}  # the recipe's training augmentation -> "auto" query views


def resolve(name: str, input_shape: tuple[int, ...], trained_with: str | None = None) -> tuple[str, list[View]]:
    """The views for ``name`` and the name used. "auto": the training augmentation's views, as
    Carlini et al. query their models, when the attacker knows the recipe (``trained_with``):
    identity and mirror for ``"flip-crop"``, the record alone for ``"none"`` (views a model never
    trained on only blur its scores); flip-shift for images of an unknown recipe; none for
    records that are not images."""
    if name == "auto":
        if len(input_shape) != 3:
            name = "none"
        else:
            name = _AUTO_VIEWS.get(trained_with, "flip-shift") if trained_with is not None else "flip-shift"
    views = AUGMENTATIONS.get(name)()
    if name != "none" and len(input_shape) != 3:
        raise ConfigError(f"query augmentation {name!r} needs images shaped (C, H, W), the records are shaped {input_shape}")
    return name, views


def views_of(x: np.ndarray, views: list[View]) -> list[np.ndarray]:
    """Every view of the records ``x``, as float32 arrays."""
    x = np.asarray(x, dtype=np.float32)
    return [np.ascontiguousarray(v(x), dtype=np.float32) for v in views]
