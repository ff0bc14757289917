"""BASE, the Bayes-optimal approximation of membership inference (Lassila, Östman and Ngo,
"Practical Bayes-Optimal Membership Inference Attacks", arXiv:2505.24089, 2025), online (``base``)
and offline (``base-offline``), as LeakPro implements it (``leakpro/attacks/mia_attacks/base.py``).

Threat model: gray box (:data:`GRAY_BOX_SHADOW_TRAINING`, as RMIA's): the full probability
vector, the target's architecture and training recipe, and same-distribution data (the
attacker's pool) to train reference models on. The online variant also trains on the records it
scores (it knows them: it queries them), never on their membership.

Units: every signal is a natural-log probability at temperature ``T``,
``s(x) = log softmax(z(x) / T)_y`` for a model's logits ``z``. Per record, against ``K`` reference
models (their signals ``s_k``):

- online: ``threshold = logsumexp_k s_k - log K`` over all ``K`` references (about half of them
  trained on the record), i.e. the log of the references' mean tempered probability; the score
  is ``s_target - threshold`` (nats);
- offline: only the ``n_out`` references that did not train on the record,
  ``threshold = logsumexp_out s_k - log n_out``, and the score is ``s_target - c * threshold`` with
  ``c`` = ``offline_scale_factor`` (default 0.33), which shrinks the threshold to make up for the
  missing IN references.

This is not offline RMIA with ``a = 1``: RMIA ranks the ratio against a population ``z``; BASE has
no population, and its threshold is a log-mean of tempered probabilities.

Temperature without logits: miaudit's models give probabilities (``predict_proba``). For
``log p = z - logsumexp(z)`` (one constant per record), ``log p / T = z / T - c(x)``, and
``log softmax`` is invariant to adding a constant to every class of a record, so
``log softmax(log p / T) = log softmax(z / T)`` exactly. Probabilities are floored at 1e-30
before the log (a class whose probability underflowed to 0 would otherwise be ``-inf``); that
changes nothing but classes below 1e-30, whose tempered weight is at most ``1e-30 ** (1 / T)``.

Options: ``temperature`` (``T > 0``, default 2.0) and, offline, ``offline_scale_factor``
(``c >= 0``); either may be ``"auto"``: tuned on shadow 0 as a stand-in target
(:mod:`miaudit.attacks.tuning`, ``tune_trials`` trials, objective ``tune_objective``), never on
the target's truth; the online attack then trains shadow models for the stand-in too.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np
from scipy.special import log_softmax, logsumexp

from miaudit.attacks.base import ATTACKS, Attack, AttackResult
from miaudit.attacks.knowledge import AttackerKnowledge
from miaudit.attacks.reference_models import train_online_references
from miaudit.attacks.reference_stats import require_counts
from miaudit.attacks.shadow_models import GRAY_BOX_SHADOW_TRAINING, ShadowModel, train_shadow_models
from miaudit.attacks.tuning import (
    DEFAULT_OBJECTIVE,
    DEFAULT_TRIALS,
    FloatRange,
    check_tuning_options,
    stand_in_target,
    tune,
)
from miaudit.errors import ConfigError, InputError
from miaudit.targets.access import TargetAccess

DEFAULT_TEMPERATURE = 2.0
DEFAULT_SCALE = 0.33
PROB_FLOOR = 1e-30
TEMPERATURE_RANGE = FloatRange(0.25, 8.0, log=True)
SCALE_RANGE = FloatRange(0.0, 1.0)


def tempered_log_confidence(proba: np.ndarray, y: np.ndarray, temperature: float) -> np.ndarray:
    """``log softmax(log p / T)_y`` per record: ``log softmax(z / T)_y`` without the logits ``z``."""
    p = np.asarray(proba, dtype=np.float64)
    y = np.asarray(y)
    if p.ndim != 2 or y.shape != (len(p),):
        raise InputError(f"need probabilities shaped (n, C) and one label per row, got {p.shape} and {y.shape}")
    return log_softmax(np.log(np.maximum(p, PROB_FLOOR)) / temperature, axis=1)[np.arange(len(y)), y]


def log_mean_threshold(s_refs: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Per record, ``logsumexp`` of the references' signals that ``mask`` selects minus ``log`` their count."""
    s_refs = np.asarray(s_refs, dtype=np.float64)
    mask = np.asarray(mask, dtype=bool)
    require_counts(mask, 1, "BASE")
    return logsumexp(np.where(mask, s_refs, -np.inf), axis=0) - np.log(mask.sum(axis=0))


