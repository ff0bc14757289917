"""The attacker's stand-in for a user's model: what its shadow and reference models are.

Attacks that train shadow or reference models (loss thresholds, Shokri, LiRA, RMIA, ...) need
"a model trained like the target". For a model miaudit trained, that is its own model name and
recipe. For a user's model, ``--shadow-model`` / ``shadow_model=`` says what it is:

- ``"same"``: a fitted scikit-learn estimator or pipeline is cloned with its hyperparameters
  (:func:`sklearn.base.clone`, every ``random_state`` set from the shadow's seed) and fitted on
  the attacker's data; a torch module is copied, re-initialised (each layer's
  ``reset_parameters`` under the shadow's seed) and trained with a stated recipe;
- a miaudit model name (``mlp``, ``random_forest``, ...), trained with its default recipe;
- a callable ``f(x, y, seed) -> model`` that trains one (the model is then audited like any
  Python object: scikit-learn estimator, torch module, predict_proba or a function).

A user's stand-in is registered as a scikit-learn-style estimator for the span of the audit, so
every shadow and reference model (``attacks/shadow_models.train_many``) is built from it;
estimators are never cached.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from miaudit.attacks.knowledge import ModelSpec
from miaudit.errors import ConfigError

_ids = itertools.count()


def _seeded_clone(estimator: Any, seed: int) -> Any:
    """``sklearn.base.clone`` with every ``random_state`` parameter (nested ones too) set to ``seed``."""
    from sklearn.base import clone

    est = clone(estimator)
    states = {k: seed for k in est.get_params(deep=True) if k == "random_state" or k.endswith("__random_state")}
    return est.set_params(**states) if states else est


class TorchStandIn:
    """A scikit-learn-style estimator that retrains a copy of a torch module from scratch."""

    def __init__(self, template: Any, recipe: Any, seed: int, num_classes: int, input_shape: tuple[int, ...]) -> None:
        self.template, self.recipe, self.seed, self.num_classes = template, recipe, seed, num_classes
        self.input_shape = input_shape
        self.classes_ = np.arange(num_classes)

    def fit(self, x: np.ndarray, y: np.ndarray) -> TorchStandIn:
        import torch

        from miaudit.defenses.training import train_module

        module = copy.deepcopy(self.template)
        with torch.random.fork_rng(devices=[]):  # reset_parameters draws from torch's global stream
            torch.manual_seed(self.seed)
            for layer in module.modules():
                if hasattr(layer, "reset_parameters"):
                    layer.reset_parameters()
        x = x.reshape((len(x), *self.input_shape)).astype(np.float32)
        self.module_ = train_module(module, x, y.astype(np.int64), self.recipe, seed=self.seed)
        return self

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        from miaudit.models.classifier import TorchClassifier

        return TorchClassifier(self.module_, self.num_classes).predict_proba(x.reshape((len(x), *self.input_shape)))


class CallableStandIn:
    """A scikit-learn-style estimator around ``f(x, y, seed) -> trained model``."""

    def __init__(self, fn: Callable[..., Any], seed: int, num_classes: int, input_shape: tuple[int, ...]) -> None:
        self.fn, self.seed, self.num_classes, self.input_shape = fn, seed, num_classes, input_shape
        self.classes_ = np.arange(num_classes)

    def fit(self, x: np.ndarray, y: np.ndarray) -> CallableStandIn:
        from miaudit.core.sources import classifier_from_object

        x = x.reshape((len(x), *self.input_shape))
        self.model_ = classifier_from_object(self.fn(x, y, self.seed), self.num_classes, self.input_shape)
        return self

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        return self.model_.predict_proba(x.reshape((len(x), *self.input_shape)))


def _torch_module_of(obj: Any) -> Any:
    try:
        from torch import nn
    except ImportError:  # pragma: no cover
        return None
    module = getattr(obj, "module", obj)
    return module if isinstance(module, nn.Module) else None


def _factory_for_same(target: Any, recipe: Any, num_classes: int, input_shape: tuple[int, ...]) -> tuple[Callable[..., Any], str]:
    """The estimator factory that retrains the user's own model, and a description of it."""
    estimator = getattr(target, "estimator", target)  # a SklearnClassifier wraps the estimator
    if hasattr(estimator, "get_params") and hasattr(estimator, "fit"):
        return (lambda seed, **_: _seeded_clone(estimator, seed)), f"a clone of the target's {type(estimator).__name__} (sklearn.base.clone)"
    module = _torch_module_of(target)
    if module is not None and not type(module).__module__.startswith("torch.jit"):
        return (
            lambda seed, **_: TorchStandIn(module, recipe, seed, num_classes, input_shape),
            f"the target's {type(module).__name__} re-initialised and trained with recipe {recipe.to_dict()}",
        )
    raise ConfigError(
        "--shadow-model same needs a scikit-learn estimator or a torch module to clone; for this model give a miaudit "
        "model name (see `miaudit models`) or, in Python, a callable(x, y, seed) -> model"
    )


@dataclass(frozen=True)
class StandIn:
    """The attacker's model spec for a user's target, its description, and ``release()``, which
    unregisters a user stand-in from the estimator registry once the audit is done."""

    spec: ModelSpec
    description: str
    registered_name: str | None = None

    def release(self) -> None:
        if self.registered_name is not None:
            from miaudit.models.estimators import ESTIMATORS

            ESTIMATORS.remove(self.registered_name)


def stand_in(
    shadow_model: Any, *, target: Any, num_classes: int, input_shape: tuple[int, ...], recipe: dict[str, Any] | None = None
) -> StandIn | None:
    """The attacker's stand-in for ``target`` (None without ``shadow_model``).

    ``shadow_model`` is ``"same"``, a miaudit model name, or a callable ``f(x, y, seed) -> model``.
    A user stand-in stays in the estimator registry until :meth:`StandIn.release`.
    """
    from miaudit.models import TrainingRecipe, model_names
    from miaudit.models.estimators import ESTIMATORS

    if shadow_model is None:
        return None
    try:
        train_recipe = TrainingRecipe(**(recipe or {}))
    except TypeError as exc:
        raise ConfigError(f"shadow recipe {sorted(recipe or {})}: {exc}; see TrainingRecipe's fields (epochs, lr, batch_size, ...)") from None
    if isinstance(shadow_model, str) and shadow_model != "same":
        if shadow_model not in model_names():
            raise ConfigError(f"unknown shadow model {shadow_model!r}; give 'same' or one of: {', '.join(model_names())}")
        return StandIn(ModelSpec(shadow_model, {}, train_recipe), f"miaudit model {shadow_model!r}")
    if shadow_model == "same":
        factory, description = _factory_for_same(target, train_recipe, num_classes, input_shape)
    elif callable(shadow_model):
        fn = shadow_model

        def factory(seed: int, **_: Any) -> Any:
            return CallableStandIn(fn, seed, num_classes, input_shape)

        description = f"models trained by {getattr(fn, '__name__', type(fn).__name__)}(x, y, seed)"
    else:
        raise ConfigError("shadow_model must be 'same', a miaudit model name or a callable(x, y, seed) -> model")
    name = f"stand-in-{next(_ids)}"
    ESTIMATORS.add(name, factory)
    return StandIn(ModelSpec(name, {}, train_recipe), description, name)
