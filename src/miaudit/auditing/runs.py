"""The training runs an empirical privacy audit needs: canaries in, scores out.

Two modes (issue 17):

- **one run** (Steinke, Nasr & Jagielski, "Privacy Auditing with One (1) Training Run",
  NeurIPS 2023): ONE target trained on the base records plus every canary whose coin is IN;
  the audit attack scores all ``m`` canaries, and the bound is computed from how well the scores
  guess the ``m`` coins (:func:`one_run`);
- **multi run** (the classical audit: Jagielski et al., NeurIPS 2020; Nasr et al., S&P 2021):
  ``R`` models, model ``r`` trained on the base records plus ONE fixed canary when run ``r``'s coin
  is IN; the attack scores the canary on each model (:func:`multi_run`).

Training goes through miaudit's normal paths: undefended models through the ModelBank
(:func:`miaudit.attacks.train_models.train_many`, all ``R`` models of the multi-run audit in one
bank), DP-SGD through the registered ``dpsgd`` defense (:mod:`miaudit.defenses.dpsgd`, Opacus),
whose accountant reports the epsilon the audit's lower bound is compared with.

Threat model of the audit attack: it sees the trained model's probability vectors (or, for a
white-box attack, its parameters) and the canaries. Any registered attack with an uncalibrated
mode (``loss``, ``confidence``, ``entropy``, ...) scores the canaries without reference models,
higher = more likely IN; the default, ``loss``, scores log p_y (nats; Yeom et al., CSF 2018).
In a one-run audit ``lira`` and ``lira-offline`` (:mod:`miaudit.auditing.reference_canaries`)
calibrate each canary on ``AuditTraining.references`` reference models the auditor trains the
same way (in the ModelBank when undefended, with DP-SGD when the target is).

Fault injection for auditing the auditor: :class:`DPTraining` with ``noise_divisor=10`` trains
DP-SGD with a noise multiplier ten times smaller than the one it *claims*, and reports the
accountant's epsilon of the claimed multiplier. A sound lower bound must then exceed the claimed
epsilon (given enough canaries); a bound that never does cannot catch a broken implementation.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from miaudit.auditing.canaries import CanarySet, check_count, dirac_coordinates, draw_coins
from miaudit.errors import ConfigError, InputError

#: The stream each multi-run model's seed is derived from (hash-derived, see miaudit.models.seeding).
_RUN_SEED_STREAM = "auditing/run-seed"


@dataclass(frozen=True)
class DPTraining:
    """DP-SGD settings of an audited run: the ``dpsgd`` defense's parameters (``epsilon`` *or*
    ``noise_multiplier``, ``delta``, and any recipe change such as ``epochs`` or ``lr`` in
    ``params``).

    ``noise_divisor`` > 1 is a deliberate FAULT, for testing auditors only: the claimed noise
    multiplier sigma (given, or the one the accountant finds for ``epsilon``) is what the reported
    epsilon is computed from, while the noise actually added has multiplier sigma / noise_divisor.
    """

    epsilon: float | None = 8.0
    noise_multiplier: float | None = None
    delta: float = 1e-5
    params: dict[str, Any] = field(default_factory=dict)
    noise_divisor: float = 1.0

    def defense_params(self) -> dict[str, Any]:
        """The ``dpsgd`` defense's parameters these settings stand for (claimed noise)."""
        return {"epsilon": self.epsilon, "noise_multiplier": self.noise_multiplier, "delta": self.delta, **self.params}


@dataclass(frozen=True)
class AuditTraining:
    """How every audited model is trained and scored: ``model`` (a :func:`miaudit.models.model_names`
    name) with architecture ``options`` and ``recipe`` (a :class:`~miaudit.models.TrainingRecipe`,
    default ``TrainingRecipe()``: the Location30 / Purchase100 non-private setting; DP-SGD ignores
    it and runs :data:`miaudit.defenses.dpsgd.DP_RECIPE` with ``dp.params``' changes), DP-SGD when
    ``dp`` is given, and the ``attack`` that scores the canaries: a registered attack of
    :func:`scoring_attacks`, or (one-run only) one of
    :data:`~miaudit.auditing.reference_canaries.REFERENCE_ATTACKS` with ``references`` reference
    models."""

    model: str = "mlp"
    options: dict[str, Any] | None = None
    recipe: Any = None
    dp: DPTraining | None = None
    attack: str = "loss"
    references: int = 8


