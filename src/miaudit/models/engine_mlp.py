"""Fast bank engine for MLPs: batched matmuls and a hand-written backward on stacked weights.

Weights are stored transposed, (K, in, out), so that the forward is ``baddbmm(bias, h, W)``
(bias fused into the matmul) and the backward needs no copies. All activations, gradients and
the input batch live in buffers allocated once per chunk; a step writes into them in place.
The cross-entropy gradient is computed directly as ``(softmax(z) - onehot(y)) * w``.

Layout choices for speed, all exact:

* the input width is padded with zero features to a multiple of 16 (446 -> 448 for Location30):
  MKL's batched GEMM is markedly faster on aligned rows. The padded weight rows get exactly
  zero gradient, so every optimizer leaves them at zero; they are dropped on export.
* features that are small non-negative integers (binary data such as Location30 and
  Purchase100) are kept as uint8, so gathering a batch reads a quarter of the bytes and the
  data set stays in cache beside the weights; the batch is converted back to float32 exactly;
* for sparse 0/1 features the first layer's forward sums weight rows instead of multiplying
  (``miaudit.models.sparse_input``); not with standardized inputs, which are no longer 0/1;
* standardized inputs (``input_stats``) are standardized after the gather, per model, with the
  padding columns given mean 0 and std 1 so they stay zero.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from miaudit.models.architectures import ACTIVATIONS
from miaudit.models.engine_base import ENGINES, StackedEngine
from miaudit.models.sparse_input import SparseBinaryInput, is_sparse_binary

ALIGN = 16  # floats per 64-byte cache line


@ENGINES.register("stacked_mlp")
class StackedMLPEngine(StackedEngine):
    def setup(self) -> None:
        self.activation = ACTIVATIONS.get(self.arch.resolved().option_dict()["activation"])
        linears = [_linears(module) for module in self.modules]
        self.n_layers = len(linears[0])
        k, bs = self.plan.num_models, self.plan.batch_size
        self.in_features = linears[0][0].in_features
        self.padded_in = _aligned(self.in_features)
        self.weights = [
            torch.stack([lin[i].weight.detach().T for lin in linears]).contiguous() for i in range(self.n_layers)
        ]
        self.biases = [
            torch.stack([lin[i].bias.detach()[None, :] for lin in linears]).contiguous() for i in range(self.n_layers)
        ]
        self.weights[0] = nn.functional.pad(self.weights[0], (0, 0, 0, self.padded_in - self.in_features))
        self.params = [t for pair in zip(self.weights, self.biases, strict=True) for t in pair]
        self.grads = [torch.empty_like(p) for p in self.params]
        widths = [w.shape[2] for w in self.weights]
        self.x_buf = torch.empty(k, bs, self.padded_in)
        self.x_small: torch.Tensor | None = None
        # outs[i]: buffer for layer i's output after its activation (logits for the last layer).
        self.outs = [torch.empty(k, bs, h) for h in widths]
        # dins[i]: gradient w.r.t. the output of layer i (i < last), reused every step.
        self.dins = [torch.empty(k, bs, h) for h in widths[:-1]]
        self.sparse: SparseBinaryInput | None = None
        if self.input_stats is not None:
            pad = self.padded_in - self.in_features
            mean, std = (t.reshape(k, -1) for t in self.input_stats)
            self.input_stats = (
                nn.functional.pad(mean, (0, pad)),
                nn.functional.pad(std, (0, pad), value=1.0),
            )

    def prepare_inputs(self, x: torch.Tensor) -> torch.Tensor:
        flat = nn.functional.pad(x.reshape(len(x), -1), (0, self.padded_in - self.in_features))
        if self.input_stats is None and is_sparse_binary(flat):
            self.sparse = SparseBinaryInput(flat, self.plan.num_models, self.plan.batch_size, self.padded_in)
        small = flat.to(torch.uint8)
        if torch.equal(small.to(flat.dtype), flat):
            self.x_small = torch.empty(self.x_buf.shape, dtype=torch.uint8)
            return small
        self.x_small = None
        return flat

    def begin_epoch(self, idx: torch.Tensor) -> None:
        if self.sparse is not None:
            self.sparse.begin_epoch(idx)

    def gradients(
        self, x: torch.Tensor, step: int, idx: torch.Tensor, y: torch.Tensor, w: torch.Tensor, rows: int
    ) -> Sequence[torch.Tensor]:
        bs = self.plan.batch_size
        xb = self._gather(x, idx, rows)
        # acts[i]: input of layer i (acts[0] = batch); the last entry holds the logits.
        acts = [xb]
        for i, (weight, bias) in enumerate(zip(self.weights, self.biases, strict=True)):
            if i == 0 and self.sparse is not None:
                table = weight.view(-1, weight.shape[2])
                out = self.sparse.forward(step, rows, table).view(rows, bs, -1).add_(bias[:rows])
            else:
                out = torch.baddbmm(bias[:rows], acts[i], weight[:rows], out=self.outs[i][:rows])
            if i < self.n_layers - 1:
                self.activation.forward_(out)
            acts.append(out)
        # d(mean CE)/d logits = (softmax - onehot) / rows_in_batch; padded rows have w = 0.
        w3 = w.unsqueeze(-1)
        dz = torch.softmax(acts[-1], dim=-1).mul_(w3)
        dz.scatter_add_(2, y.unsqueeze(-1), w3.neg())
        for i in range(self.n_layers - 1, -1, -1):
            h_in = acts[i]
            torch.bmm(h_in.transpose(1, 2), dz, out=self.grads[2 * i][:rows])
            torch.sum(dz, dim=1, keepdim=True, out=self.grads[2 * i + 1][:rows])
            if i > 0:
                dh = torch.bmm(dz, self.weights[i][:rows].transpose(1, 2), out=self.dins[i - 1][:rows])
                dz = self.activation.backward_(dh, h_in)
        return self.grads

    def _gather(self, x: torch.Tensor, idx: torch.Tensor, rows: int) -> torch.Tensor:
        """The batch of the first ``rows`` models as float32 (rows, batch, padded_in)."""
        xb = self.x_buf[:rows]
        flat_idx = idx.reshape(-1)
        if self.x_small is None:
            torch.index_select(x, 0, flat_idx, out=xb.view(len(flat_idx), -1))
        else:
            small = self.x_small[:rows]
            torch.index_select(x, 0, flat_idx, out=small.view(len(flat_idx), -1))
            xb.copy_(small)
        return self.standardize_batch(xb, rows)

    def export(self) -> list[nn.Module]:
        with torch.no_grad():
            for k, module in enumerate(self.modules):
                for i, lin in enumerate(_linears(module)):
                    lin.weight.copy_(self.weights[i][k, : lin.in_features].T)
                    lin.bias.copy_(self.biases[i][k, 0])
        return self.modules


def _aligned(n: int) -> int:
    return -(-n // ALIGN) * ALIGN


def _linears(module: nn.Module) -> list[nn.Linear]:
    return [m for m in module.modules() if isinstance(m, nn.Linear)]
