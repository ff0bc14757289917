"""ML-Leaks, Adversary II: data transferring (Salem et al., NDSS 2019).

Threat model: the top-3 probabilities only: neither the target's architecture nor its training
recipe, and no data from the target's distribution.

The attacker trains its shadow model on a DIFFERENT data set (``shadow_dataset``, default the
embedded ``"digits"``) with a model of its own choice (``shadow_model``, default an MLP with the
attacker's own recipe, :data:`ATTACKER_RECIPE`): half of that data set trains the shadow, the
other half are its non-members. As in Adversary I, an attack model (default an MLP with 64 hidden
units) learns membership from the shadow's sorted top-3 probabilities. Sorted top-3 vectors do
not depend on the number of features or the meaning of classes, which is what lets the attack
transfer: the shadow never sees target data, and its feature count may differ from the target's.

If the shadow data set holds records the attack is asked to score, it is (part of) the target's
own data set and the run is not a transfer; ``details`` then say so (``transfer: False``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from miaudit.attacks.base import ATTACKS
from miaudit.attacks.knowledge import AttackerKnowledge, ModelSpec
from miaudit.attacks.ml_leaks_1 import TOP_K, MLLeaks1Attack
from miaudit.attacks.shadow_models import half_splits
from miaudit.attacks.train_models import train_models
from miaudit.threat import DataKnowledge, OutputAccess, Requirements

ATTACKER_RECIPE: dict[str, Any] = {"epochs": 30}
"""The attacker's own training recipe for a torch shadow model (it does not know the target's)."""

_CHUNK = 4096


def row_fingerprints(x: np.ndarray) -> np.ndarray:
    """An exact 64-bit hash per record (a random integer combination of its float32 bit patterns).

    Integer arithmetic wraps modulo 2**64 and is order-independent, so equal records always get
    equal hashes; distinct records collide with probability about 2**-64.
    """
    flat = np.ascontiguousarray(np.asarray(x, dtype=np.float32).reshape(len(x), -1)).view(np.uint32)
    weights = np.random.default_rng(0x4D4C4C32).integers(1, 2**63, flat.shape[1], dtype=np.uint64) | np.uint64(1)
    out = np.empty(len(flat), dtype=np.uint64)
    for start in range(0, len(flat), _CHUNK):
        out[start : start + _CHUNK] = (flat[start : start + _CHUNK].astype(np.uint64) * weights).sum(axis=1, dtype=np.uint64)
    return out


@ATTACKS.register("ml-leaks-2")
class MLLeaks2Attack(MLLeaks1Attack):
    name = "ml-leaks-2"
    paper = "Salem et al., NDSS 2019 (Adversary II, data transferring)"
    requirements = Requirements(output=OutputAccess.TOP_K, min_top_k=TOP_K, data=DataKnowledge.NONE, shadow_models=True)

    def __init__(
        self,
        shadow_dataset: str = "digits",
        shadow_model: str = "mlp",
        shadow_options: dict[str, Any] | None = None,
        attack_model: str = "mlp",
        data_dir: str | None = None,
    ) -> None:
        super().__init__(attack_model)
        self.shadow_dataset = shadow_dataset
        self.shadow_model = shadow_model
        self.shadow_options = dict(shadow_options or {})
        self.data_dir = data_dir
        self._shadow_rows: np.ndarray | None = None
        self._shadow_shape: tuple[int, ...] = ()

    def fit(self, knowledge: AttackerKnowledge) -> "MLLeaks2Attack":
        from miaudit.data import load_dataset
        from miaudit.models import TrainingRecipe
        from miaudit.models.seeding import derive_seed

        data = load_dataset(self.shadow_dataset, self.data_dir)
        (subset,) = half_splits(len(data), 1, seed=knowledge.seed)
        (shadow,) = train_models(
            ModelSpec(self.shadow_model, self.shadow_options, TrainingRecipe(**ATTACKER_RECIPE)),
            data.x,
            data.y,
            [subset],
            [derive_seed(knowledge.seed, "ml-leaks-2/shadow") % 2**31],
            num_classes=data.num_classes,
            cache=knowledge.cache,
            data_fingerprint=data.fingerprint,
            executor=knowledge.executor,
        )
        self._shadow_shape = tuple(data.x.shape[1:])
        self._shadow_rows = np.sort(row_fingerprints(data.x))
        return self._fit_on_shadows([shadow], data.x, data.y, seed=knowledge.seed)

    def _details(self, x: np.ndarray) -> dict[str, Any]:
        overlap = 0.0
        if self._shadow_rows is not None and tuple(x.shape[1:]) == self._shadow_shape and len(x):
            overlap = float(np.isin(row_fingerprints(x), self._shadow_rows, assume_unique=False).mean())
        details: dict[str, Any] = {
            "shadow_dataset": self.shadow_dataset,
            "shadow_model": self.shadow_model,
            "shadow_models": 1,
            "scored_records_in_shadow_data": overlap,
            "transfer": overlap == 0.0,
        }
        if overlap > 0:
            details["note"] = (
                f"{overlap:.0%} of the scored records are in the shadow data set {self.shadow_dataset!r}: "
                "it is the target's own data set, so this is not a data-transfer attack"
            )
        return details
