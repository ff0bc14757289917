"""RMIA, the relative membership inference attack (Zarifzadeh et al., "Low-Cost High-Power
Membership Inference Attacks", ICML 2024), online (``rmia``) and offline (``rmia-offline``).

Threat model: gray box: the full probability vector, the target's architecture and training
recipe, and same-distribution data (the attacker's pool) to train reference models on and to
serve as the population ``z``. The online variant also trains on the records it scores, never on
their membership.

For a record ``x`` with label ``y``, ``Pr(x|theta)`` is the target's ``p_y(x)`` and ``Pr(x)`` its
average over reference models:

- online: the mean of ``p_y(x)`` over all references (about half of them trained on ``x``);
- offline: OUT references only, corrected by the paper's linear approximation
  ``Pr(x) = ((1 + a) * mean_out p_y(x) + (1 - a)) / 2``; ``a`` is fixed (default 0.3) or, with
  ``a="auto"`` and at least 4 shadow models, tuned against a stand-in target
  (:mod:`miaudit.attacks.tuning`: shadow 0, scored on its own pool members and non-members against
  the shadows other than its complementary twin; Optuna TPE over ``a`` in [0, 1], ``tune_trials``
  trials, objective ``tune_objective``). ``gamma="auto"`` (offline) tunes ``gamma`` in [0.5, 4]
  the same way, jointly with ``a`` when both are "auto". Only the attacker's own models and truth
  are used, never the target's. With a fixed population the score is a nondecreasing step
  function of ``ratio(x)`` for every ``gamma``, so ``gamma`` moves only ties (which records share
  the top fraction): it matters at low FPR, hardly for AUC.

The likelihood ratio is ``ratio(x) = Pr(x|theta) / Pr(x)`` and the score

    score(x) = fraction of population records z with ratio(x) / ratio(z) >= gamma,

computed in O((N + Z) log Z) time and O(N + Z) memory: ``ratio(x) / ratio(z) >= gamma`` iff
``ratio(z) <= ratio(x) / gamma``, a ``searchsorted`` into the sorted population ratios; never an
N x Z matrix. The population is the attacker's pool, queried through :class:`TargetAccess` (its
queries are counted in ``queries_per_record``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from miaudit.attacks.base import ATTACKS, Attack, AttackResult
from miaudit.attacks.knowledge import AttackerKnowledge
from miaudit.attacks.loss import true_class_probability
from miaudit.attacks.reference_models import train_online_references
from miaudit.attacks.reference_stats import masked_mean, require_counts
from miaudit.attacks.shadow_models import (
    GRAY_BOX_SHADOW_TRAINING,
    ShadowModel,
    train_shadow_models,
)
from miaudit.attacks.tuning import (
    DEFAULT_OBJECTIVE,
    DEFAULT_TRIALS,
    MIN_SHADOWS,
    FloatRange,
    StandIn,
    check_tuning_options,
    stand_in_target,
    tune,
)
from miaudit.errors import ConfigError, InputError
from miaudit.targets.access import TargetAccess

DEFAULT_A = 0.3
A_GRID = tuple(i / 10 for i in range(11))  # the many-target protocol's choice of a (experiments/many_targets.py)
A_RANGE = FloatRange(0.0, 1.0)
GAMMA_RANGE = FloatRange(0.5, 4.0, log=True)
PROB_FLOOR = 1e-30  # a target probability of exactly 0 on every population record would give 0/0


def offline_marginal(mean_ref_p: np.ndarray, a: float) -> np.ndarray:
    """The paper's offline approximation of ``Pr(x)`` from the mean OUT-reference ``p_y``."""
    return ((1.0 + a) * np.asarray(mean_ref_p, dtype=np.float64) + (1.0 - a)) / 2.0


