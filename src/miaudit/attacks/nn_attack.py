"""NN attack: a neural network on the sorted probability vector, as used by Jia et al. ("MemGuard:
Defending against Black-Box Membership Inference Attacks via Adversarial Examples", CCS 2019) and
Song and Mittal ("Systematic Evaluation of Privacy Risks of Machine Learning Models", USENIX
Security 2021).

Threat model: gray box: the full probability vector, the target's architecture and training
recipe, and same-distribution data (the attacker's pool) for shadow models.

One binary classifier for all classes: a fully connected network with hidden layers of 512, 256
and 128 ReLU units, whose input is the probability vector sorted in descending order (so it does
not depend on the label). It is trained on the shadow models' outputs on their members (1) and
non-members (0). The output layer has two logits under a softmax, which is a sigmoid of their
difference: the score is P(member).

Training: Adam (lr 1e-3), minibatches of 128, at most ``max_epochs`` (30) epochs, stopping when
the cross-entropy on a held-out 20% of the shadow attack data has not improved for ``patience``
(4) epochs, and keeping the weights of the best validation epoch. Initial weights and batch order
come from the attacker's seed.

Size tuning (``tune=True``, an addition to the papers, which fix the size): the network's width
``w`` (its layers are ``w, w/2, w/4, ...``), depth and learning rate are chosen by
:func:`miaudit.attacks.tuning.tune` on shadow 0 as a stand-in target: each trial trains the
network on the outputs of shadows 2, 3, ... (shadow 1, the stand-in's complementary twin, left
out) and is scored by its AUC on the stand-in's own members and non-members. The first trial is
the default (512, 3 layers, 1e-3). The final network then trains on every shadow with the
chosen values, which go in ``details``. Needs at least 4 shadow models.
"""

from __future__ import annotations


import numpy as np

from miaudit.attacks.attack_models import (
    AttackModelAttack,
    shadow_attack_data,
    sorted_top_k,
)
from miaudit.attacks.base import ATTACKS, AttackResult
from miaudit.attacks.early_stopping import train_early_stopping
from miaudit.attacks.knowledge import AttackerKnowledge
from miaudit.attacks.options import whole
from miaudit.attacks.shadow_models import GRAY_BOX_SHADOW_TRAINING, train_shadow_models
from miaudit.attacks.tuning import DEFAULT_TRIALS, FloatRange, IntRange, check_tuning_options, stand_in_target, tune
from miaudit.errors import ConfigError
from miaudit.targets.access import TargetAccess

HIDDEN = (512, 256, 128)
DEFAULT_LR = 1e-3
TUNING_SPACE = {"width": IntRange(32, 1024, log=True), "depth": IntRange(1, 3), "lr": FloatRange(1e-4, 1e-2, log=True)}


def tapered_layers(width: int, depth: int) -> tuple[int, ...]:
    """Hidden layer sizes ``width, width/2, ...`` (``depth`` of them, at least 2 units each)."""
    return tuple(max(2, int(width) >> i) for i in range(int(depth)))


def sorted_probabilities(proba: np.ndarray) -> np.ndarray:
    """Each probability vector sorted in descending order."""
    return sorted_top_k(proba, proba.shape[1])


