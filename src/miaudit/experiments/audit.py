"""The audit: data set -> split -> target -> attacks -> metrics, from one config and one seed.

Membership truth is computed here from the split and handed only to :func:`miaudit.metrics.evaluate`;
attacks see the target through :class:`TargetAccess` and their knowledge through
:class:`AttackerKnowledge`, both restricted by the threat model.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from miaudit import metrics
from miaudit.data.baselines import at_majority_rate, majority_class_rate
from miaudit.attacks import ATTACKS, AttackerKnowledge, AttackResult, ModelSpec
from miaudit.data import load_dataset, load_user_data
from miaudit.data.base import Dataset
from miaudit.data.split import FixedSplit, Split, SplitSizes, evaluation_records, known_members, make_split
from miaudit.errors import ConfigError
from miaudit.experiments.defaults import defaults_for
from miaudit.io_utils import stable_hash
from miaudit.paths import cache_dir as default_cache_dir
from miaudit.core.sources import UnanswerableQueryError
from miaudit.targets.access import QueryBudgetExceededError, TargetAccess
from miaudit.threat import THREAT_MODELS, DataKnowledge, OutputAccess, ThreatModel, check, derive
from miaudit.limits import check_at_most
from miaudit.seeds import check_user_seed, offset_seed


@dataclass(frozen=True)
class AuditConfig:
    """Everything that determines an audit. Unset fields take the data set's defaults."""

    dataset: str  # a registered name, or a path to user data (CSV, .npz, image folder)
    label_column: str | None = None  # for CSV user data
    # For CSV user data: categorical encoding, imputation, ignored columns (miaudit.data.tabular).
    csv_options: dict[str, Any] = field(default_factory=dict)
    model: str | None = None
    model_options: dict[str, Any] | None = None
    recipe: dict[str, Any] = field(default_factory=dict)  # overrides of the default recipe
    seed: int = 0
    split: SplitSizes | None = None
    # Fixed indices instead of the seeded draw of ``split`` (e.g. a paper's own shuffle), and the
    # shadow models' training records where they are fixed too; the seed then varies only the models.
    fixed_split: FixedSplit | None = None
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
    # Where the target comes from (miaudit.core.sources): None = trained here from ``model``.
    # A model file, a Python object, a URL or precomputed outputs are audited instead.
    target: Any = None
    # The user's own records (miaudit.core.own_data.OwnData) instead of ``dataset`` + ``split``.
    own_data: Any = None
    # The attacker's stand-in for a target not trained here: "same", a model name or a
    # callable(x, y, seed) -> model (miaudit.core.stand_ins); its torch recipe overrides.
    shadow_model: Any = None
    shadow_recipe: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Every audit (CLI, API, grid cells, studies, defend, reproduce) is built from an
        # AuditConfig: the counts and the seed a user gives are checked once, here.
        check_user_seed(self.seed, "--seed")
        if isinstance(self.n_shadow_models, bool) or not isinstance(self.n_shadow_models, int) or self.n_shadow_models < 1:
            raise ConfigError(f"--shadow-models must be a whole number >= 1, got {self.n_shadow_models!r}")
        check_at_most("models", self.n_shadow_models, "--shadow-models (shadow / reference models per attack)")
        if self.fixed_split is not None and not isinstance(self.fixed_split, FixedSplit):
            raise ConfigError(f"fixed_split must be a miaudit.data.split.FixedSplit, got {type(self.fixed_split).__name__}")
        check_dataset_name(self.dataset)


def check_dataset_name(name: object) -> str:
    """A data set name or path a user gives: non-empty, no longer than a file system allows.

    An empty name would be read as the current folder (``Path("")`` is ``.``); a name of
    thousands of characters would fail deep in the file system with the whole name echoed.
    """
    if not isinstance(name, str) or not name.strip():
        raise ConfigError("--dataset is empty; give a registered data set name (see `miaudit datasets list`) or a file path")
    if len(name) > _PATH_MAX or any(len(part) > _NAME_MAX for part in name.split("/")):
        raise ConfigError(
            f"--dataset {name[:40]!r}... is {len(name):,} characters, longer than any data set name or path "
            f"(at most {_NAME_MAX} per path component, {_PATH_MAX} in all)"
        )
    return name