def base_online_scores(s_target: np.ndarray, s_refs: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Online BASE: ``s_target - (logsumexp_k s_k - log K)`` over the references ``mask`` selects (all by default)."""
    s_refs = np.asarray(s_refs, dtype=np.float64)
    mask = np.ones(s_refs.shape, dtype=bool) if mask is None else mask
    return np.asarray(s_target, dtype=np.float64) - log_mean_threshold(s_refs, mask)


def base_offline_scores(s_target: np.ndarray, s_refs: np.ndarray, out_mask: np.ndarray, scale: float) -> np.ndarray:
    """Offline BASE: ``s_target - c * (logsumexp_out s_k - log n_out)``, OUT references only."""
    return np.asarray(s_target, dtype=np.float64) - scale * log_mean_threshold(s_refs, out_mask)


def _signals(models: list[Any], x: np.ndarray, y: np.ndarray, temperature: float) -> np.ndarray:
    x32 = np.asarray(x, dtype=np.float32)
    return np.stack([tempered_log_confidence(m.predict_proba(x32), y, temperature) for m in models])


def _positive_or_auto(attack: str, name: str, value: object, *, allow_zero: bool = False) -> float | str:
    if value == "auto":
        return "auto"
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and np.isfinite(float(value))
    if not ok or float(value) < 0 or (float(value) == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ConfigError(f"{attack} option {name} must be a number {bound} or 'auto', got {value!r}")
    return float(value)


class _BaseAttack(Attack):
    """Shared options and tuning of the two variants."""

    paper = "Lassila, Östman & Ngo, arXiv:2505.24089 (2025)"
    kind = "reference models"
    requirements = GRAY_BOX_SHADOW_TRAINING
    online: bool

    def _init_options(self, temperature: float | str, scale: float | str, tune_trials: int, tune_objective: str) -> None:
        self.temperature_option = _positive_or_auto(self.name, "temperature", temperature)
        self.scale_option = _positive_or_auto(self.name, "offline_scale_factor", scale, allow_zero=True)
        self.tune_trials, self.tune_objective = check_tuning_options(self.name, tune_trials, tune_objective)
        self.temperature = DEFAULT_TEMPERATURE if temperature == "auto" else float(temperature)
        self.scale = DEFAULT_SCALE if scale == "auto" else float(scale)
        self.tuning: dict[str, Any] = {}

    def _space(self) -> dict[str, FloatRange]:
        space = {"temperature": TEMPERATURE_RANGE} if self.temperature_option == "auto" else {}
        if not self.online and self.scale_option == "auto":
            space["offline_scale_factor"] = SCALE_RANGE
        return space

    def _tune(self, shadows: list[ShadowModel], knowledge: AttackerKnowledge) -> None:
        """Choose the ``"auto"`` options on shadow 0 as stand-in target (the attacker's own truth)."""
        space = self._space()
        if not space:
            return
        stand_in = stand_in_target(shadows, seed=knowledge.seed, attack=self.name)
        pool_x, pool_y = knowledge.pool_x, np.asarray(knowledge.pool_y)
        scored = stand_in.scored
        x, y = pool_x[scored], pool_y[scored]
        target_proba = stand_in.model.predict_proba(np.asarray(x, dtype=np.float32))
        ref_proba = [s.model.predict_proba(np.asarray(x, dtype=np.float32)) for s in stand_in.references]
        mask = stand_in.out_mask(scored) if not self.online else stand_in.out_mask(scored) | stand_in.in_mask(scored)

        def evaluate(params: dict[str, float]) -> np.ndarray:
            t = params.get("temperature", self.temperature)
            s_t = tempered_log_confidence(target_proba, y, t)
            s_r = np.stack([tempered_log_confidence(p, y, t) for p in ref_proba])
            if self.online:
                return base_online_scores(s_t, s_r, mask)
            return base_offline_scores(s_t, s_r, mask, params.get("offline_scale_factor", self.scale))

        defaults = {"temperature": self.temperature, "offline_scale_factor": self.scale}
        tuned = tune(self.name, space, defaults, evaluate, stand_in, seed=knowledge.seed,
                     n_trials=self.tune_trials, objective=self.tune_objective)  # fmt: skip
        self.temperature = tuned.params.get("temperature", self.temperature)
        self.scale = tuned.params.get("offline_scale_factor", self.scale)
        self.tuning = tuned.details()

    def _details(self, n_refs: int) -> dict[str, Any]:
        details: dict[str, Any] = {
            "variant": "online" if self.online else "offline",
            "reference_models": n_refs,
            "temperature": self.temperature,
            "units": "nats: tempered log p_y of the target minus the references' log-mean",
        }
        if not self.online:
            details["offline_scale_factor"] = self.scale
        return {**details, **self.tuning}


@ATTACKS.register("base")
class BaseOnlineAttack(_BaseAttack):
    """Online BASE: references trained on random halves of the attacker's pool plus the scored records."""

    name = "base"
    online = True

    def __init__(self, *, temperature: float | str = DEFAULT_TEMPERATURE, tune_trials: int = DEFAULT_TRIALS,
                 tune_objective: str = DEFAULT_OBJECTIVE) -> None:  # fmt: skip
        self._init_options(temperature, DEFAULT_SCALE, tune_trials, tune_objective)
        self.knowledge: AttackerKnowledge | None = None

    def fit(self, knowledge: AttackerKnowledge) -> BaseOnlineAttack:
        if knowledge.n_shadow_models < 2:
            raise ConfigError("online BASE needs at least 2 reference models; raise --reference-models")
        if self._space():
            self._tune(train_shadow_models(knowledge, knowledge.n_shadow_models), knowledge)
        self.knowledge = knowledge
        return self

    def score(self, access: TargetAccess, x: np.ndarray, y: np.ndarray) -> AttackResult:
        k = self.knowledge
        if k is None:
            raise ConfigError("call fit() before score(): BASE needs the attacker's knowledge and pool")
        y = np.asarray(y)
        before = access.queries
        s_target = tempered_log_confidence(access.predict_proba(x), y, self.temperature)
        refs = train_online_references(k, x, y, k.n_shadow_models)
        scores = base_online_scores(s_target, _signals(refs.models, x, y, self.temperature),
                                    refs.in_candidates | refs.out_candidates)  # fmt: skip
        return self._result(access, before, len(y), scores, details=self._details(len(refs.models)))


@ATTACKS.register("base-offline")
class BaseOfflineAttack(_BaseAttack):
    """Offline BASE: OUT references only (the shadow models), the threshold scaled by ``offline_scale_factor``."""

    name = "base-offline"
    online = False

    def __init__(self, *, temperature: float | str = DEFAULT_TEMPERATURE, offline_scale_factor: float | str = DEFAULT_SCALE,
                 tune_trials: int = DEFAULT_TRIALS, tune_objective: str = DEFAULT_OBJECTIVE) -> None:  # fmt: skip
        self._init_options(temperature, offline_scale_factor, tune_trials, tune_objective)
        self.references: list[Any] | None = None

    def fit(self, knowledge: AttackerKnowledge) -> BaseOfflineAttack:
        shadows = train_shadow_models(knowledge, knowledge.n_shadow_models)
        self._tune(shadows, knowledge)
        self.references = [s.model for s in shadows]
        return self

    def score(self, access: TargetAccess, x: np.ndarray, y: np.ndarray) -> AttackResult:
        if self.references is None:
            raise ConfigError("call fit() before score(): BASE needs reference models")
        y = np.asarray(y)
        before = access.queries
        s_target = tempered_log_confidence(access.predict_proba(x), y, self.temperature)
        s_refs = _signals(self.references, x, y, self.temperature)
        # The shadows trained on the attacker's pool, never on the evaluated records: all are OUT.
        scores = base_offline_scores(s_target, s_refs, np.ones(s_refs.shape, dtype=bool), self.scale)
        return self._result(access, before, len(y), scores, details=self._details(len(self.references)))
