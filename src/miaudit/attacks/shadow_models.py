"""Shadow models (Shokri et al., "Membership Inference Attacks against Machine Learning Models",
IEEE S&P 2017): models trained like the target on data the attacker holds, so that the attacker
knows their membership truth and can calibrate on it.

Plan: paired complementary halves of the attacker's pool. Shadow 2j trains on a random half,
shadow 2j+1 on the other half, so every pool record is IN for half of the shadows and OUT for
the rest. All shadows share an architecture and train at once in the ModelBank, or are built by
the target's defense for an adaptive attacker (both through :func:`train_models`).
"""

from __future__ import annotations

import numpy as np

from miaudit.attacks.knowledge import AttackerKnowledge
from miaudit.attacks.train_models import ShadowModel, train_models
from miaudit.errors import ConfigError
from miaudit.threat import DataKnowledge, OutputAccess, Requirements
from miaudit.seeds import stream_rng

__all__ = ["GRAY_BOX_SHADOW_TRAINING", "ShadowModel", "half_splits", "train_shadow_models"]

GRAY_BOX_SHADOW_TRAINING = Requirements(
    output=OutputAccess.PROBABILITIES,
    architecture=True,
    training_recipe=True,
    data=DataKnowledge.SAME_DISTRIBUTION,
    shadow_models=True,
)
"""Shadow models trained like the target (architecture + recipe) on the attacker's pool, and
the full probability vector: the survey's gray box, shared by the shadow-calibrated attacks."""


def half_splits(n_records: int, n_models: int, *, seed: int) -> list[np.ndarray]:
    """Training subsets: paired complementary random halves of ``range(n_records)``."""
    rng = stream_rng(seed, "shadow/halves")
    subsets: list[np.ndarray] = []
    while len(subsets) < n_models:
        perm = rng.permutation(n_records)
        half = n_records // 2
        subsets.append(np.sort(perm[:half]))
        subsets.append(np.sort(perm[half:]))
    return subsets[:n_models]


def train_shadow_models(knowledge: AttackerKnowledge, n_models: int, *, progress: bool = False) -> list[ShadowModel]:
    """Train ``n_models`` shadow models with the target's recipe on halves of the attacker's pool
    (with the target's defense too, when the attacker knows it: see miaudit.attacks.train_models)."""
    if knowledge.pool_x is None or knowledge.pool_y is None:
        raise ConfigError("shadow models need same-distribution data (the attacker's pool); the threat model gives none")
    if knowledge.model is None or knowledge.model.recipe is None:
        raise ConfigError("shadow models need the target's architecture and training recipe (gray box)")
    n = len(knowledge.pool_y)
    if n < 4:
        raise ConfigError(f"the attacker's pool has {n} records; shadow models need at least 4")
    subsets = half_splits(n, n_models, seed=knowledge.seed)
    seeds = [int(s) for s in stream_rng(knowledge.seed, "shadow/seeds").integers(0, 2**31 - 1, n_models)]
    return train_models(
        knowledge.model, knowledge.pool_x, knowledge.pool_y, subsets, seeds, num_classes=knowledge.num_classes,
        cache=knowledge.cache, data_fingerprint=knowledge.pool_fingerprint, executor=knowledge.executor, progress=progress,
    )  # fmt: skip