_NAME_MAX, _PATH_MAX = 255, 4096  # Linux's NAME_MAX and PATH_MAX


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
    source: str = "trained here by miaudit"  # what was audited (miaudit.core.sources)
    source_kind: str = "trained"
    stand_in: str | None = None  # the attacker's stand-in for a target not trained here
    uncalibrated: tuple[str, ...] = ()  # attacks scored without calibration (threshold-free metrics)
    notes: tuple[str, ...] = ()  # what the audit did that a reader must know (subsamples, held-out pool)
    warnings: tuple[str, ...] = ()  # what may make the audit misleading (a constant predictor)

    def record(self) -> Any:
        """This audit as an :class:`~miaudit.core.record.AuditRecord` (the verdict included)."""
        from miaudit.core.record import record_of

        return record_of(self)


NOT_CALIBRATED_NOTE = "scored without calibration (no shadow models or pool under this threat model): threshold-free metrics only"


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
    path = Path(check_dataset_name(config.dataset)).expanduser()
    if path.exists():
        return load_user_data(path, label_column=config.label_column, **config.csv_options)
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
    source: str = "trained here by miaudit"
    source_kind: str = "trained"
    stand_in: Any = None  # a miaudit.core.stand_ins.StandIn, released by close()
    notes: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()

    @property
    def uncalibrated(self) -> tuple[str, ...]:
        return tuple(n for n in self.permitted if not getattr(self.instances.get(n), "calibrated", True))

    def close(self) -> None:
        """Release what the audit holds for its span: a user's stand-in model, and the process
        of a model file that runs in one (a sandboxed TorchScript model)."""
        if self.stand_in is not None:
            self.stand_in.release()
        if self.source_kind == "file" and callable(getattr(self.target, "close", None)):
            self.target.close()


def _source(config: AuditConfig) -> Any:
    from miaudit.core.sources import TargetSource

    if config.target is None:
        return TargetSource("url", config.target_url, {"api_key": config.api_key}) if config.target_url else TargetSource("trained")
    if config.target_url is not None:
        raise ConfigError("give either a target source or a target URL, not both")
    return config.target if isinstance(config.target, TargetSource) else TargetSource("object", config.target)


def _check_class_names(target: Any, class_names: tuple[str, ...]) -> None:
    """A model that names its classes (a scikit-learn ``classes_``) must name the data's, in order."""
    names = getattr(target, "class_names", None)
    if not class_names or not names:
        return
    if [str(n) for n in names] != [str(n) for n in class_names]:
        raise ConfigError(
            f"the model's classes {list(names)[:10]} are not the data's labels {list(class_names)[:10]} (in order); "
            "check --label-column and that the files are the model's data"
        )


def _select_attacks(
    config: AuditConfig, threat: ThreatModel, *, has_pool: bool, has_model: bool, model_hint: str
) -> tuple[list[str], dict[str, str], set[str]]:
    """(permitted, skipped with reasons, those run uncalibrated). Checked before any training.

    An attack runs when the threat model permits it and the audit holds what it needs (a pool
    for data, a stand-in model for shadow models); failing that, an attack whose scores need
    only the outputs runs uncalibrated (threshold-free metrics). Asked for by name, an attack
    that can do neither is refused rather than run with knowledge it may not have.
    """
    selected = list(config.attacks) if config.attacks is not None else ATTACKS.names()
    if config.attacks is not None and not selected:
        raise ConfigError("--attacks names no attack; give attack names (see `miaudit attacks`) or leave it out")
    permitted: list[str] = []
    skipped: dict[str, str] = {}
    uncalibrated: set[str] = set()
    for name in selected:
        cls = ATTACKS.get(name)  # unknown names fail here
        req = cls.requirements
        reason = check(req, threat)
        if reason is None and req.data > DataKnowledge.NONE and not has_pool:
            reason = "needs the attacker's same-distribution data (a pool: --pool, or a share of the test records)"
        if reason is None and (req.architecture or req.shadow_models) and not has_model:
            reason = f"needs a model standing in for the target's in shadow models ({model_hint})"
        if reason is not None and cls.uncalibrated_requirements is not None and check(cls.uncalibrated_requirements, threat) is None:
            uncalibrated.add(name)
            reason = None
        if reason is None:
            permitted.append(name)
        elif config.attacks is not None:
            raise ConfigError(f"attack {name!r} is not permitted by threat model {threat.name!r} in this audit: {reason}")
        else:
            skipped[name] = reason
    return permitted, skipped, uncalibrated


