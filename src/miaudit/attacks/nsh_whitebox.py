"""NSH white-box attack (Nasr, Shokri and Houmansadr, "Comprehensive Privacy Analysis of Deep
Learning: Passive and Active White-box Inference Attacks against Centralized and Federated
Learning", IEEE S&P 2019; survey section 4.6), in the paper's supervised setting.

Threat model: white box (the parameters, hence losses, activations and gradients) plus part of
the target's training set: the attacker knows some members (``knowledge.known_members_*``) and
takes as many records of its own same-distribution pool as known non-members.

Features per record (:mod:`miaudit.attacks.white_box_features`): loss, one-hot label, output
vector, activations of the last hidden layers, per-record gradients of the last layers' parameters.
The attack network has one branch per feature (fully connected, ReLU, dropout) whose 64-unit
outputs are concatenated and encoded by 256-128-64-1 layers to P(member). The paper's gradient
branch is a convolution spanning each column of the weight-gradient matrix; here a fully
connected branch on the flattened gradient (a deviation: simpler, and the same input).

Every branch's inputs are standardised with the known records' mean and spread. Training: Adam
(lr 1e-3), batches of 64, early stopping on a held-out fifth of the known records. The target's
features of the known records are queried in ``score`` (``fit`` has no access to the target);
those queries are reported apart from the per-record cost of scoring.

Memory: features of the scored records are streamed in batches of ``batch_size`` and scored
batch by batch; only the known records' features are held (records x chosen parameters floats).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from miaudit.attacks.early_stopping import train_early_stopping
from miaudit.attacks.base import ATTACKS, Attack, AttackResult
from miaudit.attacks.knowledge import AttackerKnowledge
from miaudit.attacks.options import whole
from miaudit.attacks.white_box_features import FeatureLayout, collect_features, stream_features
from miaudit.errors import ConfigError
from miaudit.models.seeding import derive_seed
from miaudit.targets.access import TargetAccess
from miaudit.threat import DataKnowledge, OutputAccess, Requirements

BRANCH_OUT = 64


def build_network(dims: dict[str, int], seed: int) -> Any:
    """The attack network: a branch per feature, concatenated, then the encoder."""
    import torch
    from torch import nn

    class NSHNetwork(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.names = sorted(dims)
            self.branches = nn.ModuleDict(
                {
                    name.replace(".", "_").replace(":", "__"): nn.Sequential(
                        nn.Linear(dims[name], 256 if name.startswith("gradient") else 128),
                        nn.ReLU(),
                        nn.Dropout(0.2),
                        nn.Linear(256 if name.startswith("gradient") else 128, BRANCH_OUT),
                        nn.ReLU(),
                    )
                    for name in self.names
                }
            )
            self.encoder = nn.Sequential(
                nn.Linear(BRANCH_OUT * len(self.names), 256), nn.ReLU(), nn.Dropout(0.2),
                nn.Linear(256, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, 1),
            )  # fmt: skip

        def forward(self, feats: dict[str, torch.Tensor]) -> torch.Tensor:
            outs = [self.branches[n.replace(".", "_").replace(":", "__")](feats[n]) for n in self.names]
            return self.encoder(torch.cat(outs, dim=1))[:, 0]

    # The layers' initialisers (and dropout in training) draw from torch's global stream: seeded
    # here, inside train_network's fork_rng, so the caller's global state is left as it was.
    torch.manual_seed(derive_seed(seed, "nsh/init") % 2**63)
    return NSHNetwork()


class Standardiser:
    """Per-feature mean and spread of the known records, applied to every batch."""

    def __init__(self, feats: dict[str, np.ndarray]) -> None:
        self.mean = {k: v.mean(axis=0) for k, v in feats.items()}
        self.std = {k: np.where(v.std(axis=0) > 1e-8, v.std(axis=0), 1.0) for k, v in feats.items()}

    def __call__(self, feats: dict[str, np.ndarray]) -> dict[str, Any]:
        import torch

        return {k: torch.from_numpy(((v - self.mean[k]) / self.std[k]).astype(np.float32)) for k, v in feats.items()}


def train_network(
    feats: dict[str, np.ndarray], member: np.ndarray, *, seed: int, max_epochs: int, patience: int, batch_size: int = 64, lr: float = 1e-3
) -> tuple[Any, Standardiser, dict[str, float]]:
    """Train on the known records with early stopping on a held-out fifth; returns (network, standardiser, facts)."""
    import torch
    import torch.nn.functional as F

    rng = np.random.default_rng(derive_seed(seed, "nsh/validation"))
    perm = rng.permutation(len(member))
    n_val = max(1, len(member) // 5)
    val, tr = perm[:n_val], perm[n_val:]
    scale = Standardiser({k: v[tr] for k, v in feats.items()})
    x_tr = scale({k: v[tr] for k, v in feats.items()})
    x_val = scale({k: v[val] for k, v in feats.items()})
    y_tr = torch.from_numpy(member[tr].astype(np.float32))
    y_val = torch.from_numpy(member[val].astype(np.float32))
    with torch.random.fork_rng(devices=[]):  # initialisation and dropout: seeded, not leaked to the caller
        net = build_network({k: v.shape[1] for k, v in feats.items()}, seed)
        opt = torch.optim.Adam(net.parameters(), lr=lr)
        order = torch.Generator().manual_seed(derive_seed(seed, "nsh/order") % 2**63)
        facts = train_early_stopping(
            net, opt, order, len(tr),
            lambda idx: F.binary_cross_entropy_with_logits(net({k: v[idx] for k, v in x_tr.items()}), y_tr[idx]),
            lambda: F.binary_cross_entropy_with_logits(net(x_val), y_val),
            batch_size=batch_size, max_epochs=max_epochs, patience=patience,
        )  # fmt: skip
    return net, scale, facts


@ATTACKS.register("nsh")
class NSHWhiteBoxAttack(Attack):
    name = "nsh"
    paper = "Nasr, Shokri & Houmansadr, IEEE S&P 2019"
    kind = "white box (supervised)"
    requirements = Requirements(
        output=OutputAccess.WHITE_BOX,
        architecture=True,
        parameters=True,
        data=DataKnowledge.PARTIAL_TRAINING_SET,
    )

    def __init__(
        self,
        gradient_layers: int = 1,
        activation_layers: int = 1,
        batch_size: int = 128,
        max_known: int = 1000,
        max_epochs: int = 60,
        patience: int = 6,
    ) -> None:
        self.gradient_layers = whole(self.name, "gradient_layers", gradient_layers)
        self.activation_layers = whole(self.name, "activation_layers", activation_layers, 0)
        self.batch_size = whole(self.name, "batch_size", batch_size)
        self.max_known = whole(self.name, "max_known", max_known, 10)
        self.max_epochs = whole(self.name, "max_epochs", max_epochs)
        self.patience = whole(self.name, "patience", patience)
        self.known: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self.seed = 0
        self.num_classes = 0

    def fit(self, knowledge: AttackerKnowledge) -> "NSHWhiteBoxAttack":
        if knowledge.known_members_x is None or knowledge.known_members_y is None:
            raise ConfigError("nsh needs known members of the target's training set (partial-training-set data knowledge)")
        if knowledge.pool_x is None or knowledge.pool_y is None:
            raise ConfigError("nsh needs the attacker's pool for known non-members")
        rng = np.random.default_rng(derive_seed(knowledge.seed, "nsh/known"))
        k = min(len(knowledge.known_members_y), len(knowledge.pool_y), self.max_known // 2)
        if k < 5:
            raise ConfigError(f"nsh needs at least 5 known members and 5 pool records, got {k}")
        mem = rng.choice(len(knowledge.known_members_y), k, replace=False)
        non = rng.choice(len(knowledge.pool_y), k, replace=False)
        self.known = (
            np.concatenate([knowledge.known_members_x[mem], knowledge.pool_x[non]]),
            np.concatenate([knowledge.known_members_y[mem], knowledge.pool_y[non]]),
            np.arange(2 * k) < k,
        )
        self.seed = knowledge.seed
        self.num_classes = knowledge.num_classes
        return self

    def score(self, access: TargetAccess, x: np.ndarray, y: np.ndarray) -> AttackResult:
        import torch

        if self.known is None:
            raise ConfigError("call fit() before score(): nsh learns from known members")
        layout = FeatureLayout.last_layers(
            access, self.num_classes, n_gradient=self.gradient_layers, n_activation=self.activation_layers
        )
        kx, ky, kmember = self.known
        start = access.queries
        train_feats = collect_features(access, kx, ky, layout, batch_size=self.batch_size)
        training_queries = access.queries - start
        net, scale, facts = train_network(
            train_feats, kmember, seed=self.seed, max_epochs=self.max_epochs, patience=self.patience
        )
        del train_feats
        before = access.queries
        scores = []
        with torch.no_grad():
            for batch in stream_features(access, x, np.asarray(y), layout, batch_size=self.batch_size):
                scores.append(torch.sigmoid(net(scale(batch))).double().numpy())
        result = self._result(
            access, before, len(y), np.concatenate(scores) if scores else np.zeros(0),
            threshold=0.5, threshold_source="known members",
            details={"gradient_layers": list(layout.gradient_layers), "activation_layers": list(layout.activation_layers),
                     "known_records": int(len(ky)), "training_queries": int(training_queries),
                     "batch_size": self.batch_size, **facts},
        )  # fmt: skip
        return result
