"""ML-Leaks, Adversary III: model and data independent, no shadow model (Salem et al., NDSS 2019).

Threat model: the top-1 probability only; no model, training or data knowledge.

Score = the target's largest probability (a model is more confident on its training records).
The attacker sets the threshold without any data: it GENERATES ``n_generated`` (1000) random
records, which cannot be members, queries the target with them, and takes the ``percentile``-th
(90th) percentile of their maximum probabilities; a record is called a member when its maximum
probability is at least that high, i.e. about 10% of non-members are flagged. Random records are
drawn feature by feature, uniformly within the range the scored records span; when every feature
of the scored records is 0 or 1, they are random bits with the scored records' mean density.

The generated queries go through :class:`TargetAccess`: they count against the query budget and
are included, amortised, in ``queries_per_record``. The threshold source is "reference data"
(generated non-member references).
"""

from __future__ import annotations

import numpy as np

from miaudit.attacks.attack_models import query_top_k
from miaudit.attacks.base import ATTACKS, Attack, AttackResult
from miaudit.attacks.knowledge import AttackerKnowledge
from miaudit.errors import ConfigError
from miaudit.targets.access import TargetAccess
from miaudit.threat import OutputAccess, Requirements
from miaudit.seeds import stream_rng


def generate_non_members(x: np.ndarray, n: int, rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """``n`` random records shaped like ``x``; returns them and the name of the rule used."""
    flat = np.asarray(x, dtype=np.float32).reshape(len(x), -1)
    if np.isin(flat, (0.0, 1.0)).all():
        density = float(flat.mean())
        gen = (rng.random((n, flat.shape[1])) < density).astype(np.float32)
        rule = f"random bits with density {density:.3f}"
    else:
        low, high = flat.min(axis=0), flat.max(axis=0)
        gen = (low + (high - low) * rng.random((n, flat.shape[1]))).astype(np.float32)
        rule = "uniform within the scored records' feature ranges"
    return gen.reshape((n, *x.shape[1:])), rule


@ATTACKS.register("ml-leaks-3")
class MLLeaks3Attack(Attack):
    name = "ml-leaks-3"
    paper = "Salem et al., NDSS 2019 (Adversary III)"
    kind = "metric"
    requirements = Requirements(output=OutputAccess.TOP_K, min_top_k=1)

    def __init__(self, n_generated: int = 1000, percentile: float = 90.0) -> None:
        if isinstance(n_generated, bool) or not isinstance(n_generated, int) or n_generated < 1:
            raise ConfigError(f"n_generated must be a positive integer, got {n_generated!r}")
        if not 0.0 <= float(percentile) <= 100.0:
            raise ConfigError(f"percentile must be in [0, 100], got {percentile!r}")
        self.n_generated = n_generated
        self.percentile = float(percentile)
        self.seed = 0

    def fit(self, knowledge: AttackerKnowledge) -> "MLLeaks3Attack":
        self.seed = knowledge.seed  # nothing to learn: only the randomness of the generated records
        return self

    def score(self, access: TargetAccess, x: np.ndarray, y: np.ndarray) -> AttackResult:
        if len(x) == 0:
            raise ConfigError("ml-leaks-3 needs records to score: it draws its random records within their range")
        before = access.queries
        rng = stream_rng(self.seed, "ml-leaks-3/queries")
        generated, rule = generate_non_members(x, self.n_generated, rng)
        reference = query_top_k(access, generated, 1)[:, 0]
        scores = query_top_k(access, x, 1)[:, 0]
        return self._result(
            access,
            before,
            len(y),
            scores,
            threshold=float(np.percentile(reference, self.percentile)),
            threshold_source="reference data",
            details={
                "generated_records": self.n_generated,
                "generator": rule,
                "percentile": self.percentile,
                "threshold_rule": f"{self.percentile:g}th percentile of the top-1 probability on generated records",
            },
        )
