"""Gaussian noise on the released probabilities, a baseline for MemGuard (Jia et al., CCS 2019,
compare "random noise" in their evaluation): N(0, sigma^2) per class, clipped at 0 and
renormalised. Unlike MemGuard the noise is not crafted and may change the label.

The noise of a record is a function of the record (a hash of its bytes and the defense's
seed), so repeating a query returns the same vector and averaging queries gains nothing.
"""

from __future__ import annotations

import hashlib

import numpy as np

from miaudit.defenses.base import DEFENSES
from miaudit.defenses.output import DefendedOutputs, OutputDefense, renormalise


def record_generators(x: np.ndarray, seed: int, salt: bytes) -> list[np.random.Generator]:
    """One generator per record, seeded by a hash of its bytes, the seed and ``salt``."""
    gens = []
    for row in np.ascontiguousarray(x, dtype=np.float32).reshape(len(x), -1):
        digest = hashlib.sha256(salt + int(seed).to_bytes(8, "little", signed=True) + row.tobytes()).digest()
        gens.append(np.random.default_rng(int.from_bytes(digest[:8], "little")))
    return gens


@DEFENSES.register("gaussian-noise")
class GaussianNoise(OutputDefense):
    name = "gaussian-noise"
    paper = "baseline; cf. Jia et al., CCS 2019 (MemGuard), random-noise comparison"
    defaults = {"sigma": 0.05, "seed": 0}

    def validate(self) -> None:
        self._number("sigma", low=0)
        self._number("seed", low=0, integer=True)

    def release(self, wrapper: DefendedOutputs, x: np.ndarray, proba: np.ndarray) -> np.ndarray:
        if not len(x):
            return proba
        gens = record_generators(x, self.params["seed"], b"gaussian-noise")
        noise = np.stack([g.standard_normal(proba.shape[1]) for g in gens])
        return renormalise(np.clip(proba + self.params["sigma"] * noise, 0.0, None))
