"""YOQO (Wu, Qiu, Zhao, Wang, Liu and Jia, "You Only Query Once: An Efficient Label-Only
Membership Inference Attack", ICLR 2024).

Threat model: the target answers predicted labels only (``--output label``); the attacker knows
the architecture and training recipe and holds same-distribution data (gray box), on which it
trains shadow models. Every target query goes through ``TargetAccess.predict_label``.

Idea: the "error zone" of a record ``(x, y)``: inputs near ``x`` that a model trained on ``(x, y)``
still labels ``y`` but a model that never saw it labels otherwise. Per record, one query ``x'`` is
optimised on the shadow models, then the target is asked once: member iff it answers ``y``.

- ``online=True`` (default; the paper's main setting): the shadows are the online reference
  models of :func:`miaudit.attacks.reference_models.train_online_references`, trained on paired
  halves of the pool plus the scored records, so each record is IN for half of them. The loss is
  ``sum_IN CE(f(x'), y) + alpha * sum_OUT CE(f(x'), y_wrong)``, ``y_wrong`` the OUT model's
  most likely wrong label at ``x``;
- ``online=False`` (offline; also what an audit with a single shadow model runs, ``details``
  say so): shadow models on halves of the pool only, so every scored record is
  OUT for all of them; the loss is ``sum_OUT CE(f(x'), y_wrong) + alpha * mean((x' - x)^2)``,
  the smallest push that makes models without the record err.

Optimisation (as in LeakPro's implementation, ``aidotse/LeakPro``, read not copied): the record's
loss is minimised by gradient steps and stops once it falls below ``M / 8`` (``M`` shadows). Here
steps are normalised gradient steps of ``step_size`` (RMS over features, in units of each
feature's range in the attacker's data) in the unit cube of :class:`InputBox`, records batched.

Queries: ``n_queries`` per record (default 1, the paper's). With ``n_queries = k > 1`` the target
is also asked at the optimisation's snapshots after ``steps * j / k`` steps (``j = 1..k``), which
gives a graded score for threshold-free metrics; each costs one query and is counted. Score: the
fraction of the record's queries the target answers ``y``; member iff at least half are (with one
query: iff the label is ``y``), a rule of the attack, calibrated on nothing. With ``tie_break``
(default), records of one kept fraction are ranked, at no query, by how squarely the last query
sits in the shadows' error zone (:func:`error_zone_fit`): a kept label counts more, and a lost one
less, the better it fits (:func:`miaudit.attacks.surrogate_gradients.tie_broken`; the paper's
score is the bare 0/1, ``tie_break=false``).

Radius: the perturbation stays within an L2 ball of RMS ``radius`` (projected after every step,
steps of at most ``radius / 4``). By default the radius is chosen among
:data:`miaudit.attacks.surrogate_gradients.RADII` (0 included: the record itself, the gap attack)
on a pseudo-target, a model of the target's architecture trained on a seeded random half of the
scored records: the radius whose decisions separate its members best (no target query, no
target truth; :func:`miaudit.attacks.surrogate_gradients.choose_radius`). ``radius=r`` fixes it.

Deviations: the paper tunes its optimisation on shadow models; here the step count and size are
options and only the radius is chosen (on the pseudo-target), and features are perturbed in a
continuous box even where the data are binary (Location30), as the target takes real inputs.
A target that is not a torch architecture gets stand-in MLP shadows (a transfer attack;
:mod:`miaudit.attacks.surrogate_gradients`), said so in ``details``; its pseudo-target is of the
target's own architecture. Cost: besides the shadows, one pseudo-target per ``score`` call, and
``len(RADII)`` crafting runs on up to ``2 * max_calibration`` records.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from miaudit.attacks import surrogate_gradients as sg
from miaudit.attacks.base import ATTACKS, Attack, AttackResult
from miaudit.attacks.knowledge import AttackerKnowledge
from miaudit.attacks.label_only import LABEL_ONLY_SHADOW_TRAINING
from miaudit.attacks.options import positive, whole
from miaudit.attacks.reference_models import train_online_references
from miaudit.attacks.shadow_models import train_shadow_models
from miaudit.errors import ConfigError
from miaudit.targets.access import TargetAccess


def wrong_labels(logits: Any, y: Any) -> Any:
    """``(M, n)``: each model's most likely label other than ``y`` (logits ``(M, n, C)``)."""
    import torch

    masked = logits.clone()
    masked[:, torch.arange(len(y)), y] = -torch.inf
    return masked.argmax(dim=2)


