"""The audit: data set -> split -> target -> attacks -> metrics, from one config and one seed.

Membership truth is computed here from the split and handed only to :func:`miaudit.metrics.evaluate`;
attacks see the target through :class:`TargetAccess` and their knowledge through
:class:`AttackerKnowledge`, both restricted by the threat model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from miaudit import metrics
from miaudit.attacks import ATTACKS, AttackerKnowledge, AttackResult, ModelSpec
from miaudit.data import load_dataset, load_user_data
from miaudit.data.base import Dataset
from miaudit.data.split import Split, SplitSizes, evaluation_records, known_members, make_split
from miaudit.errors import ConfigError
from miaudit.experiments.defaults import defaults_for
from miaudit.io_utils import stable_hash
from miaudit.paths import cache_dir as default_cache_dir
from miaudit.targets.access import QueryBudgetExceededError, TargetAccess
from miaudit.threat import THREAT_MODELS, DataKnowledge, OutputAccess, ThreatModel, check, derive


@dataclass(frozen=True)
class AuditConfig:
    """Everything that determines an audit. Unset fields take the data set's defaults."""

    dataset: str  # a registered name, or a path to user data (CSV, .npz, image folder)
    label_column: str | None = None  # for CSV user data
    model: str | None = None
    model_options: dict[str, Any] | None = None
    recipe: dict[str, Any] = field(default_factory=dict)  # overrides of the default recipe
    seed: int = 0
    split: SplitSizes | None = None
    threat_model: str = "gray-box"
    # Overrides of the preset (see miaudit.threat.derive): what a query returns ("label", "top3",
    # "full"), the queries each attack may make (every attack gets its own budget), a price per query.
    output: str | None = None
    query_budget: int | None = None
    price_per_query: float | None = None
    attacks: tuple[str, ...] | None = None  # None: every registered attack the threat model permits
    n_shadow_models: int = 4
    n_bootstrap: int = 200
    data_dir: str | None = None
    cache_dir: str | None = None
    use_cache: bool = True
    # A served target (miaudit serve) instead of training one. Membership truth still comes from
    # this config's split, so the served model must have been trained on it (audit --save-target
    # with the same data set, seed and split).
    target_url: str | None = None
    api_key: str | None = None
    # Under partial-training-set data knowledge: the fraction of the target's members the attacker
    # knows (they are then not evaluated).
    known_member_fraction: float = 0.5
    # Constructor options per attack, e.g. {"blindmi-bi": {"batch_size": 100}}.
    attack_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    # A defense spec (miaudit.defenses, e.g. "dpsgd:epsilon=4", "memguard:budget=0.5"): the target
    # is trained and/or released with it; a defense needing reference data takes the split's
    # population part. adaptive: the attacker knows the defense and builds its shadows with it.
    defense: str | None = None
    adaptive: bool = True


@dataclass(frozen=True)
class AttackOutcome:
    result: AttackResult
    metrics: metrics.Metrics
    queries: int = 0  # queries the attack made (records x calls, white-box calls included)


@dataclass(frozen=True)
class AuditResult:
    config: AuditConfig
    dataset: Dataset
    split: Split
    model_name: str
    model_options: dict[str, Any]
    recipe: dict[str, Any]
    target: Any  # the trained target (a miaudit.models Classifier)
    train_accuracy: float
    test_accuracy: float
    record_indices: np.ndarray
    is_member: np.ndarray
    outcomes: list[AttackOutcome]
    skipped: dict[str, str]
    threat: ThreatModel | None = None  # the derived threat model the attacks ran under
    defense: dict[str, Any] | None = None  # the defense's description and report (e.g. DP-SGD's epsilon)


def _accuracy(model: Any, x: np.ndarray, y: np.ndarray) -> float:
    """The target's accuracy from its labels alone, so a served label-only target works too."""
    access = TargetAccess(model, THREAT_MODELS.get("label-only"), input_shape=x.shape[1:])
    return float((access.predict_label(x) == y).mean())


def _capped_by_server(threat: ThreatModel, server: Any) -> ThreatModel:
    """The threat model, its output narrowed to what the server releases (never widened)."""
    if server.output >= threat.output:
        return threat
    release = {OutputAccess.LABEL: "label", OutputAccess.TOP_K: f"top{server.k}", OutputAccess.PROBABILITIES: "full"}
    return derive(threat, output=release[server.output])


def load_audit_data(config: AuditConfig) -> Dataset:
    """A registered data set by name, or the user's own file or folder by path."""
    path = Path(config.dataset).expanduser()
    if path.exists():
        return load_user_data(path, label_column=config.label_column)
    if config.label_column is not None:
        raise ConfigError(f"--label-column applies to user data files, and {config.dataset!r} is not a file")
    return load_dataset(config.dataset, config.data_dir)


