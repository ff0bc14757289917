"""Shadow models (Shokri et al., "Membership Inference Attacks against Machine Learning Models",
IEEE S&P 2017): models trained like the target on data the attacker holds, so that the attacker
knows their membership truth and can calibrate on it.

Plan: paired complementary halves of the attacker's pool. Shadow 2j trains on a random half,
shadow 2j+1 on the other half, so every pool record is IN for half of the shadows and OUT for
the rest. All shadows share an architecture and train at once in the ModelBank, or are built by
the target's defense for an adaptive attacker (both through :func:`train_models`). An adaptive
attacker that knows the target's sizes (``ModelSpec.train_size``) trains its defended shadows
at the target's training-set size, with reference data of the defender's size drawn from the
pool outside each shadow's subset (:func:`miaudit.attacks.defended_plan.defended_plan`). Where
the protocol fixes the shadows' records (a paper's own split, ``AttackerKnowledge.shadow_subsets``),
those are used instead of the halves.
"""

from __future__ import annotations

import numpy as np

from miaudit.attacks.defended_plan import DefendedPlan, defended_plan
from miaudit.attacks.knowledge import AttackerKnowledge, ModelSpec
from miaudit.attacks.train_models import ShadowModel, train_models
from miaudit.errors import ConfigError
from miaudit.threat import DataKnowledge, OutputAccess, Requirements
from miaudit.seeds import stream_rng

__all__ = ["GRAY_BOX_SHADOW_TRAINING", "ShadowModel", "adaptive_plan", "half_splits", "train_shadow_models"]

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


def adaptive_plan(
    spec: ModelSpec, n_records: int, n_models: int, *, seed: int, reference_from: np.ndarray | None = None,
    priority: np.ndarray | None = None,
) -> DefendedPlan | None:
    """The target-size plan for ``spec``'s defended models, or None (undefended, or the target's
    size unknown: paired halves). Reference sets only for a defense that needs reference data."""
    if spec.defense is None or spec.train_size is None:
        return None
    ref = int(spec.reference_size or 0) if spec.defense.needs_reference else 0
    return defended_plan(n_records, n_models, train_size=int(spec.train_size), reference_size=ref, seed=seed,
                         reference_from=reference_from, priority=priority)  # fmt: skip


def _fixed_subsets(subsets: tuple[np.ndarray, ...], n_records: int, n_models: int, *, adaptive: bool) -> list[np.ndarray]:
    """The protocol's fixed shadow training sets (a paper's own split), checked against the audit."""
    if adaptive:
        raise ConfigError("the split fixes the shadow models' records; an adaptive attacker's defended shadows choose their own")
    if len(subsets) != n_models:
        raise ConfigError(f"the split fixes {len(subsets)} shadow training set(s) but the audit asks for {n_models} shadow model(s)")
    for s in subsets:
        if len(s) == 0 or s.min() < 0 or s.max() >= n_records:
            raise ConfigError(f"a fixed shadow training set does not index the attacker's pool of {n_records} records")
    return [np.asarray(s) for s in subsets]


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
    plan = adaptive_plan(knowledge.model, n, n_models, seed=knowledge.seed)
    if knowledge.shadow_subsets:
        subsets = _fixed_subsets(knowledge.shadow_subsets, n, n_models, adaptive=plan is not None)
    else:
        subsets = half_splits(n, n_models, seed=knowledge.seed) if plan is None else plan.subsets
    seeds = [int(s) for s in stream_rng(knowledge.seed, "shadow/seeds").integers(0, 2**31 - 1, n_models)]
    return train_models(
        knowledge.model, knowledge.pool_x, knowledge.pool_y, subsets, seeds, num_classes=knowledge.num_classes,
        cache=knowledge.cache, data_fingerprint=knowledge.pool_fingerprint, executor=knowledge.executor, progress=progress,
        references=None if plan is None else plan.references,
    )  # fmt: skip
