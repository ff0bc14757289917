"""QMIA, membership inference by quantile regression (Bertran, Tang, Kearns, Morgenstern, Roth
& Wu, "Scalable Membership Inference Attacks via Quantile Regression", NeurIPS 2023).

Threat model: black box: the full probability vector and same-distribution data (the attacker's
pool); no architecture, no training recipe, no shadow model. The pool records are known
non-members: :mod:`miaudit.data.split` keeps the attacker's pool disjoint from the target's
training set, and under partial-training-set knowledge the attacker's known members arrive in
other fields of :class:`~miaudit.attacks.knowledge.AttackerKnowledge` (``known_members_*``),
never in the pool; QMIA does not use them.

Method. The target's score on a record is the paper's hinge score

    s(x, y) = log p_y(x) - max_{y' != y} log p_{y'}(x),

which equals ``logit_y - max_{y' != y} logit_{y'}`` for a softmax (the normaliser cancels), so
it needs only the probability vector. The attacker queries the target on its pool (one query per
pool record, counted by :class:`~miaudit.targets.access.TargetAccess`) and fits a quantile
regressor ``q(x, y)`` of the non-members' hinge score at level ``1 - alpha`` from the record's
features and its one-hot label (the paper conditions on the label too). A record is called a
member when ``s(x, y) > q(x, y)``: on non-members from the same distribution this happens with
probability about ``alpha``, so the threshold is calibrated at FPR ``alpha`` without the
evaluated records' truth. The membership score is ``s - q`` (higher = member), and the threshold
is the smallest positive float, so that the audit's rule ``score >= threshold`` is ``s > q``.

Regressor: scikit-learn's ``HistGradientBoostingRegressor(loss="quantile", quantile=1 - alpha)``
(the paper trains a neural network with the pinball loss; a gradient-boosted tree ensemble is
its tabular stand-in) with ``max_iter`` boosting rounds (default 100), ``max_leaf_nodes``
(default 31), ``learning_rate`` (default 0.1), ``min_samples_leaf`` (default 20), no early
stopping, and a ``random_state`` derived from the attacker's seed (without early stopping the
regressor draws nothing at random, so the scores are a deterministic function of the pool and the
target's answers; the cross-fit folds are drawn from the attacker's seed): the same seed gives the
same scores.

Threshold calibration. With ``cross_fit=0`` (the default, the paper's rule) the threshold is
``s > q``. A boosted regressor fitted on a small pool fits its noise, so that its quantile is
too low on fresh records and the realised FPR of ``s > q`` exceeds ``alpha`` (tests/test_qmia.py
measures it: about 0.14 at alpha 0.05 on a 1200-record pool of random features). ``cross_fit=K``
(K >= 2, an addition to the paper) keeps the scores ``s - q`` of the regressor fitted on the whole
pool and moves the threshold to ``s - q > t``, ``t`` the ``ceil((n + 1)(1 - alpha))``-th smallest
of the pool's out-of-fold residuals ``s - q_{-k}`` over K folds (split-conformal style): the
ranking, hence AUC and TPR at FPR, is unchanged; only the thresholded metrics move.

Tuning (``tune=True``, an addition to the paper): the four regressor hyperparameters are chosen
by :func:`miaudit.attacks.tuning.search` (Optuna TPE, ``tune_trials`` trials, seeded from the
attacker's seed) to minimise the pool's 3-fold held-out pinball loss at level ``1 - alpha``, the
loss the regressor is fitted with. QMIA's threat model has no shadow model, hence no stand-in
target with known members: the objective uses only the pool (known non-members) and the target's
answers on it, never the evaluated records or their truth. The chosen values go in ``details``.

Queries: ``len(pool) + len(x)`` records. A query budget below that raises
:class:`~miaudit.targets.access.QueryBudgetExceededError` before the target is asked, which the
audit reports as a skipped attack, as for every other attack.
"""

from __future__ import annotations

import numpy as np

from miaudit.attacks.base import ATTACKS, Attack, AttackResult
from miaudit.attacks.knowledge import AttackerKnowledge
from miaudit.attacks.options import fraction, whole
from miaudit.attacks.tuning import DEFAULT_TRIALS, FloatRange, IntRange, search
from miaudit.errors import ConfigError, InputError
from miaudit.models.seeding import derive_seed
from miaudit.targets.access import QueryBudgetExceededError, TargetAccess
from miaudit.threat import DataKnowledge, OutputAccess, Requirements

TUNING_SPACE = {
    "max_iter": IntRange(25, 300, log=True),
    "max_leaf_nodes": IntRange(4, 63, log=True),
    "learning_rate": FloatRange(0.01, 0.3, log=True),
    "min_samples_leaf": IntRange(5, 100, log=True),
}
TUNING_FOLDS = 3
_LOG_FLOOR = 1e-30  # a probability of exactly 0 would give an infinite hinge score
DEFAULT_ALPHA = 0.01
#: The decision threshold on ``s - q``: the smallest positive float, so that ``s - q >= it`` iff ``s > q``.
MEMBER_THRESHOLD = float(np.nextafter(0.0, 1.0))


