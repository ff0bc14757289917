"""LiRA and RMIA on language models, scored against K reference LMs (issue 18).

Registered into :data:`~miaudit.text.attacks.TEXT_ATTACKS` on import (``miaudit.text.audit``
imports this module): ``lira`` (online), ``lira-offline``, ``rmia`` (online) and
``rmia-offline``. Each is a :class:`ReferenceTextAttack`: besides the target's
:class:`~miaudit.text.stats.TokenStats` of the evaluated documents it receives a
:class:`ReferenceSet`, the K reference LMs' statistics of the same documents (and of the
population documents, for RMIA) with the mask of which reference trained on which document.
The references are trained by :mod:`miaudit.text.reference_lms`.

The per-document statistic is the document's **mean token log-likelihood** (minus its loss,
nats per token), the sequence-level loss that the LiRA-for-LMs literature uses (Mattern et al.
2023; Carlini et al. 2022's text experiments; Hayes et al. 2025, "Exploring the limits of strong
membership inference attacks on large language models", fit LiRA's Gaussians to the sequence
loss). The mean rather than the sum: with fewer than 64 references LiRA pools one standard
deviation over all documents (:func:`miaudit.attacks.lira.use_per_record`), and the sum's spread
grows with the document's length, so one pooled value would be too wide for short documents
and too narrow for long ones; the mean keeps the documents on one scale.

RMIA's ``Pr(x|theta)`` is the document's likelihood per token, ``exp(mean log p)`` (the
geometric mean of its token probabilities), in [0, 1]. Not the whole sequence's probability
``exp(sum log p)``: that is ~e^-100 for a fortune, so the offline approximation
``Pr(x) = ((1 + a) mean_out p + (1 - a)) / 2`` would be the constant ``(1 - a) / 2`` for every
document and RMIA would collapse into the loss attack; and the pairwise ratios against
population documents would compare lengths more than memorisation.

Formulas are the classifier attacks' (:mod:`miaudit.attacks.lira`, :mod:`miaudit.attacks.rmia`),
called on these statistics. Higher score = more likely a member.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from miaudit.attacks.lira import lira_offline_scores, lira_online_scores, resolve_variance
from miaudit.attacks.rmia import A_GRID, DEFAULT_A, likelihood_ratio, marginal, population_fraction
from miaudit.errors import ConfigError, InputError
from miaudit.text.attacks import TEXT_ATTACKS, TOKEN_LOGPROBS, Scorer, TextAttack, _check_stats
from miaudit.text.stats import TokenStats

REFERENCE_LMS = "K reference LMs with the target's start and recipe, each fine-tuned on a random half of the attacker's pool"
ONLINE_REFERENCE_LMS = REFERENCE_LMS + " and on a half of the evaluated documents (each document IN for exactly K/2)"
POPULATION = "population documents z (the attacker's pool), scored by the target and the references"
VARIANTS = ("online", "offline")


@dataclass(frozen=True)
class ReferenceSet:
    """K reference LMs' statistics: of the N evaluated documents (``evaluated[k][n]``) and of the
    Z population documents (``population[k][z]``), with which reference trained on which
    (``in_mask`` (K, N), ``population_in`` (K, Z); all False on the evaluated documents offline).
    ``target_population``: the target's statistics of the population documents (RMIA's z)."""

    variant: str
    evaluated: tuple[tuple[TokenStats, ...], ...]
    in_mask: np.ndarray
    population: tuple[tuple[TokenStats, ...], ...] = ()
    population_in: np.ndarray | None = None
    target_population: tuple[TokenStats, ...] | None = None

    def __post_init__(self) -> None:
        if self.variant not in VARIANTS:
            raise ConfigError(f"reference set variant must be one of {', '.join(VARIANTS)}, got {self.variant!r}")
        k = len(self.evaluated)
        n = len(self.evaluated[0]) if k else 0
        if k < 2 or any(len(row) != n for row in self.evaluated) or np.shape(self.in_mask) != (k, n):
            raise InputError(f"a reference set needs >= 2 references, each with one statistic per document and a (K, N) mask; got K={k}")
        if self.variant == "offline" and np.asarray(self.in_mask).any():
            raise InputError("offline references must be OUT for every evaluated document")
        if self.population and (self.population_in is None or np.shape(self.population_in) != (k, len(self.population[0]))):
            raise InputError("population statistics need a (K, Z) population_in mask")

    @property
    def k(self) -> int:
        return len(self.evaluated)


def document_statistic(stats: Sequence[TokenStats]) -> np.ndarray:
    """Per document, its mean token log-likelihood (nats per token)."""
    return np.array([s.logprob.mean() for s in stats], dtype=np.float64)


def _stack(rows: Sequence[Sequence[TokenStats]]) -> np.ndarray:
    return np.stack([document_statistic(row) for row in rows])


@dataclass(frozen=True)
class ReferenceTextAttack(TextAttack):
    """A text attack that needs a :class:`ReferenceSet` of its ``variant`` (``needs_references``).

    ``score(target, texts, references=ReferenceSet, **options)``; the scorer is called as
    ``scorer(target, references, **options)``.
    """

    variant: str = "online"
    needs_references: bool = True

    def score(
        self,
        target: Sequence[TokenStats],
        texts: Sequence[str],
        reference: Sequence[TokenStats] | None = None,
        *,
        references: ReferenceSet | None = None,
        **options: Any,
    ) -> np.ndarray:
        _check_stats(target, texts, "target")
        if references is None or references.variant != self.variant:
            raise ConfigError(f"text attack {self.name!r} needs {self.variant} reference LMs' statistics; pass references=ReferenceSet")
        if len(references.evaluated[0]) != len(texts):
            raise InputError(f"{len(references.evaluated[0])} reference statistics per model for {len(texts)} documents")
        return np.asarray(self.scorer(target, references, **options), dtype=np.float64)


def _register(name: str, paper: str, variant: str, threat: tuple[str, ...]) -> Any:
    def add(scorer: Scorer) -> Scorer:
        TEXT_ATTACKS.add(name, ReferenceTextAttack(name, paper, threat, False, scorer, variant))
        return scorer

    return add


LIRA = "Carlini et al., IEEE S&P 2022; for LMs Mattern et al. 2023, Hayes et al. 2025 (sequence-level loss)"
RMIA = "Zarifzadeh et al., Low-Cost High-Power Membership Inference Attacks, ICML 2024"


@_register("lira", LIRA, "online", (TOKEN_LOGPROBS, ONLINE_REFERENCE_LMS))
def lira_text_scores(
    target: Sequence[TokenStats], references: ReferenceSet, *, variance: str = "auto", center: str = "mean"
) -> np.ndarray:
    """``log N(phi; mu_in, sigma_in) - log N(phi; mu_out, sigma_out)``, phi the mean token
    log-likelihood, the Gaussians from the references that trained on the document (IN) and not."""
    mask = np.asarray(references.in_mask, dtype=bool)
    mode = resolve_variance(variance, references.k)
    return lira_online_scores(document_statistic(target), _stack(references.evaluated), mask, ~mask, variance=mode, center=center)


@_register("lira-offline", LIRA, "offline", (TOKEN_LOGPROBS, REFERENCE_LMS))
def lira_offline_text_scores(
    target: Sequence[TokenStats], references: ReferenceSet, *, variance: str = "auto", center: str = "mean"
) -> np.ndarray:
    """``log Phi((phi - mu_out) / sigma_out)`` over the OUT references (all of them, offline)."""
    mode = resolve_variance(variance, references.k)
    return lira_offline_scores(document_statistic(target), _stack(references.evaluated), variance=mode, center=center)


def _likelihood(stats: np.ndarray) -> np.ndarray:
    """Per-token document likelihood ``exp(mean log p)`` from mean token log-likelihoods."""
    return np.exp(stats)


def _rmia(target: Sequence[TokenStats], references: ReferenceSet, a: float | None, gamma: float) -> np.ndarray:
    if not references.population or references.target_population is None:
        raise ConfigError("RMIA needs population documents scored by the target and the references (the attacker's pool)")
    if isinstance(gamma, bool) or not isinstance(gamma, int | float) or not gamma > 0:
        raise ConfigError(f"gamma must be a positive number, got {gamma!r}")
    in_x, in_z = np.asarray(references.in_mask, dtype=bool), np.asarray(references.population_in, dtype=bool)
    # online: Pr(x) the mean over every reference (about half IN); offline: OUT ones, then ``a``
    mask_x, mask_z = (None, None) if a is None else (~in_x, ~in_z)
    pr_x = marginal(_likelihood(_stack(references.evaluated)), mask_x, a=a)
    pr_z = marginal(_likelihood(_stack(references.population)), mask_z, a=a)
    ratio_x = likelihood_ratio(_likelihood(document_statistic(target)), pr_x)
    ratio_z = likelihood_ratio(_likelihood(document_statistic(references.target_population)), pr_z)
    return population_fraction(ratio_x, ratio_z, float(gamma))


@_register("rmia", RMIA, "online", (TOKEN_LOGPROBS, ONLINE_REFERENCE_LMS, POPULATION))
def rmia_text_scores(target: Sequence[TokenStats], references: ReferenceSet, *, gamma: float = 1.0) -> np.ndarray:
    """Fraction of population documents z with ``ratio(x) / ratio(z) >= gamma``,
    ``ratio = Pr(x|theta) / Pr(x)``, ``Pr(x)`` the mean likelihood over all K references."""
    return _rmia(target, references, None, gamma)


@_register("rmia-offline", RMIA, "offline", (TOKEN_LOGPROBS, REFERENCE_LMS, POPULATION))
def rmia_offline_text_scores(
    target: Sequence[TokenStats], references: ReferenceSet, *, a: float | str = "auto", gamma: float = 1.0
) -> np.ndarray:
    """RMIA with OUT references only: ``Pr(x) = ((1 + a) mean_out p(x) + (1 - a)) / 2`` (the
    paper's offline approximation). ``a="auto"`` (default) chooses it on the attacker's own
    references (:func:`choose_offline_a`); a number fixes it."""
    if a == "auto":
        a = choose_offline_a(references, gamma=gamma).a
    if isinstance(a, bool) or not isinstance(a, int | float) or not 0.0 <= a <= 1.0:
        raise ConfigError(f"a must lie in [0, 1] or be 'auto', got {a!r}")
    return _rmia(target, references, float(a), gamma)


MIN_REFERENCES_FOR_A = 4
STAND_INS = 2


@dataclass(frozen=True)
class OfflineAChoice:
    """The offline ``a`` chosen without the target's truth, how, and the stand-in AUC per grid value."""

    a: float
    source: str
    stand_in_auc: dict[float, float]


def choose_offline_a(references: ReferenceSet, *, gamma: float = 1.0, grid: Sequence[float] = A_GRID) -> OfflineAChoice:
    """RMIA's offline ``a`` from the attacker's own reference LMs (Zarifzadeh et al. tune it on
    reference models the same way): reference j (j < :data:`STAND_INS`) plays the target, its
    truth the pool documents it trained on (``population_in[j]``), the other K - 1 references
    are its references; the pool's even positions are the scored documents, its odd positions
    the population. The value of ``grid`` with the best stand-in AUC, averaged over the
    stand-ins, wins (ties: the smallest). The target's documents and truth are never read.
    With fewer than :data:`MIN_REFERENCES_FOR_A` references (a stand-in would keep one or two)
    it falls back to the classifier default a = 0.3, and says so.

    Why it matters on text: RMIA's per-token likelihoods are 0.02-0.05, far below the
    classifiers' p_y near 1, so the (1 - a)/2 term of the default swamps ``mean_out p`` and the
    score collapses into the loss attack (measured: AUC 0.841 at a = 0.3 against 0.835 loss).
    """
    from miaudit.attacks.tuning import objective_value

    if references.k < MIN_REFERENCES_FOR_A or not references.population or references.population_in is None:
        return OfflineAChoice(DEFAULT_A, f"default (fewer than {MIN_REFERENCES_FOR_A} reference LMs to tune on)", {})
    stats = _stack(references.population)  # (K, Z) mean token log-likelihoods of the pool
    truth = np.asarray(references.population_in, dtype=bool)
    z = stats.shape[1]
    scored, population = np.arange(0, z, 2), np.arange(1, z, 2)
    aucs = {}
    for a in grid:
        values = []
        for j in range(min(STAND_INS, references.k)):
            others = np.arange(references.k) != j
            p_refs, out = _likelihood(stats[others]), ~truth[others]
            ratio = likelihood_ratio(_likelihood(stats[j]), marginal(p_refs, out, a=float(a)))
            scores = population_fraction(ratio[scored], ratio[population], float(gamma))
            values.append(objective_value(scores, truth[j, scored], "auc"))
        aucs[float(a)] = float(np.mean(values))
    best = max(aucs, key=lambda a: (aucs[a], -a))
    source = f"auto: best mean AUC over {min(STAND_INS, references.k)} reference LM(s) as stand-in targets on the attacker's pool"
    return OfflineAChoice(best, source, aucs)


def reference_attack_names() -> list[str]:
    """The registered attacks that need reference LMs, and which variant each needs."""
    return [n for n, attack in TEXT_ATTACKS.items() if isinstance(attack, ReferenceTextAttack)]
