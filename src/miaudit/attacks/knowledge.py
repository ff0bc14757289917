"""AttackerKnowledge: what the attacker holds, built from a threat model and nothing more."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from miaudit.threat import DataKnowledge, ThreatModel


@dataclass(frozen=True)
class ModelSpec:
    """The target's model and training recipe, as far as the attacker knows them."""

    name: str
    options: dict[str, Any] = field(default_factory=dict)
    recipe: Any = None  # a miaudit.models.TrainingRecipe, or None when unknown
    # The target's defense (a miaudit.defenses.Defense) when the attacker knows it and adapts:
    # shadow models are then built with it (Song & Mittal's adaptive attacker). None: undefended
    # shadows (the target is undefended, or the attacker ignores its defense).
    defense: Any = None
    # The target's training-set size and the defender's reference-set size, as the gray-box
    # attacker knows them (part of the training recipe): its defended shadow and reference models
    # are built at these sizes (miaudit.attacks.defended_plan). None: unknown (paired halves).
    train_size: int | None = None
    reference_size: int | None = None


@dataclass(frozen=True)
class AttackerKnowledge:
    """Everything an attack may use in ``fit``; fields the threat model withholds are None."""

    threat: ThreatModel
    num_classes: int
    input_shape: tuple[int, ...]
    seed: int
    pool_x: np.ndarray | None = None
    pool_y: np.ndarray | None = None
    pool_fingerprint: str | None = None
    model: ModelSpec | None = None
    n_shadow_models: int = 4  # how many models the attacker can afford to train
    cache: Any = None  # a miaudit.models.ModelCache shared by shadow models, or None
    # Part of the target's training set (Nasr et al.'s supervised setting): records the attacker
    # knows to be members. Only under partial-training-set data knowledge; the audit then leaves
    # them out of the evaluated records.
    known_members_x: np.ndarray | None = None
    known_members_y: np.ndarray | None = None
    executor: Any = None  # where shadow models train (miaudit.models.executors), None: this process
    # The shadow models' training records (positions in the pool), where the protocol fixes them
    # (a paper's own split: miaudit.data.split.FixedSplit); empty: seeded paired halves.
    shadow_subsets: tuple[np.ndarray, ...] = ()

    @classmethod
    def under(
        cls,
        threat: ThreatModel,
        *,
        num_classes: int,
        input_shape: tuple[int, ...],
        seed: int,
        pool_x: np.ndarray | None,
        pool_y: np.ndarray | None,
        pool_fingerprint: str | None,
        target_model: ModelSpec,
        n_shadow_models: int = 4,
        cache: Any = None,
        known_members_x: np.ndarray | None = None,
        known_members_y: np.ndarray | None = None,
        executor: Any = None,
        shadow_subsets: tuple[np.ndarray, ...] = (),
    ) -> "AttackerKnowledge":
        """Knowledge restricted to what ``threat`` grants: data, architecture, recipe, known members."""
        has_data = threat.data >= DataKnowledge.SAME_DISTRIBUTION and pool_x is not None
        knows_members = threat.data >= DataKnowledge.PARTIAL_TRAINING_SET and known_members_x is not None
        model = None
        if threat.knows_architecture:
            model = ModelSpec(
                target_model.name,
                dict(target_model.options),
                target_model.recipe if threat.knows_training_recipe else None,
                target_model.defense if threat.knows_training_recipe else None,
                target_model.train_size if threat.knows_training_recipe else None,
                target_model.reference_size if threat.knows_training_recipe else None,
            )
        return cls(
            threat=threat,
            num_classes=num_classes,
            input_shape=tuple(input_shape),
            seed=seed,
            pool_x=pool_x if has_data else None,
            pool_y=pool_y if has_data else None,
            pool_fingerprint=pool_fingerprint if has_data else None,
            model=model,
            n_shadow_models=n_shadow_models,
            cache=cache,
            known_members_x=known_members_x if knows_members else None,
            known_members_y=known_members_y if knows_members else None,
            executor=executor,
            shadow_subsets=tuple(shadow_subsets) if has_data else (),
        )
