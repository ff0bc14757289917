"""scikit-learn estimators usable as targets and shadow models, each seeded.

They are cheap to refit, so they are not cached (caching them would mean pickling, which the
cache never does: loading a pickle can run arbitrary code).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.naive_bayes import BernoulliNB, GaussianNB
from sklearn.tree import DecisionTreeClassifier

from miaudit.errors import ConfigError
from miaudit.models.seeding import derive_seed
from miaudit.registry import Registry

EstimatorFactory = Callable[..., Any]
"""``factory(seed, **options)`` -> an unfitted estimator with ``predict_proba``."""

ESTIMATORS: Registry[EstimatorFactory] = Registry("estimator")


@ESTIMATORS.register("logreg")
def _logreg(seed: int, **options: Any) -> Any:
    return LogisticRegression(**{"max_iter": 1000, "random_state": seed, **options})


@ESTIMATORS.register("decision_tree")
def _decision_tree(seed: int, **options: Any) -> Any:
    return DecisionTreeClassifier(**{"random_state": seed, **options})


@ESTIMATORS.register("random_forest")
def _random_forest(seed: int, **options: Any) -> Any:
    return RandomForestClassifier(**{"n_estimators": 100, "random_state": seed, **options})


@ESTIMATORS.register("gaussian_nb")
def _gaussian_nb(seed: int, **options: Any) -> Any:
    return GaussianNB(**options)  # deterministic: the seed has nothing to draw


@ESTIMATORS.register("bernoulli_nb")
def _bernoulli_nb(seed: int, **options: Any) -> Any:
    return BernoulliNB(**options)  # deterministic


@ESTIMATORS.register("gradient_boosting")
def _gradient_boosting(seed: int, **options: Any) -> Any:
    # The histogram variant: much faster than GradientBoostingClassifier at equal accuracy.
    return HistGradientBoostingClassifier(**{"random_state": seed, **options})


def make_estimator(name: str, seed: int, options: dict[str, Any] | None = None) -> Any:
    """An unfitted estimator ``name`` seeded from ``seed``; ``options`` go to its constructor.

    scikit-learn wants a ``random_state`` in [0, 2**32); any integer seed is mapped there by hashing.
    """
    factory = ESTIMATORS.get(name)
    try:
        return factory(derive_seed(seed, "estimator") % 2**32, **(options or {}))
    except TypeError as exc:
        raise ConfigError(f"bad option for estimator {name!r}: {exc}") from None


def estimator_names() -> list[str]:
    return ESTIMATORS.names()
