"""RMIA, offline variant (Zarifzadeh et al., "Low-Cost High-Power Membership Inference Attacks",
ICML 2024).

Threat model: gray box: the full probability vector, the target's architecture and training
recipe, and same-distribution data (the attacker's pool) to train reference models on.

For a record ``x`` with label ``y``, ``Pr(x|theta)`` is the target's ``p_y(x)`` and ``Pr(x)``
is estimated from OUT reference models (the shadow models of :func:`train_shadow_models`) with
the paper's offline linear approximation

    Pr(x) = ((1 + a) * mean_ref p_y(x) + (1 - a)) / 2,

``a`` configurable (default 0.3). With ``a="auto"`` (and at least 4 shadow models) the attacker
picks ``a`` from a grid on a stand-in target: shadow 0, scored on its own pool members and
non-members against the shadows other than its complementary twin (shadow 1), with half of its
non-members as the population. Only the attacker's own models and truth are used, never the
target's. With fewer than 4 shadow models ``auto`` falls back to 0.3. The likelihood ratio is ``ratio(x) = Pr(x|theta) / Pr(x)``.
The population ``z`` is the attacker's pool: its ratios use the target's outputs on ``z``
(queried through :class:`TargetAccess` and counted in ``queries_per_record``) and, for ``Pr(z)``,
only the reference models that did not train on ``z`` (each pool record is OUT for half of the
paired shadow models), with the same approximation. The score is

    score(x) = fraction of z with ratio(x) / ratio(z) >= gamma     (gamma default 1),

computed in O((N + Z) log Z) time and O(N + Z) memory: ratio(x) / ratio(z) >= gamma iff
ratio(z) <= ratio(x) / gamma, so it is a ``searchsorted`` into the sorted population ratios.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from miaudit.attacks.base import ATTACKS, Attack, AttackResult
from miaudit.attacks.knowledge import AttackerKnowledge
from miaudit.attacks.loss import true_class_probability
from miaudit.attacks.shadow_models import (
    GRAY_BOX_SHADOW_TRAINING,
    ShadowModel,
    train_shadow_models,
)
from miaudit.errors import ConfigError, InputError
from miaudit.metrics import auc
from miaudit.targets.access import TargetAccess

DEFAULT_A = 0.3
A_GRID = tuple(i / 10 for i in range(11))
PROB_FLOOR = 1e-30  # a target probability of exactly 0 on every population record would give 0/0


def offline_marginal(mean_ref_p: np.ndarray, a: float) -> np.ndarray:
    """The paper's offline approximation of ``Pr(x)`` from the mean OUT-reference ``p_y``."""
    return ((1.0 + a) * np.asarray(mean_ref_p, dtype=np.float64) + (1.0 - a)) / 2.0


def population_fraction(ratio_x: np.ndarray, ratio_z: np.ndarray, gamma: float = 1.0) -> np.ndarray:
    """Per ``x``, the fraction of ``z`` with ``ratio_x / ratio_z >= gamma`` (ratios positive).

    Uses ``ratio_z <= ratio_x / gamma`` on the sorted ``ratio_z``: O(N + Z) memory.
    """
    ratio_z = np.sort(np.asarray(ratio_z, dtype=np.float64))
    if len(ratio_z) == 0:
        raise InputError("the population is empty; RMIA needs population records")
    counts = np.searchsorted(ratio_z, np.asarray(ratio_x, dtype=np.float64) / gamma, side="right")
    return counts / len(ratio_z)