@dataclass(frozen=True)
class OneRunResult:
    """One target and its canaries: ``scores`` (float64 (m,), higher = IN by the attack),
    ``coins`` (bool (m,), the truth), the accountant's ``epsilon`` (None when non-private; with a
    fault injected, the *claimed* epsilon), and the training report (``info``)."""

    model: Any
    canaries: CanarySet
    scores: np.ndarray
    attack: str
    epsilon: float | None
    delta: float | None
    info: dict[str, Any]

    @property
    def coins(self) -> np.ndarray:
        return self.canaries.coins

    def to_json(self) -> dict[str, Any]:
        """JSON-able: the canaries' metadata (kind, seed, coins, labels), the attack, the scores,
        the accountant's (epsilon, delta) and the training report; not the model."""
        return {
            "canaries": self.canaries.to_json(), "attack": self.attack, "scores": [float(v) for v in self.scores],
            "epsilon": self.epsilon, "delta": self.delta, "info": self.info,
        }  # fmt: skip


@dataclass(frozen=True)
class MultiRunResult:
    """``R`` runs of one canary: ``scores[r]`` is the attack's score of the canary on model r,
    ``coins[r]`` whether run r trained on it; ``epsilons[r]`` the accountant's epsilon of run r
    (None when non-private)."""

    canary_x: np.ndarray
    canary_y: np.ndarray
    kind: str
    scores: np.ndarray
    coins: np.ndarray
    attack: str
    epsilons: list[float | None]
    delta: float | None
    seed: int
    info: list[dict[str, Any]]

    def to_json(self) -> dict[str, Any]:
        """JSON-able: kind, seed, label, coins, scores and epsilons."""
        return {
            "kind": self.kind, "seed": int(self.seed), "runs": len(self.coins), "label": int(self.canary_y[0]),
            "coins": [int(c) for c in self.coins], "scores": [float(s) for s in self.scores],
            "attack": self.attack, "epsilons": self.epsilons, "delta": self.delta,
        }  # fmt: skip


def scoring_attacks() -> list[str]:
    """Registered attacks that score records without shadow or reference models."""
    from miaudit.attacks import ATTACKS  # the package registers every attack

    return [name for name, cls in ATTACKS.items() if cls.uncalibrated_requirements is not None]


def score_canaries(model: Any, x: np.ndarray, y: np.ndarray, attack: str = "loss") -> np.ndarray:
    """Scores (float64, higher = member) of records ``(x, y)`` on ``model`` by registered attack
    ``attack`` in its uncalibrated mode, queried through a white-box :class:`TargetAccess`."""
    from miaudit.attacks.base import ATTACKS
    from miaudit.targets.access import TargetAccess
    from miaudit.threat import THREAT_MODELS

    _check_attack(attack)
    access = TargetAccess(model, THREAT_MODELS.get("white-box"), input_shape=tuple(np.shape(x)[1:]))
    return np.asarray(ATTACKS.get(attack)().uncalibrated().score(access, x, y).scores, dtype=np.float64)


def _check_attack(attack: str, *, references_allowed: bool = False) -> None:
    from miaudit.auditing.reference_canaries import REFERENCE_ATTACKS

    valid = scoring_attacks()
    if attack in valid or (references_allowed and attack in REFERENCE_ATTACKS):
        return
    if attack in REFERENCE_ATTACKS:
        raise ConfigError(
            f"attack {attack!r} needs reference models, which only the one-run audit trains (a multi-run audit's single "
            "canary cannot use them: its score would be monotone in the loss); use loss, or the one-run mode"
        )
    raise ConfigError(f"attack {attack!r} cannot score canaries; choose one of: {', '.join(valid + list(REFERENCE_ATTACKS))}")


