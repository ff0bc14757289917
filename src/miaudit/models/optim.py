"""Optimizers, each in two forms: a ``torch.optim`` optimizer for one model (``train_one``) and a
stacked optimizer updating K models whose parameters are stacked along dimension 0 (the bank).

Both forms perform the same arithmetic, so a bank reproduces ``train_one`` model by model.
The stacked form keeps one step counter per *group* of models (Adam's bias correction depends
on it): models of a bank whose subsets give the same number of steps per epoch form a group,
and groups are ordered by decreasing steps per epoch, so the models that still take a step in
an epoch are always a prefix of the stack (see ``miaudit.models.batching``).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from miaudit.registry import Registry

if TYPE_CHECKING:
    from miaudit.models.recipe import TrainingRecipe

ADAM_BETAS = (0.9, 0.999)
ADAM_EPS = 1e-8


class StackedOptimizer(ABC):
    """Updates stacked parameters ``params[i]`` of shape ``(K, ...)`` in place.

    ``groups`` are consecutive row ranges ``[start, end)`` covering ``0..K``; each step updates
    the first few groups only (the models that took a step).
    """

    def __init__(self, params: Sequence[torch.Tensor], recipe: TrainingRecipe, groups: Sequence[tuple[int, int]]):
        self.params = list(params)
        self.recipe = recipe
        self.groups = list(groups)
        self._groups_ending_at = {end: i + 1 for i, (_, end) in enumerate(self.groups)}

    def groups_for_rows(self, rows: int) -> int:
        """How many groups the first ``rows`` models make up (``rows`` must end a group)."""
        return self._groups_ending_at[rows]

    @abstractmethod
    def step(self, grads: Sequence[torch.Tensor], lr: float, rows: int) -> None:
        """Apply one update to models ``[0, rows)``; ``grads[i]`` holds at least those rows."""


class StackedSGD(StackedOptimizer):
    """``torch.optim.SGD`` (momentum, L2 weight decay, no dampening/Nesterov) on stacked tensors."""

    def __init__(self, params: Sequence[torch.Tensor], recipe: TrainingRecipe, groups: Sequence[tuple[int, int]]):
        super().__init__(params, recipe, groups)
        # A zero buffer makes the first update momentum*0 + g == g, torch's clone-on-first-step.
        self.buffers = [torch.zeros_like(p) for p in self.params] if recipe.momentum > 0 else []

    def step(self, grads: Sequence[torch.Tensor], lr: float, rows: int) -> None:
        wd, mom = self.recipe.weight_decay, self.recipe.momentum
        for i, p in enumerate(self.params):
            p, g = p[:rows], grads[i][:rows]
            if wd:
                g = g.add(p, alpha=wd)
            if self.buffers:
                g = self.buffers[i][:rows].mul_(mom).add_(g)
            p.add_(g, alpha=-lr)


class StackedAdam(StackedOptimizer):
    """``torch.optim.Adam`` on stacked tensors, with one step counter per group of models.

    Uses PyTorch's fused CPU Adam kernel (one pass over parameters, gradients and moments; it is
    what ``torch.optim.Adam(fused=True)`` calls) where available, else an equivalent tensor-op form.
    """

    def __init__(self, params: Sequence[torch.Tensor], recipe: TrainingRecipe, groups: Sequence[tuple[int, int]]):
        super().__init__(params, recipe, groups)
        self.exp_avg = [torch.zeros_like(p) for p in self.params]
        self.exp_avg_sq = [torch.zeros_like(p) for p in self.params]
        self.steps = [torch.zeros((), dtype=torch.float32, device=self.params[0].device) for _ in self.groups]
        self._fused = _fused_adam_available()
        # Per-group views of parameters and moments, built once: a step only slices gradients.
        self._views = [
            (
                [p[a:b] for p in self.params],
                [m[a:b] for m in self.exp_avg],
                [v[a:b] for v in self.exp_avg_sq],
            )
            for a, b in self.groups
        ]

    def step(self, grads: Sequence[torch.Tensor], lr: float, rows: int) -> None:
        n_groups = self.groups_for_rows(rows)
        ps: list[torch.Tensor] = []
        gs: list[torch.Tensor] = []
        ms: list[torch.Tensor] = []
        vs: list[torch.Tensor] = []
        steps: list[torch.Tensor] = []
        for gi in range(n_groups):
            a, b = self.groups[gi]
            p_views, m_views, v_views = self._views[gi]
            ps += p_views
            ms += m_views
            vs += v_views
            gs += [g[a:b] for g in grads]
            steps += [self.steps[gi]] * len(p_views)
        for s in self.steps[:n_groups]:
            s.add_(1.0)
        if self._fused:
            torch._fused_adam_(
                ps, gs, ms, vs, [], steps,
                lr=lr, beta1=ADAM_BETAS[0], beta2=ADAM_BETAS[1],
                weight_decay=self.recipe.weight_decay, eps=ADAM_EPS, amsgrad=False, maximize=False,
            )  # fmt: skip
        else:
            _adam_reference(ps, gs, ms, vs, steps, lr, self.recipe.weight_decay)


def _adam_reference(
    ps: list[torch.Tensor],
    gs: list[torch.Tensor],
    ms: list[torch.Tensor],
    vs: list[torch.Tensor],
    steps: list[torch.Tensor],
    lr: float,
    weight_decay: float,
) -> None:
    """The update of ``torch.optim.Adam`` (single-tensor form), for torch builds without the fused kernel."""
    beta1, beta2 = ADAM_BETAS
    for p, g, m, v, s in zip(ps, gs, ms, vs, steps, strict=True):
        t = float(s)
        if weight_decay:
            g = g.add(p, alpha=weight_decay)
        m.lerp_(g, 1 - beta1)
        v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
        bias1, bias2 = 1 - beta1**t, 1 - beta2**t
        denom = (v.sqrt() / math.sqrt(bias2)).add_(ADAM_EPS)
        p.addcdiv_(m, denom, value=-lr / bias1)


_FUSED_ADAM: bool | None = None


def _fused_adam_available() -> bool:
    """Whether this torch build has the fused Adam kernel for CPU tensors (torch >= 2.4)."""
    global _FUSED_ADAM
    if _FUSED_ADAM is None:
        try:
            p, g = torch.zeros(2), torch.ones(2)
            torch._fused_adam_(
                [p], [g], [torch.zeros(2)], [torch.zeros(2)], [], [torch.ones(())],
                lr=0.1, beta1=0.9, beta2=0.999, weight_decay=0.0, eps=1e-8, amsgrad=False, maximize=False,
            )  # fmt: skip
            _FUSED_ADAM = bool(torch.all(p < 0))
        except (AttributeError, RuntimeError, NotImplementedError):
            _FUSED_ADAM = False
    return _FUSED_ADAM


@dataclass(frozen=True)
class OptimizerSpec:
    """One optimizer: ``torch(params, recipe)`` for a single model, ``stacked`` for a bank."""

    torch: Callable[[Iterable[torch.nn.Parameter], TrainingRecipe], torch.optim.Optimizer]
    stacked: type[StackedOptimizer]


OPTIMIZERS: Registry[OptimizerSpec] = Registry("optimizer")
OPTIMIZERS.add(
    "adam",
    OptimizerSpec(
        torch=lambda params, r: torch.optim.Adam(
            params, lr=r.lr, betas=ADAM_BETAS, eps=ADAM_EPS, weight_decay=r.weight_decay
        ),
        stacked=StackedAdam,
    ),
)
OPTIMIZERS.add(
    "sgd",
    OptimizerSpec(
        torch=lambda params, r: torch.optim.SGD(params, lr=r.lr, momentum=r.momentum, weight_decay=r.weight_decay),
        stacked=StackedSGD,
    ),
)