def hinge_score(proba: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``log p_y - max_{y' != y} log p_{y'}`` per record (nats), the paper's hinge score.

    For softmax outputs it equals the logit difference ``z_y - max_{y' != y} z_{y'}``.
    Probabilities are floored at 1e-30 so that the score stays finite (at most about +-69).
    """
    p = np.asarray(proba, dtype=np.float64)
    y = np.asarray(y)
    if p.ndim != 2 or p.shape[1] < 2:
        raise InputError(f"the hinge score needs probability vectors over at least 2 classes, got shape {p.shape}")
    if y.shape != (len(p),):
        raise InputError(f"labels must have shape ({len(p)},), got {y.shape}")
    logp = np.log(np.maximum(p, _LOG_FLOOR))
    rows = np.arange(len(y))
    true = logp[rows, y]
    others = logp.copy()
    others[rows, y] = -np.inf
    return true - others.max(axis=1)


def regression_features(x: np.ndarray, y: np.ndarray, num_classes: int) -> np.ndarray:
    """The regressor's inputs: the flattened record and its one-hot label, float32, shape (n, d + C)."""
    x = np.asarray(x, dtype=np.float32).reshape(len(x), -1)
    onehot = np.zeros((len(x), num_classes), dtype=np.float32)
    onehot[np.arange(len(x)), np.asarray(y)] = 1.0
    return np.concatenate((x, onehot), axis=1)


@ATTACKS.register("qmia")
class QmiaAttack(Attack):
    """QMIA: a quantile regressor of non-members' hinge scores sets a per-record threshold."""

    name = "qmia"
    paper = "Bertran et al., NeurIPS 2023"
    kind = "quantile regression"
    requirements = Requirements(
        output=OutputAccess.PROBABILITIES,
        architecture=False,
        training_recipe=False,
        data=DataKnowledge.SAME_DISTRIBUTION,
        shadow_models=False,
    )

    def __init__(
        self,
        *,
        alpha: float = DEFAULT_ALPHA,
        max_iter: int = 100,
        max_leaf_nodes: int = 31,
        learning_rate: float = 0.1,
        min_samples_leaf: int = 20,
        cross_fit: int = 0,
        tune: bool = False,
        tune_trials: int = DEFAULT_TRIALS,
    ) -> None:
        self.alpha = fraction(self.name, "alpha", alpha)
        self.max_iter = whole(self.name, "max_iter", max_iter)
        self.max_leaf_nodes = whole(self.name, "max_leaf_nodes", max_leaf_nodes, minimum=2)
        self.learning_rate = fraction(self.name, "learning_rate", learning_rate)
        self.min_samples_leaf = whole(self.name, "min_samples_leaf", min_samples_leaf)
        self.cross_fit = whole(self.name, "cross_fit", cross_fit, minimum=0)
        if not isinstance(tune, bool):
            raise ConfigError(f"qmia option tune must be true or false, got {tune!r}")
        self.tune = tune
        self.tune_trials = whole(self.name, "tune_trials", tune_trials)
        self.tuning: dict[str, object] = {}
        self.configured = {name: getattr(self, name) for name in TUNING_SPACE}  # the first trial when tuning
        if self.cross_fit == 1:
            raise ConfigError("qmia option cross_fit must be 0 (the paper's threshold s > q) or at least 2 folds")
        self.knowledge: AttackerKnowledge | None = None

    def fit(self, knowledge: AttackerKnowledge) -> "QmiaAttack":
        """Keep the attacker's pool (known non-members); the target is queried on it in ``score``."""
        if knowledge.pool_x is None or knowledge.pool_y is None or len(knowledge.pool_y) == 0:
            raise ConfigError("QMIA needs same-distribution data (the attacker's pool) to fit its quantile regressor")
        self.knowledge = knowledge
        return self

    def regressor(self, seed: int) -> object:
        """The unfitted ``HistGradientBoostingRegressor`` at level ``1 - alpha``, seeded from ``seed``."""
        from sklearn.ensemble import HistGradientBoostingRegressor

        return HistGradientBoostingRegressor(
            loss="quantile",
            quantile=1.0 - self.alpha,
            max_iter=self.max_iter,
            max_leaf_nodes=self.max_leaf_nodes,
            learning_rate=self.learning_rate,
            min_samples_leaf=self.min_samples_leaf,
            early_stopping=False,
            random_state=derive_seed(seed, "qmia/regressor") % 2**32,
        )

    def _tune_regressor(self, features: np.ndarray, s_pool: np.ndarray, seed: int) -> None:
        """Set the regressor's hyperparameters to those with the lowest held-out pinball loss on the pool."""
        from sklearn.metrics import mean_pinball_loss

        n = len(s_pool)
        if n < 2 * TUNING_FOLDS:
            raise ConfigError(f"qmia tune=true needs at least {2 * TUNING_FOLDS} pool records, got {n}")
        order = np.random.default_rng(derive_seed(seed, "qmia/tuning-folds") % 2**32).permutation(n)
        folds = np.array_split(order, TUNING_FOLDS)

        def held_out_loss(params: dict[str, float]) -> float:
            for name, v in params.items():
                setattr(self, name, v)
            losses = []
            for fold in folds:
                rest = np.setdiff1d(order, fold)
                model = self.regressor(seed).fit(features[rest], s_pool[rest])
                losses.append(mean_pinball_loss(s_pool[fold], model.predict(features[fold]), alpha=1.0 - self.alpha))
            return -float(np.mean(losses))

        params, best = search(self.name, TUNING_SPACE, self.configured, held_out_loss, seed=seed, n_trials=self.tune_trials)
        for name, v in params.items():
            setattr(self, name, v)
        self.tuning = {
            "tuned": dict(params),
            "tuning": (f"tuned on the attacker's pool (known non-members; no shadow model in QMIA's threat model), "
                       f"{self.tune_trials} trials of Optuna TPE, objective {TUNING_FOLDS}-fold held-out pinball loss at "
                       f"level {1 - self.alpha:g} = {-best:.4g}; never on the target's records or truth"),
        }  # fmt: skip

    def _cross_fit_shift(self, pool_x: np.ndarray, pool_y: np.ndarray, s_pool: np.ndarray, num_classes: int, seed: int) -> float:
        """``t``: the ``ceil((n + 1)(1 - alpha))``-th smallest out-of-fold residual ``s - q_{-k}`` (hinge units)."""
        n = len(pool_y)
        if n < 2 * self.cross_fit:
            raise ConfigError(f"qmia cross_fit={self.cross_fit} needs at least {2 * self.cross_fit} pool records, got {n}")
        order = np.random.default_rng(derive_seed(seed, "qmia/folds") % 2**32).permutation(n)
        features = regression_features(pool_x, pool_y, num_classes)
        residual = np.empty(n)
        for fold in np.array_split(order, self.cross_fit):
            rest = np.setdiff1d(order, fold)
            model = self.regressor(seed)
            model.fit(features[rest], s_pool[rest])
            residual[fold] = s_pool[fold] - model.predict(features[fold])
        rank = min(int(np.ceil((n + 1) * (1.0 - self.alpha))), n)
        return float(np.sort(residual)[rank - 1])

    def score(self, access: TargetAccess, x: np.ndarray, y: np.ndarray) -> AttackResult:
        """``s(x, y) - q(x, y)`` per record; threshold ``s > q`` (calibrated at FPR ``alpha``)."""
        k = self.knowledge
        if k is None or k.pool_x is None or k.pool_y is None:
            raise ConfigError("call fit() before score(): QMIA needs the attacker's pool")
        y = np.asarray(y)
        pool_y = np.asarray(k.pool_y)
        before = access.queries
        # Budget for the whole attack first, so that a refusal costs no queries.
        budget = access.threat.query_budget
        if budget is not None and access.queries + len(pool_y) + len(y) > budget:
            raise QueryBudgetExceededError(
                f"query budget of {budget} exceeded: QMIA queries its {len(pool_y)} pool records and the "
                f"{len(y)} scored records; raise the budget"
            )
        s_pool = hinge_score(access.predict_proba(k.pool_x), pool_y)
        if self.tune:
            self._tune_regressor(regression_features(k.pool_x, pool_y, k.num_classes), s_pool, k.seed)
        model = self.regressor(k.seed)
        model.fit(regression_features(k.pool_x, pool_y, k.num_classes), s_pool)
        s_x = hinge_score(access.predict_proba(x), y)
        q_x = model.predict(regression_features(x, y, k.num_classes))
        q_pool = model.predict(regression_features(k.pool_x, pool_y, k.num_classes))
        shift = self._cross_fit_shift(k.pool_x, pool_y, s_pool, k.num_classes, k.seed) if self.cross_fit else 0.0
        threshold = MEMBER_THRESHOLD if shift == 0.0 else float(np.nextafter(shift, np.inf))
        rule = f"member iff hinge score > its predicted {1 - self.alpha:g}-quantile on non-members"
        if self.cross_fit:
            rule += f" + {shift:.6g} (the pool's out-of-fold residual quantile, {self.cross_fit} folds)"
        return self._result(
            access,
            before,
            len(y),
            s_x - q_x,
            threshold=threshold,
            threshold_source="attacker's pool",
            details={
                "threshold_rule": rule,
                "cross_fit": self.cross_fit,
                "threshold_shift": shift,
                "alpha": self.alpha,
                "regressor": "HistGradientBoostingRegressor(loss='quantile')",
                "max_iter": self.max_iter,
                "max_leaf_nodes": self.max_leaf_nodes,
                "learning_rate": self.learning_rate,
                "min_samples_leaf": self.min_samples_leaf,
                "pool_size": len(pool_y),
                "pool_fpr": float(np.mean(s_pool > q_pool)),  # in-sample, on the pool it was fitted on
                **self.tuning,
            },
        )
