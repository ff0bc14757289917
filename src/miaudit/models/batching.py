"""Batch layout of a chunk of bank models: who takes which records at which step.

Model k trains on its own subset of n_k records in ``ceil(n_k / batch_size)`` steps per epoch,
exactly as ``train_one`` would: the epoch's permutation is cut into consecutive batches and the
last batch may be short. To step all models at once:

* models are stacked in order of *decreasing* steps per epoch, so at step s the models that
  still have a batch are a prefix ``[0, active[s])`` of the stack; the others are left out of
  that step entirely (no forward, no gradient, no optimizer update, no Adam step count), which
  keeps every model identical to training it alone;
* a short last batch is padded to ``batch_size`` rows that carry weight 0, and real rows carry
  weight ``1 / rows_in_batch``, so the weighted sum of per-record losses is the batch mean.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from miaudit.models.augmentation import Draws, augment_generator, draw_epoch
from miaudit.models.seeding import epoch_permutation, order_generator


class ChunkPlan:
    """Stacking order, step counts, row weights and per-epoch batch indices of one chunk.

    ``subsets[i]`` are global record indices (int64) of model i, ``seeds[i]`` its seed.
    ``stack_order[j]`` is the position in ``subsets`` of the model stacked at row j.
    """

    def __init__(self, subsets: Sequence[torch.Tensor], seeds: Sequence[int], batch_size: int):
        steps = [math.ceil(len(s) / batch_size) for s in subsets]
        # Stable sort: equal step counts keep their order, which makes the layout reproducible.
        self.stack_order = sorted(range(len(subsets)), key=lambda i: -steps[i])
        self.subsets = [subsets[i] for i in self.stack_order]
        self.steps = [steps[i] for i in self.stack_order]
        self.batch_size = batch_size
        self.num_models = len(subsets)
        self.max_steps = self.steps[0]
        self.active = [sum(1 for n in self.steps if n > s) for s in range(self.max_steps)]
        self.groups = _runs(self.steps)
        self._generators = [order_generator(seeds[i]) for i in self.stack_order]
        self._augmenters = [augment_generator(seeds[i]) for i in self.stack_order]
        self.weights = self._row_weights()
        self._base = self._padding()

    def epoch_indices(self) -> torch.Tensor:
        """Global record indices of the next epoch, shaped (max_steps, num_models, batch_size).

        Padding rows hold the model's first record (any valid index will do: their weight is 0).
        Laid out step-major so that ``indices[s, :active]`` is contiguous.
        """
        flat = self._base.clone()
        for k, (subset, gen) in enumerate(zip(self.subsets, self._generators, strict=True)):
            flat[k, : len(subset)] = subset[epoch_permutation(len(subset), gen)]
        return flat.view(self.num_models, self.max_steps, self.batch_size).transpose(0, 1).contiguous()

    def epoch_augmentation(self, padding: int) -> Draws:
        """Each model's augmentation of the next epoch (:mod:`miaudit.models.augmentation`),
        drawn as ``train_one`` draws it and laid out like :meth:`epoch_indices`: fields shaped
        (max_steps, num_models, batch_size); padding rows get no flip and no shift."""
        total = self.max_steps * self.batch_size
        flip = torch.zeros(self.num_models, total, dtype=torch.bool)
        dy = torch.zeros(self.num_models, total, dtype=torch.int64)
        dx = torch.zeros(self.num_models, total, dtype=torch.int64)
        for k, (subset, gen) in enumerate(zip(self.subsets, self._augmenters, strict=True)):
            d = draw_epoch(gen, len(subset), padding)
            flip[k, : len(subset)], dy[k, : len(subset)], dx[k, : len(subset)] = d.flip, d.dy, d.dx

        def layout(t: torch.Tensor) -> torch.Tensor:
            return t.view(self.num_models, self.max_steps, self.batch_size).transpose(0, 1).contiguous()

        return Draws(layout(flip), layout(dy), layout(dx))

    def _row_weights(self) -> torch.Tensor:
        """(max_steps, num_models, batch_size) float32: 1/rows for real rows, 0 for padding."""
        w = torch.zeros(self.max_steps, self.num_models, self.batch_size)
        for k, subset in enumerate(self.subsets):
            n = len(subset)
            for s in range(self.steps[k]):
                rows = min(self.batch_size, n - s * self.batch_size)
                w[s, k, :rows] = 1.0 / rows
        return w

    def _padding(self) -> torch.Tensor:
        base = torch.empty(self.num_models, self.max_steps * self.batch_size, dtype=torch.int64)
        for k, subset in enumerate(self.subsets):
            base[k] = subset[0]
        return base


def _runs(values: Sequence[int]) -> list[tuple[int, int]]:
    """Row ranges [start, end) of equal consecutive values."""
    runs: list[tuple[int, int]] = []
    start = 0
    for i in range(1, len(values) + 1):
        if i == len(values) or values[i] != values[start]:
            runs.append((start, i))
            start = i
    return runs
