"""Adaptive shadow models: the attacker trains its shadows with the target's defense.

Song and Mittal (USENIX Security 2021) insist that a defense be evaluated against an attacker
who knows it: the shadow models that calibrate the attacks are defended like the target. A
defense that needs reference data (adversarial regularization, MemGuard, DMP) gets it from the
attacker's own records: each shadow's training half of the pool is split again, one half its
private set (its members for the attack) and the other its reference set (neither member nor
non-member for the attack), just as the defender's reference set is disjoint from every
evaluated record. Defended shadows are memoised per (subset, seed), so the attacks of one audit
share them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from miaudit.defenses.base import Defense, TrainingTask


def defended_shadow_models(knowledge: Any, subsets: list[np.ndarray], seeds: list[int], defense: Defense) -> list[Any]:
    """One ShadowModel per (subset, seed), built by ``defense`` from the attacker's pool."""
    from miaudit.attacks.shadow_models import ShadowModel
    from miaudit.io_utils import stable_hash
    from miaudit.models.seeding import derive_seed

    memo: dict[str, Any] = defense.__dict__.setdefault("_shadow_memo", {})
    n = len(knowledge.pool_y)
    all_idx = np.arange(n)
    shadows = []
    for subset, seed in zip(subsets, seeds):
        key = stable_hash({"pool": knowledge.pool_fingerprint, "subset": np.asarray(subset), "seed": int(seed)})
        if key not in memo:
            private, reference = np.asarray(subset), None
            if defense.needs_reference:
                rng = np.random.default_rng(derive_seed(int(seed), "adaptive-shadow/reference"))
                perm = rng.permutation(subset)
                half = len(perm) // 2
                private, reference = np.sort(perm[:half]), np.sort(perm[half:])
            task = TrainingTask(
                x=knowledge.pool_x, y=knowledge.pool_y, private_idx=private, reference_idx=reference,
                num_classes=knowledge.num_classes, seed=int(seed), model=knowledge.model.name,
                options=dict(knowledge.model.options), recipe=knowledge.model.recipe, cache=knowledge.cache,
                data_fingerprint=knowledge.pool_fingerprint,
            )  # fmt: skip
            memo[key] = ShadowModel(defense.build(task).model, private, np.setdiff1d(all_idx, subset))
        shadows.append(memo[key])
    return shadows
