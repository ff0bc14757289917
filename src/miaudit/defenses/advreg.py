"""Adversarial regularization (Nasr, Shokri and Houmansadr, "Machine Learning with Membership
Privacy using Adversarial Regularization", ACM CCS 2018).

A min-max game between the classifier f and an inference model h(f(x), y) -> P(member). Before
every classifier step, h takes ``k`` steps maximising its gain on a batch of the private
(training) records, labelled members, and a batch of the defender's reference records,
labelled non-members; then f takes one step on

    cross-entropy(f(x), y) + lambda * mean h(f(x), y)   over a private batch,

i.e. it lowers the inference model's belief that its members are members while fitting them.
The paper writes the regulariser as the inference model's gain, log h; its reference
implementation (and this one) use h itself, which is bounded: with log h the classifier can
drive its loss to minus infinity by making h output 0 and stops fitting the data. h follows the
paper's two-branch design (the prediction vector and the one-hot label in separate fully
connected branches, joined by two layers), narrowed for CPU budgets.

Defaults (lambda 1, k 5, inference learning rate 3e-3) were chosen on a small Location30 run
(400 training records): with k 1 and lr 1e-3 the inference model stayed at chance and the
regulariser did nothing; with lambda 3 the classifier stopped fitting (test accuracy near chance).

Threat model: a training-time defense needing reference data disjoint from the private set;
an adaptive attacker trains its shadows the same way on its own data.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from miaudit.defenses.base import DEFENSES, DefendedModel, Defense, TrainingTask
from miaudit.defenses.training import new_module, require_torch_model, torch_classifier, train_module


def inference_model(num_classes: int, seed: int) -> Any:
    """h(prediction vector, one-hot label) -> membership logit."""
    import torch
    from torch import nn

    class Inference(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.pred = nn.Sequential(nn.Linear(num_classes, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU())
            self.label = nn.Sequential(nn.Linear(num_classes, 64), nn.ReLU())
            self.head = nn.Sequential(nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, 1))

        def forward(self, proba: Any, onehot: Any) -> Any:
            return self.head(torch.cat([self.pred(proba), self.label(onehot)], dim=1))[:, 0]

    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return Inference()


@DEFENSES.register("advreg")
class AdversarialRegularization(Defense):
    name = "advreg"
    paper = "Nasr, Shokri & Houmansadr, CCS 2018"
    stage = "training"
    needs_reference = True
    defaults = {"lam": 1.0, "k": 5, "inference_lr": 3e-3}

    def validate(self) -> None:
        self._number("lam", low=0)
        self._number("k", low=1, integer=True)
        self._number("inference_lr", low=1e-12)

    def build(self, task: TrainingTask) -> DefendedModel:
        import torch
        import torch.nn.functional as F

        from miaudit.models.seeding import derive_seed

        require_torch_model(task, self.name)
        ref = task.reference(self.name)
        priv = task.private_idx
        c = task.num_classes
        x_in = torch.from_numpy(np.ascontiguousarray(task.x[priv], dtype=np.float32))
        y_in = torch.from_numpy(np.asarray(task.y[priv], dtype=np.int64))
        x_ref = torch.from_numpy(np.ascontiguousarray(task.x[ref], dtype=np.float32))
        y_ref = torch.from_numpy(np.asarray(task.y[ref], dtype=np.int64))
        h = inference_model(c, derive_seed(task.seed, "advreg/inference"))
        h_opt = torch.optim.Adam(h.parameters(), lr=self.params["inference_lr"])
        draws = torch.Generator().manual_seed(derive_seed(task.seed, "advreg/batches"))
        bs = task.recipe.batch_size
        lam, k = self.params["lam"], self.params["k"]
        gains: list[float] = []

        def inference_turn(model: Any) -> None:
            model.eval()
            for _ in range(k):
                i = torch.randint(len(y_in), (min(bs, len(y_in)),), generator=draws)
                j = torch.randint(len(y_ref), (min(bs, len(y_ref)),), generator=draws)
                with torch.no_grad():
                    p_in = torch.softmax(model(x_in[i]), dim=1)
                    p_ref = torch.softmax(model(x_ref[j]), dim=1)
                logit_in = h(p_in, F.one_hot(y_in[i], c).float())
                logit_ref = h(p_ref, F.one_hot(y_ref[j], c).float())
                # The gain: log h on members + log(1 - h) on reference records, maximised.
                gain = -(F.binary_cross_entropy_with_logits(logit_in, torch.ones_like(logit_in))
                         + F.binary_cross_entropy_with_logits(logit_ref, torch.zeros_like(logit_ref)))  # fmt: skip
                h_opt.zero_grad()
                (-gain).backward()
                h_opt.step()
                gains.append(float(gain.detach()))
            model.train()

        def loss(model: Any, xb: Any, yb: Any, epoch: int) -> Any:
            inference_turn(model)
            logits = model(xb)
            member_logit = h(torch.softmax(logits, dim=1), F.one_hot(yb, c).float())
            # mean h(f(x), y) on members: what the inference model believes, lowered by the classifier.
            return F.cross_entropy(logits, yb) + lam * torch.sigmoid(member_logit).mean()

        module = new_module(task)
        train_module(module, task.x[priv], task.y[priv], task.recipe, seed=task.seed, loss=loss)
        tail = gains[-max(1, len(gains) // 10) :]
        return DefendedModel(torch_classifier(module, task), {
            "lambda": lam, "k": k, "reference_records": int(len(ref)),
            "final_inference_gain": float(np.mean(tail)) if tail else None,
        })  # fmt: skip
