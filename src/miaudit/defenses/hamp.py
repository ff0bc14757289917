"""HAMP (Chen and Pattabiraman, "Overconfidence is a Dangerous Thing: Mitigating Membership
Inference Attacks by Enforcing Less Confident Prediction", NDSS 2024; reference code
github.com/DependableSystemsLab/MIA_defense_HAMP).

Three parts, as in the authors' code (``train-hamp.py``, ``attack.py::alter_output``):

1. **High-entropy soft labels.** Every training label becomes a soft label whose true class has
   probability ``p`` and whose other classes share ``1 - p`` evenly, with ``p`` chosen so that the
   label's entropy is ``gamma * log C`` (``gamma``, the paper's entropy threshold, in (0, 1); the
   authors step ``p`` down from 1 by 0.01, here ``p`` is the exact root, found by bisection).
2. **Entropy regularisation.** The model minimises ``KL(soft label || f(x)) - alpha * H(f(x))``
   over its training records, which rewards less confident predictions.
3. **Output modification at test time.** For each query the model also scores a random input
   (uniform 0/1 features for binary data as in the authors' code, else uniform within each
   feature's range on the training records); the released vector holds those random-input
   scores, sorted, in the positions given by the ranking of the query's own scores. The
   predicted label (and the whole ranking) is kept; the values carry no trace of the record.
   The random input is drawn from a generator seeded by the defense's seed and the record's
   bytes, so a repeated query gets the same answer. ``modify_output=false`` releases the
   trained model's own probabilities (the authors' ``isModifyOutput`` flag).

Defaults are the authors' Location30 settings (``train-all.sh``: entropy percentile 0.5,
alpha 0.001). The KL term is the batch mean of the per-record divergence (the paper's loss);
the authors' ``F.kl_div`` default also divides by the number of classes.

Threat model: a training-time defense whose released model also changes its outputs; it needs
no extra data. An adaptive attacker trains its shadows the same way and queries them through
the same output modification.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from miaudit.defenses.base import DEFENSES, DefendedModel, Defense, TrainingTask
from miaudit.defenses.training import new_module, require_torch_model, torch_classifier, train_module


def soft_label_entropy(p: float, num_classes: int) -> float:
    """Entropy (nats) of ``p`` on one class and ``(1 - p) / (C - 1)`` on each other class."""
    rest = (1.0 - p) / (num_classes - 1)
    return -sum(v * math.log(v) for v in (p, *([rest] * (num_classes - 1))) if v > 0)


def top_probability(num_classes: int, gamma: float) -> float:
    """The true-class probability ``p`` in [1/C, 1] whose soft label has entropy ``gamma log C``."""
    target = gamma * math.log(num_classes)
    low, high = 1.0 / num_classes, 1.0  # entropy falls from log C to 0 on this interval
    for _ in range(100):
        mid = 0.5 * (low + high)
        if soft_label_entropy(mid, num_classes) >= target:
            low = mid
        else:
            high = mid
    return low


def hamp_soft_labels(y: np.ndarray, num_classes: int, gamma: float) -> np.ndarray:
    """One high-entropy soft label per record (float32 rows summing to 1)."""
    p = top_probability(num_classes, gamma)
    soft = np.full((len(y), num_classes), (1.0 - p) / (num_classes - 1), dtype=np.float64)
    soft[np.arange(len(y)), y] = p
    return soft.astype(np.float32)


def hamp_loss(alpha: float) -> Any:
    """``KL(soft || f(x)) - alpha * H(f(x))``, batch means, for :func:`train_module`."""

    def loss(model: Any, xb: Any, soft: Any, epoch: int) -> Any:
        import torch

        log_p = torch.log_softmax(model(xb), dim=1)
        kl = (soft * (torch.log(soft.clamp_min(1e-12)) - log_p)).sum(dim=1).mean()
        entropy = -(log_p.exp() * log_p).sum(dim=1).mean()
        return kl - alpha * entropy

    return loss


@dataclass(frozen=True)
class RandomInputs:
    """How HAMP draws a random input: per-feature bounds, and whether features are 0/1."""

    low: np.ndarray
    high: np.ndarray
    binary: bool
    seed: int

    def like(self, x: np.ndarray) -> np.ndarray:
        """One random input per row of ``x``, drawn from that row's own seeded generator."""
        out = np.empty((len(x), *self.low.shape), dtype=np.float32)
        for i, row in enumerate(np.ascontiguousarray(x, dtype=np.float32)):
            rng = np.random.default_rng([self.seed, zlib.crc32(row.tobytes())])
            draw = rng.integers(0, 2, size=self.low.shape) if self.binary else rng.uniform(self.low, self.high)
            out[i] = draw
        return out


