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


# --------------------------------------------------------------------------- DC-PDD and ReCaLL
# Both need an input beyond the evaluated documents' statistics, passed as a keyword option of
# ``TextAttack.score`` (``frequencies=`` / ``conditional=``); :data:`EXTRA_INPUTS` names it per
# attack, so a caller (``text/audit.py``) knows what to compute before scoring.

TOKEN_IDS = "the ids of the document's tokens under the target's tokenizer"
REFERENCE_FREQUENCIES = "token frequencies of text the attacker holds (its pool), counted with the target's tokenizer"
PREFIX_QUERY = "the target's log-probabilities of the document after a prefix of known non-member text (a second query)"

#: attack name -> the keyword option of ``TextAttack.score`` it cannot run without.
EXTRA_INPUTS: dict[str, str] = {"dc-pdd": "frequencies", "recall": "conditional"}


def _check_frequencies(frequencies: object) -> np.ndarray:
    if frequencies is None:
        raise ConfigError("text attack 'dc-pdd' needs a token-frequency table; pass frequencies= (miaudit.text.lm.token_frequencies of the attacker's text)")
    f = np.asarray(frequencies, dtype=np.float64)
    if f.ndim != 1 or not len(f) or not np.isfinite(f).all() or (f <= 0).any() or (f > 1).any():
        raise InputError("frequencies must be a 1-D table of probabilities in (0, 1], one per vocabulary entry (Laplace-smoothed: none is 0)")
    return f


@_register(
    "dc-pdd",
    "Zhang et al., Pretraining Data Detection for Large Language Models: A Divergence-based Calibration Method, EMNLP 2024",
    (TOKEN_LOGPROBS, TOKEN_IDS, REFERENCE_FREQUENCIES),
)
def dc_pdd_scores(
    target: Sequence[TokenStats], texts: Sequence[str], reference: None = None, *, frequencies: object = None, a: float = 0.01
) -> np.ndarray:
    """Mean over the document's distinct predicted tokens (each at its first occurrence) of
    ``min(p(x_t) * log(1 / f(x_t)), a)``: the token's probability under the target times its
    surprisal in the reference frequencies ``f``, clipped at ``a``.

    A common token is likely to any LM; weighting by ``-log f`` counts the likely *rare* tokens,
    and the bound ``a`` keeps a few very confident ones from dominating. ``a = 0.01`` is the
    authors' default (their code and mimir-style reimplementations); their score is the negative
    of this one. The table comes from :func:`miaudit.text.lm.token_frequencies` (Laplace-smoothed
    counts over the attacker's own text, the target's tokenizer).
    """
    f = _check_frequencies(frequencies)
    if isinstance(a, bool) or not isinstance(a, int | float) or not (math.isfinite(a) and a > 0):
        raise ConfigError(f"a is DC-PDD's upper bound on a token's score, a positive number, got {a!r}")
    out = []
    for s in target:
        if s.token_ids is None:
            raise InputError("text attack 'dc-pdd' needs the token ids in the statistics; compute them with token_statistics")
        if len(s.token_ids) and int(s.token_ids.max()) >= len(f):
            raise InputError(f"a token id ({int(s.token_ids.max())}) is outside the {len(f)}-entry frequency table; build it with the target's tokenizer")
        _, first = np.unique(s.token_ids, return_index=True)
        first = np.sort(first)
        ce = np.exp(s.logprob[first]) * -np.log(f[s.token_ids[first]])
        out.append(float(np.minimum(ce, float(a)).mean()))
    return np.array(out, dtype=np.float64)


@_register(
    "recall",
    "Xie et al., ReCaLL: Membership Inference via Relative Conditional Log-Likelihoods, EMNLP 2024",
    (TOKEN_LOGPROBS, PREFIX_QUERY),
)
def recall_scores(
    target: Sequence[TokenStats], texts: Sequence[str], reference: None = None, *, conditional: Sequence[TokenStats] | None = None
) -> np.ndarray:
    """``LL(x | P) / LL(x)``: the document's mean token log-likelihood after a prefix ``P`` of
    known non-member text over its unconditional one (both negative).

    A non-member prefix pulls the model away from what it memorised, so a member's likelihood
    drops relatively more than a non-member's: the ratio is larger for members (the authors'
    sign, higher = member). ``conditional``: the statistics of the same documents from
    :func:`miaudit.text.lm.conditional_token_statistics` (the same tokens, prefix before them).
    The prefix must be text the target did not train on; the audit takes it from the attacker's
    pool, which is known to be outside the training set only when the target is trained here
    (or when a user vouches for a --pool-file). A document whose unconditional log-likelihood
    is exactly 0 scores 1 (no change).
    """
    if conditional is None:
        raise ConfigError("text attack 'recall' needs the documents' statistics after a non-member prefix; pass conditional= (miaudit.text.lm.conditional_token_statistics)")
    _check_stats(conditional, texts, "conditional")
    if any(len(c.logprob) != len(s.logprob) for c, s in zip(conditional, target)):
        raise InputError("conditional statistics must cover the same tokens as the target's (compute both with the same model and tokenizer)")
    ll = _mean_logprob(target)
    return np.divide(_mean_logprob(conditional), ll, out=np.ones_like(ll), where=ll != 0)


def recall_prefix(documents: Sequence[str], shots: int) -> str:
    """ReCaLL's prefix: the first ``shots`` of ``documents`` (known non-members), one per line,
    ending with a newline so that the scored document starts a line of its own."""
    if isinstance(shots, bool) or not isinstance(shots, int) or shots < 1:
        raise ConfigError(f"shots must be a positive whole number of prefix documents, got {shots!r}")
    if isinstance(documents, str) or not documents:
        raise InputError("ReCaLL's prefix needs a list of known non-member documents (the attacker's pool)")
    return "\n".join(documents[:shots]) + "\n"
