"""SELENA (Tang, Mahloujifar, Song, Shejwalkar, Nasr, Houmansadr and Mittal, "Mitigating
Membership Inference Attacks by Self-Distillation Through a Novel Ensemble Architecture",
USENIX Security 2022; reference code github.com/inspire-group/MIAdefenseSELENA).

Two steps:

1. **Split-AI.** ``K`` sub-models are trained on subsets of the private records: each record is
   left out of ``L`` sub-models chosen at random (so each sub-model trains on about
   ``(K - L) / K`` of the records). For a training record, Split-AI answers with the average
   of the ``L`` sub-models that did *not* train on it, so its answer on members looks like an
   answer on non-members.
2. **Self-distillation.** One model of the target's architecture trains on the private records
   with Split-AI's answers as soft labels (cross-entropy to them, i.e. KL up to a constant) and
   is the released model; it never sees a hard label.

As in the authors' code (``Distillation/train.py``), the soft label is the mean of the ``L``
left-out sub-models' softmax outputs (HAMP's re-implementation for Location30 averages logits
instead). Defaults ``K`` 25, ``L`` 10 are the authors'. The sub-models
train with the task's recipe through the cached undefended training path, each from its own
seed.

Threat model: a training-time defense needing no extra data; K + 1 trainings. An adaptive
attacker builds its shadows the same way.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from miaudit.defenses.base import DEFENSES, DefendedModel, Defense, TrainingTask
from miaudit.defenses.dmp import train_student
from miaudit.defenses.training import new_module, plain_model, require_torch_model, torch_classifier


def left_out(n: int, k: int, l: int, rng: np.random.Generator) -> np.ndarray:
    """A boolean (n, K) matrix: ``out[i, j]`` iff record i is left out of sub-model j (L per row)."""
    out = np.zeros((n, k), dtype=bool)
    for i in range(n):
        out[i, rng.choice(k, size=l, replace=False)] = True
    return out


def split_ai_soft_labels(proba: np.ndarray, out: np.ndarray) -> np.ndarray:
    """Split-AI's answer per record: the mean of the left-out sub-models' probability vectors;
    ``proba`` is (K, n, C), ``out`` (n, K)."""
    weights = out.T[:, :, None].astype(np.float64)  # (K, n, 1)
    return ((proba * weights).sum(axis=0) / weights.sum(axis=0)).astype(np.float32)


@DEFENSES.register("selena")
class SELENA(Defense):
    """SELENA (Tang et al., USENIX Security 2022): ``K`` sub-models (>= 2), each record left out
    of ``L`` of them (1 <= L < K), then self-distillation into one released model."""

    name = "selena"
    paper = "Tang et al., USENIX Security 2022 (SELENA)"
    stage = "training"
    defaults = {"K": 25, "L": 10}

    def validate(self) -> None:
        from miaudit.errors import ConfigError

        self._number("K", low=2, high=1000, integer=True)
        self._number("L", low=1, integer=True)
        if self.params["L"] >= self.params["K"]:
            raise ConfigError(f"defense 'selena': L must be below K (each sub-model needs records), got L={self.params['L']}, K={self.params['K']}")

    def build(self, task: TrainingTask) -> DefendedModel:
        """Train the K sub-models, label each private record by its left-out ones, distil."""
        from miaudit.models.seeding import derive_seed

        require_torch_model(task, self.name)
        k, l = self.params["K"], self.params["L"]
        priv = task.private_idx
        out = left_out(len(priv), k, l, np.random.default_rng(derive_seed(task.seed, "selena/split")))
        x_priv = task.x[priv]
        proba = np.empty((k, len(priv), task.num_classes))
        for j in range(k):
            sub_task = dataclasses.replace(task, seed=derive_seed(task.seed, f"selena/sub-model/{j}"))
            sub = plain_model(sub_task, indices=priv[~out[:, j]])
            proba[j] = sub.predict_proba(x_priv)
        soft = split_ai_soft_labels(proba, out)
        student_seed = derive_seed(task.seed, "selena/student")
        student = train_student(new_module(task, student_seed), x_priv, soft, task.recipe, seed=student_seed)
        sizes = (~out).sum(axis=0)
        return DefendedModel(torch_classifier(student, task), {
            "K": k, "L": l, "sub_model_records_min": int(sizes.min()), "sub_model_records_max": int(sizes.max()),
        })  # fmt: skip
