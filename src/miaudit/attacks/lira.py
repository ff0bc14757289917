"""LiRA, the likelihood-ratio attack (Carlini et al., "Membership Inference Attacks From First
Principles", IEEE S&P 2022), online (``lira``) and offline (``lira-offline``).

Threat model: gray box: the full probability vector, the target's architecture and training
recipe, and same-distribution data (the attacker's pool) to train reference models on. The
online variant also trains on the records it scores (it knows them: it queries them), never on
their membership.

For a record ``(x, y)`` every model gives the logit-scaled confidence
``phi = log p_y - log(sum_{i != y} p_i)``, computed as ``z_y - logsumexp_{i != y} z_i`` from
logits so that it stays finite when ``p_y`` rounds to 1. Reference models give Gaussians of
``phi`` on the record:

- online: one from the references that trained on it (IN), one from those that did not (OUT);
  score = ``log N(phi_target; mu_in, sigma_in) - log N(phi_target; mu_out, sigma_out)``;
- offline: OUT only; score = ``log Phi((phi_target - mu_out) / sigma_out)`` (one-sided: a member
  is more confident than the models that did not see it).

Centres are per record: means (``center="mean"``, the default) or medians (``"median"``, what
the authors' code uses). Standard deviations are per record or one global value (the pooled
within-record spread, for IN and OUT apart); the paper recommends a global one with few
references, so ``"auto"`` uses it below 64 reference models. ``variance="fixed"`` is the
authors' own fixed-variance mode (``fix_variance=True`` in their ``plot.py``): one standard
deviation of all the IN references' values (over records and references) for both Gaussians
online, of all the OUT values offline; with one sigma the online score is
``(mu_in - mu_out) (2 phi - mu_in - mu_out) / (2 sigma^2)``, monotone in ``phi``. With query augmentations (images: flips and shifts, see
:mod:`miaudit.attacks.augment`) every view has its own Gaussians and the per-view scores are
averaged.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.special import log_ndtr, logsumexp

from miaudit.attacks import augment
from miaudit.attacks.base import ATTACKS, Attack, AttackResult
from miaudit.attacks.knowledge import AttackerKnowledge
from miaudit.attacks.reference_models import train_online_references
from miaudit.attacks.reference_stats import SIGMA_FLOOR, masked_mean, masked_std, require_counts
from miaudit.attacks.shadow_models import GRAY_BOX_SHADOW_TRAINING, train_shadow_models
from miaudit.errors import ConfigError, InputError
from miaudit.targets.access import TargetAccess

PER_RECORD_FROM = 64  # "auto" variance: per record from this many reference models on
VARIANCES = ("auto", "global", "per-record", "fixed")
CENTERS = ("mean", "median")


def logit_scaled_confidence(logits: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``phi = log p_y - log(sum_{i != y} p_i)`` per record, from logits (or log-probabilities).

    Computed as ``z_y - logsumexp_{i != y} z_i``: the softmax normaliser cancels, and neither
    ``p_y`` nor ``1 - p_y`` is ever formed, so saturated outputs stay finite.
    """
    z = np.asarray(logits, dtype=np.float64)
    y = np.asarray(y)
    if z.ndim != 2 or y.shape != (len(z),):
        raise InputError(f"need logits shaped (n, C) and one label per row, got {z.shape} and {y.shape}")
    rows = np.arange(len(y))
    z_y = z[rows, y]
    others = z.copy()
    others[rows, y] = -np.inf
    return z_y - logsumexp(others, axis=1)


def log_probabilities(proba: np.ndarray) -> np.ndarray:
    """``log p`` with exact zeros floored at the smallest normal float64 (stays finite)."""
    return np.log(np.maximum(np.asarray(proba, dtype=np.float64), np.finfo(np.float64).tiny))


def model_logits(model: Any, x: np.ndarray) -> np.ndarray:
    """The attacker's own model's logits (log-probabilities when it only gives probabilities)."""
    if hasattr(model, "predict_logits"):
        return np.asarray(model.predict_logits(x), dtype=np.float64)
    return log_probabilities(model.predict_proba(x))


