"""Training one torch model: the reference the bank reproduces model by model.

A deliberately plain loop (autograd + ``torch.optim``), with two choices that make it exactly
reproducible and cheap on CPU: the initial weights and each epoch's record order come from
generators derived from the seed (``miaudit.models.seeding``), and batches are taken by
indexing tensors directly (a ``DataLoader`` costs more than the step for small models).
"""

from __future__ import annotations

import math

import numpy as np
import torch.nn.functional as F
from torch import nn

from miaudit.models.architectures import ArchConfig, build_module, init_module
from miaudit.models.device import current_device
from miaudit.models.augmentation import apply, augment_generator, check_augmentable, draw_epoch
from miaudit.models.inputs import as_features, as_labels, check_num_classes, to_tensors
from miaudit.models.optim import OPTIMIZERS
from miaudit.models.recipe import TrainingRecipe
from miaudit.models.schedules import learning_rate
from miaudit.models.standardize import Standardized, input_stats, standardize
from miaudit.models.seeding import check_seed, epoch_permutation, init_generator, order_generator


def new_model(arch: ArchConfig, input_shape: tuple[int, ...], num_classes: int, seed: int) -> nn.Module:
    """A freshly initialised module: the same weights for the same (arch, shape, classes, seed).

    The distribution is the architecture's ``init`` option where it has one (default "torch").
    """
    init = arch.resolved().option_dict().get("init", "torch")
    return init_module(build_module(arch, input_shape, num_classes, empty=True), init_generator(seed), init)


def train_one(
    arch: ArchConfig,
    recipe: TrainingRecipe,
    x: np.ndarray,
    y: np.ndarray,
    *,
    num_classes: int,
    seed: int,
) -> nn.Module:
    """Train one model of ``arch`` on all of (x, y) with ``recipe``; returns it in eval mode.

    Each epoch visits the records in a fresh permutation, in ``ceil(n / batch_size)`` batches
    (the last may be short), minimising the mean cross-entropy of the logits. With
    ``recipe.standardize`` the network trains on ``(x - mean) / std`` of this x and is returned
    inside a :class:`~miaudit.models.standardize.Standardized` wrapper holding those statistics.
    """
    num_classes = check_num_classes(num_classes)
    seed = check_seed(seed)
    x_np = as_features(x)
    stats = input_stats(x_np) if recipe.standardize else None
    if stats is not None:
        x_np = standardize(x_np, *stats)
    xt, yt = to_tensors(x_np, as_labels(y, len(x_np), num_classes))
    check_augmentable(arch.name, tuple(x_np.shape[1:]), recipe.augment)
    model = new_model(arch, tuple(x_np.shape[1:]), num_classes, seed)  # initialised on the CPU: the same weights anywhere
    device = current_device()
    if device.type != "cpu":
        model, xt, yt = model.to(device), xt.to(device), yt.to(device)
    model.train()
    optimizer = OPTIMIZERS.get(recipe.optimizer).torch(model.parameters(), recipe)
    order = order_generator(seed)
    augmenting = recipe.augment != "none"
    augmenter = augment_generator(seed) if augmenting else None
    n, bs = len(xt), recipe.batch_size
    for epoch in range(recipe.epochs):
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(recipe, epoch)
        perm = epoch_permutation(n, order)
        draws = draw_epoch(augmenter, n, recipe.crop_padding) if augmenter is not None else None
        for step in range(math.ceil(n / bs)):
            idx = perm[step * bs : (step + 1) * bs]
            xb = xt[idx] if draws is None else apply(xt[idx], draws[step * bs : (step + 1) * bs], recipe.crop_padding)
            optimizer.zero_grad()
            loss = F.cross_entropy(model(xb), yt[idx])
            loss.backward()
            optimizer.step()
    model = model.cpu()  # models leave training on the CPU (cache, saving, numpy-facing attacks)
    return model.eval() if stats is None else Standardized(model, *stats).eval()