def project(z0: Any, dz: Any, radius: float) -> Any:
    """``dz`` scaled into the L2 ball of RMS ``radius`` (``radius * sqrt(dim)``), ``z0 + dz`` clipped to the unit cube."""
    import torch

    limit = radius * math.sqrt(z0.shape[1])
    dz = dz * torch.clamp(limit / dz.norm(dim=1, keepdim=True).clamp_min(1e-12), max=1.0)
    return ((z0 + dz).clamp(0, 1) - z0).detach()


def yoqo_queries(
    modules: list[Any], box: sg.InputBox, x: np.ndarray, y: np.ndarray, in_mask: np.ndarray, *,
    radius: float, alpha: float, online: bool, steps: int, step_size: float, n_snapshots: int,
) -> np.ndarray:
    """``(n_snapshots, n, dim)`` unit-cube queries for records ``(x, y)``; ``in_mask`` ``(n, M)``
    says which shadows trained on each record (all False offline). Perturbations stay within RMS
    ``radius``; steps are ``min(step_size, radius / 4)`` (RMS); radius 0 queries the records themselves."""
    import torch
    import torch.nn.functional as F

    at = [steps * j // n_snapshots for j in range(1, n_snapshots + 1)]
    out = np.repeat(box.to_unit(x)[None], n_snapshots, axis=0)
    if radius == 0:
        return out
    step_size = min(step_size, radius / 4)
    n_models = len(modules)
    for sl in sg.batches(len(y)):
        z0 = torch.from_numpy(out[0, sl].copy())
        yt = torch.as_tensor(np.asarray(y[sl]), dtype=torch.long)
        member = torch.as_tensor(in_mask[sl].T, dtype=torch.float32)  # (M, b)
        with torch.no_grad():
            wrong = wrong_labels(sg.ensemble_logits(modules, box, z0), yt)
        goal = torch.where(member > 0, yt.expand(n_models, -1), wrong)
        weight = member + (alpha if online else 1.0) * (1 - member)
        dz = torch.zeros_like(z0)
        active = torch.ones(len(yt), dtype=torch.bool)
        j = 0
        for step in range(steps + 1):
            while j < n_snapshots and at[j] == step:
                out[j, sl] = (z0 + dz).numpy()
                j += 1
            if step == steps:
                break
            if active.any():
                d = dz.clone().requires_grad_(True)
                logits = sg.ensemble_logits(modules, box, z0 + d)
                ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), goal.reshape(-1), reduction="none")
                loss = (ce.reshape(n_models, -1) * weight).sum(dim=0)
                if not online:
                    loss = loss + alpha * (d**2).mean(dim=1)
                active &= loss.detach() >= n_models / 8
                (grad,) = torch.autograd.grad((loss * active).sum(), d)
                rms = grad.pow(2).mean(dim=1, keepdim=True).sqrt().clamp_min(1e-12)
                dz = project(z0, dz - step_size * grad / rms * active[:, None], radius)
    return out


def error_zone_fit(
    modules: list[Any], box: sg.InputBox, x: np.ndarray, z: np.ndarray, y: np.ndarray, in_mask: np.ndarray, *,
    alpha: float, online: bool,
) -> np.ndarray:
    """``(n,)`` in (0, 1]: ``1 / (1 + L / M)``, ``L`` the weighted cross-entropy of the ``M``
    shadows at the queries ``z`` (unit cube) towards their goals for records ``(x, y)`` (IN: ``y``,
    OUT: their most likely wrong label at ``x``): 1 when the query sits squarely in the error zone."""
    import torch
    import torch.nn.functional as F

    out = np.empty(len(y))
    n_models = len(modules)
    with torch.no_grad():
        for sl in sg.batches(len(y)):
            yt = torch.as_tensor(np.asarray(y[sl]), dtype=torch.long)
            member = torch.as_tensor(in_mask[sl].T, dtype=torch.float32)
            wrong = wrong_labels(sg.ensemble_logits(modules, box, torch.from_numpy(box.to_unit(x[sl]))), yt)
            goal = torch.where(member > 0, yt.expand(n_models, -1), wrong)
            weight = member + (alpha if online else 1.0) * (1 - member)
            logits = sg.ensemble_logits(modules, box, torch.from_numpy(np.ascontiguousarray(z[sl])))
            ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), goal.reshape(-1), reduction="none")
            out[sl] = (1.0 / (1.0 + (ce.reshape(n_models, -1) * weight).sum(dim=0) / n_models)).numpy()
    return out


