"""Bank engine for image models: one ordinary forward/backward per model, channels-last, one
stacked optimizer step.

Why not ``torch.func.vmap`` (``engine_functional``): vmapped convolutions with per-model weights
become grouped convolutions, which oneDNN runs far slower on a CPU than K separate ones
(measured, default ``cnn``, 16 models, batch 64, 2 threads: 17.9 ms per model-step grouped
against 8.6 separately). What is left to win is memory layout: the same convolutions on
channels-last (NHWC) inputs take 9.1 ms instead of 15.3 per model-step here (2 threads,
``cnn`` on 32x32x3). So each model runs its own forward and backward on its own batch in
channels-last layout; its parameters are views into the bank's stacked tensors, so one stacked
optimizer update (the fused Adam of ``models.optim``) steps every model, and per-model buffers
(batch norm's running statistics) stay each model's own. The weights are those ``train_one``
gives to float tolerance (the channels-last kernels sum in another order).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from miaudit.models.engine_base import ENGINES, StackedEngine


@ENGINES.register("looped")
class LoopedEngine(StackedEngine):
    augments = True

    def setup(self) -> None:
        self.names = [n for n, _ in self.modules[0].named_parameters()]
        per_model = [dict(m.named_parameters()) for m in self.modules]
        self.stacked = {n: torch.stack([p[n].detach() for p in per_model]).contiguous() for n in self.names}
        self.params = [self.stacked[n] for n in self.names]
        self.grads = [torch.zeros_like(p) for p in self.params]
        for k, module in enumerate(self.modules):
            module.train()
            for n, p in module.named_parameters():
                p.data = self.stacked[n][k]  # a view: the stacked update moves the module

    def gradients(
        self, x: torch.Tensor, step: int, idx: torch.Tensor, y: torch.Tensor, w: torch.Tensor, rows: int
    ) -> Sequence[torch.Tensor]:
        xb = self.augment_batch(self.standardize_batch(x[idx], rows), step, rows)  # (rows, batch, C, H, W)
        real = (w > 0).sum(dim=1).tolist()  # each model's rows this step (a short last batch is padded)
        with torch.enable_grad():
            for k in range(rows):
                module, n = self.modules[k], int(real[k])
                images = xb[k, :n]
                if images.dim() == 4:
                    images = images.contiguous(memory_format=torch.channels_last)
                loss = F.cross_entropy(module(images), y[k, :n])  # the batch mean, as train_one takes it
                loss.backward()
                for grad, p in zip(self.grads, module.parameters(), strict=True):
                    grad[k].copy_(p.grad)
                    p.grad = None
        return self.grads

    def export(self) -> list[nn.Module]:
        for module in self.modules:
            for p in module.parameters():
                p.data = p.data.clone()  # its own storage again, off the stack
            module.eval()
        return self.modules
