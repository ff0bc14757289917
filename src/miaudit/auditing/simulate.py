"""Known-answer canaries: scores released by exactly epsilon-DP randomized response of each coin,
or by a Gaussian mechanism (exactly mu-GDP).

Used to check the bounds of this package (tests, ``benchmarks/auditing_bounds.py``): the true
epsilon is known, so a lower bound above it is a failure and the gap below it is the bound's slack.
"""

from __future__ import annotations

import numpy as np
from scipy import special

from miaudit.errors import ConfigError


def randomized_response_canaries(epsilon: float, m: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``m`` canaries with fair secret coins and scores from epsilon-DP randomized response (nats).

    Each score is the coin with probability ``e^epsilon / (1 + e^epsilon)`` and its negation
    otherwise, plus a uniform jitter in [0, 0.5) drawn independently of everything else (it orders
    ties and carries no information). Returns ``(scores, coins)``; the release is exactly
    (epsilon, 0)-DP in each coin. ``numpy.random.default_rng(seed)`` draws everything.
    """
    if not np.isfinite(epsilon) or epsilon < 0 or int(m) < 1:
        raise ConfigError(f"need a finite epsilon >= 0 and m >= 1, got {epsilon!r}, {m!r}")
    rng = np.random.default_rng(seed)
    coins = rng.random(int(m)) < 0.5
    truthful = rng.random(int(m)) < special.expit(epsilon)
    bit = np.where(truthful, coins, ~coins).astype(np.float64)
    return bit + 0.5 * rng.random(int(m)), coins


def gaussian_canaries(mu: float, m: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``m`` canaries with fair secret coins and scores ``coin * mu + N(0, 1)``: exactly mu-GDP in each coin.

    Each score is a Gaussian mechanism of sensitivity ``mu`` and unit noise on its coin, so its
    trade-off is exactly ``f_mu`` (Dong, Roth & Su 2022) and its epsilon at delta is
    :func:`miaudit.auditing.gdp.gdp_epsilon` of ``mu``. Returns ``(scores, coins)``;
    ``numpy.random.default_rng(seed)`` draws everything.
    """
    if not np.isfinite(mu) or mu < 0 or int(m) < 1:
        raise ConfigError(f"need a finite mu >= 0 and m >= 1, got {mu!r}, {m!r}")
    rng = np.random.default_rng(seed)
    coins = rng.random(int(m)) < 0.5
    return coins * float(mu) + rng.normal(size=int(m)), coins