@ATTACKS.register("yoqo")
class YoqoAttack(Attack):
    """One optimised query per record in the shadows' error zone; member iff the target keeps ``y``."""

    name = "yoqo"
    paper = "Wu et al., ICLR 2024 (YOQO)"
    kind = "label only (shadow models)"
    requirements = LABEL_ONLY_SHADOW_TRAINING

    def __init__(
        self, online: bool = True, steps: int = 40, step_size: float = 0.02, alpha: float = 2.0, n_queries: int = 1,
        radius: float | None = None, max_calibration: int = 250, tie_break: bool = True,
    ) -> None:
        for flag, value in (("online", online), ("tie_break", tie_break)):
            if not isinstance(value, bool):
                raise ConfigError(f"yoqo option {flag} must be true or false, got {value!r}")
        self.tie_break = tie_break
        self.online = online
        self.online_now = online
        self.steps = whole(self.name, "steps", steps)
        self.step_size = positive(self.name, "step_size", step_size)
        self.alpha = positive(self.name, "alpha", alpha)
        self.n_queries = whole(self.name, "n_queries", n_queries)
        if self.n_queries > self.steps:
            raise ConfigError(f"yoqo option n_queries ({self.n_queries}) must not exceed steps ({self.steps})")
        self.radii = sg.RADII if radius is None else (positive(self.name, "radius", radius),)
        self.max_calibration = whole(self.name, "max_calibration", max_calibration)
        self.knowledge: AttackerKnowledge | None = None
        self.stand_in = False
        self.box: sg.InputBox | None = None
        self.shadows: list[Any] = []
        self.target_knowledge: AttackerKnowledge | None = None
        self.radius: float | None = None
        self.tried: dict[str, float] = {}

    def _craft(self, modules: list[Any], in_mask: np.ndarray, radius: float, x: np.ndarray, y: np.ndarray, n: int) -> np.ndarray:
        assert self.box is not None
        return yoqo_queries(
            modules, self.box, x, y, in_mask, radius=radius, alpha=self.alpha, online=self.online_now, steps=self.steps,
            step_size=self.step_size, n_snapshots=n,
        )  # fmt: skip

    def fit(self, knowledge: AttackerKnowledge) -> "YoqoAttack":
        self.target_knowledge = knowledge
        self.knowledge, self.stand_in = sg.surrogate_knowledge(knowledge, self.name)
        assert knowledge.pool_x is not None
        self.box = sg.InputBox.of(knowledge.pool_x)
        # Online needs an IN and an OUT reference per record: an audit with one model runs offline.
        self.online_now = self.online and knowledge.n_shadow_models >= 2
        if not self.online_now:  # online references train in score(), on the pool and the scored records
            trained = train_shadow_models(self.knowledge, knowledge.n_shadow_models)
            self.shadows = sg.torch_modules([s.model for s in trained], self.name)
        return self

    def score(self, access: TargetAccess, x: np.ndarray, y: np.ndarray) -> AttackResult:
        if self.knowledge is None or self.box is None:
            raise ConfigError("call fit() before score(): yoqo crafts its queries on shadow models")
        x, y = np.asarray(x), np.asarray(y)
        if self.online_now:
            refs = train_online_references(self.knowledge, x, y, self.knowledge.n_shadow_models)
            modules, in_mask = sg.torch_modules(refs.models, self.name), refs.in_candidates.T
        else:
            modules, in_mask = self.shadows, np.zeros((len(y), len(self.shadows)), dtype=bool)
        assert self.target_knowledge is not None
        pseudo = sg.pseudo_target(self.target_knowledge, x, y, self.max_calibration, self.name)
        self.radius, self.tried = sg.choose_radius(
            lambda r, pos, xs, ys: self._craft(modules, in_mask[pos], r, xs, ys, 1), self.box, pseudo, x, y, self.radii
        )
        queries = self._craft(modules, in_mask, self.radius, x, y, self.n_queries)
        before = access.queries
        kept = sg.kept_fraction(access.predict_label, self.box, queries, x, y)
        scores, threshold = kept, 0.5
        if self.tie_break:  # a kept label counts more, a lost one less, the better the query fits the error zone
            fit = error_zone_fit(modules, self.box, x, queries[-1], y, in_mask, alpha=self.alpha, online=self.online_now)
            scores, threshold = sg.tie_broken(kept, np.where(kept >= 0.5, fit, -fit), self.n_queries)
        shift = np.sqrt(((queries[-1] - self.box.to_unit(x)) ** 2).mean(axis=1))
        return self._result(
            access, before, len(y), scores, threshold=threshold, threshold_source="fixed by the attack",
            details={"tie_break": self.tie_break, "online": self.online_now, "shadow_models": len(modules),
                     "queries_per_record": self.n_queries,
                     "radius": self.radius, "radii_tried_pseudo_target_balanced_accuracy": self.tried,
                     "mean_rms_shift": float(shift.mean()), "stand_in_shadows": self.stand_in},
        )  # fmt: skip
