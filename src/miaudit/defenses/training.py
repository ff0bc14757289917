"""Training helpers shared by the training-time defenses.

``plain_model`` trains an undefended model the way the audit does (the ModelBank, cached), so
that the undefended baseline, recipe-only defenses (weight decay, early stopping) and the base
model under an output-time defense are the very models an undefended audit would train.
``train_module`` is the reference loop of :func:`miaudit.models.train.train_one` (same seeded
initial weights and batch order) for defenses that change the loss or the module.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from miaudit.defenses.base import TrainingTask

LossFn = Callable[[Any, Any, Any, int], Any]
"""``loss(model, xb, yb, epoch) -> scalar tensor`` for one batch."""


def plain_model(task: TrainingTask, *, recipe: Any = None, indices: np.ndarray | None = None) -> Any:
    """The undefended classifier of ``task`` (or with another recipe / on other records)."""
    from miaudit.models import fit_classifier

    return fit_classifier(
        task.model,
        task.x,
        task.y,
        num_classes=task.num_classes,
        seed=task.seed,
        recipe=recipe or task.recipe,
        options=task.options,
        cache=task.cache,
        data_fingerprint=task.data_fingerprint,
        train_indices=task.private_idx if indices is None else indices,
        progress=task.progress,
    )


def require_torch_model(task: TrainingTask, defense: str) -> None:
    from miaudit.errors import ConfigError
    from miaudit.models import ARCHITECTURES

    if task.model not in ARCHITECTURES:
        raise ConfigError(f"defense {defense!r} trains torch models; model {task.model!r} is a scikit-learn estimator")


def new_module(task: TrainingTask, seed: int | None = None) -> Any:
    """A freshly initialised module of the task's architecture (the seed's initial weights)."""
    from miaudit.models import ArchConfig
    from miaudit.models.train import new_model

    return new_model(ArchConfig(task.model, task.options), task.input_shape, task.num_classes, task.seed if seed is None else seed)


def cross_entropy_loss(model: Any, xb: Any, yb: Any, epoch: int) -> Any:
    import torch.nn.functional as F

    return F.cross_entropy(model(xb), yb)


def train_module(
    model: Any,
    x: np.ndarray,
    y: np.ndarray,
    recipe: Any,
    *,
    seed: int,
    loss: LossFn = cross_entropy_loss,
    after_step: Callable[[int], None] | None = None,
) -> Any:
    """Train ``model`` on (x, y) with ``recipe`` (optimizer, rate schedule, epochs, batches).

    ``y`` may be class indices or, for distillation, rows of soft labels; ``loss`` sees the
    batch. ``after_step(step)`` runs after each optimizer step (e.g. the inference model's
    turn in adversarial regularization). Returns the model in eval mode.
    """
    import torch

    from miaudit.models.optim import OPTIMIZERS
    from miaudit.models.schedules import learning_rate
    from miaudit.models.seeding import epoch_permutation, order_generator

    if getattr(recipe, "standardize", False):  # this loop would silently train on raw inputs
        from miaudit.errors import ConfigError

        raise ConfigError(
            "training-time defenses do not support the standardize training option yet; "
            "standardize the data before the audit or train without the defense"
        )
    if getattr(recipe, "augment", "none") != "none":  # nor on augmented ones
        from miaudit.errors import ConfigError

        raise ConfigError("training-time defenses do not support training augmentation yet; train without the defense or without augment")
    xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    yt = torch.from_numpy(np.ascontiguousarray(y))
    model.train()
    optimizer = OPTIMIZERS.get(recipe.optimizer).torch(model.parameters(), recipe)
    order = order_generator(seed)
    n, bs, step = len(xt), recipe.batch_size, 0
    for epoch in range(recipe.epochs):
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(recipe, epoch)
        perm = epoch_permutation(n, order)
        for b in range(math.ceil(n / bs)):
            idx = perm[b * bs : (b + 1) * bs]
            optimizer.zero_grad()
            loss(model, xt[idx], yt[idx], epoch).backward()
            optimizer.step()
            step += 1
            if after_step is not None:
                after_step(step)
                model.train()
    return model.eval()


def torch_classifier(module: Any, task: TrainingTask) -> Any:
    from miaudit.models import TorchClassifier

    return TorchClassifier(module.eval(), task.num_classes, task.input_shape)


def accuracy(model: Any, x: np.ndarray, y: np.ndarray) -> float:
    return float((np.asarray(model.predict_proba(x)).argmax(axis=1) == y).mean()) if len(y) else float("nan")


def with_epochs(recipe: Any, epochs: int, **changes: Any) -> Any:
    """``recipe`` with ``epochs`` (and other ``changes``); step milestones at or past the new
    last epoch are dropped (with none left, the schedule becomes constant)."""
    import dataclasses

    if recipe.schedule == "step":
        kept = tuple(m for m in recipe.milestones if m < epochs)
        changes.update({"milestones": kept} if kept else {"schedule": "constant", "milestones": (), "gamma": 0.1})
    return dataclasses.replace(recipe, epochs=int(epochs), **changes)
