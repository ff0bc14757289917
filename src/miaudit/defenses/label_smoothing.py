"""Label smoothing (Szegedy, Vanhoucke, Ioffe, Shlens and Wojna, "Rethinking the Inception
Architecture for Computer Vision", CVPR 2016, section 7), used as a membership-inference
baseline by RelaxLoss (Chen, Yu & Fritz, ICLR 2022) and HAMP (Chen & Pattabiraman, NDSS 2024).

The model trains on cross-entropy to smoothed targets ``(1 - s) * onehot(y) + s / C`` instead of
the one-hot label (``torch.nn.functional.cross_entropy(..., label_smoothing=s)``, the same
formula), so it is never pushed to probability 1 on its training records; the gap between the
confidence on members and on non-members, which metric attacks read, narrows.

Threat model: a training-time defense needing no extra data; an adaptive attacker trains its
shadows with the same smoothing.
"""

from __future__ import annotations

from typing import Any

from miaudit.defenses.base import DEFENSES, DefendedModel, Defense, TrainingTask
from miaudit.defenses.training import new_module, require_torch_model, torch_classifier, train_module


def smoothed_cross_entropy(smoothing: float) -> Any:
    """The batch loss ``cross-entropy(f(x), (1 - s) onehot(y) + s / C)`` for :func:`train_module`."""

    def loss(model: Any, xb: Any, yb: Any, epoch: int) -> Any:
        import torch.nn.functional as F

        return F.cross_entropy(model(xb), yb, label_smoothing=smoothing)

    return loss


@DEFENSES.register("label-smoothing")
class LabelSmoothing(Defense):
    """Cross-entropy to smoothed labels (Szegedy et al., CVPR 2016). ``smoothing`` in [0, 1):
    the share of each target spread uniformly over all classes (0 is the undefended loss)."""

    name = "label-smoothing"
    paper = "Szegedy et al., CVPR 2016 (label smoothing; MIA baseline in Chen et al., ICLR 2022)"
    stage = "training"
    defaults = {"smoothing": 0.1}

    def validate(self) -> None:
        self._number("smoothing", low=0, high=0.999)

    def build(self, task: TrainingTask) -> DefendedModel:
        """Train the task's architecture from its seed's initial weights with the smoothed loss."""
        require_torch_model(task, self.name)
        s = self.params["smoothing"]
        module = new_module(task)
        priv = task.private_idx
        train_module(module, task.x[priv], task.y[priv], task.recipe, seed=task.seed, loss=smoothed_cross_entropy(s))
        return DefendedModel(torch_classifier(module, task), {"smoothing": s})
