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

Each model runs as a view of its layers with every ReLU that feeds a max-pool moved after the
pool: max-pooling commutes exactly with ReLU (a monotone function; at ties and at zero the two
orders pick the same element and the same zero gradient), and the elementwise ReLU and its
backward, memory-bound and the costliest kernels of the small CNN on channels-last tensors, then
touch a quarter of the values. ``train_one`` keeps the plain layer order, the reference.

The models of a step are shared among worker threads, one per torch thread the caller allows,
each running its models with one torch thread: small convolutions do not scale across threads
(measured, default ``cnn``, 16 models, batch 64: 8.7-13 ms per model-step channels-last on 2
threads, 14 on 1, about 7 with two workers of one thread each). Each model always runs on one
thread, so the weights do not depend on how many workers there are.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import torch
import torch.nn.functional as F
from torch import nn

from miaudit.models.augmentation import apply
from miaudit.models.engine_base import ENGINES, StackedEngine


def pool_before_relu(module: nn.Module) -> nn.Module:
    """``module`` computing the same function with each ReLU -> MaxPool2d pair swapped (an
    ``nn.Sequential`` of the same parameterised layers, the moved ReLU in place); other modules as is."""
    if not isinstance(module, nn.Sequential):
        return module
    layers, reordered = list(module), []
    while layers:
        layer = layers.pop(0)
        if isinstance(layer, nn.ReLU) and layers and isinstance(layers[0], nn.MaxPool2d):
            reordered += [layers.pop(0), nn.ReLU(inplace=True)]  # in place: the pool's backward needs only its indices
        else:
            reordered.append(layer)
    return nn.Sequential(*reordered)


@ENGINES.register("looped")
class LoopedEngine(StackedEngine):
    augments = True
    image_format = torch.channels_last
    devices = ("cpu", "cuda")

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
        self.runs = [pool_before_relu(m) for m in self.modules]
        cpu = self.params[0].device.type == "cpu"  # a GPU runs one model's kernels after another anyway
        self.workers = max(1, min(torch.get_num_threads(), len(self.modules))) if cpu else 1
        self.pool = ThreadPoolExecutor(self.workers, initializer=torch.set_num_threads, initargs=(1,))

    def gradients(
        self, x: torch.Tensor, step: int, idx: torch.Tensor, y: torch.Tensor, w: torch.Tensor, rows: int
    ) -> Sequence[torch.Tensor]:
        real = (w > 0).sum(dim=1).tolist()  # each model's rows this step (a short last batch is padded)

        def run(first: int) -> None:
            with torch.enable_grad():  # grad mode is per thread; the caller's loop runs without it
                for k in range(first, rows, self.workers):
                    n = int(real[k])
                    images = self.model_batch(x, step, k, idx[k, :n])
                    loss = F.cross_entropy(self.runs[k](images), y[k, :n])  # the batch mean, as train_one takes it
                    loss.backward()
                    for grad, p in zip(self.grads, self.modules[k].parameters(), strict=True):
                        grad[k].copy_(p.grad)
                        p.grad = None

        for _ in self.pool.map(run, range(min(self.workers, rows))):
            pass  # re-raises a worker's error here
        return self.grads

    def model_batch(self, x: torch.Tensor, step: int, k: int, idx: torch.Tensor) -> torch.Tensor:
        """Model ``k``'s batch at ``step``: what ``standardize_batch`` and ``augment_batch`` give
        for one model, done in the model's worker (channels-last, as ``x`` is)."""
        images = x[idx]
        if self.input_stats is not None:
            mean, std = self.input_stats
            images.sub_(mean[k]).div_(std[k])
        if self.draws is not None:
            images = apply(images, self.draws[step, k, : len(idx)], self.recipe.crop_padding, self.image_format)
        return images

    def prepare_inputs(self, x: torch.Tensor) -> torch.Tensor:
        """Images in channels-last layout once, so every gathered batch is channels-last."""
        return x.contiguous(memory_format=torch.channels_last) if x.dim() == 4 else x

    def export(self) -> list[nn.Module]:
        self.pool.shutdown()
        for module in self.modules:
            for p in module.parameters():
                p.data = p.data.clone()  # its own storage again, off the stack
            module.eval()
        return self.modules
