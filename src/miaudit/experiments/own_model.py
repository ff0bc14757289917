"""Audit a model trained outside miaudit, or only its precomputed outputs.

:func:`audit_own_model` runs every attack the threat model permits against the user's
classifier (see :mod:`miaudit.targets.external`) through :class:`TargetAccess`; the membership
truth the user supplies goes only to :func:`miaudit.metrics.evaluate`, never to an attack.
Attacks that train shadow models need a stand-in for the (unknown to miaudit) training recipe:
``shadow_model``, a miaudit model name, or a factory ``callable(seed) -> sklearn-like estimator``.

:func:`audit_precomputed` needs no model, only its outputs on the evaluated records. Without
queries and without data to calibrate on, it reports the attack scores (correctness, loss,
confidence, entropy, top-1 probability) with **threshold-free metrics** (AUC, TPR at low FPR,
advantage as an upper bound); no threshold is calibrated (``threshold`` None), except the fixed
rule of the correctness attack.
"""

from __future__ import annotations

import csv
import itertools
import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from miaudit import __version__, metrics
from miaudit.attacks import ATTACKS, AttackerKnowledge, AttackResult, ModelSpec
from miaudit.errors import ConfigError, InputError
from miaudit.experiments.audit import AttackOutcome
from miaudit.io_utils import atomic_path, stable_hash
from miaudit.targets.access import TargetAccess
from miaudit.targets.external import PrecomputedOutputs
from miaudit.threat import THREAT_MODELS, ThreatModel, check

NOT_CALIBRATED = "not calibrated: no shadow models or reference data; threshold-free metrics (AUC, TPR@FPR, advantage upper bound) only"

ShadowFactory = Callable[[int], Any]