def marginal(p_refs: np.ndarray, mask: np.ndarray | None = None, *, a: float | None = None) -> np.ndarray:
    """``Pr(x)`` per record from reference ``p_y`` values shaped (R, N).

    ``a=None``: the online estimate, the mean over the references ``mask`` selects (IN and OUT);
    a number: the offline approximation from the OUT references ``mask`` selects.
    """
    p_refs = np.asarray(p_refs, dtype=np.float64)
    mask = np.ones(p_refs.shape, dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
    require_counts(mask, 1, "RMIA")
    mean = masked_mean(p_refs, mask)
    return mean if a is None else offline_marginal(mean, a)


def likelihood_ratio(p_target: np.ndarray, pr_x: np.ndarray) -> np.ndarray:
    """``Pr(x|theta) / Pr(x)``, a target probability of 0 floored so that ratios stay positive."""
    return np.maximum(np.asarray(p_target, dtype=np.float64), PROB_FLOOR) / np.maximum(pr_x, PROB_FLOOR)


def population_fraction(ratio_x: np.ndarray, ratio_z: np.ndarray, gamma: float = 1.0) -> np.ndarray:
    """Per ``x``, the fraction of ``z`` with ``ratio_x / ratio_z >= gamma`` (ratios positive).

    Uses ``ratio_z <= ratio_x / gamma`` on the sorted ``ratio_z``: O(N + Z) memory.
    """
    ratio_z = np.sort(np.asarray(ratio_z, dtype=np.float64))
    if len(ratio_z) == 0:
        raise InputError("the population is empty; RMIA needs population records")
    counts = np.searchsorted(ratio_z, np.asarray(ratio_x, dtype=np.float64) / gamma, side="right")
    return counts / len(ratio_z)


def _check_options(a: float | str, gamma: float | str, *, gamma_auto: bool = False) -> None:
    if a != "auto" and (isinstance(a, bool) or not (isinstance(a, (int, float)) and 0.0 <= a <= 1.0)):
        raise ConfigError(f"a must lie in [0, 1] or be 'auto', got {a!r}")
    if gamma == "auto" and gamma_auto:
        return
    if isinstance(gamma, bool) or not isinstance(gamma, (int, float)) or not gamma > 0:
        raise ConfigError(f"gamma must be a positive number{' or auto' if gamma_auto else ''}, got {gamma!r}")


def _p_y(models: list[Any], x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``p_y`` of each of the attacker's own models on ``(x, y)``, shaped (R, N)."""
    x32 = np.asarray(x, dtype=np.float32)
    return np.stack([true_class_probability(m.predict_proba(x32), y) for m in models])


@ATTACKS.register("rmia")
class RmiaAttack(Attack):
    """Online RMIA: references trained on random halves of the attacker's pool plus the scored records."""

    name = "rmia"
    paper = "Zarifzadeh et al., ICML 2024"
    kind = "reference models"
    requirements = GRAY_BOX_SHADOW_TRAINING

    def __init__(self, *, gamma: float = 1.0) -> None:
        _check_options(DEFAULT_A, gamma)
        self.gamma = float(gamma)
        self.knowledge: AttackerKnowledge | None = None

    def fit(self, knowledge: AttackerKnowledge) -> RmiaAttack:
        if knowledge.n_shadow_models < 2:
            raise ConfigError("online RMIA needs at least 2 reference models; raise --reference-models")
        self.knowledge = knowledge
        return self

    def score(self, access: TargetAccess, x: np.ndarray, y: np.ndarray) -> AttackResult:
        k = self.knowledge
        if k is None or k.pool_x is None or k.pool_y is None:
            raise ConfigError("call fit() before score(): RMIA needs the attacker's knowledge and pool")
        y = np.asarray(y)
        before = access.queries
        p_target_x = true_class_probability(access.predict_proba(x), y)
        p_target_z = true_class_probability(access.predict_proba(k.pool_x), k.pool_y)
        refs = train_online_references(k, x, y, k.n_shadow_models)
        ratio_x = likelihood_ratio(p_target_x, marginal(_p_y(refs.models, x, y)))
        ratio_z = likelihood_ratio(p_target_z, marginal(_p_y(refs.models, k.pool_x, k.pool_y)))
        scores = population_fraction(ratio_x, ratio_z, self.gamma)
        details = {
            "variant": "online",
            "reference_models": len(refs.models),
            "gamma": self.gamma,
            "population_size": len(k.pool_y),
            "population": "attacker's pool",
        }
        return self._result(access, before, len(y), scores, details=details)


@ATTACKS.register("rmia-offline")
class RmiaOfflineAttack(Attack):
    """Offline RMIA: OUT references only (the shadow models), with the linear approximation ``a``."""

    name = "rmia-offline"
    paper = "Zarifzadeh et al., ICML 2024"
    kind = "reference models"
    requirements = GRAY_BOX_SHADOW_TRAINING

    def __init__(self, *, a: float | str = DEFAULT_A, gamma: float | str = 1.0, tune_trials: int = DEFAULT_TRIALS,
                 tune_objective: str = DEFAULT_OBJECTIVE) -> None:  # fmt: skip
        _check_options(a, gamma, gamma_auto=True)
        self.tune_trials, self.tune_objective = check_tuning_options(self.name, tune_trials, tune_objective)
        self.a_option, self.gamma_option = a, gamma
        self.a = DEFAULT_A if a == "auto" else float(a)
        self.a_source = "default" if a == DEFAULT_A else "auto (fallback: fewer than 4 shadow models)" if a == "auto" else "configured"
        self.gamma = 1.0 if gamma == "auto" else float(gamma)
        self.tuning: dict[str, object] = {}
        self.references: list[Any] | None = None
        self.pop_x: np.ndarray | None = None
        self.pop_y: np.ndarray | None = None
        self.pop_marginal: np.ndarray | None = None

    def fit(self, knowledge: AttackerKnowledge) -> RmiaOfflineAttack:
        shadows = train_shadow_models(knowledge, knowledge.n_shadow_models)
        self.references = [s.model for s in shadows]
        pool_x, pool_y = knowledge.pool_x, knowledge.pool_y  # present: train_shadow_models checked
        self.pop_x, self.pop_y = pool_x, np.asarray(pool_y)
        if self.gamma_option == "auto" and len(shadows) < MIN_SHADOWS:
            raise ConfigError(f"rmia-offline: gamma='auto' needs at least {MIN_SHADOWS} shadow models; raise --shadow-models")
        if (self.a_option == "auto" or self.gamma_option == "auto") and len(shadows) >= MIN_SHADOWS:
            self._tune(stand_in_target(shadows, seed=knowledge.seed, attack=self.name), pool_x, self.pop_y, knowledge.seed)
        p_pool, out_mask = self._pool_p_and_out_mask(shadows, pool_x, self.pop_y)
        if not out_mask.any(axis=0).all():
            raise ConfigError("some population records are IN for every reference model; use at least 2 shadow models")
        self.pop_marginal = marginal(p_pool, out_mask, a=self.a)
        return self

    @staticmethod
    def _pool_p_and_out_mask(shadows: list[ShadowModel], pool_x: np.ndarray, pool_y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Every shadow's ``p_y`` on the pool and which pool records each did not train on."""
        p = _p_y([s.model for s in shadows], pool_x, pool_y)
        out = np.zeros(p.shape, dtype=bool)
        for row, s in enumerate(shadows):
            out[row, s.out_idx] = True
        return p, out

    def _tune(self, stand_in: StandIn, pool_x: np.ndarray, pool_y: np.ndarray, seed: int) -> None:
        """Choose the "auto" ``a`` / ``gamma`` against shadow 0 as stand-in target (attacker's own truth)."""
        p_refs, out_mask = RmiaOfflineAttack._pool_p_and_out_mask(stand_in.references, pool_x, pool_y)
        p_stand_in = true_class_probability(stand_in.model.predict_proba(np.asarray(pool_x, dtype=np.float32)), pool_y)
        scored, pop = stand_in.scored, stand_in.population
        space = {k: r for k, r, auto in (("a", A_RANGE, self.a_option), ("gamma", GAMMA_RANGE, self.gamma_option)) if auto == "auto"}

        def evaluate(params: dict[str, float]) -> np.ndarray:
            ratio = likelihood_ratio(p_stand_in, marginal(p_refs, out_mask, a=params.get("a", self.a)))
            return population_fraction(ratio[scored], ratio[pop], params.get("gamma", self.gamma))

        tuned = tune(self.name, space, {"a": self.a, "gamma": self.gamma}, evaluate, stand_in, seed=seed,
                     n_trials=self.tune_trials, objective=self.tune_objective)  # fmt: skip
        self.a, self.gamma = tuned.params.get("a", self.a), tuned.params.get("gamma", self.gamma)
        if self.a_option == "auto":
            self.a_source = "auto (tuned on shadow 0 as a stand-in target)"
        self.tuning = tuned.details()

    def score(self, access: TargetAccess, x: np.ndarray, y: np.ndarray) -> AttackResult:
        if self.references is None or self.pop_marginal is None:
            raise ConfigError("call fit() before score(): RMIA needs reference models")
        y = np.asarray(y)
        before = access.queries
        p_target_x = true_class_probability(access.predict_proba(x), y)
        p_target_z = true_class_probability(access.predict_proba(self.pop_x), self.pop_y)
        ratio_x = likelihood_ratio(p_target_x, marginal(_p_y(self.references, x, y), a=self.a))
        ratio_z = likelihood_ratio(p_target_z, self.pop_marginal)
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
                **self.tuning,
            },
        )