def _check_base(x: np.ndarray, y: np.ndarray, cx: np.ndarray, cy: np.ndarray, num_classes: int) -> None:
    if np.ndim(x) < 2 or np.ndim(y) != 1 or len(x) != len(y) or len(x) == 0:
        raise InputError(f"base records: x must be (n, features...) and y (n,) with n >= 1, got {np.shape(x)} and {np.shape(y)}")
    if tuple(np.shape(cx)[1:]) != tuple(np.shape(x)[1:]):
        raise InputError(f"canaries are shaped {np.shape(cx)[1:]} per record, the base records {np.shape(x)[1:]}")
    if len(cy) and (int(np.min(cy)) < 0 or int(np.max(cy)) >= num_classes):
        raise InputError(f"canary labels must lie in [0, {num_classes})")


def _task(x: np.ndarray, y: np.ndarray, idx: np.ndarray, num_classes: int, seed: int, model: str,
          options: dict[str, Any] | None, recipe: Any) -> Any:  # fmt: skip
    from miaudit.defenses.base import TrainingTask
    from miaudit.models import TrainingRecipe

    return TrainingTask(
        x=x, y=y, private_idx=idx, reference_idx=None, num_classes=num_classes, seed=seed, model=model,
        options=dict(options or {}), recipe=recipe or TrainingRecipe(),
    )  # fmt: skip


def train_private(task: Any, dp: DPTraining, before_noise: Callable[[Any], None] | None = None) -> tuple[Any, dict[str, Any]]:
    """One DP-SGD model of ``task`` (its ``private_idx``) through the ``dpsgd`` defense; returns
    (classifier, report). With ``dp.noise_divisor`` > 1 (the FAULT), the report's ``epsilon`` is
    the accountant's for the claimed noise multiplier, ``actual_noise_multiplier`` the one used
    and ``epsilon_of_actual_noise`` what the accountant gives for it. ``before_noise`` is
    :func:`miaudit.defenses.dpsgd.train_dp`'s hook (gradient canaries)."""
    from miaudit.defenses import DEFENSES
    from miaudit.defenses.dpsgd import train_dp
    from miaudit.defenses.training import require_torch_model, torch_classifier

    if not (isinstance(dp.noise_divisor, int | float) and math.isfinite(dp.noise_divisor) and dp.noise_divisor >= 1):
        raise ConfigError(f"noise_divisor must be a number >= 1 (1 = correct DP-SGD), got {dp.noise_divisor!r}")
    defense = DEFENSES.get("dpsgd")(**dp.defense_params())  # validates the parameters
    if dp.noise_divisor == 1 and before_noise is None:
        built = defense.build(task)
        return built.model, dict(built.info)
    require_torch_model(task, "dpsgd")
    params = dict(defense.params)
    if params["tune"]:
        raise ConfigError("dpsgd tune=true cannot be combined with a noise fault or gradient canaries; give a fixed lr")
    if dp.noise_divisor == 1:
        module, info = train_dp(task, params, before_noise=before_noise)
        return torch_classifier(module, task), info
    claimed = params["noise_multiplier"]
    if claimed is None:
        claimed = _noise_for_epsilon(params, len(task.private_idx))
    actual = float(claimed) / float(dp.noise_divisor)
    module, info = train_dp(task, {**params, "epsilon": None, "noise_multiplier": actual}, before_noise=before_noise)
    info["epsilon_of_actual_noise"] = info["epsilon"]
    info["actual_noise_multiplier"] = actual
    info["claimed_noise_multiplier"] = float(claimed)
    info["noise_multiplier"] = float(claimed)
    info["epsilon"] = _epsilon_of(params["accountant"], [(float(claimed), r, n) for _, r, n in info["accountant_history"]], params["delta"])
    info["fault"] = f"noise multiplier divided by {dp.noise_divisor:g} behind the accountant's back (auditor soundness test)"
    return torch_classifier(module, task), info


def _sample_rate(params: dict[str, Any], records: int) -> float:
    """Opacus' Poisson sample rate for ``records``: 1 / (batches per epoch)."""
    return 1 / math.ceil(records / min(int(params["batch_size"]), records))


