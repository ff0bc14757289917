"""The bank's training loop, shared by its engines; an engine supplies stacked parameters and
the gradients of one step for the active models.

Every model of a chunk takes its own batch at each step, with its own initial weights and batch
order (``miaudit.models.batching``); one vectorised forward/backward and one stacked optimizer
update per step replace K separate small steps, whose per-step Python and kernel-launch
overhead is what makes training many small models slow on a CPU.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence

import torch
from torch import nn

from miaudit.errors import ConfigError
from miaudit.models.architectures import ArchConfig
from miaudit.models.augmentation import Draws, apply, check_augmentable
from miaudit.models.batching import ChunkPlan
from miaudit.models.optim import OPTIMIZERS
from miaudit.models.recipe import TrainingRecipe
from miaudit.models.schedules import learning_rate
from miaudit.registry import Registry

EpochHook = Callable[[int], None]


class StackedEngine(ABC):
    """Trains the initialised ``modules`` (stacked in ``plan.stack_order``) in one pass.

    Subclasses set ``self.params`` (stacked tensors, shape (K, ...)) in :meth:`setup` and
    implement :meth:`gradients` and :meth:`export`.

    ``input_stats`` (per-model ``mean`` and ``std``, each (K, *input_shape), rows in
    ``plan.stack_order``) makes every model see its batch as ``(x - mean_k) / std_k``: the same
    float32 operations ``train_one`` applies to the whole data set, so the bank stays exact.
    """

    params: list[torch.Tensor]
    input_stats: tuple[torch.Tensor, torch.Tensor] | None
    augments = False  # whether gradients() applies augment_batch (image engines)
    image_format = torch.contiguous_format  # the memory layout augment_batch returns images in
    devices: tuple[str, ...] = ("cpu",)  # the torch device types it trains on (the bank keeps others on the CPU)

    def __init__(
        self,
        arch: ArchConfig,
        recipe: TrainingRecipe,
        input_shape: tuple[int, ...],
        num_classes: int,
        modules: Sequence[nn.Module],
        plan: ChunkPlan,
        input_stats: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> None:
        self.input_stats = input_stats
        self.draws: Draws | None = None  # the current epoch's augmentation, when the recipe augments
        check_augmentable(arch.name, tuple(input_shape), recipe.augment)
        if recipe.augment != "none" and not self.augments:  # a new engine must opt in
            raise ConfigError(f"the {type(self).__name__} bank engine does not augment; augmentation {recipe.augment!r} needs an image architecture")
        self.arch = arch
        self.recipe = recipe
        self.input_shape = input_shape
        self.num_classes = num_classes
        self.modules = list(modules)
        self.plan = plan
        self.setup()

    @abstractmethod
    def setup(self) -> None:
        """Build the stacked state (``self.params``) from ``self.modules`` and ``self.plan``."""

    @abstractmethod
    def gradients(
        self, x: torch.Tensor, step: int, idx: torch.Tensor, y: torch.Tensor, w: torch.Tensor, rows: int
    ) -> Sequence[torch.Tensor]:
        """Gradients (matching ``self.params``, at least ``rows`` rows) of the weighted
        cross-entropy of models ``[0, rows)`` at ``step`` of the epoch; ``idx`` (record indices),
        ``y`` and ``w`` (row weights) are (rows, batch_size)."""

    def standardize_batch(self, xb: torch.Tensor, rows: int) -> torch.Tensor:
        """Standardize, in place, the gathered batch (rows, batch, *features) of models ``[0, rows)``."""
        if self.input_stats is None:
            return xb
        mean, std = self.input_stats
        return xb.sub_(mean[:rows].unsqueeze(1)).div_(std[:rows].unsqueeze(1))

    def begin_epoch(self, idx: torch.Tensor) -> None:
        """Called with the epoch's record indices (max_steps, num_models, batch_size) before its steps."""

    def augment_batch(self, xb: torch.Tensor, step: int, rows: int) -> torch.Tensor:
        """The gathered (rows, batch, C, H, W) images of models ``[0, rows)`` at ``step``,
        augmented as each model's ``train_one`` would (the recipe's ``augment``; as is for "none")."""
        if self.draws is None:
            return xb
        shape = xb.shape
        draws = self.draws[step, :rows]
        flat = Draws(draws.flip.reshape(-1), draws.dy.reshape(-1), draws.dx.reshape(-1))
        return apply(xb.reshape(-1, *shape[2:]), flat, self.recipe.crop_padding, self.image_format).view(shape)

    def prepare_inputs(self, x: torch.Tensor) -> torch.Tensor:
        """The form of the data set's features that :meth:`gradients` indexes (default: as is)."""
        return x

    @abstractmethod
    def export(self) -> list[nn.Module]:
        """Copy the trained stacked parameters back into ``self.modules`` and return them."""

    def fit(self, x: torch.Tensor, y: torch.Tensor, on_epoch: EpochHook | None = None) -> list[nn.Module]:
        """Train on records ``x``/``y`` (the whole data set; subsets index into it)."""
        recipe, plan = self.recipe, self.plan
        optimizer = OPTIMIZERS.get(recipe.optimizer).stacked(self.params, recipe, plan.groups)
        x = self.prepare_inputs(x)
        with torch.no_grad():
            for epoch in range(recipe.epochs):
                lr = learning_rate(recipe, epoch)
                idx = plan.epoch_indices()
                self.draws = plan.epoch_augmentation(recipe.crop_padding) if recipe.augment != "none" else None
                labels = y[idx]
                self.begin_epoch(idx)
                for step, rows in enumerate(plan.active):
                    grads = self.gradients(
                        x, step, idx[step, :rows], labels[step, :rows], plan.weights[step, :rows], rows
                    )
                    optimizer.step(grads, lr, rows)
                if on_epoch is not None:
                    on_epoch(epoch)
        return self.export()


ENGINES: Registry[type[StackedEngine]] = Registry("bank engine")
