"""LiRA as the audit attack of a one-run audit: reference models calibrate every canary.

A canary's loss on the target says little on its own when canaries differ in how hard they are
to fit (an out-of-distribution record is never fitted well, a natural one almost always is).
LiRA (Carlini et al., "Membership Inference Attacks From First Principles", S&P 2022) compares
the target's logit-scaled confidence ``phi`` on each canary with the same statistic on reference
models trained by the auditor the same way as the target:

- ``lira`` (online): ``K`` references, each canary IN exactly ``K/2`` of them (the authors'
  balanced design), score ``log N(phi; IN) - log N(phi; OUT)``;
- ``lira-offline``: ``K`` references on the base records alone (every canary OUT), score
  ``log Phi((phi - mu_out) / sigma_out)``.

Threat model (the DP auditor's): the auditor trains the target and knows every record but the
target's coins; the references' memberships are drawn from their own seeded stream, independent
of those coins, so a canary's score is a function of the target model and of constants fixed
before its coin was drawn, which is what the one-run bound needs. One global variance (pooled
over the canaries) unless ``K >= 64``, as the attack's ``variance="auto"``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from miaudit.errors import ConfigError

REFERENCE_ATTACKS = ("lira", "lira-offline")
"""Audit attacks that need the auditor's reference models (``AuditTraining.references``)."""


def reference_memberships(m: int, references: int, seed: int, *, online: bool) -> np.ndarray:
    """(references, m) bool: which canaries reference k trains on. Online: every column holds
    exactly ``references / 2`` True, placed by a seeded permutation per canary; offline: none."""
    from miaudit.models.seeding import derive_seed

    if isinstance(references, bool) or not isinstance(references, int) or references < 1:
        raise ConfigError(f"references must be a whole number >= 1, got {references!r}")
    if not online:
        return np.zeros((references, m), dtype=bool)
    if references < 2 or references % 2:
        raise ConfigError(f"online LiRA needs an even number of reference models >= 2 (each canary IN half of them), got {references}")
    rng = np.random.default_rng(derive_seed(int(seed), "auditing/reference-memberships"))
    half = np.arange(references) < references // 2
    return np.stack([rng.permutation(half) for _ in range(m)], axis=1)


def canary_phi(model: Any, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """LiRA's statistic ``log p_y - log sum_{i != y} p_i`` of each canary on ``model`` (float64)."""
    from miaudit.attacks.lira import logit_scaled_confidence, model_logits

    return logit_scaled_confidence(model_logits(model, x), np.asarray(y))


def lira_canary_scores(target: Any, references: list[Any], memberships: np.ndarray, x: np.ndarray, y: np.ndarray,
                       *, online: bool) -> np.ndarray:  # fmt: skip
    """LiRA's score (higher = more likely IN) of every canary ``(x, y)`` on ``target``, from the
    reference models and their ``memberships`` (:func:`reference_memberships`)."""
    from miaudit.attacks.lira import lira_offline_scores, lira_online_scores, use_per_record

    phi_target = canary_phi(target, x, y)
    phi_refs = np.stack([canary_phi(r, x, y) for r in references])
    per_record = use_per_record("auto", len(references))
    if online:
        return lira_online_scores(phi_target, phi_refs, memberships, ~memberships, per_record=per_record)
    return lira_offline_scores(phi_target, phi_refs, per_record=per_record)