@dataclass(frozen=True)
class OwnAuditResult:
    """Outcome of auditing a user's own model (or its outputs)."""

    source: str  # what was audited, e.g. "TorchScript model 'm.pt'" or "precomputed outputs"
    threat_model: str | None  # None for precomputed outputs (no queries at all)
    num_classes: int
    is_member: np.ndarray
    member_accuracy: float
    nonmember_accuracy: float
    outcomes: list[AttackOutcome]
    skipped: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def outcome(self, attack: str) -> AttackOutcome:
        for o in self.outcomes:
            if o.result.attack == attack:
                return o
        raise KeyError(attack)

    def summary(self) -> dict[str, Any]:
        return {
            "miaudit_version": __version__,
            "source": self.source,
            "threat_model": self.threat_model,
            "num_classes": self.num_classes,
            "members": int(self.is_member.sum()),
            "non_members": int((~self.is_member).sum()),
            "member_accuracy": self.member_accuracy,
            "nonmember_accuracy": self.nonmember_accuracy,
            "attacks": {
                o.result.attack: {
                    **o.metrics.to_dict(),
                    "queries_per_record": o.result.queries_per_record,
                    "details": o.result.details,
                }
                for o in self.outcomes
            },
            "skipped": self.skipped,
            "notes": self.notes,
        }

    def write(self, out_dir: str | Path) -> tuple[Path, Path]:
        """``results.json`` and ``scores.csv`` (record index = row of the given data) in ``out_dir``."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        json_path, csv_path = out / "results.json", out / "scores.csv"
        with atomic_path(json_path) as tmp:
            tmp.write_text(json.dumps(self.summary(), indent=2) + "\n")
        names = [o.result.attack for o in self.outcomes]
        with atomic_path(csv_path) as tmp, open(tmp, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["record_index", "is_member", *names])
            for row, member in enumerate(self.is_member):
                writer.writerow([row, int(member), *(repr(float(o.result.scores[row])) for o in self.outcomes)])
        return json_path, csv_path


def _check_records(x: Any, y: Any, is_member: Any, num_classes: int, what: str = "records") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    xa = np.asarray(x)
    if xa.ndim < 2 or xa.dtype.kind not in "fiub":
        raise InputError(f"{what}: x must be a numeric array shaped (n, features...), got {xa.dtype} {xa.shape}")
    xa = xa.astype(np.float32)
    if np.isnan(xa).any():
        raise InputError(f"{what}: x contains NaN")
    ya = np.asarray(y)
    if ya.shape != (len(xa),) or ya.dtype.kind not in "iu":
        raise InputError(f"{what}: y must be integer labels shaped ({len(xa)},), got {ya.dtype} {ya.shape}")
    ya = ya.astype(np.int64)
    if len(ya) and (ya.min() < 0 or ya.max() >= num_classes):
        raise InputError(f"{what}: labels must lie in [0, {num_classes}) (the model's classes), found {int(ya.min())}..{int(ya.max())}")
    m = None
    if is_member is not None:
        m = np.asarray(is_member)
        if m.shape != (len(xa),) or m.dtype.kind not in "biuf" or not np.isin(m, (0, 1)).all():
            raise InputError(f"{what}: is_member must be boolean or 0/1 shaped ({len(xa)},)")
        m = m.astype(bool)
        if m.all() or not m.any():
            raise InputError(f"{what}: is_member needs at least one member and one non-member")
    return xa, ya, m  # type: ignore[return-value]


_factory_ids = itertools.count()


@contextmanager
def _shadow_spec(shadow_model: str | ShadowFactory | None, options: dict[str, Any] | None) -> Iterator[ModelSpec | None]:
    """The ModelSpec shadow models are trained from; a factory is registered only meanwhile."""
    if shadow_model is None:
        yield None
        return
    from miaudit.models import TrainingRecipe, model_names

    if isinstance(shadow_model, str):
        if shadow_model not in model_names():
            raise ConfigError(f"unknown shadow model {shadow_model!r}; choose one of: {', '.join(model_names())}")
        yield ModelSpec(shadow_model, dict(options or {}), TrainingRecipe())
        return
    if not callable(shadow_model):
        raise ConfigError("shadow_model must be a miaudit model name or a callable(seed) -> estimator")
    from miaudit.models.estimators import ESTIMATORS

    name = f"user-shadow-factory-{next(_factory_ids)}"

    def factory(seed: int, **_: Any) -> Any:
        est = shadow_model(seed)
        if not hasattr(est, "fit") or not hasattr(est, "predict_proba"):
            raise ConfigError("the shadow_model factory must return an estimator with fit and predict_proba")
        return est

    ESTIMATORS.add(name, factory)
    try:
        yield ModelSpec(name, {}, TrainingRecipe())
    finally:
        ESTIMATORS.remove(name)


def audit_own_model(
    classifier: Any,
    x: Any,
    y: Any,
    is_member: Any,
    *,
    attacks: Sequence[str] | None = None,
    threat_model: str | ThreatModel = "black-box",
    pool_x: Any = None,
    pool_y: Any = None,
    shadow_model: str | ShadowFactory | None = None,
    shadow_options: dict[str, Any] | None = None,
    n_shadow_models: int = 4,
    n_bootstrap: int = 200,
    seed: int = 0,
) -> OwnAuditResult:
    """Run every attack ``threat_model`` permits (or those named) against ``classifier``.

    ``classifier`` has ``predict_proba`` (and ``num_classes``; external classifiers learn it
    from one query). ``(x, y)`` are the evaluated records, ``is_member`` their truth, used only
    for the metrics. ``pool_x``/``pool_y`` are same-distribution records the attacker holds
    (disjoint from ``x``); ``shadow_model`` stands in for the target's architecture and recipe
    for attacks that train shadow models (gray box). Attacks whose needs are not met are
    skipped with a reason, or refused with ConfigError when asked for by name.
    """
    threat = threat_model if isinstance(threat_model, ThreatModel) else THREAT_MODELS.get(threat_model)
    if hasattr(classifier, "bind"):
        classifier.bind(np.asarray(x))
    num_classes = getattr(classifier, "num_classes", None)
    if num_classes is None:
        raise ConfigError("the classifier must have num_classes")
    xa, ya, member = _check_records(x, y, is_member, int(num_classes))
    if is_member is None:
        raise InputError("is_member is required: the audit compares the attack scores with it")
    input_shape = tuple(xa.shape[1:])
    pool_given = pool_x is not None or pool_y is not None
    if pool_given:
        if pool_x is None or pool_y is None:
            raise InputError("give both pool_x and pool_y (the attacker's same-distribution records)")
        px, py, _ = _check_records(pool_x, pool_y, None, int(num_classes), "pool")
        if tuple(px.shape[1:]) != input_shape:
            raise InputError(f"pool records are shaped {px.shape[1:]}, the evaluated records {input_shape}")
    else:
        px = py = None

    selected = list(attacks) if attacks is not None else ATTACKS.names()
    permitted: list[str] = []
    skipped: dict[str, str] = {}
    for name in selected:
        req = ATTACKS.get(name).requirements
        reason = check(req, threat)
        if reason is None and req.data and px is None:
            reason = "needs the attacker's same-distribution data (pool_x, pool_y / --pool)"
        if reason is None and req.architecture and shadow_model is None:
            reason = "needs a shadow model recipe standing in for the target's (shadow_model / --shadow-model)"
        if reason is None:
            permitted.append(name)
        elif attacks is not None:
            raise ConfigError(f"attack {name!r} cannot run: {reason}")
        else:
            skipped[name] = reason

    outcomes: list[AttackOutcome] = []
    with _shadow_spec(shadow_model, shadow_options) as spec:
        knowledge = AttackerKnowledge.under(
            threat,
            num_classes=int(num_classes),
            input_shape=input_shape,
            seed=seed + 1,
            pool_x=px,
            pool_y=py,
            pool_fingerprint=stable_hash({"pool_x": px, "pool_y": py}) if px is not None else None,
            target_model=spec or ModelSpec("unknown"),
            n_shadow_models=n_shadow_models,
        )
        for name in permitted:
            attack = ATTACKS.get(name)().fit(knowledge)
            access = TargetAccess(classifier, threat, input_shape=input_shape)
            result = attack.score(access, xa, ya)
            m = metrics.evaluate(
                result.scores,
                member,
                threshold=result.threshold,
                threshold_source=result.threshold_source,
                n_bootstrap=n_bootstrap,
                seed=seed,
            )
            outcomes.append(AttackOutcome(result, m))

    pred = np.asarray(classifier.predict_proba(xa)).argmax(axis=1)  # the auditor's own view, not an attack's
    correct = pred == ya
    return OwnAuditResult(
        source=getattr(classifier, "source", type(classifier).__name__),
        threat_model=threat.name,
        num_classes=int(num_classes),
        is_member=member,
        member_accuracy=float(correct[member].mean()),
        nonmember_accuracy=float(correct[~member].mean()),
        outcomes=outcomes,
        skipped=skipped,
    )


PRECOMPUTED_ATTACKS = ("correctness", "loss", "confidence", "entropy", "top-1")
"""Scores computable from the outputs alone (higher = member)."""


def precomputed_scores(proba: np.ndarray, labels: np.ndarray) -> dict[str, np.ndarray]:
    """Per-record scores of :data:`PRECOMPUTED_ATTACKS` from probabilities and true labels."""
    rows = np.arange(len(labels))
    p_y = proba[rows, labels]
    safe = np.maximum(proba, 1e-30)
    return {
        "correctness": (proba.argmax(axis=1) == labels).astype(np.float64),
        "loss": np.log(np.maximum(p_y, 1e-30)),  # -cross-entropy
        "confidence": p_y.astype(np.float64),
        "entropy": (proba * np.log(safe)).sum(axis=1),  # -entropy: members are predicted more sharply
        "top-1": proba.max(axis=1).astype(np.float64),
    }


def audit_precomputed(outputs: PrecomputedOutputs, *, n_bootstrap: int = 200, seed: int = 0) -> OwnAuditResult:
    """Attack scores from precomputed outputs, with threshold-free metrics.

    No threshold is calibrated (no shadow models, no reference data): ``threshold`` is None and
    the reported AUC, TPR at FPR and advantage (an upper bound, its threshold chosen with the
    truth) are threshold-free. Correctness keeps its fixed rule (correct = member).
    """
    proba = outputs.proba()
    scores = precomputed_scores(proba, outputs.labels)
    outcomes = []
    for name in PRECOMPUTED_ATTACKS:
        if name == "correctness":
            result = AttackResult(name, scores[name], threshold=0.5, threshold_source="fixed by the attack",
                                  details={"rule": "member iff the prediction is correct"})  # fmt: skip
        else:
            result = AttackResult(name, scores[name], details={"threshold": NOT_CALIBRATED})
        m = metrics.evaluate(
            result.scores, outputs.is_member, threshold=result.threshold, threshold_source=result.threshold_source,
            n_bootstrap=n_bootstrap, seed=seed,
        )  # fmt: skip
        outcomes.append(AttackOutcome(result, m))
    correct = scores["correctness"].astype(bool)
    return OwnAuditResult(
        source=outputs.source,
        threat_model=None,
        num_classes=outputs.num_classes,
        is_member=outputs.is_member,
        member_accuracy=float(correct[outputs.is_member].mean()),
        nonmember_accuracy=float(correct[~outputs.is_member].mean()),
        outcomes=outcomes,
        notes=["thresholds not calibrated (no shadow models or reference data): report threshold-free metrics only"],
    )