def _audit_data(config: AuditConfig, source: Any, dataset: Dataset | None, needs_pool: bool) -> tuple[Dataset, Split, list[str]]:
    """The data set and split: the user's own records, precomputed outputs' rows, or a split."""
    from miaudit.core.own_data import own_dataset
    from miaudit.core.outputs_data import outputs_dataset

    if config.own_data is not None:
        if config.split is not None or config.fixed_split is not None:
            raise ConfigError("--split applies to one data set; with --train/--test the files are the split")
        return own_dataset(config.own_data, seed=config.seed, needs_pool=needs_pool)
    if source.kind == "outputs":
        if config.fixed_split is not None:
            raise ConfigError("a fixed split applies to a data set; precomputed outputs bring their own membership")
        return outputs_dataset(source.value, seed=config.seed)
    if dataset is None:
        dataset = load_audit_data(config)
    if config.fixed_split is not None:
        fixed = config.fixed_split
        return dataset, fixed.split(len(dataset), seed=config.seed), [f"split: fixed indices from {fixed.source}"]
    return dataset, make_split(len(dataset), config.split or defaults_for(dataset.name).split, seed=config.seed), []


def prepare_audit(
    config: AuditConfig, *, progress: bool = True, executor: Any = None, dataset: Dataset | None = None
) -> AuditSetup:
    """Check the attacks against the threat model, load the data, split it, train (or load
    from the cache) or resolve the target. ``executor`` (:mod:`miaudit.models.executors`) trains
    shadow and reference models; None trains them in this process. ``dataset`` replaces loading
    ``config.dataset`` (the studies pass derived data sets, e.g. a subset of the classes,
    keeping the data set's name for its defaults). Call :meth:`AuditSetup.close` when done."""
    from miaudit.core.sources import TARGET_SOURCES, connect_url
    from miaudit.core.stand_ins import stand_in as make_stand_in
    from miaudit.models import ModelCache, TrainingRecipe, fit_classifier

    source = _source(config)
    trained_here = TARGET_SOURCES.get(source.kind).trained_here
    threat = derive(
        config.threat_model,
        output=config.output,
        query_budget=config.query_budget,
        price_per_query=config.price_per_query,
    )
    remote = None
    if source.kind == "url":
        remote = connect_url(source)
        threat = _capped_by_server(threat, remote)
    if source.kind == "outputs":
        threat = derive(threat, output="full") if threat.output > OutputAccess.PROBABILITIES else threat
    # A model served from this data set's split (audit --save-target, then serve) was trained with the
    # data set's model and recipe, which the attacker may then know as for a target trained here.
    served_from_split = source.kind == "url" and config.own_data is None
    knows_recipe = trained_here or served_from_split
    has_model = knows_recipe or config.shadow_model is not None
    hint = "--shadow-model same|NAME" if not knows_recipe else ""
    own_pool = config.own_data is not None and (config.own_data.pool is not None or config.own_data.pool_share > 0)
    has_pool = source.kind != "outputs" and (config.own_data is None or own_pool)
    permitted, skipped, uncalibrated = _select_attacks(config, threat, has_pool=has_pool, has_model=has_model, model_hint=hint)
    unused = sorted(set(config.attack_options) - set(permitted) - set(skipped))
    if unused:
        raise ConfigError(f"options given for attacks that are not run: {unused}")
    # Built now, so that a bad option fails before any training.
    instances = {name: make_attack(name, config.attack_options.get(name, {})) for name in permitted}
    for name in uncalibrated:
        instances[name].uncalibrated()
    if not trained_here and config.defense is not None:
        raise ConfigError("--defense applies to targets trained here; a served target's defense is the server's (serve --defense)")
    if config.shadow_recipe and config.shadow_model is None:
        raise ConfigError("--shadow-recipe is the recipe of a --shadow-model; give one (same or a model name)")
    if knows_recipe and config.shadow_model is not None:
        raise ConfigError("--shadow-model applies to a model trained elsewhere; miaudit's own targets use their own recipe")
    defense = None
    if config.defense is not None:
        from miaudit.defenses import parse_defense

        defense = parse_defense(config.defense)  # unknown names and parameters fail before training

    needs_pool = any(ATTACKS.get(n).requirements.data > DataKnowledge.NONE for n in permitted if n not in uncalibrated)
    dataset, split, notes = _audit_data(config, source, dataset, needs_pool)
    defaults = defaults_for(dataset.name)
    model_name = config.model or defaults.model
    # The data set's default options belong to its default model; another model starts from its own.
    default_options = defaults.model_options if model_name == defaults.model else {}
    model_options = dict(default_options if config.model_options is None else config.model_options)
    recipe_dict = {**defaults.recipe, **config.recipe}
    recipe = TrainingRecipe(**recipe_dict)
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
        if remote.input_shape != dataset.feature_shape:
            raise ConfigError(
                f"the served model takes inputs shaped {remote.input_shape}, data set {dataset.name!r} has {dataset.feature_shape}"
            )
    elif defense is not None:
        target = defended.model
    elif trained_here:
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
    else:
        target = TARGET_SOURCES.get(source.kind).resolve(source, dataset.x[split.target_in[:8]], dataset.num_classes)
        _check_class_names(target, dataset.class_names)
    train_acc = _accuracy(target, dataset.x[split.target_in], dataset.y[split.target_in])
    test_acc = _accuracy(target, dataset.x[split.target_out], dataset.y[split.target_out])
    warnings = list(getattr(config.own_data, "warnings", ()))
    majority = majority_class_rate(dataset.y[split.target_in], dataset.y[split.target_out])
    if at_majority_rate(test_acc, dataset.y[split.target_in], dataset.y[split.target_out]):
        warnings.append(
            f"the target's test accuracy ({test_acc:.3f}) is at the majority-class rate ({majority:.3f}): it predicts "
            "little more than the most frequent class, so low leakage says little; check its features (e.g. standardize)"
        )

    stand_in = None
    if knows_recipe:
        attacker_model = ModelSpec(
            model_name, model_options, recipe,
            defense if (config.adaptive and defense is not None and defense.name != "none") else None,
            train_size=len(split.target_in), reference_size=len(split.population),
        )  # fmt: skip
    else:
        stand_in = make_stand_in(
            config.shadow_model, target=target, num_classes=dataset.num_classes,
            input_shape=dataset.feature_shape, recipe=config.shadow_recipe,
        )  # fmt: skip
        # The stand-in trains like the user's target as far as the user says, at the size of the
        # training records they name (the online attacks' references are that size too).
        attacker_model = (
            replace(stand_in.spec, train_size=len(split.target_in)) if stand_in is not None else ModelSpec("unknown")
        )
        model_name = source.describe()
        model_options, recipe = {}, TrainingRecipe()
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
        seed=offset_seed(config.seed, "attacker"),
        pool_x=dataset.x[pool] if len(pool) else None,
        pool_y=dataset.y[pool] if len(pool) else None,
        pool_fingerprint=stable_hash({"dataset": dataset.fingerprint, "indices": pool}),
        target_model=attacker_model,
        n_shadow_models=config.n_shadow_models,
        cache=cache,
        known_members_x=None if known is None else dataset.x[known],
        known_members_y=None if known is None else dataset.y[known],
        executor=executor,
        shadow_subsets=config.fixed_split.shadow_subsets if config.fixed_split is not None else (),
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
        recipe=recipe.to_dict() if knows_recipe else {},
        target=target,
        train_accuracy=train_acc,
        test_accuracy=test_acc,
        knowledge=knowledge,
        record_indices=record_idx,
        is_member=is_member,
        instances=instances,
        defense=defense_report,
        source=source.describe(),
        source_kind=source.kind,
        stand_in=stand_in,
        notes=tuple(notes) + tuple(f"{n}: {NOT_CALIBRATED_NOTE}" for n in sorted(uncalibrated)),
        warnings=tuple(warnings),
    )


