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


def audit_synthetic(folder: Path, kind: str, attacks: tuple[str, ...], *, threat_model: str = "gray-box", seed: int = 0, n_shadow_models: int = 2) -> dict[str, float]:
    """AUC of each attack against a tree-based target on the synthetic data of ``kind``."""
    result = run_audit(
        AuditConfig(
            dataset=str(write_synthetic(folder, kind, seed=seed)),
            model="decision_tree" if kind == "independent" else "random_forest",
            seed=seed,
            split=SplitSizes(0.25, 0.25, 0.5),
            threat_model=threat_model,
            attacks=attacks,
            n_shadow_models=n_shadow_models,
            n_bootstrap=0,
            use_cache=False,
        ),
        progress=False,
    )
    return {o.result.attack: o.metrics.auc for o in result.outcomes}
