"""Shared pieces of the attacks that train an attack model (Shokri et al., S&P 2017; Salem et al.,
ML-Leaks, NDSS 2019; the NN attack of Jia et al., MemGuard, CCS 2019).

- :data:`ATTACK_MODELS`: binary scikit-learn classifiers (member = 1, non-member = 0), seeded;
- :func:`shadow_attack_data`: the attack training set, i.e. shadow models' outputs on the pool
  records they trained on (label 1) and did not (label 0), turned into features;
- :class:`AttackModelAttack`: the base of those attacks (score = the attack model's P(member),
  decision threshold 1/2, learned from shadow models);
- :func:`sorted_top_k` / :func:`query_top_k`: the sorted (descending) top-k feature vector, from a
  shadow's probability vector or from a target query, so that both sides are built alike.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np

from miaudit.attacks.base import Attack, AttackResult
from miaudit.attacks.shadow_models import ShadowModel
from miaudit.errors import ConfigError
from miaudit.registry import Registry
from miaudit.targets.access import TargetAccess

AttackModelFactory = Callable[[int], Any]
"""``factory(seed)`` -> an unfitted scikit-learn binary classifier with ``predict_proba``."""

ATTACK_MODELS: Registry[AttackModelFactory] = Registry("attack model")


@ATTACK_MODELS.register("mlp")
def _mlp(seed: int) -> Any:
    # One hidden layer of 64 units: the attack model of Salem et al. (ML-Leaks) and of the
    # reference code of Shokri et al.; Adam with scikit-learn's own early convergence test.
    from sklearn.neural_network import MLPClassifier

    return MLPClassifier(hidden_layer_sizes=(64,), max_iter=200, random_state=seed)


@ATTACK_MODELS.register("logreg")
def _logreg(seed: int) -> Any:
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(max_iter=1000, random_state=seed)


@ATTACK_MODELS.register("random_forest")
def _random_forest(seed: int) -> Any:
    from sklearn.ensemble import RandomForestClassifier

    return RandomForestClassifier(n_estimators=100, min_samples_leaf=5, random_state=seed)


@ATTACK_MODELS.register("gradient_boosting")
def _gradient_boosting(seed: int) -> Any:
    from sklearn.ensemble import HistGradientBoostingClassifier

    return HistGradientBoostingClassifier(random_state=seed)


def attack_model_seed(seed: int, stream: str) -> int:
    """A scikit-learn ``random_state`` (in [0, 2**32)) for ``stream``, derived from the attacker's seed."""
    from miaudit.models.seeding import derive_seed

    return derive_seed(seed, f"attack-model/{stream}") % 2**32


@contextmanager
def single_threaded() -> Iterator[None]:
    """Run small attack models on one thread (torch, BLAS and OpenMP).

    Attack data are a few thousand short rows: synchronising threads costs more than the
    arithmetic, and on a busy 2-core machine spinning threads made fits 10 to 50 times slower.
    """
    import torch
    from threadpoolctl import threadpool_limits

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(1):
            yield
    finally:
        torch.set_num_threads(threads)


def fit_attack_model(name: str, features: np.ndarray, labels: np.ndarray, *, seed: int) -> Any:
    """Fit attack model ``name`` on (features, membership labels); both labels must be present."""
    model = ATTACK_MODELS.get(name)(seed)
    with warnings.catch_warnings(), single_threaded():
        # A small MLP that stops at max_iter is still a usable attack model.
        from sklearn.exceptions import ConvergenceWarning

        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(np.asarray(features, dtype=np.float64), np.asarray(labels, dtype=np.int64))
    return model


def member_probability(model: Any, features: np.ndarray) -> np.ndarray:
    """The fitted attack model's P(member) per row."""
    proba = model.predict_proba(np.asarray(features, dtype=np.float64))
    return proba[:, list(model.classes_).index(1)].astype(np.float64)


def sorted_top_k(proba: np.ndarray, k: int) -> np.ndarray:
    """The ``k`` largest probabilities per row, descending; zero-padded when there are fewer classes."""
    proba = np.asarray(proba, dtype=np.float64)
    top = -np.sort(-proba, axis=1)[:, :k]
    if top.shape[1] < k:
        top = np.pad(top, ((0, 0), (0, k - top.shape[1])))
    return top


def query_top_k(access: TargetAccess, x: np.ndarray, k: int) -> np.ndarray:
    """The target's sorted top-``k`` probabilities for ``x`` (one query per record).

    ``predict_topk`` releases the threat model's ``k`` (all classes under full-probability
    access); the attack keeps the first ``k`` as :func:`sorted_top_k` does on shadow outputs.
    """
    top, _ = access.predict_topk(x)
    return sorted_top_k(top, k)


def shadow_attack_data(
    shadows: Sequence[ShadowModel],
    pool_x: np.ndarray,
    pool_y: np.ndarray,
    features_fn: Callable[[np.ndarray], np.ndarray],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Attack training set from shadow models: ``(features, labels, classes)``.

    One row per (shadow, pool record): ``features_fn`` of the shadow's probability vector,
    label 1 if the record was in the shadow's training set and 0 if not, and the record's
    true class (for per-class attack models).
    """
    features, labels, classes = [], [], []
    for shadow in shadows:
        proba = shadow.model.predict_proba(pool_x)
        for idx, member in ((shadow.in_idx, 1), (shadow.out_idx, 0)):
            features.append(features_fn(proba[idx]))
            labels.append(np.full(len(idx), member, dtype=np.int64))
            classes.append(np.asarray(pool_y)[idx])
    return np.concatenate(features), np.concatenate(labels), np.concatenate(classes).astype(np.int64)


class AttackModelAttack(Attack):
    """An attack whose score is a trained attack model's P(member).

    Its decision rule, P(member) >= 1/2, was learned from shadow models' outputs, hence the
    threshold source.
    """

    kind = "shadow training"

    def _check_fitted(self, attack_model: Any) -> None:
        if attack_model is None:
            raise ConfigError(f"call fit() before score(): {self.name} learns its attack model from shadow models")

    def _membership_result(
        self, access: TargetAccess, queries_before: int, n: int, scores: np.ndarray, details: dict[str, Any]
    ) -> AttackResult:
        return self._result(
            access,
            queries_before,
            n,
            scores,
            threshold=0.5,
            threshold_source="shadow models",
            details={**details, "threshold_rule": "P(member) >= 1/2 under the attack model trained on shadow outputs"},
        )
