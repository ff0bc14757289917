"""Models for membership-inference audits: torch architectures and scikit-learn estimators as
targets, and banks of shadow/reference models (Shokri et al., S&P 2017) trained many at once.

Entry points: :func:`fit_classifier` (one model by name), :func:`train_bank` (K models of one
architecture on their own subsets, cached), :func:`model_names`.
"""

from miaudit.models.api import fit_classifier, model_names, train_bank
from miaudit.models.architectures import (
    ACTIVATIONS,
    ARCHITECTURES,
    INITIALIZERS,
    ArchConfig,
    ArchSpec,
    architecture_names,
    build_module,
    init_module,
)
from miaudit.models.bank import DEFAULT_MODELS_PER_PASS, ModelBank
from miaudit.models.cache import FORMAT_VERSION, ModelCache, ModelKey
from miaudit.models.classifier import (
    BankClassifiers,
    Classifier,
    SklearnClassifier,
    TorchClassifier,
    softmax,
)
from miaudit.models.estimators import ESTIMATORS, estimator_names, make_estimator
from miaudit.models.optim import OPTIMIZERS
from miaudit.models.progress import BankProgress, ProgressCallback
from miaudit.models.recipe import TrainingRecipe
from miaudit.models.schedules import SCHEDULES, learning_rate
from miaudit.models.train import new_model, train_one

__all__ = [
    "ACTIVATIONS",
    "ARCHITECTURES",
    "DEFAULT_MODELS_PER_PASS",
    "ESTIMATORS",
    "FORMAT_VERSION",
    "INITIALIZERS",
    "OPTIMIZERS",
    "SCHEDULES",
    "ArchConfig",
    "ArchSpec",
    "BankClassifiers",
    "BankProgress",
    "Classifier",
    "ModelBank",
    "ModelCache",
    "ModelKey",
    "ProgressCallback",
    "SklearnClassifier",
    "TorchClassifier",
    "TrainingRecipe",
    "architecture_names",
    "build_module",
    "estimator_names",
    "fit_classifier",
    "init_module",
    "learning_rate",
    "make_estimator",
    "model_names",
    "new_model",
    "softmax",
    "train_bank",
    "train_one",
]
