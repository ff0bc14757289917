"""False-alarm rate of the verdict on null targets, through the whole audit core.

    python tools/null_verdicts.py [N] [RECORDS]

Each of N audits gets precomputed outputs independent of membership (Dirichlet probabilities
over 10 classes, random labels, RECORDS rows, half of them members) and runs every attack an
outputs-only audit permits; the verdict must say "leaks" in at most 5% of them. Memorising
targets (members' true class at probability 0.98) are audited as many times and must always
leak. Prints both rates and the levels seen.
"""

from __future__ import annotations

import collections
import sys

import numpy as np

from miaudit.core.sources import TargetSource
from miaudit.experiments import AuditConfig, run_audit
from miaudit.targets.external import PrecomputedOutputs


def _verdict(labels: np.ndarray, member: np.ndarray, proba: np.ndarray):
    outputs = PrecomputedOutputs(labels=labels, is_member=member, probabilities=proba)
    config = AuditConfig(dataset="null", n_bootstrap=0, target=TargetSource("outputs", outputs))
    return run_audit(config, progress=False).record().verdict


def main(n_audits: int = 200, n: int = 600, classes: int = 10) -> None:
    rng = np.random.default_rng(2026)
    null_levels, leaky_levels = collections.Counter(), collections.Counter()
    null_leaks = leaky_leaks = 0
    for _ in range(n_audits):
        labels, member = rng.integers(0, classes, n), rng.permutation(np.arange(n) < n // 2)
        v = _verdict(labels, member, rng.dirichlet(np.ones(classes), n))
        null_leaks += v.leaks
        null_levels[v.level] += 1
        proba = rng.dirichlet(np.ones(classes), n)
        proba[member] = 0.02 / (classes - 1)
        proba[member, labels[member]] = 0.98
        v = _verdict(labels, member, proba)
        leaky_leaks += v.leaks
        leaky_levels[v.level] += 1
    tol = 3 * np.sqrt(0.05 * 0.95 / n_audits)
    print(f"null targets: {null_leaks}/{n_audits} = {null_leaks / n_audits:.3f} declared leaking (bound 0.05 + {tol:.3f}); levels {dict(null_levels)}")
    print(f"memorising targets: {leaky_leaks}/{n_audits} declared leaking; levels {dict(leaky_levels)}")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))