def run_attack(setup: AuditSetup, name: str) -> AttackOutcome | str:
    """Fit attack ``name`` on the attacker's knowledge, score the evaluated records, evaluate.

    Returns the outcome, or the reason it was skipped (a query budget too small for it).
    """
    dataset, config = setup.dataset, setup.config
    x_eval, y_eval = dataset.x[setup.record_indices], dataset.y[setup.record_indices]
    attack = setup.instances[name] if name in setup.instances else make_attack(name, {})
    if attack.calibrated:
        attack = attack.fit(setup.knowledge)
    # A fresh access per attack: the query budget applies to each attack separately.
    access = TargetAccess(setup.target, setup.threat, input_shape=dataset.feature_shape)
    try:
        result = attack.score(access, x_eval, y_eval)
    except QueryBudgetExceededError as exc:
        return f"needs more queries than the budget allows: {exc} ({len(x_eval)} records to score)"
    except UnanswerableQueryError:
        return "queries records other than those with precomputed outputs (give the model itself to run it)"
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
        source=setup.source,
        source_kind=setup.source_kind,
        stand_in=setup.stand_in.description if setup.stand_in is not None else None,
        uncalibrated=setup.uncalibrated,
        notes=setup.notes,
        warnings=setup.warnings,
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
    try:
        for name in setup.permitted:
            outcome = run_attack(setup, name)
            if isinstance(outcome, str):
                skipped[name] = outcome  # not enough queries for this attack: go on with the others
            else:
                outcomes.append(outcome)
    finally:
        setup.close()
    return audit_result(setup, outcomes, skipped)
