"""Training-time augmentation for image models: random crop with zero padding and horizontal flip.

The standard CIFAR-10 augmentation (He et al. 2016; the setting of Carlini et al.'s LiRA models):
each training image, every time it is visited, is padded with ``padding`` zeros on each side,
cropped back to its size at a random offset (``dy, dx`` uniform in ``[-padding, padding]``) and
mirrored left-right with probability 1/2. It is applied to the input as the network sees it
(after standardization, when the recipe standardizes), so padding is zero in that space.

Draws are a function of the model's seed, the epoch and the position in the epoch's visiting
order only: ``train_one`` and the bank (:mod:`miaudit.models.engine_base`) draw them from the
same per-model generator, one epoch at a time, and apply them with the same indexing, so a
model trained in the bank sees exactly the images it would see trained alone. The crop and flip
are pure indexing (no arithmetic), so both paths feed bit-identical inputs.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from miaudit.errors import ConfigError
from miaudit.models.architectures import ARCHITECTURES
from miaudit.models.seeding import derive_seed

#: Recipe values of ``augment``: no augmentation, or random crop with padding plus horizontal flip.
AUGMENTS = ("none", "flip-crop")

#: The bank engines that augment (their ``augments`` attribute; a test keeps the two in step).
AUGMENTING_ENGINES = ("functional", "looped")


@dataclass(frozen=True)
class Draws:
    """One epoch's augmentation of a sequence of visits: a flip flag and a crop offset each."""

    flip: torch.Tensor  # bool
    dy: torch.Tensor  # int64, in [-padding, padding]
    dx: torch.Tensor

    def __getitem__(self, index: object) -> Draws:
        return Draws(self.flip[index], self.dy[index], self.dx[index])  # type: ignore[index]


def augment_generator(seed: int) -> torch.Generator:
    """The generator that draws a model's augmentations, epoch after epoch."""
    return torch.Generator().manual_seed(derive_seed(seed, "augment"))


def draw_epoch(generator: torch.Generator, n: int, padding: int) -> Draws:
    """The augmentation of the epoch's ``n`` visits, in visiting order."""
    flip = torch.rand(n, generator=generator) < 0.5
    offsets = torch.randint(-padding, padding + 1, (2, n), generator=generator)
    return Draws(flip, offsets[0], offsets[1])


def check_augmentable(arch_name: str, input_shape: tuple[int, ...], augment: str) -> None:
    """Augmentation other than "none" needs (channels, height, width) inputs and an image
    architecture (one the bank trains with an engine that augments: an MLP's
    batched-matmul engine does not, so neither does ``train_one`` for it)."""
    if augment == "none":
        return
    if len(input_shape) != 3:
        raise ConfigError(f"training augmentation {augment!r} is for images (channels, height, width); these inputs have shape {input_shape}")
    if ARCHITECTURES.get(arch_name).engine not in AUGMENTING_ENGINES:
        raise ConfigError(f"training augmentation {augment!r} needs an image architecture (e.g. cnn), not {arch_name!r}")


def apply(
    images: torch.Tensor, draws: Draws, padding: int, memory_format: torch.memory_format = torch.contiguous_format
) -> torch.Tensor:
    """``images`` (B, C, H, W) cropped at ``(dy, dx)`` from their zero-padded copy and flipped
    where ``flip``: ``out[b, c, i, j] = padded[b, c, p + dy + i, p + dx + (W - 1 - j if flip else j)]``,
    laid out in ``memory_format`` (the values do not depend on it)."""
    b, c, h, w = images.shape
    hp, wp = h + 2 * padding, w + 2 * padding
    # Pixels as rows of C channels (channels-last), gathered with one index_select on flat row
    # numbers: about 2x faster than multi-dimensional advanced indexing here, the same values.
    padded = torch.nn.functional.pad(images.permute(0, 2, 3, 1), (0, 0, padding, padding, padding, padding))  # (B, Hp, Wp, C)
    rows = padding + draws.dy.view(b, 1) + torch.arange(h).view(1, h)  # (B, H)
    cols = torch.arange(w).view(1, w).expand(b, w)
    cols = torch.where(draws.flip.view(b, 1), w - 1 - cols, cols) + padding + draws.dx.view(b, 1)  # (B, W)
    flat = (torch.arange(b).view(b, 1, 1) * hp + rows.view(b, h, 1)) * wp + cols.view(b, 1, w)  # (B, H, W)
    out = padded.reshape(b * hp * wp, c).index_select(0, flat.reshape(-1)).view(b, h, w, c)
    return out.permute(0, 3, 1, 2).contiguous(memory_format=memory_format)
