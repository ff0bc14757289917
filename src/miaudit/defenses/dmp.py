"""Distillation for membership privacy, DMP (Shejwalkar and Houmansadr, "Membership Privacy for
Machine Learning Models Through Knowledge Transfer", AAAI 2021).

A teacher is trained on the private set as usual (the undefended model). It labels a
*reference* set, disjoint from the private set, with soft labels softmax(teacher logits / T).
The released student is trained only on those reference records and their soft labels
(cross-entropy to the soft labels, i.e. KL divergence up to a constant), so no gradient step
of the released model ever touches a private record; what it learns of them passes through the
teacher's predictions on other records. The paper also selects low-entropy reference records;
here the whole reference set is used.

Threat model: a training-time defense needing reference data; an adaptive attacker distils its
shadows the same way from its own data.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from miaudit.defenses.base import DEFENSES, DefendedModel, Defense, TrainingTask
from miaudit.defenses.training import new_module, plain_model, require_torch_model, torch_classifier, train_module


def soft_labels(teacher: Any, x: np.ndarray, temperature: float) -> np.ndarray:
    """softmax(teacher logits / T) per record, float32."""
    logits = np.asarray(teacher.predict_logits(x), dtype=np.float64) / temperature
    logits -= logits.max(axis=1, keepdims=True)
    p = np.exp(logits)
    return (p / p.sum(axis=1, keepdims=True)).astype(np.float32)


def soft_cross_entropy(model: Any, xb: Any, soft: Any, epoch: int) -> Any:
    import torch

    return -(soft * torch.log_softmax(model(xb), dim=1)).sum(dim=1).mean()


def train_student(module: Any, x_ref: np.ndarray, soft: np.ndarray, recipe: Any, *, seed: int) -> Any:
    """Train the student on the reference records and their soft labels only."""
    return train_module(module, x_ref, soft, recipe, seed=seed, loss=soft_cross_entropy)


@DEFENSES.register("dmp")
class DMP(Defense):
    name = "dmp"
    paper = "Shejwalkar & Houmansadr, AAAI 2021 (DMP)"
    stage = "training"
    needs_reference = True
    defaults = {"temperature": 4.0}

    def validate(self) -> None:
        self._number("temperature", low=1e-3)

    def build(self, task: TrainingTask) -> DefendedModel:
        from miaudit.models.seeding import derive_seed

        require_torch_model(task, self.name)
        ref = task.reference(self.name)
        teacher = plain_model(task)
        soft = soft_labels(teacher, task.x[ref], self.params["temperature"])
        student_seed = derive_seed(task.seed, "dmp/student")
        student = train_student(new_module(task, student_seed), task.x[ref], soft, task.recipe, seed=student_seed)
        return DefendedModel(torch_classifier(student, task), {
            "temperature": self.params["temperature"], "reference_records": int(len(ref)),
        })  # fmt: skip