def _views_axis(phi_target: np.ndarray, phi_refs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Promote (N,) / (R, N) to (A, N) / (A, R, N): one leading axis of query views."""
    t = np.asarray(phi_target, dtype=np.float64)
    r = np.asarray(phi_refs, dtype=np.float64)
    if t.ndim == 1:
        t, r = t[None], r[None]
    if r.ndim != 3 or t.shape[0] != r.shape[0] or t.shape[1] != r.shape[2]:
        raise InputError(f"target scores {t.shape} and reference scores {r.shape} do not line up")
    return t, r


def use_per_record(variance: str, n_references: int) -> bool:
    """Whether ``variance`` (one of :data:`VARIANCES`) means per-record standard deviations."""
    return resolve_variance(variance, n_references) == "per-record"


def resolve_variance(variance: str, n_references: int) -> str:
    """The variance mode that runs: ``"auto"`` becomes ``"per-record"`` from
    :data:`PER_RECORD_FROM` reference models on, ``"global"`` below; the others stay."""
    if variance not in VARIANCES:
        raise ConfigError(f"variance must be one of {', '.join(VARIANCES)}, got {variance!r}")
    if variance == "auto":
        return "per-record" if n_references >= PER_RECORD_FROM else "global"
    return variance


def _check_center(center: str) -> str:
    if center not in CENTERS:
        raise ConfigError(f"center must be one of {', '.join(CENTERS)}, got {center!r}")
    return center


def _centre(values: np.ndarray, mask: np.ndarray, center: str) -> np.ndarray:
    """Per record, the mean or the median of ``values`` over the rows where ``mask`` holds."""
    if center == "mean":
        return masked_mean(values, mask)
    with np.errstate(invalid="ignore"):
        return np.nanmedian(np.where(mask, values, np.nan), axis=0)


def _sigma(values: np.ndarray, mask: np.ndarray, mode: str) -> np.ndarray:
    """Per-record, pooled global or the authors' fixed standard deviation (see the module docstring)."""
    if mode == "fixed":
        sigma = float(np.asarray(values, dtype=np.float64)[mask].std()) if mask.any() else 0.0
        return np.full(mask.shape[1], max(sigma, SIGMA_FLOOR))
    return masked_std(values, mask, per_record=mode == "per-record")


def _log_normal_pdf(x: np.ndarray, mu: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    return -np.log(sigma) - 0.5 * ((x - mu) / sigma) ** 2 - 0.5 * np.log(2 * np.pi)


def lira_online_scores(
    phi_target: np.ndarray, phi_refs: np.ndarray, in_mask: np.ndarray, out_mask: np.ndarray, *,
    per_record: bool = False, variance: str | None = None, center: str = "mean",
) -> np.ndarray:  # fmt: skip
    """Online LiRA: mean over views of ``log N(phi; IN) - log N(phi; OUT)``.

    ``phi_target`` is (N,) or (A, N); ``phi_refs`` (R, N) or (A, R, N); the masks (R, N) say which
    references trained on each record (IN) and which did not (OUT). ``variance``: a resolved mode
    (``"global"``, ``"per-record"``, ``"fixed"``; :func:`resolve_variance`), or None for
    ``per_record``'s choice; ``center``: ``"mean"`` or ``"median"``.
    """
    t, r = _views_axis(phi_target, phi_refs)
    mode = variance or ("per-record" if per_record else "global")
    center = _check_center(center)
    require_counts(in_mask, 1, "online LiRA (IN references)")
    require_counts(out_mask, 1, "online LiRA (OUT references)")
    total = np.zeros(t.shape[1])
    for view in range(t.shape[0]):
        mu_in, mu_out = _centre(r[view], in_mask, center), _centre(r[view], out_mask, center)
        s_in = _sigma(r[view], in_mask, mode)
        s_out = s_in if mode == "fixed" else _sigma(r[view], out_mask, mode)  # the authors: np.std(dat_in) for both
        total += _log_normal_pdf(t[view], mu_in, s_in) - _log_normal_pdf(t[view], mu_out, s_out)
    return total / t.shape[0]


def lira_offline_scores(
    phi_target: np.ndarray, phi_refs: np.ndarray, out_mask: np.ndarray | None = None, *,
    per_record: bool = False, variance: str | None = None, center: str = "mean",
) -> np.ndarray:  # fmt: skip
    """Offline LiRA: mean over views of ``log Phi((phi - mu_out) / sigma_out)``.

    ``out_mask`` (R, N) selects the OUT references per record; None means every reference.
    ``variance`` and ``center`` as in :func:`lira_online_scores`.
    """
    t, r = _views_axis(phi_target, phi_refs)
    mode = variance or ("per-record" if per_record else "global")
    center = _check_center(center)
    mask = np.ones(r.shape[1:], dtype=bool) if out_mask is None else np.asarray(out_mask, dtype=bool)
    require_counts(mask, 2 if mode == "per-record" else 1, "offline LiRA (OUT references)")
    total = np.zeros(t.shape[1])
    for view in range(t.shape[0]):
        mu = _centre(r[view], mask, center)
        sigma = _sigma(r[view], mask, mode)
        total += log_ndtr((t[view] - mu) / sigma)
    return total / t.shape[0]


_VARIANCE_WORDS = {
    "per-record": "per record",
    "global": "global (pooled within-record)",
    "fixed": "fixed (the authors': one sigma of all reference values)",
}


class _LiraBase(Attack):
    paper = "Carlini et al., IEEE S&P 2022"
    kind = "reference models"
    requirements = GRAY_BOX_SHADOW_TRAINING

    def __init__(self, *, variance: str = "auto", augmentation: str = "auto", center: str = "mean") -> None:
        resolve_variance(variance, 0)  # validates the name
        if augmentation != "auto":
            augment.AUGMENTATIONS.get(augmentation)  # unknown names fail here, before any training
        self.variance = variance
        self.center = _check_center(center)
        self.augmentation = augmentation
        self.knowledge: AttackerKnowledge | None = None

    def _views(self, x: np.ndarray) -> tuple[str, list[np.ndarray]]:
        model = self.knowledge.model if self.knowledge is not None else None
        trained_with = getattr(getattr(model, "recipe", None), "augment", None)  # what the attacker knows of the recipe
        name, views = augment.resolve(self.augmentation, tuple(np.shape(x)[1:]), trained_with)
        return name, augment.views_of(x, views)

    @staticmethod
    def _target_phi(access: TargetAccess, views: list[np.ndarray], y: np.ndarray) -> np.ndarray:
        return np.stack([logit_scaled_confidence(log_probabilities(access.predict_proba(v)), y) for v in views])

    @staticmethod
    def _reference_phi(models: list[Any], views: list[np.ndarray], y: np.ndarray) -> np.ndarray:
        return np.stack([np.stack([logit_scaled_confidence(model_logits(m, v), y) for m in models]) for v in views])

    def _details(self, variant: str, n_refs: int, mode: str, augmentation: str, n_views: int) -> dict[str, Any]:
        return {
            "variant": variant,
            "reference_models": n_refs,
            "variance": _VARIANCE_WORDS[mode],
            "center": self.center,
            "augmentation": augmentation,
            "queries_per_record": n_views,
        }


@ATTACKS.register("lira")
class LiraAttack(_LiraBase):
    """Online LiRA: references trained on random halves of the attacker's pool plus the scored records."""

    name = "lira"

    def fit(self, knowledge: AttackerKnowledge) -> LiraAttack:
        if knowledge.n_shadow_models < 2:
            raise ConfigError("online LiRA needs at least 2 reference models; raise --reference-models")
        self.knowledge = knowledge
        return self

    def score(self, access: TargetAccess, x: np.ndarray, y: np.ndarray) -> AttackResult:
        if self.knowledge is None:
            raise ConfigError("call fit() before score(): LiRA needs the attacker's knowledge")
        y = np.asarray(y)
        before = access.queries
        augmentation, views = self._views(x)
        phi_target = self._target_phi(access, views, y)
        refs = train_online_references(self.knowledge, x, y, self.knowledge.n_shadow_models)
        phi_refs = self._reference_phi(refs.models, views, y)
        mode = resolve_variance(self.variance, len(refs.models))
        scores = lira_online_scores(phi_target, phi_refs, refs.in_candidates, refs.out_candidates, variance=mode, center=self.center)
        details = self._details("online", len(refs.models), mode, augmentation, len(views))
        return self._result(access, before, len(y), scores, details=details)


@ATTACKS.register("lira-offline")
class LiraOfflineAttack(_LiraBase):
    """Offline LiRA: OUT references only (the shadow models, trained on the attacker's pool)."""

    name = "lira-offline"

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.references: list[Any] | None = None

    def fit(self, knowledge: AttackerKnowledge) -> LiraOfflineAttack:
        self.knowledge = knowledge
        self.references = [s.model for s in train_shadow_models(knowledge, knowledge.n_shadow_models)]
        if self.variance == "per-record" and len(self.references) < 2:
            raise ConfigError("a per-record variance needs at least 2 reference models; raise --reference-models")
        return self

    def score(self, access: TargetAccess, x: np.ndarray, y: np.ndarray) -> AttackResult:
        if self.references is None:
            raise ConfigError("call fit() before score(): LiRA needs reference models")
        y = np.asarray(y)
        before = access.queries
        augmentation, views = self._views(x)
        phi_target = self._target_phi(access, views, y)
        phi_refs = self._reference_phi(self.references, views, y)
        mode = resolve_variance(self.variance, len(self.references))
        scores = lira_offline_scores(phi_target, phi_refs, variance=mode, center=self.center)
        details = self._details("offline", len(self.references), mode, augmentation, len(views))
        return self._result(access, before, len(y), scores, details=details)
