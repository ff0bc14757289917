"""Differentiable surrogate models for the one-shot label-only attacks (``yoqo``, ``oslo``).

Both attacks craft one query per record by gradient steps on models the attacker trained on its
own pool (shadow, source or reference models), then ask the target for one label. This module
holds what they share:

- :func:`surrogate_knowledge`: the knowledge to train the surrogates with: the target's own
  architecture and recipe when it is a registered torch architecture, else the default MLP as a
  stand-in (a transfer attack: OSLO's source models need not share the target's architecture);
- :func:`torch_modules`: the trained torch modules behind the surrogates, or a one-line
  ConfigError when one is not differentiable (e.g. a defense that wraps its outputs);
- :class:`InputBox`: the range the attacker's data spans; perturbations live in its unit cube
  (``z = (x - low) / (high - low)``, per feature) and are clipped to it, so step sizes and radii
  are in units of each feature's range (RMS over features);
- :func:`ensemble_logits`: the logits of every surrogate on one batch, shaped ``(M, n, C)``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

from miaudit.attacks.knowledge import AttackerKnowledge, ModelSpec
from miaudit.errors import ConfigError

STAND_IN: tuple[str, dict[str, Any]] = ("mlp", {})
"""The surrogates' architecture when the target's is not a registered torch architecture."""

BATCH = 512
"""Records optimised at once."""


def surrogate_knowledge(knowledge: AttackerKnowledge, attack: str) -> tuple[AttackerKnowledge, bool]:
    """``(knowledge to train surrogates with, stand_in)``: the target's architecture when it is a
    torch architecture, else :data:`STAND_IN` with the target's recipe (and no defense)."""
    from miaudit.models import ARCHITECTURES

    if knowledge.pool_x is None or knowledge.pool_y is None:
        raise ConfigError(f"{attack} needs the attacker's pool to train its surrogate models")
    spec = knowledge.model
    if spec is None or spec.recipe is None:
        raise ConfigError(f"{attack} needs the target's architecture and training recipe (gray box)")
    if spec.name in ARCHITECTURES:
        return knowledge, False
    stand_in = ModelSpec(STAND_IN[0], dict(STAND_IN[1]), spec.recipe)
    return dataclasses.replace(knowledge, model=stand_in), True


def torch_modules(models: list[Any], attack: str) -> list[Any]:
    """The torch module of each trained surrogate, in eval mode with gradients off for its weights."""
    from torch import nn

    out = []
    for m in models:
        module = getattr(m, "module", None)
        if not isinstance(module, nn.Module):
            raise ConfigError(
                f"{attack} needs differentiable (torch) surrogate models, but one is a {type(m).__name__} "
                "(e.g. a defense that wraps the model's outputs); use label-boundary or label-noise instead"
            )
        module.eval()
        for p in module.parameters():
            p.requires_grad_(False)
        out.append(module)
    return out


@dataclass(frozen=True)
class InputBox:
    """The per-feature range ``[low, high]`` of the attacker's data, flattened; ``shape`` of one record."""

    low: np.ndarray
    high: np.ndarray
    shape: tuple[int, ...]

    @classmethod
    def of(cls, pool_x: np.ndarray) -> "InputBox":
        flat = np.asarray(pool_x, dtype=np.float64).reshape(len(pool_x), -1)
        low, high = flat.min(axis=0), flat.max(axis=0)
        return cls(low, np.where(high > low, high, low + 1.0), tuple(pool_x.shape[1:]))

    @property
    def dim(self) -> int:
        return int(self.low.size)

    def to_unit(self, x: np.ndarray) -> np.ndarray:
        """Records as float32 coordinates in the unit cube, ``(n, dim)``."""
        flat = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
        return ((flat - self.low) / (self.high - self.low)).astype(np.float32)

    def from_unit(self, z: Any) -> Any:
        """Unit-cube coordinates (numpy or torch, ``(n, dim)``) back to records ``(n, *shape)``."""
        import torch

        if isinstance(z, torch.Tensor):
            low = torch.as_tensor(self.low, dtype=z.dtype)
            span = torch.as_tensor(self.high - self.low, dtype=z.dtype)
            return (low + z * span).reshape((len(z),) + self.shape)
        return (self.low + np.asarray(z, dtype=np.float64) * (self.high - self.low)).reshape((len(z),) + self.shape)


def ensemble_logits(modules: list[Any], box: InputBox, z: Any) -> Any:
    """Logits of every module at the unit-cube points ``z`` (a torch tensor ``(n, dim)``): ``(M, n, C)``."""
    import torch

    x = box.from_unit(z)
    return torch.stack([m(x) for m in modules])


def as_query(records: np.ndarray, like: np.ndarray) -> np.ndarray:
    """``records`` in the dtype of the scored records ``like`` when that is a float dtype, else float32."""
    return records.astype(like.dtype if np.issubdtype(like.dtype, np.floating) else np.float32)


def batches(n: int, size: int = BATCH) -> list[slice]:
    """Consecutive slices of ``range(n)`` of at most ``size`` records."""
    return [slice(i, min(i + size, n)) for i in range(0, n, size)]


def calibration_records(in_idx: np.ndarray, out_idx: np.ndarray, k: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Up to ``k`` members and as many non-members of one model: ``(pool indices, is_member)``."""
    k = min(k, len(in_idx), len(out_idx))
    idx = np.concatenate([rng.choice(in_idx, k, replace=False), rng.choice(out_idx, k, replace=False)])
    return idx, np.arange(2 * k) < k