def train_attack_network(
    features: np.ndarray,
    labels: np.ndarray,
    *,
    seed: int,
    max_epochs: int = 30,
    patience: int = 4,
    batch_size: int = 128,
    lr: float = 1e-3,
    validation: float = 0.2,
    hidden: tuple[int, ...] = HIDDEN,
) -> tuple[object, dict[str, float]]:
    """Train the network (``hidden`` layers, 512-256-128 by default) with early stopping; returns
    (module in eval mode, training facts)."""
    import torch
    import torch.nn.functional as F

    from miaudit.models import ArchConfig, new_model
    from miaudit.models.seeding import derive_seed, order_generator

    x = torch.from_numpy(np.ascontiguousarray(features, dtype=np.float32))
    y = torch.from_numpy(np.asarray(labels, dtype=np.int64))
    split_rng = np.random.default_rng(derive_seed(seed, "nn-attack/validation"))
    perm = split_rng.permutation(len(y))
    n_val = max(1, round(validation * len(y)))
    val_idx, train_idx = torch.from_numpy(perm[:n_val]), torch.from_numpy(perm[n_val:])
    x_tr, y_tr, x_val, y_val = x[train_idx], y[train_idx], x[val_idx], y[val_idx]

    model = new_model(ArchConfig("mlp", {"hidden": list(hidden), "activation": "relu"}), (x.shape[1],), 2, seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    order = order_generator(seed)
    facts = train_early_stopping(
        model, optimizer, order, len(y_tr),
        lambda idx: F.cross_entropy(model(x_tr[idx]), y_tr[idx]),
        lambda: F.cross_entropy(model(x_val), y_val),
        batch_size=batch_size, max_epochs=max_epochs, patience=patience,
    )  # fmt: skip
    return model, facts


def network_member_probability(model: object, features: np.ndarray) -> np.ndarray:
    import torch

    with torch.no_grad():
        logits = model(torch.from_numpy(np.ascontiguousarray(features, dtype=np.float32)))  # type: ignore[operator]
        return torch.softmax(logits, dim=1)[:, 1].double().numpy()


@ATTACKS.register("nn")
class NNAttack(AttackModelAttack):
    name = "nn"
    paper = "Jia et al., CCS 2019 (MemGuard); Song & Mittal, USENIX Security 2021"
    requirements = GRAY_BOX_SHADOW_TRAINING

    def __init__(self, max_epochs: int = 30, patience: int = 4, tune: bool = False, tune_trials: int = DEFAULT_TRIALS,
                 tune_objective: str = "auc") -> None:  # fmt: skip
        self.max_epochs = whole(self.name, "max_epochs", max_epochs)
        self.patience = whole(self.name, "patience", patience)
        if not isinstance(tune, bool):
            raise ConfigError(f"nn option tune must be true or false, got {tune!r}")
        self.tune = tune
        self.tune_trials, self.tune_objective = check_tuning_options(self.name, tune_trials, tune_objective)
        self.hidden: tuple[int, ...] = HIDDEN
        self.lr = DEFAULT_LR
        self.tuning: dict[str, object] = {}
        self.network: object | None = None
        self.training: dict[str, float] = {}
        self.n_shadow = 0

    def fit(self, knowledge: AttackerKnowledge) -> "NNAttack":
        self.n_shadow = knowledge.n_shadow_models
        shadows = train_shadow_models(knowledge, self.n_shadow)
        if self.tune:
            self._tune_size(shadows, knowledge)
        features, labels, _ = shadow_attack_data(shadows, knowledge.pool_x, knowledge.pool_y, sorted_probabilities)
        self.network, self.training = train_attack_network(
            features, labels, seed=knowledge.seed, max_epochs=self.max_epochs, patience=self.patience,
            hidden=self.hidden, lr=self.lr,
        )  # fmt: skip
        return self

    def _tune_size(self, shadows: list, knowledge: AttackerKnowledge) -> None:
        """Width, depth and learning rate chosen against shadow 0 as stand-in target (attacker's own truth)."""
        stand_in = stand_in_target(shadows, seed=knowledge.seed, attack=self.name)
        features, labels, _ = shadow_attack_data(stand_in.references, knowledge.pool_x, knowledge.pool_y, sorted_probabilities)
        scored = sorted_probabilities(stand_in.model.predict_proba(np.asarray(knowledge.pool_x)[stand_in.scored]))

        def evaluate(params: dict[str, float]) -> np.ndarray:
            network, _ = train_attack_network(
                features, labels, seed=knowledge.seed, max_epochs=self.max_epochs, patience=self.patience,
                hidden=tapered_layers(int(params["width"]), int(params["depth"])), lr=float(params["lr"]),
            )  # fmt: skip
            return network_member_probability(network, scored)

        defaults = {"width": HIDDEN[0], "depth": len(HIDDEN), "lr": DEFAULT_LR}
        tuned = tune(self.name, TUNING_SPACE, defaults, evaluate, stand_in, seed=knowledge.seed,
                     n_trials=self.tune_trials, objective=self.tune_objective)  # fmt: skip
        self.hidden = tapered_layers(int(tuned.params["width"]), int(tuned.params["depth"]))
        self.lr = float(tuned.params["lr"])
        self.tuning = tuned.details()

    def score(self, access: TargetAccess, x: np.ndarray, y: np.ndarray) -> AttackResult:
        self._check_fitted(self.network)
        before = access.queries
        scores = network_member_probability(self.network, sorted_probabilities(access.predict_proba(x)))
        return self._membership_result(access, before, len(y), scores, {
            "network": "-".join(map(str, self.hidden)),
            "lr": self.lr,
            "shadow_models": self.n_shadow,
            **self.training,
            **self.tuning,
        })  # fmt: skip
