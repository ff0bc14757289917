"""Shadow models (Shokri et al., "Membership Inference Attacks against Machine Learning Models",
IEEE S&P 2017): models trained like the target on data the attacker holds, so that the attacker
knows their membership truth and can calibrate on it.

Plan: paired complementary halves of the attacker's pool. Shadow 2j trains on a random half,
shadow 2j+1 on the other half, so every pool record is IN for half of the shadows and OUT for
the rest. All shadows share an architecture and train at once in the ModelBank.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from miaudit.attacks.knowledge import AttackerKnowledge
from miaudit.errors import ConfigError
from miaudit.threat import DataKnowledge, OutputAccess, Requirements

GRAY_BOX_SHADOW_TRAINING = Requirements(
    output=OutputAccess.PROBABILITIES,
    architecture=True,
    training_recipe=True,
    data=DataKnowledge.SAME_DISTRIBUTION,
    shadow_models=True,
)
"""Shadow models trained like the target (architecture + recipe) on the attacker's pool, and
the full probability vector: the survey's gray box, shared by the shadow-calibrated attacks."""


@dataclass(frozen=True)
class ShadowModel:
    """A trained shadow model and which pool records it trained on (``in_idx``) or not."""

    model: Any  # a miaudit.models Classifier (predict_proba / predict_logits)
    in_idx: np.ndarray
    out_idx: np.ndarray


def half_splits(n_records: int, n_models: int, *, seed: int) -> list[np.ndarray]:
    """Training subsets: paired complementary random halves of ``range(n_records)``."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x5AD0]))
    subsets: list[np.ndarray] = []
    while len(subsets) < n_models:
        perm = rng.permutation(n_records)
        half = n_records // 2
        subsets.append(np.sort(perm[:half]))
        subsets.append(np.sort(perm[half:]))
    return subsets[:n_models]


def train_many(
    model_name: str,
    x: np.ndarray,
    y: np.ndarray,
    subsets: list[np.ndarray],
    seeds: list[int],
    *,
    num_classes: int,
    recipe: Any,
    options: dict[str, Any] | None = None,
    cache: Any = None,
    data_fingerprint: str | None = None,
    progress: bool = False,
    executor: Any = None,
) -> list[Any]:
    """One model per (subset, seed): torch architectures all at once in the ModelBank,
    scikit-learn estimators one after another (they are cheap). ``executor`` (a
    :class:`miaudit.models.executors.Executor`, default this process) trains the bank's blocks."""
    from miaudit.models import (  # torch: import when needed
        ARCHITECTURES,
        ArchConfig,
        fit_classifier,
        train_bank,
    )

    if model_name in ARCHITECTURES:
        bank = train_bank(
            ArchConfig(model_name, options or {}), recipe, x, y, subsets, seeds,
            num_classes=num_classes, cache=cache, data_fingerprint=data_fingerprint, progress=progress,
            executor=executor,
        )  # fmt: skip
        return list(bank)
    return [
        fit_classifier(
            model_name, x, y, num_classes=num_classes, seed=seed, recipe=recipe, options=options, train_indices=subset
        )  # recipe: estimators use its ``standardize``
        for subset, seed in zip(subsets, seeds)
    ]


def train_shadow_models(knowledge: AttackerKnowledge, n_models: int, *, progress: bool = False) -> list[ShadowModel]:
    """Train ``n_models`` shadow models with the target's recipe on halves of the attacker's pool
    (with the target's defense too, when the attacker knows it: see miaudit.defenses.shadows)."""
    if knowledge.pool_x is None or knowledge.pool_y is None:
        raise ConfigError("shadow models need same-distribution data (the attacker's pool); the threat model gives none")
    if knowledge.model is None or knowledge.model.recipe is None:
        raise ConfigError("shadow models need the target's architecture and training recipe (gray box)")
    n = len(knowledge.pool_y)
    if n < 4:
        raise ConfigError(f"the attacker's pool has {n} records; shadow models need at least 4")
    subsets = half_splits(n, n_models, seed=knowledge.seed)
    seeds = [int(s) for s in np.random.default_rng(np.random.SeedSequence([knowledge.seed, 0x5EED5])).integers(0, 2**31 - 1, n_models)]
    if knowledge.model.defense is not None:
        from miaudit.defenses.shadows import defended_shadow_models

        return defended_shadow_models(knowledge, subsets, seeds, knowledge.model.defense)
    models = train_many(
        knowledge.model.name,
        knowledge.pool_x,
        knowledge.pool_y,
        subsets,
        seeds,
        num_classes=knowledge.num_classes,
        recipe=knowledge.model.recipe,
        options=knowledge.model.options,
        cache=knowledge.cache,
        data_fingerprint=knowledge.pool_fingerprint,
        progress=progress,
        executor=knowledge.executor,
    )
    all_idx = np.arange(n)
    return [ShadowModel(m, s, np.setdiff1d(all_idx, s)) for m, s in zip(models, subsets)]