def _noise_for_epsilon(params: dict[str, Any], records: int) -> float:
    """The noise multiplier Opacus' ``make_private_with_epsilon`` would choose for ``params``:
    sample rate 1 / (batches per epoch), ``epochs`` epochs, the same accountant."""
    from opacus.accountants.utils import get_noise_multiplier

    return float(get_noise_multiplier(
        target_epsilon=params["epsilon"], target_delta=params["delta"], sample_rate=_sample_rate(params, records),
        epochs=int(params["epochs"]), accountant=params["accountant"],
    ))  # fmt: skip


def _epsilon_of(accountant: str, history: list[tuple[float, float, int]], delta: float) -> float:
    """The accountant's epsilon at ``delta`` for a history of (noise multiplier, sample rate, steps)."""
    from opacus.accountants import create_accountant

    acc = create_accountant(accountant)
    acc.history = list(history)
    return float(acc.get_epsilon(delta))


def one_run(
    x: np.ndarray,
    y: np.ndarray,
    canaries: CanarySet,
    *,
    num_classes: int,
    seed: int = 0,
    training: AuditTraining | None = None,
) -> OneRunResult:
    """Steinke et al.'s one-run audit's training: one model on the base records ``(x, y)`` plus
    the canaries whose coin is IN, undefended (``dp=None``: ``fit_classifier``, the ModelBank)
    or DP-SGD (``dp``); then ``attack``'s scores of all ``m`` canaries (see the module docstring)."""
    from miaudit.models import fit_classifier

    t = training or AuditTraining()
    model, options, recipe, dp, attack = t.model, t.options, t.recipe, t.dp, t.attack
    _check_base(x, y, canaries.x, canaries.y, num_classes)
    _check_attack(attack, references_allowed=True)
    inside = canaries.inside
    all_x = np.concatenate([np.asarray(x, dtype=np.float32), canaries.x[inside]])
    all_y = np.concatenate([np.asarray(y, dtype=np.int64), canaries.y[inside]])
    idx = np.arange(len(all_y), dtype=np.int64)
    info: dict[str, Any] = {"base_records": int(len(y)), "canaries_in": int(len(inside)), "model": model}
    if dp is None:
        clf = fit_classifier(model, all_x, all_y, num_classes=num_classes, seed=seed, recipe=recipe, options=options, progress=False)
        epsilon, delta = None, None
    else:
        clf, report = train_private(_task(all_x, all_y, idx, num_classes, seed, model, options, recipe), dp)
        info["dpsgd"] = report
        epsilon, delta = float(report["epsilon"]), float(report["delta"])
    from miaudit.auditing.reference_canaries import REFERENCE_ATTACKS

    if attack in REFERENCE_ATTACKS:
        scores, info["references"] = _reference_scores(x, y, canaries, clf, num_classes, seed, t)
    else:
        scores = score_canaries(clf, canaries.x, canaries.y, attack)
    return OneRunResult(clf, canaries, scores, attack, epsilon, delta, info)


def _reference_scores(x: np.ndarray, y: np.ndarray, canaries: CanarySet, target: Any, num_classes: int, seed: int,
                      t: AuditTraining) -> tuple[np.ndarray, dict[str, Any]]:  # fmt: skip
    """LiRA scores of the canaries on ``target`` from ``t.references`` reference models trained
    like it, on the base records plus the canaries of :func:`reference_memberships`."""
    from miaudit.auditing.reference_canaries import lira_canary_scores, reference_memberships
    from miaudit.models.seeding import derive_seed

    online = t.attack == "lira"
    memberships = reference_memberships(len(canaries), t.references, seed, online=online)
    all_x = np.concatenate([np.asarray(x, dtype=np.float32), canaries.x])
    all_y = np.concatenate([np.asarray(y, dtype=np.int64), canaries.y])
    base = np.arange(len(y), dtype=np.int64)
    subsets = [np.concatenate([base, len(y) + np.flatnonzero(row)]) for row in memberships]
    seeds = [derive_seed(seed, f"auditing/reference-seed/{k}") % (2**32) for k in range(t.references)]
    models, _ = _train_models(all_x, all_y, subsets, seeds, num_classes, t)
    scores = lira_canary_scores(target, models, memberships, canaries.x, canaries.y, online=online)
    return scores, {"attack": t.attack, "models": t.references, "canaries_in_each": [int(r.sum()) for r in memberships]}


