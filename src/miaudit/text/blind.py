"""The blind baseline: can members be told from non-members by their text alone?

Das, Zhang & Tramèr ("Blind Baselines Beat Membership Inference Attacks for Foundation Models",
2024) and Duan et al. ("Do Membership Inference Attacks Work on Large Language Models?", 2024)
show that many published LM membership benchmarks split members and non-members by date or
source, so a classifier that never sees the model separates them, and attack AUCs measure the
shift rather than the model. This module is that classifier, as a check of a split.

It uses the membership labels on purpose: it is **not an attack** (no threat model allows it)
but a test of the split. Each record is scored by a logistic regression on TF-IDF features (word
1-2 grams and character 2-4 grams) trained on the other folds only, so its AUC is an honest
estimate of how separable the two sides are. The features are fitted once on all the evaluated
texts without their labels (vocabulary and IDF, nothing about membership), so re-fitting the
classifier under permuted labels is cheap: that gives the AUC's null spread, which cross-fitting
makes wider than the Mann-Whitney spread of independent scores (at 300 fortunes per side: 0.032
to 0.035 under 150 permutations, against 0.024). An i.i.d. split gives an AUC within that
spread of 0.5.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import FeatureUnion, make_union

from miaudit.errors import ConfigError
from miaudit.metrics import auc
from miaudit.seeds import check_user_seed, stream_rng

NO_SIGNAL = "the split carries no signal by itself"
SIGNAL = "members and non-members differ in their text alone: attack AUCs on this split are inflated"


@dataclass(frozen=True)
class BlindResult:
    """Cross-fitted blind scores (members first, then non-members; higher = "looks like a member"),
    their AUC, the tolerance above 0.5 that chance stays within (from ``null_spread``, the standard
    deviation of the AUC under permuted labels, or the Mann-Whitney one if larger) and the verdict."""

    scores: np.ndarray
    auc: float
    tolerance: float
    null_spread: float
    folds: int
    verdict: str

    @property
    def has_signal(self) -> bool:
        return self.verdict == SIGNAL


def mann_whitney_spread(n_members: int, n_nonmembers: int) -> float:
    """Standard deviation of the AUC of uninformative, independent scores: the Mann-Whitney U
    over n1 * n0 has variance (n1 + n0 + 1) / (12 n1 n0) (normal approximation, no ties)."""
    return float(np.sqrt((n_members + n_nonmembers + 1) / (12.0 * n_members * n_nonmembers)))


def blind_baseline(
    members: Sequence[str], nonmembers: Sequence[str], *, folds: int = 5, permutations: int = 30, seed: int = 0, alpha: float = 0.01
) -> BlindResult:
    """Cross-fit the blind classifier over ``folds`` stratified folds (stream ``text/blind-folds``)
    and judge the split.

    The tolerance is the one-sided (1 - ``alpha``) normal quantile of the AUC's null spread,
    estimated from ``permutations`` cross-fits under shuffled labels (never below the
    Mann-Whitney spread). One-sided: only a classifier that separates better than chance shows
    that the sides differ. Signal when the AUC passes 0.5 + tolerance.
    """
    seed = check_user_seed(seed)
    for name, value, least in (("folds", folds, 2), ("permutations", permutations, 2)):
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise ConfigError(f"the blind baseline needs {name} >= {least}, got {value!r}")
    if min(len(members), len(nonmembers)) < folds:
        raise ConfigError(f"the blind baseline needs at least {folds} members and {folds} non-members (one per fold), got {len(members)} and {len(nonmembers)}")
    features = _features().fit_transform([*members, *nonmembers])
    is_member = np.r_[np.ones(len(members), dtype=bool), np.zeros(len(nonmembers), dtype=bool)]
    rng = stream_rng(seed, "text/blind-folds")
    scores = _cross_fit(features, is_member, folds, rng)
    value = auc(scores, is_member)
    null = [auc(_cross_fit(features, shuffled, folds, rng), shuffled) for shuffled in (rng.permutation(is_member) for _ in range(permutations))]
    spread = max(float(np.std(null, ddof=1)), mann_whitney_spread(len(members), len(nonmembers)))
    tolerance = NormalDist().inv_cdf(1.0 - alpha) * spread
    return BlindResult(scores, value, tolerance, spread, folds, SIGNAL if value > 0.5 + tolerance else NO_SIGNAL)


def _features() -> FeatureUnion:
    return make_union(
        TfidfVectorizer(analyzer="word", ngram_range=(1, 2), min_df=2, sublinear_tf=True),
        TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), min_df=2, sublinear_tf=True),
    )


def _cross_fit(features: Any, is_member: np.ndarray, folds: int, rng: np.random.Generator) -> np.ndarray:
    """Each record's decision value from a classifier fitted on the other folds (``features``:
    the sparse records x n-grams matrix)."""
    fold = _stratified_folds(is_member, folds, rng)
    scores = np.empty(len(is_member))
    for k in range(folds):
        train, test = fold != k, fold == k
        model = LogisticRegression(C=1.0, solver="liblinear", random_state=0).fit(features[train], is_member[train])
        scores[test] = model.decision_function(features[test])
    return scores


def _stratified_folds(is_member: np.ndarray, folds: int, rng: np.random.Generator) -> np.ndarray:
    """Each record's fold: members and non-members each dealt round-robin in a random order."""
    fold = np.empty(len(is_member), dtype=int)
    for side in (True, False):
        idx = np.flatnonzero(is_member == side)
        fold[rng.permutation(idx)] = np.arange(len(idx)) % folds
    return fold
