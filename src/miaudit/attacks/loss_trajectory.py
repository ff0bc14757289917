"""Loss-trajectory attack, TrajectoryMIA (Liu, Wen, Backes and Zhang, "Membership Inference Attacks
by Exploiting Loss Trajectory", ACM CCS 2022).

Threat model: gray box, as the other shadow-model attacks: the full probability vector, the
target's architecture and training recipe, and same-distribution data (the attacker's pool).

The attacker splits its pool in three seeded thirds: a distillation set, the shadow model's
training set (shadow members) and held-out records (shadow non-members). It trains one shadow
model like the target on its members (through :func:`miaudit.attacks.train_models.train_models`,
so an adaptive attacker's shadow carries the target's defense), then distils both the shadow and
the target into fresh models of the target's architecture on the distillation set, the soft labels
being the teacher's probability vectors there (the target's are queries, counted), for ``epochs``
epochs (:func:`miaudit.attacks.distillation.distil_trajectories`). A record's trajectory is its
cross-entropy loss under each epoch's snapshot of the distilled model, plus its loss under the
original model (the shadow, or the target through queries): ``epochs + 1`` numbers. As in the
authors' code, the distillation set is disjoint from the shadow's members and non-members, and
the target's distilled model never sees an evaluated record.

An attack network (:func:`miaudit.attacks.nn_attack.train_attack_network`: 512-256-128 ReLU,
Adam, early stopping on a held-out fifth; the authors use 512-128-32 with SGD for 100 epochs)
learns member vs non-member from the shadow's trajectories and scores the target's:
the score is its P(member), the decision threshold 1/2.

Deviations from the paper, for a CPU audit: ``epochs`` defaults to :data:`DEFAULT_EPOCHS` (20;
the authors distil for 100 epochs on CIFAR-size images); one shadow model, as the authors use. A
target whose architecture is not a registered torch architecture (a scikit-learn estimator, a
user's model without a torch stand-in) has no epochs to distil with: its students are the
stand-in :data:`STAND_IN_STUDENT` MLP, said so in ``details``. A fixed split's shadow subsets
(``AttackerKnowledge.shadow_subsets``) are not used: the attack needs its own three parts. The
shadow trains on a third of the pool, not at the target's training-set size (the authors' shadow
and target are of one size): on a small pool the shadow sees fewer records, and the attack
network learns from losses shifted from the target's.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from miaudit.attacks import distillation
from miaudit.attacks.attack_models import AttackModelAttack
from miaudit.attacks.base import ATTACKS, AttackResult
from miaudit.attacks.knowledge import AttackerKnowledge, ModelSpec
from miaudit.attacks.loss import log_true_class_probability
from miaudit.attacks.nn_attack import network_member_probability, train_attack_network
from miaudit.attacks.shadow_models import GRAY_BOX_SHADOW_TRAINING
from miaudit.attacks.train_models import train_models
from miaudit.errors import ConfigError
from miaudit.targets.access import TargetAccess

DEFAULT_EPOCHS = 20
"""Distillation epochs (the authors' 100, scaled down for a CPU)."""

STAND_IN_STUDENT: dict[str, Any] = {"name": "mlp", "options": {}}
"""The student for a target that is not a registered torch architecture: the default MLP."""

MIN_POOL = 12


def _seed(seed: int, stream: str) -> int:
    from miaudit.models.seeding import derive_seed

    return derive_seed(seed, f"loss-trajectory/{stream}") % 2**31


def pool_thirds(n_records: int, *, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(distillation, shadow members, shadow non-members)``: disjoint seeded thirds of ``range(n_records)``."""
    perm = np.random.default_rng(_seed(seed, "thirds")).permutation(n_records)
    a, b = n_records // 3, 2 * n_records // 3
    return np.sort(perm[:a]), np.sort(perm[a:b]), np.sort(perm[b:])


def student_of(spec: ModelSpec) -> tuple[Any, Any, bool]:
    """``(ArchConfig, TrainingRecipe, stand_in)``: the distilled models' architecture and recipe:
    the target's when it is a registered torch architecture, else :data:`STAND_IN_STUDENT`."""
    from miaudit.models import ARCHITECTURES, ArchConfig, TrainingRecipe

    recipe = spec.recipe if isinstance(spec.recipe, TrainingRecipe) else TrainingRecipe()
    if spec.name in ARCHITECTURES:
        return ArchConfig(spec.name, dict(spec.options)), recipe, False
    return ArchConfig(STAND_IN_STUDENT["name"], dict(STAND_IN_STUDENT["options"])), recipe, True


def trajectory_features(distilled_losses: np.ndarray, original_proba: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``(n, epochs + 1)``: the distilled snapshots' losses, then the original model's loss."""
    original = -log_true_class_probability(original_proba, y)
    return np.column_stack([np.asarray(distilled_losses, dtype=np.float64), original])


@ATTACKS.register("loss-trajectory")
class LossTrajectoryAttack(AttackModelAttack):
    name = "loss-trajectory"
    paper = "Liu et al., CCS 2022 (TrajectoryMIA)"
    requirements = GRAY_BOX_SHADOW_TRAINING

    def __init__(self, epochs: int = DEFAULT_EPOCHS, max_epochs: int = 30, patience: int = 4) -> None:
        if int(epochs) < 1:
            raise ConfigError(f"loss-trajectory: epochs must be >= 1, got {epochs}")
        self.epochs = int(epochs)
        self.max_epochs = max_epochs
        self.patience = patience
        self.network: object | None = None
        self.training: dict[str, float] = {}
        self._distill: tuple[np.ndarray, ...] | None = None
        self._student: tuple[Any, Any, bool] | None = None
        self._seed = 0
        self._num_classes = 0

    def fit(self, knowledge: AttackerKnowledge) -> "LossTrajectoryAttack":
        if knowledge.pool_x is None or knowledge.pool_y is None:
            raise ConfigError("loss-trajectory needs same-distribution data (the attacker's pool); the threat model gives none")
        if knowledge.model is None or knowledge.model.recipe is None:
            raise ConfigError("loss-trajectory needs the target's architecture and training recipe (gray box)")
        pool_x, pool_y = knowledge.pool_x, knowledge.pool_y
        if len(pool_y) < MIN_POOL:
            raise ConfigError(f"the attacker's pool has {len(pool_y)} records; loss-trajectory needs at least {MIN_POOL}")
        self._seed, self._num_classes = knowledge.seed, knowledge.num_classes
        distill_idx, in_idx, out_idx = pool_thirds(len(pool_y), seed=knowledge.seed)
        (shadow,) = train_models(
            knowledge.model, pool_x, pool_y, [in_idx], [_seed(knowledge.seed, "shadow")],
            num_classes=knowledge.num_classes, cache=knowledge.cache, data_fingerprint=knowledge.pool_fingerprint,
            executor=knowledge.executor,
        )  # fmt: skip
        members = shadow.in_idx  # a defense needing reference data keeps part of in_idx for it
        self._student = student_of(knowledge.model)
        self._distill = (pool_x[distill_idx], pool_y[distill_idx])
        traced = np.concatenate([members, out_idx])
        losses = self._trajectories(shadow.model.predict_proba(pool_x[distill_idx]), pool_x[traced], pool_y[traced], "shadow")
        features = trajectory_features(losses, shadow.model.predict_proba(pool_x[traced]), pool_y[traced])
        labels = np.concatenate([np.ones(len(members), np.int64), np.zeros(len(out_idx), np.int64)])
        self.network, self.training = train_attack_network(
            features, labels, seed=knowledge.seed, max_epochs=self.max_epochs, patience=self.patience
        )
        return self

    def _trajectories(self, soft_labels: np.ndarray, x: np.ndarray, y: np.ndarray, role: str) -> np.ndarray:
        """The distilled snapshots' losses on ``(x, y)``, the student trained on the distillation set only."""
        assert self._student is not None and self._distill is not None
        arch, recipe, _ = self._student
        (losses,) = distillation.distil_trajectories(
            arch, recipe, self._distill[0], soft_labels, [(x, y)],
            epochs=self.epochs, num_classes=self._num_classes, seed=_seed(self._seed, f"student/{role}"),
        )  # fmt: skip
        return losses

    def score(self, access: TargetAccess, x: np.ndarray, y: np.ndarray) -> AttackResult:
        self._check_fitted(self.network)
        assert self._distill is not None and self._student is not None
        before = access.queries
        soft = access.predict_proba(self._distill[0])  # the target's soft labels: queries
        losses = self._trajectories(soft, x, y, "target")
        features = trajectory_features(losses, access.predict_proba(x), y)
        scores = network_member_probability(self.network, features)
        arch, _, stand_in = self._student
        return self._membership_result(access, before, len(y), scores, {
            "distillation_epochs": self.epochs,
            "distillation_records": len(self._distill[0]),
            "student": arch.name + (" (stand-in: the target is not a torch architecture)" if stand_in else ""),
            "shadow_models": 1,
            **self.training,
        })  # fmt: skip