def _train_models(all_x: np.ndarray, all_y: np.ndarray, subsets: list[np.ndarray], seeds: list[int], num_classes: int,
                  t: AuditTraining) -> tuple[list[Any], list[dict[str, Any]]]:  # fmt: skip
    """One model per (subset, seed) of ``(all_x, all_y)`` as ``t`` says: undefended all at once
    in the ModelBank (reports empty), DP-SGD one after another (each with its accountant's report)."""
    if t.dp is None:
        from miaudit.attacks.train_models import train_many
        from miaudit.models import TrainingRecipe

        recipe = t.recipe or TrainingRecipe()
        return train_many(t.model, all_x, all_y, subsets, seeds, num_classes=num_classes, recipe=recipe, options=t.options), []
    models, reports = [], []
    for sub, s in zip(subsets, seeds, strict=True):
        clf, report = train_private(_task(all_x, all_y, sub, num_classes, s, t.model, t.options, t.recipe), t.dp)
        models.append(clf)
        reports.append(report)
    return models, reports


def multi_run(
    x: np.ndarray,
    y: np.ndarray,
    canary_x: np.ndarray,
    canary_y: np.ndarray,
    *,
    runs: int,
    num_classes: int,
    seed: int = 0,
    kind: str = "given",
    training: AuditTraining | None = None,
) -> MultiRunResult:
    """The classical audit's training: ``runs`` models on the base records ``(x, y)``, model r
    with the ONE canary ``(canary_x[0], canary_y[0])`` added when coin r (:func:`draw_coins` of
    ``seed``) is IN, each with its own seed derived from ``seed``; undefended models train at once in the ModelBank,
    DP-SGD models one after another. Returns ``attack``'s score of the canary on every model."""
    runs = check_count(runs, "runs")
    t = training or AuditTraining()
    dp, attack = t.dp, t.attack
    cx = np.asarray(canary_x, dtype=np.float32)
    cy = np.asarray(canary_y, dtype=np.int64).reshape(-1)
    if len(cx) != 1 or len(cy) != 1:
        raise InputError(f"the multi-run audit takes one canary, got {len(cx)} records and {len(cy)} labels")
    _check_base(x, y, cx, cy, num_classes)
    _check_attack(attack)
    from miaudit.models.seeding import derive_seed

    coins = draw_coins(runs, seed)
    all_x = np.concatenate([np.asarray(x, dtype=np.float32), cx])
    all_y = np.concatenate([np.asarray(y, dtype=np.int64), cy])
    base = np.arange(len(y), dtype=np.int64)
    subsets = [np.append(base, len(y)) if c else base for c in coins]
    seeds = [derive_seed(seed, f"{_RUN_SEED_STREAM}/{r}") % (2**32) for r in range(runs)]
    models, infos = _train_models(all_x, all_y, subsets, seeds, num_classes, t)
    epsilons: list[float | None] = [float(r["epsilon"]) for r in infos] if dp is not None else [None] * runs
    delta = None if dp is None else float(dp.delta)
    scores = np.array([score_canaries(m, cx, cy, attack)[0] for m in models], dtype=np.float64)
    return MultiRunResult(cx, cy, kind, scores, coins, attack, epsilons, delta, int(seed), infos)


@dataclass(frozen=True)
class GradientRunResult:
    """One DP-SGD run with ``m`` Dirac gradient canaries: ``coordinates`` (int64 (m,), indices
    into the flattened parameters), ``coins`` (bool (m,)), ``scores`` (float64 (m,): how far the
    coordinate moved against the canary's gradient, theta_0[j] - theta_T[j], in parameter units),
    the accountant's ``epsilon`` (claimed, with a fault), ``delta`` and the training report."""

    model: Any
    coordinates: np.ndarray
    coins: np.ndarray
    scores: np.ndarray
    epsilon: float
    delta: float
    seed: int
    info: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        """JSON-able: coordinates, coins, scores, (epsilon, delta), seed and the training report."""
        return {
            "kind": "dirac", "seed": int(self.seed), "coordinates": [int(v) for v in self.coordinates],
            "coins": [int(c) for c in self.coins], "scores": [float(v) for v in self.scores],
            "epsilon": self.epsilon, "delta": self.delta, "info": self.info,
        }  # fmt: skip


