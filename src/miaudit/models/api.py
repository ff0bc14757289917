"""Entry points for the experiment runner: one name space over torch architectures and
scikit-learn estimators, and bank training for shadow/reference models."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from miaudit.errors import ConfigError, InputError, UnknownNameError
from miaudit.models.architectures import ARCHITECTURES, ArchConfig
from miaudit.models.bank import DEFAULT_MODELS_PER_PASS, ModelBank
from miaudit.models.cache import ModelCache
from miaudit.models.classifier import BankClassifiers, Classifier, SklearnClassifier, TorchClassifier
from miaudit.models.estimators import ESTIMATORS, make_estimator
from miaudit.models.jobs import Executor
from miaudit.models.inputs import as_features, as_index_array, as_labels, check_num_classes
from miaudit.models.progress import ProgressCallback
from miaudit.models.recipe import TrainingRecipe
from miaudit.models.seeding import check_seed
from miaudit.models.standardize import standardized_estimator

if set(ARCHITECTURES.names()) & set(ESTIMATORS.names()):  # one name space: names must not clash
    raise RuntimeError("a name is registered both as an architecture and as an estimator")


def model_names() -> list[str]:
    """Every name ``fit_classifier`` accepts: torch architectures and scikit-learn estimators."""
    return sorted(ARCHITECTURES.names() + ESTIMATORS.names())


def fit_classifier(
    model_name: str,
    x: np.ndarray,
    y: np.ndarray,
    *,
    num_classes: int,
    seed: int,
    recipe: TrainingRecipe | None = None,
    options: dict[str, Any] | None = None,
    cache: ModelCache | None = None,
    data_fingerprint: str | None = None,
    train_indices: np.ndarray | None = None,
    progress: bool | ProgressCallback = True,
) -> Classifier:
    """Train model ``model_name`` on records ``train_indices`` of (x, y) (default: all of them).

    For a torch architecture (``mlp``, ``cnn``), ``options`` are architecture options and
    ``recipe`` the training recipe (default :class:`TrainingRecipe`); the model comes from
    ``cache`` when it holds it, keyed by ``data_fingerprint`` (default: a hash of x and y) and
    the indices. For a scikit-learn estimator, ``options`` go to its constructor, and of the
    recipe only ``standardize`` is used (``Pipeline(StandardScaler, estimator)``, the scaler
    fitted on the training records); ``cache`` and ``progress`` are ignored (estimators are
    cheap and never cached). With ``recipe.standardize`` a torch model standardizes with the
    statistics of its training records (``miaudit.models.standardize``).
    """
    num_classes = check_num_classes(num_classes)
    seed = check_seed(seed)
    x_np = as_features(x)
    y_np = as_labels(y, len(x_np), num_classes)
    idx = (
        np.arange(len(x_np), dtype=np.int64)
        if train_indices is None
        else as_index_array(train_indices, len(x_np))
    )
    if model_name in ARCHITECTURES:
        bank = ModelBank(
            ArchConfig(model_name, options or {}), recipe or TrainingRecipe(),
            num_classes=num_classes, cache=cache, progress=progress,
        )  # fmt: skip
        (module,) = bank.train(x_np, y_np, [idx], [seed], data_fingerprint=data_fingerprint)
        return TorchClassifier(module, num_classes, tuple(x_np.shape[1:]))
    if model_name in ESTIMATORS:
        standardize = bool(getattr(recipe, "standardize", False))
        return _fit_estimator(model_name, x_np[idx], y_np[idx], num_classes, seed, options, standardize=standardize)
    raise UnknownNameError(f"unknown model {model_name!r}; choose one of: {', '.join(model_names())}")


def _fit_estimator(
    name: str,
    x: np.ndarray,
    y: np.ndarray,
    num_classes: int,
    seed: int,
    options: dict[str, Any] | None,
    *,
    standardize: bool = False,
) -> SklearnClassifier:
    estimator = make_estimator(name, seed, options)
    if standardize:
        estimator = standardized_estimator(estimator)
    try:
        estimator.fit(x.reshape(len(x), -1), y)
    except ValueError as exc:  # scikit-learn's errors for bad parameters and unusable data
        if len(np.unique(y)) < 2:
            raise InputError(
                f"the training set of {name!r} holds only class {int(y[0])}; give it records of two classes or more"
            ) from None
        raise ConfigError(f"estimator {name!r} could not be fitted ({exc}); check its options") from None
    return SklearnClassifier(estimator, num_classes)


def train_bank(
    arch: ArchConfig | str,
    recipe: TrainingRecipe,
    x: np.ndarray,
    y: np.ndarray,
    subsets: Sequence[np.ndarray],
    seeds: Sequence[int],
    *,
    num_classes: int,
    cache: ModelCache | None = None,
    data_fingerprint: str | None = None,
    max_models_per_pass: int = DEFAULT_MODELS_PER_PASS,
    progress: bool | ProgressCallback = True,
    executor: Executor | None = None,
) -> BankClassifiers:
    """Train (or load from ``cache``) one model per ``(subsets[k], seeds[k])`` with a :class:`ModelBank`.

    Returns a :class:`BankClassifiers`: a sequence of per-model classifiers that can also give
    all models' predictions on the same records at once, shaped (K, n, C). ``executor``
    (default: this process) trains the blocks of models the cache does not hold.
    """
    if isinstance(arch, str):
        arch = ArchConfig(arch)
    bank = ModelBank(
        arch, recipe, num_classes=num_classes, cache=cache,
        max_models_per_pass=max_models_per_pass, progress=progress, executor=executor,
    )  # fmt: skip
    modules = bank.train(x, y, subsets, seeds, data_fingerprint=data_fingerprint)
    return BankClassifiers(modules, num_classes, tuple(np.shape(x)[1:]))
