"""Generic bank engine for any architecture (e.g. the CNN): ``torch.func`` over stacked modules.

``stack_module_state`` stacks the K modules' parameters; ``vmap(grad(loss))`` with
``functional_call`` evaluates all K per-model gradients in one vectorised call (convolutions
with batched weights become grouped convolutions).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, stack_module_state, vmap

from miaudit.models.engine_base import ENGINES, StackedEngine


@ENGINES.register("functional")
class FunctionalEngine(StackedEngine):
    augments = True
    def setup(self) -> None:
        params, buffers = stack_module_state(self.modules)
        self.names = list(params)
        self.stacked = {n: p.detach().clone() for n, p in params.items()}
        self.buffers = {n: b.detach().clone() for n, b in buffers.items()}
        self.params = [self.stacked[n] for n in self.names]
        # A stateless copy on the meta device: functional_call only needs its structure.
        base = copy.deepcopy(self.modules[0]).to("meta")

        def loss(p: dict[str, torch.Tensor], b: dict[str, torch.Tensor], xb: torch.Tensor, yb: torch.Tensor, wb: torch.Tensor) -> torch.Tensor:
            logits = functional_call(base, (p, b), (xb,))
            return (F.cross_entropy(logits, yb, reduction="none") * wb).sum()

        self._grad = vmap(grad(loss))

    def gradients(
        self, x: torch.Tensor, step: int, idx: torch.Tensor, y: torch.Tensor, w: torch.Tensor, rows: int
    ) -> Sequence[torch.Tensor]:
        xb = self.augment_batch(self.standardize_batch(x[idx], rows), step, rows)  # (rows, batch, *input_shape)
        p = {n: t[:rows] for n, t in self.stacked.items()}
        b = {n: t[:rows] for n, t in self.buffers.items()}
        with torch.enable_grad():
            g = self._grad(p, b, xb, y, w)
        return [g[n] for n in self.names]

    def export(self) -> list[nn.Module]:
        for k, module in enumerate(self.modules):
            state = {n: t[k] for n, t in {**self.stacked, **self.buffers}.items()}
            module.load_state_dict(state)
        return self.modules
