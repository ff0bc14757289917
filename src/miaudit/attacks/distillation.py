"""Knowledge distillation with a loss trajectory: the attacker's own models for the loss-trajectory
attack (Liu et al., "Membership Inference Attacks by Exploiting Loss Trajectory", CCS 2022).

A fresh torch model (the student) learns a teacher's probability vectors (soft labels) on a
distillation set the attacker holds; after each of ``epochs`` epochs the student's snapshot gives
every record to be traced its cross-entropy loss with the record's true label. Only the
distillation set trains the student: the traced records are evaluated, never trained on.

Training is :func:`miaudit.defenses.training.train_module` with DMP's soft-label cross-entropy
``-sum_c q_c log p_c`` (the KL divergence to the teacher up to a constant, temperature 1), under
the target's recipe: optimizer, learning rate and its schedule (stretched over the distillation
epochs), batch size, and input standardization (on the distillation set). Initial weights and
batch order are drawn from ``seed``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np

from miaudit.errors import ConfigError

__all__ = ["distil_trajectories"]

_LOSS_CEILING = -math.log(1e-30)  # a probability of 0 gives this loss, not infinity


def distil_trajectories(
    arch: object,
    recipe: object,
    x_distill: np.ndarray,
    soft_labels: np.ndarray,
    traced: Sequence[tuple[np.ndarray, np.ndarray]],
    *,
    epochs: int,
    num_classes: int,
    seed: int,
) -> list[np.ndarray]:
    """Distil ``soft_labels`` on ``x_distill`` into a fresh ``arch`` (a ``miaudit.models.ArchConfig``)
    trained with ``recipe`` (a ``TrainingRecipe``) for ``epochs`` epochs.

    Returns, per ``(x, y)`` of ``traced``, an array of shape ``(len(y), epochs)``: column ``e`` is
    each record's cross-entropy loss under the student after epoch ``e + 1``."""
    import torch
    import torch.nn.functional as F

    from miaudit.defenses.dmp import soft_cross_entropy
    from miaudit.defenses.training import train_module
    from miaudit.models import new_model
    from miaudit.models.inputs import as_features
    from miaudit.models.standardize import input_stats, standardize

    if epochs < 1:
        raise ConfigError(f"the loss trajectory needs at least one distillation epoch, got {epochs}")
    x_np = as_features(x_distill)
    soft = np.asarray(soft_labels, dtype=np.float32)
    if soft.shape != (len(x_np), num_classes):
        raise ValueError(f"soft labels shaped {soft.shape}, expected {(len(x_np), num_classes)}")
    stats = input_stats(x_np) if getattr(recipe, "standardize", False) else None
    if getattr(recipe, "augment", "none") != "none":
        raise ConfigError("the loss trajectory's distillation does not augment; audit this target without the augment training option")

    def prepared(x: np.ndarray) -> np.ndarray:
        arr = as_features(x)
        return np.ascontiguousarray(standardize(arr, *stats) if stats is not None else arr, dtype=np.float32)

    traced_t = [(torch.from_numpy(prepared(x)), torch.from_numpy(np.asarray(y, dtype=np.int64))) for x, y in traced]
    # The schedule spans the distillation; inputs are standardized here, on the distillation set.
    stretched = dataclasses.replace(recipe, epochs=epochs, standardize=False)
    x_train = prepared(x_np)
    model = new_model(arch, tuple(x_train.shape[1:]), num_classes, seed)
    steps_per_epoch = math.ceil(len(x_train) / recipe.batch_size)
    out = [np.empty((len(y), epochs), dtype=np.float64) for _, y in traced_t]

    def snapshot(step: int) -> None:
        if step % steps_per_epoch:
            return
        epoch = step // steps_per_epoch - 1
        model.eval()
        with torch.no_grad():
            for k, (x, y) in enumerate(traced_t):
                losses = F.cross_entropy(model(x), y, reduction="none").double().numpy()
                out[k][:, epoch] = np.minimum(losses, _LOSS_CEILING)

    train_module(model, x_train, soft, stretched, seed=seed, loss=soft_cross_entropy, after_step=snapshot)
    return out