@ATTACKS.register("rmia")
class RmiaAttack(Attack):
    name = "rmia"
    paper = "Zarifzadeh et al., ICML 2024"
    kind = "reference models"
    requirements = GRAY_BOX_SHADOW_TRAINING

    def __init__(self, *, a: float | str = DEFAULT_A, gamma: float = 1.0) -> None:
        if a != "auto" and not (isinstance(a, (int, float)) and 0.0 <= a <= 1.0):
            raise ConfigError(f"a must lie in [0, 1] or be 'auto', got {a!r}")
        if gamma <= 0:
            raise ConfigError(f"gamma must be positive, got {gamma}")
        self.a_option = a
        self.a = DEFAULT_A if a == "auto" else float(a)
        self.a_source = "default" if a == DEFAULT_A else "auto (fallback: fewer than 4 shadow models)" if a == "auto" else "configured"
        self.gamma = float(gamma)
        self.references: list[Any] | None = None
        self.pop_x: np.ndarray | None = None
        self.pop_y: np.ndarray | None = None
        self.pop_marginal: np.ndarray | None = None

    def fit(self, knowledge: AttackerKnowledge) -> RmiaAttack:
        shadows = train_shadow_models(knowledge, knowledge.n_shadow_models)
        self.references = [s.model for s in shadows]
        pool_x, pool_y = knowledge.pool_x, knowledge.pool_y  # present: train_shadow_models checked
        self.pop_x, self.pop_y = pool_x, np.asarray(pool_y)
        if self.a_option == "auto" and len(shadows) >= 4:
            self.a = self._choose_a(shadows, pool_x, self.pop_y, self.gamma, seed=knowledge.seed)
            self.a_source = "auto (chosen on shadow 0 as a stand-in target)"
        self.pop_marginal = offline_marginal(self._out_mean_on_pool(shadows, pool_x, self.pop_y), self.a)
        return self

    @staticmethod
    def _out_mean_on_pool(shadows: list[ShadowModel], pool_x: np.ndarray, pool_y: np.ndarray) -> np.ndarray:
        """Mean ``p_y`` over the references that did not train on each pool record."""
        total = np.zeros(len(pool_y))
        count = np.zeros(len(pool_y))
        for s in shadows:
            out = s.out_idx
            total[out] += true_class_probability(s.model.predict_proba(pool_x[out]), pool_y[out])
            count[out] += 1
        if (count == 0).any():
            raise ConfigError("some population records are IN for every reference model; use at least 2 shadow models")
        return total / count

    @staticmethod
    def _choose_a(shadows: list[ShadowModel], pool_x: np.ndarray, pool_y: np.ndarray, gamma: float, *, seed: int) -> float:
        """The grid ``a`` with the best AUC of RMIA against shadow 0 (attacker's own truth)."""
        stand_in, refs = shadows[0], shadows[2:]  # shadows[1] trained on shadow 0's non-members
        mean_ref = RmiaAttack._out_mean_on_pool(refs, pool_x, pool_y)
        p_stand_in = true_class_probability(stand_in.model.predict_proba(pool_x), pool_y)
        rng = np.random.default_rng(np.random.SeedSequence([seed, 0xA11A]))
        out = rng.permutation(stand_in.out_idx)
        pop, held_out = out[: len(out) // 2], out[len(out) // 2 :]
        scored = np.concatenate((stand_in.in_idx, held_out))
        is_member = np.arange(len(scored)) < len(stand_in.in_idx)
        best_a, best_auc = DEFAULT_A, -1.0
        for a in A_GRID:
            ratio = np.maximum(p_stand_in, PROB_FLOOR) / offline_marginal(mean_ref, a)
            value = auc(population_fraction(ratio[scored], ratio[pop], gamma), is_member)
            if value > best_auc:
                best_a, best_auc = a, value
        return float(best_a)

    def score(self, access: TargetAccess, x: np.ndarray, y: np.ndarray) -> AttackResult:
        if self.references is None or self.pop_marginal is None:
            raise ConfigError("call fit() before score(): RMIA needs reference models")
        y = np.asarray(y)
        before = access.queries
        p_target_x = true_class_probability(access.predict_proba(x), y)
        p_target_z = true_class_probability(access.predict_proba(self.pop_x), self.pop_y)
        x32 = np.asarray(x, dtype=np.float32)
        mean_ref_x = np.mean([true_class_probability(m.predict_proba(x32), y) for m in self.references], axis=0)
        ratio_x = np.maximum(p_target_x, PROB_FLOOR) / offline_marginal(mean_ref_x, self.a)
        ratio_z = np.maximum(p_target_z, PROB_FLOOR) / self.pop_marginal
        scores = population_fraction(ratio_x, ratio_z, self.gamma)
        return self._result(
            access,
            before,
            len(y),
            scores,
            details={
                "variant": "offline",
                "reference_models": len(self.references),
                "a": self.a,
                "a_source": self.a_source,
                "gamma": self.gamma,
                "population_size": len(self.pop_marginal),
                "population": "attacker's pool (Pr(z) from the references that did not train on z)",
            },
        )