def one_run_gradient(
    x: np.ndarray,
    y: np.ndarray,
    m: int,
    *,
    num_classes: int,
    dp: DPTraining,
    seed: int = 0,
    model: str = "mlp",
    options: dict[str, Any] | None = None,
) -> GradientRunResult:
    """The white-box one-run audit with gradient canaries (Steinke, Nasr & Jagielski, NeurIPS
    2023, Dirac canaries; Nasr et al., S&P 2021): DP-SGD on ``(x, y)``, and at every step each IN
    canary (coin of :func:`draw_coins`) joins the Poisson batch with the records' sample rate and
    adds the gradient ``max_grad_norm * e_j`` (already of the clipping norm) on its coordinate j
    (:func:`dirac_coordinates`) to the clipped sum, before the noise. The auditor sees the initial
    and final parameters (white box: every coordinate's total move); the score of canary j is
    theta_0[j] - theta_T[j]. With ``dp.noise_divisor`` > 1 the run is the fault of
    :class:`DPTraining`."""
    import torch

    from miaudit.defenses.training import new_module
    from miaudit.models.seeding import derive_seed

    if np.ndim(x) < 2 or np.ndim(y) != 1 or len(x) != len(y) or len(x) == 0:
        raise InputError(f"base records: x must be (n, features...) and y (n,) with n >= 1, got {np.shape(x)} and {np.shape(y)}")
    m = check_count(m, "gradient canaries")
    xs, ys = np.asarray(x, dtype=np.float32), np.asarray(y, dtype=np.int64)
    task = _task(xs, ys, np.arange(len(ys), dtype=np.int64), num_classes, seed, model, options, None)
    from miaudit.defenses import DEFENSES

    params = DEFENSES.get("dpsgd")(**dp.defense_params()).params
    initial = _flat(new_module(task)) if model_is_torch(model) else None
    if initial is None:
        raise ConfigError(f"gradient canaries need a torch model; {model!r} is a scikit-learn estimator")
    coordinates = dirac_coordinates(len(initial), m, seed)
    coins = draw_coins(m, seed)
    rate = _sample_rate(params, len(ys))
    rng = np.random.default_rng(derive_seed(seed, "auditing/dirac-sampling"))
    inside = torch.from_numpy(coordinates[coins])
    clip = float(params["max_grad_norm"])

    def add_canaries(optimizer: Any) -> None:
        chosen = inside[torch.from_numpy(rng.random(len(inside)) < rate)]
        start = 0
        for p in optimizer.params:
            size = p.numel()
            local = chosen[(chosen >= start) & (chosen < start + size)] - start
            if len(local):
                p.summed_grad.view(-1).index_add_(0, local, torch.full((len(local),), clip, dtype=p.summed_grad.dtype))
            start += size

    clf, report = train_private(task, dp, before_noise=add_canaries)
    final = _flat(clf.module)
    scores = (initial[coordinates] - final[coordinates]).astype(np.float64)
    report["gradient_canaries"] = {"m": m, "in": int(coins.sum()), "sample_rate": rate, "norm": clip}
    return GradientRunResult(clf, coordinates, coins, scores, float(report["epsilon"]), float(report["delta"]), int(seed), report)


def model_is_torch(model: str) -> bool:
    """Whether ``model`` names a torch architecture (DP-SGD and gradient canaries need one)."""
    from miaudit.models import ARCHITECTURES

    return model in ARCHITECTURES


def _flat(module: Any) -> np.ndarray:
    """The module's parameters, flattened in ``parameters()`` order (Opacus' order too), float64."""
    import torch

    with torch.no_grad():
        return torch.cat([p.detach().reshape(-1) for p in module.parameters()]).double().numpy()
