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
- :func:`ensemble_logits`: the logits of every surrogate on one batch, shaped ``(M, n, C)``;
- the perturbation's radius chosen on the attacker's models (:func:`choose_radius`): a
  *pseudo-target* of the target's own architecture (:func:`pseudo_target`, trained like the
  target on a seeded random half of the scored records, which the attacker holds since it queries
  them) plays the target: queries are crafted for its members and non-members at each radius of
  :data:`RADII` (0: the record itself, the gap attack), and the radius whose decisions separate
  them best (balanced accuracy, ties to the smaller radius) is used on the target. No target
  query, no target truth; the half is as large as the scored members when they are half the
  records, so the pseudo-target overfits about as the target does.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from miaudit.attacks.knowledge import AttackerKnowledge, ModelSpec
from miaudit.attacks.train_models import train_models
from miaudit.errors import ConfigError
from miaudit.io_utils import sha256_arrays, stable_hash
from miaudit.models.seeding import derive_seed

STAND_IN: tuple[str, dict[str, Any]] = ("mlp", {})
"""The surrogates' architecture when the target's is not a registered torch architecture."""

BATCH = 512
"""Records optimised at once."""

RADII: tuple[float, ...] = (0.0, 0.01, 0.02, 0.05, 0.1, 0.2)
"""Candidate perturbation radii (RMS over features, in units of each feature's range)."""



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
    """The torch module of each trained surrogate, in eval mode with gradients off for its weights.

    A model behind an output-time defense (``DefendedOutputs``: MemGuard, top-k, rounding, ...)
    gives the network underneath (its ``base``): those defenses change the released vector, not
    the network, and a label-only attacker crafts on the network."""
    from torch import nn

    out = []
    for m in models:
        module = getattr(m, "module", None)
        if module is None and getattr(m, "base", None) is not None:
            module = getattr(m.base, "module", None)
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


@dataclass(frozen=True)
class PseudoTarget:
    """A model of the target's architecture as a label oracle, with scored records it did and did not train on."""

    labels_of: Callable[[np.ndarray], np.ndarray]
    idx: np.ndarray  # positions among the scored records
    is_member: np.ndarray


def pseudo_target(knowledge: AttackerKnowledge, x: np.ndarray, y: np.ndarray, max_per_side: int, attack: str) -> PseudoTarget:
    """Train one model like the target (``knowledge.model``: architecture, recipe, known defense)
    on a seeded random half of the scored records ``(x, y)`` (the attacker holds them, as it
    queries them; the half is drawn at random, never from membership truth); up to
    ``max_per_side`` of its members and as many records it did not see."""
    assert knowledge.model is not None
    rng = np.random.default_rng(derive_seed(knowledge.seed, f"{attack}/pseudo-target"))
    subset = np.sort(rng.choice(len(y), len(y) // 2, replace=False))
    fingerprint = stable_hash({"candidates": sha256_arrays(np.asarray(x), np.asarray(y)), "attack": attack})
    (model,) = train_models(
        knowledge.model, np.asarray(x), np.asarray(y), [subset], [int(rng.integers(0, 2**31 - 1))],
        num_classes=knowledge.num_classes, cache=knowledge.cache, data_fingerprint=fingerprint, executor=knowledge.executor,
    )  # fmt: skip
    members, others = np.asarray(model.in_idx), np.asarray(model.out_idx)
    k = min(max_per_side, len(members), len(others))
    if k < 1:
        raise ConfigError(f"{attack}: too few scored records to calibrate on a pseudo-target (needs at least 2)")
    idx = np.concatenate([rng.choice(members, k, replace=False), rng.choice(others, k, replace=False)])
    m = model.model
    return PseudoTarget(lambda q: np.asarray(m.predict_proba(q)).argmax(axis=1), idx, np.arange(2 * k) < k)


def kept_fraction(
    labels_of: Callable[[np.ndarray], np.ndarray], box: InputBox, queries: np.ndarray, x: np.ndarray, y: np.ndarray
) -> np.ndarray:
    """Per record, the fraction of its queries (``(T, n, dim)`` unit-cube points) labelled ``y``."""
    return np.stack([labels_of(as_query(box.from_unit(q), x)) == y for q in queries]).mean(axis=0)


def tie_broken(kept: np.ndarray, strength: np.ndarray, n_queries: int) -> tuple[np.ndarray, float]:
    """``(scores, threshold)``: the kept fraction plus ``strength`` (in [-1, 1], from the attacker's
    surrogates, no query) times ``1 / (5 n_queries)``, so that records with one kept fraction are
    ranked by it and never cross another fraction; ``score >= threshold`` iff at least half the
    record's queries were kept."""
    width = 1.0 / (5 * n_queries)
    return kept + width * np.clip(strength, -1.0, 1.0), 0.5 - 1.0 / (4 * n_queries)


def choose_radius(
    craft: Callable[[float, np.ndarray, np.ndarray, np.ndarray], np.ndarray], box: InputBox, pseudo: PseudoTarget,
    x_all: np.ndarray, y_all: np.ndarray, radii: tuple[float, ...] = RADII,
) -> tuple[float, dict[str, float]]:
    """The radius of ``radii`` whose decisions (kept fraction >= 1/2) separate the pseudo-target's
    members best; ``craft(radius, positions, x, y)`` returns the queries for the records at
    ``positions`` of ``(x_all, y_all)``. Also the balanced accuracy of every radius tried."""
    if len(radii) == 1:
        return radii[0], {}
    x, y, member = x_all[pseudo.idx], y_all[pseudo.idx], pseudo.is_member
    tried: dict[str, float] = {}
    best = (-1.0, 0.0)
    for r in radii:
        decided = kept_fraction(pseudo.labels_of, box, craft(r, pseudo.idx, x, y), x, y) >= 0.5
        acc = 0.5 * (decided[member].mean() + (~decided[~member]).mean())
        tried[f"{r:g}"] = float(acc)
        if acc > best[0]:
            best = (float(acc), r)
    return best[1], tried
