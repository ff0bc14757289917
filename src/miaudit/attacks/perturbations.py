"""Input perturbations shared by the label-only attacks and BlindMI.

What a perturbation looks like depends on the data (Choquette-Choo et al., "Label-Only Membership
Inference Attacks", ICML 2021, section 4; Hui et al., "Practical Blind Membership Inference Attack
via Differential Comparisons", NDSS 2021, section IV-B):

- images ``(n, C, H, W)``: horizontal flips and pixel shifts (augmentation), Sobel edges (BlindMI's
  non-member generator), Gaussian noise (noise robustness);
- binary tabular data (every value 0 or 1): random bit flips;
- continuous tabular data: Gaussian noise scaled by each feature's spread.

:func:`data_kind` decides which applies, from the records alone. Every function is seeded by the
caller's generator, so an attack's perturbations follow from the attacker's seed.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from miaudit.registry import Registry

Perturb = Callable[[np.ndarray, float, np.random.Generator], np.ndarray]
"""``perturb(x, strength, rng)`` -> one perturbed copy of every record of ``x``."""


def data_kind(x: np.ndarray) -> str:
    """``"image"`` for ``(n, C, H, W)`` inputs, ``"binary"`` when every value is 0 or 1, else ``"continuous"``."""
    x = np.asarray(x)
    if x.ndim == 4:
        return "image"
    if x.size and np.isin(x, (0.0, 1.0)).all():
        return "binary"
    return "continuous"


def flip_bits(x: np.ndarray, n_bits: float, rng: np.random.Generator) -> np.ndarray:
    """Each record with ``n_bits`` distinct features set to 1 - value (binary data)."""
    flat = np.asarray(x, np.float32).reshape(len(x), -1).copy()
    d = flat.shape[1]
    k = int(min(max(round(n_bits), 0), d))
    if k:
        # argpartition of uniform keys: k distinct random positions per row, vectorised.
        pos = np.argpartition(rng.random((len(flat), d)), k - 1, axis=1)[:, :k]
        rows = np.arange(len(flat))[:, None]
        flat[rows, pos] = 1.0 - flat[rows, pos]
    return flat.reshape(np.shape(x))


def gaussian_noise(x: np.ndarray, sigma: float, rng: np.random.Generator, scale: np.ndarray | None = None) -> np.ndarray:
    """``x + sigma * scale * N(0, 1)``; ``scale`` is a per-feature spread (default 1)."""
    x = np.asarray(x, np.float32)
    noise = rng.standard_normal(x.shape).astype(np.float32) * np.float32(sigma)
    if scale is not None:
        noise *= scale.astype(np.float32)
    return x + noise


def feature_scale(x: np.ndarray) -> np.ndarray:
    """Per-feature standard deviation of ``x`` (1 where a feature is constant), for noise."""
    std = np.asarray(x, np.float64).std(axis=0)
    return np.where(std > 0, std, 1.0).astype(np.float32)


def shift_image(x: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """Images ``(n, C, H, W)`` translated by ``(dy, dx)`` pixels, zero-filled."""
    out = np.zeros_like(x)
    h, w = x.shape[2], x.shape[3]
    ys, yd = (slice(0, h - dy), slice(dy, h)) if dy >= 0 else (slice(-dy, h), slice(0, h + dy))
    xs, xd = (slice(0, w - dx), slice(dx, w)) if dx >= 0 else (slice(-dx, w), slice(0, w + dx))
    out[:, :, yd, xd] = x[:, :, ys, xs]
    return out


def image_augmentations(x: np.ndarray, max_shift: int) -> list[np.ndarray]:
    """Choquette-Choo et al.'s augmentation set: every shift ``(dy, dx)`` with ``|dy| + |dx| <= max_shift``,
    with and without a horizontal flip (the identity included)."""
    x = np.asarray(x, np.float32)
    shifts = [(dy, dx) for dy in range(-max_shift, max_shift + 1) for dx in range(-max_shift, max_shift + 1) if abs(dy) + abs(dx) <= max_shift]
    out = []
    for flipped in (x, x[:, :, :, ::-1]):
        out.extend(shift_image(np.ascontiguousarray(flipped), dy, dx) for dy, dx in shifts)
    return out


def sobel_edges(x: np.ndarray) -> np.ndarray:
    """Gradient magnitude of each image channel under the 3x3 Sobel filters (BlindMI's generator for images)."""
    x = np.asarray(x, np.float32)
    p = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)), mode="edge")
    h, w = x.shape[2], x.shape[3]

    def at(dy: int, dx: int) -> np.ndarray:
        return p[:, :, 1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w]

    gx = (at(-1, 1) + 2 * at(0, 1) + at(1, 1)) - (at(-1, -1) + 2 * at(0, -1) + at(1, -1))
    gy = (at(1, -1) + 2 * at(1, 0) + at(1, 1)) - (at(-1, -1) + 2 * at(-1, 0) + at(-1, 1))
    return np.sqrt(gx**2 + gy**2).astype(np.float32)


NOISE: Registry[Callable[[np.ndarray], Perturb]] = Registry("perturbation")
"""Random perturbation per data kind: ``NOISE.get(kind)(reference_x)`` -> :data:`Perturb`.
Binary data: ``strength`` bits flipped; continuous data and images: Gaussian noise of ``strength``
times each feature's standard deviation in ``reference_x`` (images: one global spread)."""


@NOISE.register("binary")
def _binary_noise(reference_x: np.ndarray) -> Perturb:
    return flip_bits


@NOISE.register("continuous")
def _continuous_noise(reference_x: np.ndarray) -> Perturb:
    scale = feature_scale(reference_x)
    return lambda x, sigma, rng: gaussian_noise(x, sigma, rng, scale)


@NOISE.register("image")
def _image_noise(reference_x: np.ndarray) -> Perturb:
    scale = np.float32(np.asarray(reference_x, np.float64).std() or 1.0)
    return lambda x, sigma, rng: gaussian_noise(x, sigma * float(scale), rng)


STRENGTHS: dict[str, tuple[float, ...]] = {
    # Candidate strengths the label-only attacks choose from on shadow models (never on the target).
    "binary": (1, 2, 4, 8, 16),  # bits flipped
    "continuous": (0.05, 0.1, 0.2, 0.4, 0.8),  # x feature std
    "image": (0.02, 0.05, 0.1, 0.2),  # x pixel std
}