def rank_preserving_release(proba: np.ndarray, random_proba: np.ndarray) -> np.ndarray:
    """Row i: ``random_proba[i]`` sorted, placed in the order of ``proba[i]``'s ranking."""
    out = np.empty_like(random_proba)
    order = np.argsort(proba, axis=1, kind="stable")
    np.put_along_axis(out, order, np.sort(random_proba, axis=1), axis=1)
    return out


@DEFENSES.register("hamp")
class HAMP(Defense):
    """HAMP (Chen & Pattabiraman, NDSS 2024): ``gamma`` the soft labels' entropy as a share of
    log C, in (0, 1); ``alpha`` >= 0 the entropy regulariser's weight; ``modify_output`` whether
    queries get the rank-preserving random-input scores."""

    name = "hamp"
    paper = "Chen & Pattabiraman, NDSS 2024 (HAMP)"
    stage = "training"
    defaults = {"gamma": 0.5, "alpha": 0.001, "modify_output": True}

    def validate(self) -> None:
        self._number("gamma", low=1e-6, high=0.999)
        self._number("alpha", low=0)
        if not isinstance(self.params["modify_output"], bool):
            from miaudit.errors import ConfigError

            raise ConfigError(f"defense 'hamp': modify_output must be true or false, got {self.params['modify_output']!r}")

    def build(self, task: TrainingTask) -> DefendedModel:
        """Train on high-entropy soft labels with the entropy regulariser; wrap the output step."""
        from miaudit.defenses.output import DefendedOutputs
        from miaudit.models.seeding import derive_seed

        require_torch_model(task, self.name)
        priv = task.private_idx
        gamma, alpha = self.params["gamma"], self.params["alpha"]
        soft = hamp_soft_labels(task.y[priv], task.num_classes, gamma)
        module = new_module(task)
        train_module(module, task.x[priv], soft, task.recipe, seed=task.seed, loss=hamp_loss(alpha))
        model = torch_classifier(module, task)
        info = {"gamma": gamma, "alpha": alpha, "soft_label_top": top_probability(task.num_classes, gamma),
                "modify_output": self.params["modify_output"]}  # fmt: skip
        if not self.params["modify_output"]:
            return DefendedModel(model, info)
        x = np.asarray(task.x[priv], dtype=np.float32).reshape(len(priv), -1)
        binary = bool(np.isin(x, (0.0, 1.0)).all())
        shape = task.input_shape
        state = RandomInputs(
            x.min(axis=0).reshape(shape), x.max(axis=0).reshape(shape), binary, derive_seed(task.seed, "hamp/random-inputs")
        )
        return DefendedModel(DefendedOutputs(model, self, state), info)  # type: ignore[arg-type]

    def release(self, wrapper: Any, x: np.ndarray, proba: np.ndarray) -> np.ndarray:
        """What a query releases: the random inputs' scores in the query's ranking."""
        random_proba = np.asarray(wrapper.base.predict_proba(wrapper.state.like(x)), dtype=np.float64)
        return rank_preserving_release(proba, random_proba)
