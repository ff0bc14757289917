"""Attack hyperparameters tuned on the attacker's own data: a shadow model as stand-in target.

The target's membership truth is never available to an attack (it reaches only the metrics), so
a hyperparameter cannot be chosen on the target. The attacker can, however, play its own game:
shadow 0 stands in for the target, the shadows after its complementary twin (shadows 2, 3, ...)
are its reference models, and its own training records (members) and half of the pool records it
did not train on (non-members) are the records to score; the other half of those non-members is
a population for the attacks that need one (RMIA). Everything here comes from
:class:`~miaudit.attacks.knowledge.AttackerKnowledge`: the shadows' subsets of the attacker's
pool, never the evaluated records or their truth.

Attacks without shadow models (QMIA) use :func:`search` alone, with an objective on their own
pool. The search is Optuna's TPE sampler (Bergstra et al., NeurIPS 2011) over a declared space, run
sequentially (one trial at a time) with a sampler seeded from the audit's seed, so the chosen
values are a function of the seed and the attacker's data alone. The attack's default values
are the first trial, so the chosen values are never worse than the defaults on the stand-in.
The objective is AUC or TPR at 1% FPR of the attack's scores on the stand-in's records.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from miaudit import metrics
from miaudit.attacks.options import whole
from miaudit.attacks.train_models import ShadowModel
from miaudit.errors import ConfigError
from miaudit.models.seeding import derive_seed
from miaudit.seeds import stream_rng

__all__ = ["DEFAULT_OBJECTIVE", "DEFAULT_TRIALS", "MIN_SHADOWS", "OBJECTIVES", "FloatRange", "IntRange", "StandIn",
           "Tuned", "check_tuning_options", "search", "stand_in_target", "tune"]  # fmt: skip

MIN_SHADOWS = 4  # the stand-in, its complementary twin (left out) and at least 2 references
DEFAULT_TRIALS = 20
OBJECTIVES = ("auc", "tpr@1%fpr")
DEFAULT_OBJECTIVE = "auc"


@dataclass(frozen=True)
class FloatRange:
    """A hyperparameter searched in ``[low, high]``, on a log scale when ``log``."""

    low: float
    high: float
    log: bool = False


@dataclass(frozen=True)
class IntRange:
    """A whole-number hyperparameter searched in ``[low, high]``, on a log scale when ``log``."""

    low: int
    high: int
    log: bool = False


Space = Mapping[str, FloatRange | IntRange]


@dataclass(frozen=True)
class StandIn:
    """Shadow 0 playing the target, with its references and records (positions in the pool).

    ``references`` excludes shadow 1 (it trained on exactly the stand-in's non-members, which the
    real target's references never do). ``scored`` are the stand-in's members then non-members;
    ``population`` is the rest of its non-members.
    """

    model: Any
    references: list[ShadowModel]
    members: np.ndarray
    non_members: np.ndarray
    population: np.ndarray

    @property
    def scored(self) -> np.ndarray:
        """Pool positions of the records the stand-in attack scores: members first."""
        return np.concatenate((self.members, self.non_members))

    @property
    def is_member(self) -> np.ndarray:
        """The attacker's own truth for :attr:`scored` (it trained the stand-in)."""
        return np.arange(len(self.members) + len(self.non_members)) < len(self.members)

    def out_mask(self, positions: np.ndarray) -> np.ndarray:
        """Which references did not train on each of the pool ``positions``, shaped (R, len(positions))."""
        mask = np.zeros((len(self.references), int(np.max(positions, initial=-1)) + 1), dtype=bool)
        for row, s in enumerate(self.references):
            mask[row, s.out_idx[s.out_idx < mask.shape[1]]] = True
        return mask[:, positions]

    def in_mask(self, positions: np.ndarray) -> np.ndarray:
        """Which references trained on each of the pool ``positions``, shaped (R, len(positions))."""
        mask = np.zeros((len(self.references), int(np.max(positions, initial=-1)) + 1), dtype=bool)
        for row, s in enumerate(self.references):
            mask[row, s.in_idx[s.in_idx < mask.shape[1]]] = True
        return mask[:, positions]


@dataclass(frozen=True)
class Tuned:
    """The chosen values, the stand-in objective they reach, and how they were found."""

    params: dict[str, float]
    value: float
    objective: str
    n_trials: int
    n_references: int

    def details(self) -> dict[str, Any]:
        """What goes into the attack's ``details`` (and so into results.json)."""
        return {
            "tuned": dict(self.params),
            "tuning": (
                f"tuned on shadow 0 as stand-in target ({self.n_references} shadow models as its references, "
                f"its complementary twin left out), {self.n_trials} trials of Optuna TPE, objective {self.objective} "
                f"on the stand-in = {self.value:.4f}; never on the target's records or truth"
            ),
        }


def check_tuning_options(attack: str, n_trials: object, objective: object) -> tuple[int, str]:
    """``(n_trials, objective)`` validated, or a one-line ConfigError naming the option."""
    trials = whole(attack, "tune_trials", n_trials)
    if objective not in OBJECTIVES:
        raise ConfigError(f"{attack} option tune_objective must be one of {', '.join(OBJECTIVES)}, got {objective!r}")
    return trials, str(objective)


def stand_in_target(shadows: list[ShadowModel], *, seed: int, attack: str) -> StandIn:
    """Shadow 0 as stand-in target (needs :data:`MIN_SHADOWS` shadows); its non-members split in two
    halves at random (seeded): the scored non-members and the population."""
    if len(shadows) < MIN_SHADOWS:
        raise ConfigError(
            f"{attack}: tuning needs at least {MIN_SHADOWS} shadow models (a stand-in target, its twin and 2 references), "
            f"got {len(shadows)}; raise --shadow-models"
        )
    stand_in = shadows[0]
    out = stream_rng(seed, "tuning/stand-in-target").permutation(stand_in.out_idx)
    half = len(out) // 2
    return StandIn(stand_in.model, list(shadows[2:]), np.asarray(stand_in.in_idx), out[half:], out[:half])


def objective_value(scores: np.ndarray, is_member: np.ndarray, objective: str) -> float:
    """AUC, or TPR at 1% FPR, of ``scores``; NaN or infinite scores count as the worst.

    TPR at 1% FPR is read with one false positive allowed as the least measurable count (the
    stand-in has a few hundred non-members, below the metrics' default of 10 false positives),
    so it is a noisy objective on small pools; :func:`tune` refuses a stand-in with fewer than
    100 non-members for it.
    """
    scores = np.asarray(scores, dtype=np.float64)
    if not np.all(np.isfinite(scores)):
        return -1.0
    if objective == "auc":
        return float(metrics.auc(scores, is_member))
    tpr = metrics.tpr_at_fpr(scores, is_member, 0.01, min_false_positives=1.0)
    return 0.0 if tpr is None else float(tpr)


def search(
    attack: str,
    space: Space,
    defaults: Mapping[str, float],
    value: Callable[[dict[str, float]], float],
    *,
    seed: int,
    n_trials: int = DEFAULT_TRIALS,
) -> tuple[dict[str, float], float]:
    """The values in ``space`` that maximise ``value(params)``: Optuna's TPE seeded from ``seed``
    and ``attack``, one trial at a time (deterministic). ``defaults`` are the first trial; ties
    keep the earliest trial, so equal values never move off the defaults."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = optuna.samplers.TPESampler(seed=derive_seed(seed, f"tuning/{attack}") % 2**32)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.enqueue_trial({name: defaults[name] for name in space})

    def suggest(trial: Any, name: str, r: FloatRange | IntRange) -> float:
        if isinstance(r, IntRange):
            return trial.suggest_int(name, r.low, r.high, log=r.log)
        return trial.suggest_float(name, r.low, r.high, log=r.log)

    study.optimize(lambda t: value({n: suggest(t, n, r) for n, r in space.items()}), n_trials=n_trials, n_jobs=1,
                   show_progress_bar=False)  # fmt: skip
    best = max(study.trials, key=lambda t: (t.value, -t.number))
    return dict(best.params), float(best.value)


def tune(
    attack: str,
    space: Space,
    defaults: Mapping[str, float],
    evaluate: Callable[[dict[str, float]], np.ndarray],
    stand_in: StandIn,
    *,
    seed: int,
    n_trials: int = DEFAULT_TRIALS,
    objective: str = DEFAULT_OBJECTIVE,
) -> Tuned:
    """:func:`search` against the stand-in target: ``evaluate(params)`` returns the attack's scores
    on ``stand_in.scored``; the objective compares them with ``stand_in.is_member``."""
    is_member = stand_in.is_member
    if objective != "auc" and len(stand_in.non_members) < 100:
        raise ConfigError(
            f"{attack}: the stand-in target has {len(stand_in.non_members)} non-members; TPR at 1% FPR needs at least 100 "
            "(a larger pool) or tune_objective=auc"
        )
    params, best = search(attack, space, defaults, lambda p: objective_value(evaluate(p), is_member, objective),
                          seed=seed, n_trials=n_trials)  # fmt: skip
    return Tuned({k: float(v) for k, v in params.items()}, best, objective, n_trials, len(stand_in.references))
