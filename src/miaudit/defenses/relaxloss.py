"""RelaxLoss (Chen, Yu and Fritz, "RelaxLoss: Defending Membership Inference Attacks without
Losing Utility", ICLR 2022; reference code github.com/DingfanChen/RelaxLoss).

Members are recognised by their low training loss. RelaxLoss keeps the mean training loss near
a target level ``alpha`` instead of driving it to 0, alternating by epoch:

* even epochs: minimise ``|CE - alpha|`` over the batch, i.e. gradient descent while the batch
  loss is above ``alpha`` and gradient *ascent* once it falls below;
* odd epochs: plain cross-entropy while the batch loss is above ``alpha``; below it, *posterior
  flattening*: the target of each record keeps the model's own true-class probability, clipped
  at ``upper``, and spreads the rest uniformly over the other classes, so the non-true classes
  are softened and the released vectors look alike for members and non-members.

As in the authors' code for non-image data (Purchase, Texas; ``alpha`` 0.8, ``upper`` 0.3 for
Purchase, which are the defaults here), flattening applies to every record of the batch.
One change: the flattened targets are detached (treated as labels, as in the paper's
Algorithm 1); the authors' code lets gradients flow through them.

Threat model: a training-time defense needing no extra data; an adaptive attacker trains its
shadows the same way.
"""

from __future__ import annotations

from typing import Any

from miaudit.defenses.base import DEFENSES, DefendedModel, Defense, TrainingTask
from miaudit.defenses.training import new_module, require_torch_model, torch_classifier, train_module


def flattened_targets(proba: Any, y: Any, upper: float) -> Any:
    """Soft targets: ``min(p_y, upper)`` on the true class, the rest spread evenly (detached)."""
    import torch

    c = proba.shape[1]
    p_true = proba.detach()[torch.arange(len(y)), y].clamp(0.0, upper)
    rest = ((1.0 - p_true) / (c - 1)).unsqueeze(1).expand(-1, c).clone()
    rest[torch.arange(len(y)), y] = p_true
    return rest


def relaxloss_loss(alpha: float, upper: float) -> Any:
    """RelaxLoss's batch loss for :func:`miaudit.defenses.training.train_module`."""

    def loss(model: Any, xb: Any, yb: Any, epoch: int) -> Any:
        import torch
        import torch.nn.functional as F

        logits = model(xb)
        ce = F.cross_entropy(logits, yb)
        if epoch % 2 == 0:
            return (ce - alpha).abs()  # ascent below alpha, descent above
        if ce > alpha:
            return ce
        soft = flattened_targets(torch.softmax(logits, dim=1), yb, upper)
        return -(soft * torch.log_softmax(logits, dim=1)).sum(dim=1).mean()

    return loss


@DEFENSES.register("relaxloss")
class RelaxLoss(Defense):
    """RelaxLoss (Chen, Yu & Fritz, ICLR 2022): ``alpha`` the target mean training loss (> 0),
    ``upper`` the highest true-class probability a flattened target keeps (in (0, 1])."""

    name = "relaxloss"
    paper = "Chen, Yu & Fritz, ICLR 2022 (RelaxLoss)"
    stage = "training"
    defaults = {"alpha": 0.8, "upper": 0.3}

    def validate(self) -> None:
        self._number("alpha", low=1e-6)
        self._number("upper", low=1e-6, high=1.0)

    def build(self, task: TrainingTask) -> DefendedModel:
        """Train the task's architecture from its seed's initial weights with RelaxLoss."""
        require_torch_model(task, self.name)
        if task.num_classes < 2:
            from miaudit.errors import ConfigError

            raise ConfigError("defense 'relaxloss' needs at least 2 classes")
        alpha, upper = self.params["alpha"], self.params["upper"]
        module = new_module(task)
        priv = task.private_idx
        train_module(module, task.x[priv], task.y[priv], task.recipe, seed=task.seed, loss=relaxloss_loss(alpha, upper))
        return DefendedModel(torch_classifier(module, task), {"alpha": alpha, "upper": upper})
