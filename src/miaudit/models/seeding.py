"""Seed handling shared by ``train_one`` and the bank, so that both draw the same numbers.

A model's seed is split into independent streams (initial weights, batch order) by hashing,
so that e.g. changing the number of epochs never changes the initial weights.
"""

from __future__ import annotations

import hashlib
import numbers

import torch

from miaudit.errors import ConfigError


def check_seed(seed: object) -> int:
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise ConfigError(f"a seed must be an integer, got {seed!r}")
    return int(seed)


def derive_seed(seed: int, stream: str) -> int:
    """A 63-bit seed for ``stream`` ("init", "order", ...) derived from the model's seed."""
    digest = hashlib.sha256(f"miaudit/{stream}/{check_seed(seed)}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def init_generator(seed: int) -> torch.Generator:
    """The generator that draws a model's initial weights."""
    return torch.Generator().manual_seed(derive_seed(seed, "init"))


def order_generator(seed: int) -> torch.Generator:
    """The generator that draws a model's batch order, one permutation per epoch."""
    return torch.Generator().manual_seed(derive_seed(seed, "order"))


def epoch_permutation(n: int, generator: torch.Generator) -> torch.Tensor:
    """The order in which an epoch visits the ``n`` training records (batches are consecutive slices)."""
    return torch.randperm(n, generator=generator)
