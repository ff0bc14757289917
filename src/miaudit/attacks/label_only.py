"""Label-only attacks (Choquette-Choo, Tramèr, Carlini and Papernot, "Label-Only Membership
Inference Attacks", ICML 2021; survey section 4.5).

Threat model: the target answers predicted labels only (``--output label``); the attacker knows
the architecture and training recipe and holds same-distribution data, on which it trains shadow
("source") models to calibrate. Every target query goes through ``TargetAccess.predict_label``,
so these attacks never see a probability; each reports its queries per record.

- ``label-augmentation``: the target's correctness on perturbed copies of a record (images: flips
  and shifts; binary features: random bit flips; continuous features: Gaussian noise), the 0/1
  vector fed to a per-class logistic-regression attack model trained on shadow models;
- ``label-noise``: the fraction of the record and ``n_noise`` noisy copies still classified
  correctly, thresholded where the shadow models' balanced accuracy is best;
- ``label-boundary``: the L2 distance to the decision boundary found with a HopSkipJump-style
  decision-only search (:mod:`miaudit.attacks.decision_boundary`), misclassified records at 0,
  thresholded on shadow models.

The perturbation strength (bits flipped, noise scale) is chosen on the shadow models among
:data:`miaudit.attacks.perturbations.STRENGTHS`, as the paper tunes it on its source models.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from miaudit.attacks.attack_models import attack_model_seed, fit_attack_model, member_probability
from miaudit.attacks.base import ATTACKS, Attack, AttackResult
from miaudit.attacks.decision_boundary import LabelOracle, SearchBudget, boundary_distances
from miaudit.attacks.knowledge import AttackerKnowledge
from miaudit.attacks.options import whole
from miaudit.attacks.perturbations import NOISE, STRENGTHS, Perturb, data_kind, image_augmentations
from miaudit.attacks.shadow_models import train_shadow_models
from miaudit.errors import ConfigError
from miaudit.metrics import best_threshold
from miaudit.models.seeding import derive_seed
from miaudit.targets.access import TargetAccess
from miaudit.threat import DataKnowledge, OutputAccess, Requirements

CHOICE_COPIES = 20
QUERY_ROWS = 20_000

LABEL_ONLY_SHADOW_TRAINING = Requirements(
    output=OutputAccess.LABEL,
    architecture=True,
    training_recipe=True,
    data=DataKnowledge.SAME_DISTRIBUTION,
    shadow_models=True,
)
"""Labels only from the target; shadow models trained like it (architecture + recipe) on the pool."""


@dataclass(frozen=True)
class ShadowLabels:
    """One shadow model as a label oracle, with pool records it did (1) and did not (0) train on."""

    labels_of: LabelOracle
    x: np.ndarray
    y: np.ndarray
    is_member: np.ndarray


def shadow_label_sets(knowledge: AttackerKnowledge, max_per_side: int) -> list[ShadowLabels]:
    """Train the shadow models; for each, up to ``max_per_side`` members and as many non-members."""
    shadows = train_shadow_models(knowledge, knowledge.n_shadow_models)
    rng = np.random.default_rng(derive_seed(knowledge.seed, "label-only/calibration"))
    out = []
    for s in shadows:
        k = min(max_per_side, len(s.in_idx), len(s.out_idx))
        idx = np.concatenate([rng.choice(s.in_idx, k, replace=False), rng.choice(s.out_idx, k, replace=False)])
        model = s.model
        out.append(
            ShadowLabels(
                lambda x, m=model: np.asarray(m.predict_proba(x)).argmax(axis=1),
                knowledge.pool_x[idx],
                knowledge.pool_y[idx],
                np.arange(2 * k) < k,
            )
        )
    return out


def balanced_accuracy_at_best(scores: np.ndarray, is_member: np.ndarray) -> tuple[float, float]:
    """``(threshold, balanced accuracy)`` of "member iff score >= threshold" at its best threshold."""
    t = best_threshold(scores, is_member)
    pred = scores >= t
    return t, 0.5 * (pred[is_member].mean() + (~pred[~is_member]).mean())


def perturbed_correctness(
    labels_of: LabelOracle, x: np.ndarray, y: np.ndarray, perturb: Perturb, strength: float, n_copies: int, rng: np.random.Generator
) -> np.ndarray:
    """``(n, 1 + n_copies)`` 0/1: column 0 the record itself, then ``n_copies`` perturbed copies (one query each).

    Copies are queried many at a time (about ``QUERY_ROWS`` rows per call): per-call overheads,
    not rows, dominate some targets (a scikit-learn forest, a model behind HTTP)."""
    y = np.asarray(y)
    cols = [labels_of(x) == y]
    per_call = max(1, QUERY_ROWS // max(len(x), 1))
    done = 0
    while done < n_copies:
        k = min(per_call, n_copies - done)
        copies = np.concatenate([perturb(x, strength, rng) for _ in range(k)])
        cols.extend(np.split(labels_of(copies) == np.tile(y, k), k))
        done += k
    return np.stack(cols, axis=1).astype(np.float64)


def augmented_correctness(labels_of: LabelOracle, x: np.ndarray, y: np.ndarray, max_shift: int) -> np.ndarray:
    """``(n, augmentations)`` 0/1 correctness on the image augmentations (identity included)."""
    return np.stack([labels_of(a) == y for a in image_augmentations(x, max_shift)], axis=1).astype(np.float64)


class _LabelOnlyAttack(Attack):
    kind = "label only (shadow models)"
    paper = "Choquette-Choo et al., ICML 2021"
    requirements = LABEL_ONLY_SHADOW_TRAINING

    def __init__(self, max_calibration: int = 500) -> None:
        self.max_calibration = whole(self.name, "max_calibration", max_calibration)
        self.seed: int | None = None
        self.data_kind = ""
        self.perturb: Perturb | None = None
        self.strength: float | None = None

    def _check_fitted(self) -> None:
        if self.seed is None:
            raise ConfigError(f"call fit() before score(): {self.name} calibrates on shadow models")

    def _rng(self, stream: str) -> np.random.Generator:
        assert self.seed is not None
        return np.random.default_rng(derive_seed(self.seed, f"{self.name}/{stream}"))

    def _choose_strength(self, shadows: list[ShadowLabels], n_copies: int) -> tuple[float, dict[str, float]]:
        """The strength whose mean correctness separates the shadows' members best (no target query);
        each candidate is tried with at most ``CHOICE_COPIES`` copies, to keep the choice cheap."""
        n_copies = min(n_copies, CHOICE_COPIES)
        tried: dict[str, float] = {}
        best = (-1.0, STRENGTHS[self.data_kind][0])
        for s in STRENGTHS[self.data_kind]:
            vals, member = self._shadow_features(shadows, s, n_copies, "choose")
            _, acc = balanced_accuracy_at_best(vals.mean(axis=1), member)
            tried[f"{s:g}"] = float(acc)
            best = max(best, (acc, s))
        return best[1], tried

    def _shadow_features(self, shadows: list[ShadowLabels], strength: float, n_copies: int, stream: str) -> tuple[np.ndarray, np.ndarray]:
        assert self.perturb is not None
        rng = self._rng(f"shadow/{stream}/{strength:g}")
        feats = [perturbed_correctness(s.labels_of, s.x, s.y, self.perturb, strength, n_copies, rng) for s in shadows]
        return np.concatenate(feats), np.concatenate([s.is_member for s in shadows])

    def _fit_common(self, knowledge: AttackerKnowledge) -> list[ShadowLabels]:
        if knowledge.pool_x is None:
            raise ConfigError(f"{self.name} needs the attacker's pool to train shadow models")
        self.seed = knowledge.seed
        self.data_kind = data_kind(knowledge.pool_x)
        self.perturb = NOISE.get(self.data_kind)(knowledge.pool_x)
        return shadow_label_sets(knowledge, self.max_calibration)


@ATTACKS.register("label-augmentation")
class LabelAugmentationAttack(_LabelOnlyAttack):
    """Correctness on augmented copies -> per-class attack model (Choquette-Choo et al., section 4.2)."""

    name = "label-augmentation"

    def __init__(self, n_augment: int = 30, max_shift: int = 1, min_class_records: int = 20, max_calibration: int = 500) -> None:
        super().__init__(max_calibration)
        self.n_augment = whole(self.name, "n_augment", n_augment)
        self.max_shift = whole(self.name, "max_shift", max_shift)
        self.min_class_records = whole(self.name, "min_class_records", min_class_records, 2)
        self.models: dict[int, Any] = {}
        self.global_model: Any = None
        self.tried: dict[str, float] = {}

    def _features(self, labels_of: LabelOracle, x: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if self.data_kind == "image":
            return augmented_correctness(labels_of, x, y, self.max_shift)
        assert self.perturb is not None and self.strength is not None
        return perturbed_correctness(labels_of, x, y, self.perturb, self.strength, self.n_augment, rng)

    def fit(self, knowledge: AttackerKnowledge) -> "LabelAugmentationAttack":
        shadows = self._fit_common(knowledge)
        if self.data_kind != "image":
            self.strength, self.tried = self._choose_strength(shadows, self.n_augment)
        rng = self._rng("shadow/fit")
        feats = np.concatenate([self._features(s.labels_of, s.x, s.y, rng) for s in shadows])
        member = np.concatenate([s.is_member for s in shadows]).astype(np.int64)
        labels = np.concatenate([s.y for s in shadows])
        seed = attack_model_seed(knowledge.seed, self.name)
        self.global_model = fit_attack_model("logreg", feats, member, seed=seed)
        self.models = {}
        for c in np.unique(labels):
            sel = labels == c
            # A class with few shadow records, or only one side, uses the model of all classes.
            if sel.sum() >= self.min_class_records and 0 < member[sel].sum() < sel.sum():
                self.models[int(c)] = fit_attack_model("logreg", feats[sel], member[sel], seed=seed)
        return self

    def score(self, access: TargetAccess, x: np.ndarray, y: np.ndarray) -> AttackResult:
        self._check_fitted()
        before = access.queries
        feats = self._features(access.predict_label, x, y, self._rng("target"))
        scores = member_probability(self.global_model, feats)
        for c, model in self.models.items():
            sel = y == c
            if sel.any():
                scores[sel] = member_probability(model, feats[sel])
        return self._result(
            access, before, len(y), scores, threshold=0.5, threshold_source="shadow models",
            details={
                "data_kind": self.data_kind,
                "copies_per_record": feats.shape[1],
                "strength": self.strength,
                "strengths_tried_shadow_balanced_accuracy": self.tried,
                "per_class_models": len(self.models),
            },
        )  # fmt: skip


@ATTACKS.register("label-noise")
class LabelNoiseAttack(_LabelOnlyAttack):
    """Fraction of noisy copies still classified correctly, thresholded on shadow models."""

    name = "label-noise"

    def __init__(self, n_noise: int = 100, max_calibration: int = 500) -> None:
        super().__init__(max_calibration)
        self.n_noise = whole(self.name, "n_noise", n_noise)
        self.threshold: float | None = None
        self.tried: dict[str, float] = {}

    def fit(self, knowledge: AttackerKnowledge) -> "LabelNoiseAttack":
        shadows = self._fit_common(knowledge)
        self.strength, self.tried = self._choose_strength(shadows, self.n_noise)
        feats, member = self._shadow_features(shadows, self.strength, self.n_noise, "fit")
        self.threshold, _ = balanced_accuracy_at_best(feats.mean(axis=1), member)
        return self

    def score(self, access: TargetAccess, x: np.ndarray, y: np.ndarray) -> AttackResult:
        self._check_fitted()
        assert self.perturb is not None and self.strength is not None
        before = access.queries
        feats = perturbed_correctness(access.predict_label, x, y, self.perturb, self.strength, self.n_noise, self._rng("target"))
        return self._result(
            access, before, len(y), feats.mean(axis=1), threshold=self.threshold, threshold_source="shadow models",
            details={"data_kind": self.data_kind, "copies_per_record": feats.shape[1], "strength": self.strength,
                     "strengths_tried_shadow_balanced_accuracy": self.tried},
        )  # fmt: skip


@ATTACKS.register("label-boundary")
class LabelBoundaryAttack(_LabelOnlyAttack):
    """Decision-only distance to the boundary (HopSkipJump-style), thresholded on shadow models."""

    name = "label-boundary"

    def __init__(
        self,
        max_iter: int = 3,
        num_evals: int = 50,
        init_tries: int = 10,
        binary_steps: int = 10,
        step_tries: int = 5,
        max_calibration: int = 250,
    ) -> None:
        super().__init__(max_calibration)
        counts = {"max_iter": (max_iter, 0), "num_evals": (num_evals, 1), "init_tries": (init_tries, 1),
                  "binary_steps": (binary_steps, 1), "step_tries": (step_tries, 1)}  # fmt: skip
        self.budget = SearchBudget(*(whole(self.name, k, v, low) for k, (v, low) in counts.items()))
        self.threshold: float | None = None
        self.low: np.ndarray | None = None
        self.high: np.ndarray | None = None

    def _distances(self, labels_of: LabelOracle, x: np.ndarray, y: np.ndarray, stream: str) -> tuple[np.ndarray, np.ndarray]:
        assert self.low is not None and self.high is not None
        return boundary_distances(labels_of, x, y, low=self.low, high=self.high, budget=self.budget, rng=self._rng(stream))

    def fit(self, knowledge: AttackerKnowledge) -> "LabelBoundaryAttack":
        shadows = self._fit_common(knowledge)
        flat = knowledge.pool_x.reshape(len(knowledge.pool_x), -1)  # type: ignore[union-attr]
        # The search stays inside the range the attacker's data spans (HopSkipJump's clip).
        self.low, self.high = flat.min(axis=0), flat.max(axis=0)
        self.high = np.where(self.high > self.low, self.high, self.low + 1.0)
        dists = [self._distances(s.labels_of, s.x, s.y, f"shadow/{i}")[0] for i, s in enumerate(shadows)]
        member = np.concatenate([s.is_member for s in shadows])
        self.threshold, _ = balanced_accuracy_at_best(np.concatenate(dists), member)
        return self

    def score(self, access: TargetAccess, x: np.ndarray, y: np.ndarray) -> AttackResult:
        self._check_fitted()
        before = access.queries
        dist, per_record = self._distances(access.predict_label, x, y, "target")
        return self._result(
            access, before, len(y), dist, threshold=self.threshold, threshold_source="shadow models",
            details={"max_queries_per_record": int(per_record.max(initial=0)),
                     "budget": vars(self.budget), "misclassified_at_zero": True},
        )  # fmt: skip