def make_attack(name: str, options: dict[str, Any]) -> Any:
    """A registered attack built with ``options`` (keyword arguments); unknown options fail in one line."""
    cls = ATTACKS.get(name)
    try:
        return cls(**options)
    except TypeError as exc:
        raise ConfigError(f"attack {name!r} does not take options {sorted(options)}: {exc}") from None


@dataclass(frozen=True)
class AuditSetup:
    """An audit up to its attacks: data, split, target, the attacker's knowledge, the records
    to score and their truth. :func:`run_attack` runs one attack on it."""

    config: AuditConfig
    threat: ThreatModel
    permitted: list[str]
    skipped: dict[str, str]
    dataset: Dataset
    split: Split
    model_name: str
    model_options: dict[str, Any]
    recipe: dict[str, Any]
    target: Any
    train_accuracy: float
    test_accuracy: float
    knowledge: AttackerKnowledge
    record_indices: np.ndarray
    is_member: np.ndarray
    instances: dict[str, Any] = field(default_factory=dict)  # the attacks, built with their options
    defense: dict[str, Any] | None = None  # the target's defense and what it reported


def prepare_audit(
    config: AuditConfig, *, progress: bool = True, executor: Any = None, dataset: Dataset | None = None
) -> AuditSetup:
    """Check the attacks against the threat model, load the data, split it, train (or load
    from the cache) the target. ``executor`` (:mod:`miaudit.models.executors`) trains shadow
    and reference models; None trains them in this process. ``dataset`` replaces loading
    ``config.dataset`` (the studies pass derived data sets, e.g. a subset of the classes,
    keeping the data set's name for its defaults)."""
    from miaudit.models import ModelCache, TrainingRecipe, fit_classifier

    threat = derive(
        config.threat_model,
        output=config.output,
        query_budget=config.query_budget,
        price_per_query=config.price_per_query,
    )
    remote = None
    if config.target_url is not None:
        from miaudit.targets.http_target import HttpTarget

        remote = HttpTarget(config.target_url, api_key=config.api_key)
        threat = _capped_by_server(threat, remote)
    selected = list(config.attacks) if config.attacks is not None else ATTACKS.names()
    # Requirements are checked before any training, so a refusal costs nothing.
    permitted: list[str] = []
    skipped: dict[str, str] = {}
    for name in selected:
        reason = check(ATTACKS.get(name).requirements, threat)  # unknown names fail here too
        if reason is None:
            permitted.append(name)
        elif config.attacks is not None:
            # Asked for by name: refuse rather than run it with knowledge it may not have.
            raise ConfigError(f"attack {name!r} is not permitted by threat model {threat.name!r}: {reason}")
        else:
            skipped[name] = reason
    unused = sorted(set(config.attack_options) - set(permitted) - set(skipped))
    if unused:
        raise ConfigError(f"options given for attacks that are not run: {unused}")
    # Built now, so that a bad option fails before any training.
    instances = {name: make_attack(name, config.attack_options.get(name, {})) for name in permitted}
    if config.n_shadow_models < 1:
        raise ConfigError(f"--shadow-models must be >= 1, got {config.n_shadow_models}")
    defense = None
    if config.defense is not None:
        from miaudit.defenses import parse_defense

        defense = parse_defense(config.defense)  # unknown names and parameters fail before training
        if remote is not None:
            raise ConfigError("--defense applies to targets trained here; a served target's defense is the server's (serve --defense)")

    if dataset is None:
        dataset = load_audit_data(config)
    defaults = defaults_for(dataset.name)
    model_name = config.model or defaults.model
    # The data set's default options belong to its default model; another model starts from its own.
    default_options = defaults.model_options if model_name == defaults.model else {}
    model_options = dict(default_options if config.model_options is None else config.model_options)
    recipe_dict = {**defaults.recipe, **config.recipe}
    recipe = TrainingRecipe(**recipe_dict)
    split = make_split(len(dataset), config.split or defaults.split, seed=config.seed)
    cache = ModelCache(default_cache_dir(config.cache_dir) / "models") if config.use_cache else None

    defense_report: dict[str, Any] | None = None
    if defense is not None:
        from miaudit.defenses import TrainingTask

        if defense.needs_reference and len(split.population) == 0:
            raise ConfigError(
                f"defense {defense.name!r} needs reference records held by the defender: give the split a population"
            )
        task = TrainingTask(
            x=dataset.x, y=dataset.y, private_idx=split.target_in,
            reference_idx=split.population if len(split.population) else None,
            num_classes=dataset.num_classes, seed=config.seed, model=model_name, options=model_options,
            recipe=recipe, cache=cache, data_fingerprint=dataset.fingerprint, progress=progress,
        )  # fmt: skip
        defended = defense.build(task)
        defense_report = {**defense.describe(), "info": defended.info, "adaptive_attacker": config.adaptive}
    if remote is not None:
        target = remote
    elif defense is not None:
        target = defended.model
    else:
        target = fit_classifier(
            model_name,
            dataset.x,
            dataset.y,
            num_classes=dataset.num_classes,
            seed=config.seed,
            recipe=recipe,
            options=model_options,
            cache=cache,
            data_fingerprint=dataset.fingerprint,
            train_indices=split.target_in,
            progress=progress,
        )
    if remote is not None and remote.input_shape != dataset.feature_shape:
        raise ConfigError(
            f"the served model takes inputs shaped {remote.input_shape}, data set {dataset.name!r} has {dataset.feature_shape}"
        )
    train_acc = _accuracy(target, dataset.x[split.target_in], dataset.y[split.target_in])
    test_acc = _accuracy(target, dataset.x[split.target_out], dataset.y[split.target_out])

    pool = split.attacker_pool
    known = (
        known_members(split, config.known_member_fraction, seed=config.seed)
        if threat.data >= DataKnowledge.PARTIAL_TRAINING_SET
        else None
    )
    knowledge = AttackerKnowledge.under(
        threat,
        num_classes=dataset.num_classes,
        input_shape=dataset.feature_shape,
        seed=config.seed + 1,  # the attacker's randomness is not the target's
        pool_x=dataset.x[pool],
        pool_y=dataset.y[pool],
        pool_fingerprint=stable_hash({"dataset": dataset.fingerprint, "indices": pool}),
        target_model=ModelSpec(
            model_name, model_options, recipe,
            defense if (config.adaptive and defense is not None and defense.name != "none") else None,
        ),  # fmt: skip
        n_shadow_models=config.n_shadow_models,
        cache=cache,
        known_members_x=None if known is None else dataset.x[known],
        known_members_y=None if known is None else dataset.y[known],
        executor=executor,
    )
    record_idx, is_member = evaluation_records(split, seed=config.seed, exclude=known)
    return AuditSetup(
        config=config,
        threat=threat,
        permitted=permitted,
        skipped=skipped,
        dataset=dataset,
        split=split,
        model_name=model_name,
        model_options=model_options,
        recipe=recipe.to_dict(),
        target=target,
        train_accuracy=train_acc,
        test_accuracy=test_acc,
        knowledge=knowledge,
        record_indices=record_idx,
        is_member=is_member,
        instances=instances,
        defense=defense_report,
    )


