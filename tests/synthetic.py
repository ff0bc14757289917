"""Synthetic audit settings where the right answer is known, shared by the attack tests.

- ``independent``: every record has the same features, labels are random. Whatever the
  target learns, its output depends on the label alone, never on membership: every attack
  must score AUC 0.5 up to sampling noise.
- ``memorizing``: unique random features with random labels and a random forest of fully grown
  trees: a member gets the votes of the ~63% of trees whose bootstrap holds it, on its own
  label; a non-member's votes scatter over the classes. Both the true-class probability and
  the top probability separate them (a single tree would not do for label-free attacks such
  as entropy: it is one-hot on members and non-members alike).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from miaudit.data.split import SplitSizes
from miaudit.experiments import AuditConfig, run_audit

KINDS = ("independent", "memorizing")


def write_synthetic(folder: Path, kind: str, *, n: int = 2400, d: int = 8, classes: int = 10, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    x = np.zeros((n, d), np.float32) if kind == "independent" else rng.random((n, d), dtype=np.float32)
    path = folder / f"{kind}.npz"
    np.savez(path, x=x, y=y)
    return path


# White-box attacks need a torch target: a one-hidden-layer MLP that memorizes the random labels
# of 32-dimensional random records (members), or, on identical records, learns the label prior.
WHITE_BOX_TARGET = {
    "model": "mlp",
    "model_options": {"hidden": [256], "activation": "relu"},
    "recipe": {"optimizer": "adam", "lr": 3e-3, "epochs": 60, "batch_size": 64},
    "d": 32,
}


# Smaller query counts for the label-only attacks, so that the tree targets (slow to query by the
# hundred thousand rows) keep the suite fast, and a shorter distillation for the loss trajectory;
# the algorithms are those of the defaults. Tests that run every attack use these too.
FAST_OPTIONS = {
    "label-noise": {"n_noise": 20, "max_calibration": 150},
    "label-augmentation": {"n_augment": 10, "max_calibration": 150},
    "label-boundary": {"max_iter": 1, "num_evals": 20, "max_calibration": 100},
    "loss-trajectory": {"epochs": 6, "max_epochs": 12},
}


def audit_synthetic(folder: Path, kind: str, attacks: tuple[str, ...], *, threat_model: str = "gray-box", seed: int = 0, n_shadow_models: int = 2, white_box: bool = False) -> dict[str, float]:
    """AUC of each attack on the synthetic data of ``kind``: against a tree-based target, or with
    ``white_box`` against :data:`WHITE_BOX_TARGET` (a torch MLP, which white-box access needs)."""
    tree = "decision_tree" if kind == "independent" else "random_forest"
    result = run_audit(
        AuditConfig(
            dataset=str(write_synthetic(folder, kind, seed=seed, d=WHITE_BOX_TARGET["d"] if white_box else 8)),
            model=WHITE_BOX_TARGET["model"] if white_box else tree,
            model_options=WHITE_BOX_TARGET["model_options"] if white_box else None,
            recipe=WHITE_BOX_TARGET["recipe"] if white_box else {},
            seed=seed,
            split=SplitSizes(0.25, 0.25, 0.5),
            threat_model=threat_model,
            attacks=attacks,
            attack_options={name: FAST_OPTIONS[name] for name in attacks if name in FAST_OPTIONS},
            n_shadow_models=n_shadow_models,
            n_bootstrap=0,
            use_cache=False,
        ),
        progress=False,
    )
    return {o.result.attack: o.metrics.auc for o in result.outcomes}
