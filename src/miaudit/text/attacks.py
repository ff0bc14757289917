"""Membership-inference attacks on causal language models, scored from token statistics.

Each attack reads the target's :class:`~miaudit.text.stats.TokenStats` of the evaluated
documents (and, where it needs them, the texts or a reference LM's statistics of the same
documents) and returns one float64 score per document, **higher = more likely a member**,
the convention of :mod:`miaudit.metrics`. Papers' reference code often returns the opposite
sign (lower = member); the formulas below are stated in ours.

Threat models (``threat``): every attack needs the target's log-probabilities of each token of
the document (gray box: a scoring API, not only generated text). ``min-k-plus-plus`` also needs
the whole next-token distribution at each position (its mean and variance of log p), ``zlib``
the document's text, ``reference`` a reference LM trained on similar but other text.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from miaudit.errors import ConfigError, InputError
from miaudit.registry import Registry
from miaudit.text.stats import TokenStats

TOKEN_LOGPROBS = "the target's log-probability of each token of the document"
FULL_DISTRIBUTION = "the target's whole next-token distribution at each position (its mean and variance of log p)"
TEXT = "the document's text"
REFERENCE_LM = "a reference LM trained on other text from the same distribution, scoring the same documents"

Scorer = Callable[..., np.ndarray]


@dataclass(frozen=True)
class TextAttack:
    """One attack: its name, the paper it follows, what it needs, and its scoring function.

    ``score(target, texts, reference=None, **options)`` returns float64 scores, higher = member.
    """

    name: str
    paper: str
    threat: tuple[str, ...]
    needs_reference: bool
    scorer: Scorer

    def score(
        self,
        target: Sequence[TokenStats],
        texts: Sequence[str],
        reference: Sequence[TokenStats] | None = None,
        **options: Any,
    ) -> np.ndarray:
        _check_stats(target, texts, "target")
        if self.needs_reference:
            if reference is None:
                raise ConfigError(f"text attack {self.name!r} needs a reference LM's token statistics of the same documents; pass reference=")
            _check_stats(reference, texts, "reference")
        return np.asarray(self.scorer(target, texts, reference, **options), dtype=np.float64)


TEXT_ATTACKS: Registry[TextAttack] = Registry("text attack")


def _register(name: str, paper: str, threat: tuple[str, ...], *, needs_reference: bool = False) -> Callable[[Scorer], Scorer]:
    def add(scorer: Scorer) -> Scorer:
        TEXT_ATTACKS.add(name, TextAttack(name, paper, threat, needs_reference, scorer))
        return scorer

    return add


def _check_stats(stats: Sequence[TokenStats], texts: Sequence[str], who: str) -> None:
    if len(stats) != len(texts):
        raise InputError(f"{len(stats)} {who} token statistics for {len(texts)} documents; give one per document, in order")
    if not all(isinstance(s, TokenStats) for s in stats):
        raise InputError(f"{who} statistics must be TokenStats (from miaudit.text.lm.token_statistics)")


def _mean_logprob(stats: Sequence[TokenStats]) -> np.ndarray:
    return np.array([s.logprob.mean() for s in stats], dtype=np.float64)


def _check_k(k: object) -> float:
    if isinstance(k, bool) or not isinstance(k, int | float) or not 0.0 < k <= 1.0:
        raise ConfigError(f"k is the fraction of tokens kept, in (0, 1] (0.2 = the lowest 20%), got {k!r}")
    return float(k)


def _lowest_mean(values: np.ndarray, k: float) -> float:
    """Mean of the lowest ``floor(k * n)`` values, at least one (so short documents still score)."""
    keep = max(1, math.floor(k * len(values)))
    return float(np.sort(values)[:keep].mean())


@_register("loss", "Yeom et al., IEEE CSF 2018; Carlini et al., USENIX Security 2021", (TOKEN_LOGPROBS,))
def loss_scores(target: Sequence[TokenStats], texts: Sequence[str], reference: None = None) -> np.ndarray:
    """Mean log-probability of the document's tokens (nats per token): minus the LM's loss."""
    return _mean_logprob(target)


@_register("zlib", "Carlini et al., Extracting Training Data from Large Language Models, USENIX Security 2021", (TOKEN_LOGPROBS, TEXT))
def zlib_scores(target: Sequence[TokenStats], texts: Sequence[str], reference: None = None) -> np.ndarray:
    """Mean token log-probability divided by the zlib-compressed length of the UTF-8 text (bytes).

    Carlini et al. rank by log-perplexity / zlib entropy (low = memorised); this is its negative.
    Text that compresses well (repetitive) is likely to any LM, so the division discounts it.
    """
    compressed = np.array([len(zlib.compress(t.encode("utf-8"))) for t in texts], dtype=np.float64)
    return _mean_logprob(target) / compressed


@_register(
    "reference",
    "Carlini et al., USENIX Security 2021 (a smaller or other-data LM as the reference)",
    (TOKEN_LOGPROBS, REFERENCE_LM),
    needs_reference=True,
)
def reference_scores(target: Sequence[TokenStats], texts: Sequence[str], reference: Sequence[TokenStats]) -> np.ndarray:
    """Target minus reference mean token log-probability: how much likelier the target finds the
    document than a model that never saw it (the difference form of mimir's reference attack;
    Carlini et al. use the ratio of log-perplexities, which ranks alike when both are positive)."""
    return _mean_logprob(target) - _mean_logprob(reference)


@_register("min-k", "Shi et al., Detecting Pretraining Data from Large Language Models, ICLR 2024", (TOKEN_LOGPROBS,))
def min_k_scores(target: Sequence[TokenStats], texts: Sequence[str], reference: None = None, *, k: float = 0.2) -> np.ndarray:
    """Mean of the lowest ``k`` fraction of the document's token log-probabilities (Min-K% Prob).

    A member has few very unlikely tokens; averaging only the outliers ignores the easy tokens
    that every LM predicts well.
    """
    k = _check_k(k)
    return np.array([_lowest_mean(s.logprob, k) for s in target], dtype=np.float64)


@_register(
    "min-k-plus-plus",
    "Zhang et al., Min-K%++: Improved Baseline for Detecting Pre-Training Data from LLMs, 2024 (ICLR 2025)",
    (TOKEN_LOGPROBS, FULL_DISTRIBUTION),
)
def min_k_plus_plus_scores(
    target: Sequence[TokenStats], texts: Sequence[str], reference: None = None, *, k: float = 0.2
) -> np.ndarray:
    """Min-K% over standardised tokens: ``(log p(x_t) - mu_t) / sigma_t``, mu_t and sigma_t^2 the
    mean and variance of log p under the model's next-token distribution at position t.

    Training drives a member's tokens toward local maxima of the likelihood, i.e. above the
    distribution's mean by many standard deviations. A position whose distribution is a point
    mass (variance 0) carries no evidence; its standardised value is taken as 0, not inf / NaN.
    """
    k = _check_k(k)
    out = []
    for s in target:
        sigma = np.sqrt(s.var)
        z = np.divide(s.logprob - s.mean, sigma, out=np.zeros_like(sigma), where=sigma > 0)
        out.append(_lowest_mean(z, k))
    return np.array(out, dtype=np.float64)