def run_attack(setup: AuditSetup, name: str) -> AttackOutcome | str:
    """Fit attack ``name`` on the attacker's knowledge, score the evaluated records, evaluate.

    Returns the outcome, or the reason it was skipped (a query budget too small for it).
    """
    dataset, config = setup.dataset, setup.config
    x_eval, y_eval = dataset.x[setup.record_indices], dataset.y[setup.record_indices]
    attack = (setup.instances[name] if name in setup.instances else make_attack(name, {})).fit(setup.knowledge)
    # A fresh access per attack: the query budget applies to each attack separately.
    access = TargetAccess(setup.target, setup.threat, input_shape=dataset.feature_shape)
    try:
        result = attack.score(access, x_eval, y_eval)
    except QueryBudgetExceededError as exc:
        return f"needs more queries than the budget allows: {exc} ({len(x_eval)} records to score)"
    m = metrics.evaluate(
        result.scores,
        setup.is_member,
        threshold=result.threshold,
        threshold_source=result.threshold_source,
        n_bootstrap=config.n_bootstrap,
        seed=config.seed,
    )
    return AttackOutcome(result, m, queries=access.queries)


def audit_result(setup: AuditSetup, outcomes: list[AttackOutcome], skipped: dict[str, str]) -> AuditResult:
    """The :class:`AuditResult` of ``setup`` with these outcomes."""
    return AuditResult(
        config=setup.config,
        dataset=setup.dataset,
        split=setup.split,
        model_name=setup.model_name,
        model_options=setup.model_options,
        recipe=setup.recipe,
        target=setup.target,
        train_accuracy=setup.train_accuracy,
        test_accuracy=setup.test_accuracy,
        record_indices=setup.record_indices,
        is_member=setup.is_member,
        outcomes=outcomes,
        skipped=skipped,
        threat=setup.threat,
        defense=setup.defense,
    )


def run_audit(
    config: AuditConfig, *, progress: bool = True, executor: Any = None, dataset: Dataset | None = None
) -> AuditResult:
    """Train (or load from cache) the target, run the permitted attacks, evaluate them.

    ``dataset`` replaces loading ``config.dataset`` (see :func:`prepare_audit`).
    """
    setup = prepare_audit(config, progress=progress, executor=executor, dataset=dataset)
    outcomes: list[AttackOutcome] = []
    skipped = dict(setup.skipped)
    for name in setup.permitted:
        outcome = run_attack(setup, name)
        if isinstance(outcome, str):
            skipped[name] = outcome  # not enough queries for this attack: go on with the others
        else:
            outcomes.append(outcome)
    return audit_result(setup, outcomes, skipped)
