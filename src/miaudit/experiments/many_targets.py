"""The many-target protocol for reference-model attacks (Carlini et al., S&P 2022, section V).

M models train on paired complementary random halves of one data set, so every record is IN for
exactly half of them. Each of several models in turn plays the target; the other models are the
attacker's reference models. Scores of every attack are computed from the models' outputs on all
records, once, and evaluated against the target's own halves (the truth reaches only the metrics).

"k reference models" means k models' outputs per scored record: the offline attacks (LiRA
offline, RMIA offline, Attack-R) use, for every record, the first k references (in a seeded
random order) that did not train on it; the online attacks (LiRA, RMIA) use the first k/2 that
did and the first k/2 that did not. So every attack is measured with the same number of models
per record. A record is OUT for only M/2 of the M models (one of which may be the target), so
where k asks for more than there are, every available reference is used, and the result rows
say how many references per record were actually used.

RMIA's population is every record of the data set (the target's outputs on them are queried);
its score is then the rank of the likelihood ratio among the population's, so AUC and TPR are
those of the ratio itself (any fixed population gives the same order). Offline RMIA's ``a`` is
chosen on the attacker's own truth: the first reference plays a stand-in target against the
others, never the real target. BASE (online and offline) runs at its defaults (temperature 2,
offline scale factor 0.33), untuned.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from miaudit import metrics
from miaudit.attacks import augment
from miaudit.attacks.attack_r import attack_r_scores
from miaudit.attacks.bayes_base import (
    DEFAULT_SCALE,
    DEFAULT_TEMPERATURE,
    base_offline_scores,
    base_online_scores,
    tempered_log_confidence,
)
from miaudit.attacks.lira import lira_offline_scores, lira_online_scores, logit_scaled_confidence, use_per_record
from miaudit.attacks.loss import log_true_class_probability
from miaudit.attacks.reference_stats import first_per_record
from miaudit.attacks.rmia import A_GRID, likelihood_ratio, marginal, population_fraction
from miaudit.attacks.knowledge import ModelSpec
from miaudit.attacks.shadow_models import half_splits
from miaudit.attacks.train_models import train_models
from miaudit.data import load_dataset
from miaudit.errors import ConfigError
from miaudit.experiments.defaults import defaults_for
from miaudit.registry import Registry
from miaudit.limits import check_at_most
from miaudit.seeds import check_user_seed, stream_rng

FPRS = (0.01, 0.001)


@dataclass(frozen=True)
class ManyTargetConfig:
    """One many-target experiment; unset model fields take the data set's defaults."""

    dataset: str
    n_models: int = 64
    n_targets: int = 4
    reference_counts: tuple[int, ...] = (1, 2, 4, 8, 16, 64)
    attacks: tuple[str, ...] | None = None  # None: every protocol attack
    model: str | None = None
    model_options: dict[str, Any] | None = None
    recipe: dict[str, Any] = field(default_factory=dict)
    subset: int | None = None  # use only the first ``subset`` records of a seeded shuffle
    augmentation: str = "none"  # query views for LiRA (see miaudit.attacks.augment)
    seed: int = 0
    data_dir: str | None = None
    cache_dir: str | None = None
    use_cache: bool = True


@dataclass(frozen=True)
class Outputs:
    """What every model gives on every record: ``phi`` (views, models, records), loss, ``p_y`` and
    BASE's tempered log-confidence ``s_base`` at its default temperature (models, records), and
    which records each model trained on (``member``, models x records)."""

    phi: np.ndarray
    loss: np.ndarray
    p_y: np.ndarray
    member: np.ndarray
    s_base: np.ndarray

    def take(self, rows: np.ndarray) -> Outputs:
        return Outputs(self.phi[:, rows], self.loss[rows], self.p_y[rows], self.member[rows], self.s_base[rows])


@dataclass(frozen=True)
class Context:
    """One target and an ordered list of references, with the masks for k references per record
    (each computed once and shared by the attacks that use it)."""

    target: Outputs  # a single row
    refs: Outputs
    k: int

    @cached_property
    def out_k(self) -> np.ndarray:
        return first_per_record(~self.refs.member, self.k)

    @cached_property
    def in_half(self) -> np.ndarray:
        return first_per_record(self.refs.member, self.k // 2)

    @cached_property
    def out_half(self) -> np.ndarray:
        return first_per_record(~self.refs.member, self.k - self.k // 2)


    def used(self, *masks: np.ndarray) -> float:
        """Mean number of references per record that ``masks`` select together."""
        return float(np.logical_or.reduce(masks).sum(axis=0).mean())


ScoredWith = tuple[np.ndarray, float]  # scores, and references used per record
ProtocolAttack = Callable[[Context], ScoredWith | None]  # None: not defined for this k
PROTOCOL_ATTACKS: Registry[ProtocolAttack] = Registry("many-target attack")


@PROTOCOL_ATTACKS.register("loss")
def _loss(c: Context) -> ScoredWith:
    return -c.target.loss[0], 0.0  # Yeom et al.: no reference model at all


@PROTOCOL_ATTACKS.register("attack-r")
def _attack_r(c: Context) -> ScoredWith:
    out = c.out_k
    return attack_r_scores(c.target.loss[0], c.refs.loss, out), c.used(out)


@PROTOCOL_ATTACKS.register("lira-offline")
def _lira_offline(c: Context) -> ScoredWith:
    out = c.out_k
    per_record = use_per_record("auto", int(out.sum(axis=0).min()))
    return lira_offline_scores(c.target.phi[:, 0], c.refs.phi, out, per_record=per_record), c.used(out)


@PROTOCOL_ATTACKS.register("lira")
def _lira_online(c: Context) -> ScoredWith | None:
    if c.k < 2:
        return None  # needs one IN and one OUT reference per record
    inside, out = c.in_half, c.out_half
    per_record = use_per_record("auto", int((inside | out).sum(axis=0).min()))
    scores = lira_online_scores(c.target.phi[:, 0], c.refs.phi, inside, out, per_record=per_record)
    return scores, c.used(inside, out)


def _rmia(p_target: np.ndarray, p_refs: np.ndarray, mask: np.ndarray, a: float | None) -> np.ndarray:
    ratio = likelihood_ratio(p_target, marginal(p_refs, mask, a=a))
    return population_fraction(ratio, ratio)  # population: every record


@PROTOCOL_ATTACKS.register("rmia")
def _rmia_online(c: Context) -> ScoredWith | None:
    if c.k < 2:
        return None
    both = c.in_half | c.out_half
    return _rmia(c.target.p_y[0], c.refs.p_y, both, None), c.used(both)


@PROTOCOL_ATTACKS.register("rmia-offline")
def _rmia_offline(c: Context) -> ScoredWith:
    # a on the attacker's own truth: reference 0 is a stand-in target for the references after it.
    stand_in, others = c.refs.take(np.array([0])), c.refs.take(np.arange(1, len(c.refs.loss)))
    mask = first_per_record(~others.member, c.k)
    best = max(A_GRID, key=lambda a: metrics.auc(_rmia(stand_in.p_y[0], others.p_y, mask, a), stand_in.member[0]))
    out = c.out_k
    return _rmia(c.target.p_y[0], c.refs.p_y, out, best), c.used(out)


@PROTOCOL_ATTACKS.register("base")
def _base_online(c: Context) -> ScoredWith | None:
    if c.k < 2:
        return None
    both = c.in_half | c.out_half
    return base_online_scores(c.target.s_base[0], c.refs.s_base, both), c.used(both)


@PROTOCOL_ATTACKS.register("base-offline")
def _base_offline(c: Context) -> ScoredWith:
    out = c.out_k  # the default offline scale factor (not tuned here)
    return base_offline_scores(c.target.s_base[0], c.refs.s_base, out, DEFAULT_SCALE), c.used(out)


@dataclass
class ManyTargetResult:
    config: ManyTargetConfig
    n_records: int
    train_seconds: float
    score_seconds: float
    models_trained: int
    test_accuracy: list[float]  # of each target on the records it did not train on
    rows: list[dict[str, Any]]  # per (attack, k): mean and std over targets
    # Per target, at the largest k: the audit record (miaudit.core.record), one folder each.
    records: list[Any] = field(default_factory=list)
    query_views: str = "none"  # the views config.augmentation resolved to


def compute_outputs(
    models: list[Any], x: np.ndarray, y: np.ndarray, subsets: list[np.ndarray], augmentation: str, trained_with: str | None = None
) -> Outputs:
    """Logit-scaled confidences (per query view), losses, ``p_y`` and BASE's ``s`` of every model on every record.

    ``augmentation`` names the query views ("auto" follows ``trained_with``, the models' training
    augmentation, which the protocol's attacker knows: every model shares the recipe)."""
    _, views = augment.resolve(augmentation, tuple(x.shape[1:]), trained_with)
    view_x = augment.views_of(x, views)
    phi = np.empty((len(view_x), len(models), len(y)))
    loss = np.empty((len(models), len(y)))
    p_y = np.empty((len(models), len(y)))
    s_base = np.empty((len(models), len(y)))
    for j, m in enumerate(models):
        for v, xv in enumerate(view_x):
            logits = np.asarray(m.predict_logits(xv), dtype=np.float64)
            phi[v, j] = logit_scaled_confidence(logits, y)
            if v == 0:
                e = np.exp(logits - logits.max(axis=1, keepdims=True))
                proba = e / e.sum(axis=1, keepdims=True)
                p_y[j] = proba[np.arange(len(y)), y]
                loss[j] = -log_true_class_probability(proba, y)
                s_base[j] = tempered_log_confidence(proba, y, DEFAULT_TEMPERATURE)
    member = np.zeros((len(models), len(y)), dtype=bool)
    for j, s in enumerate(subsets):
        member[j, s] = True
    return Outputs(phi, loss, p_y, member, s_base)


def _check(config: ManyTargetConfig) -> list[str]:
    names = list(config.attacks) if config.attacks is not None else PROTOCOL_ATTACKS.names()
    for name in names:
        PROTOCOL_ATTACKS.get(name)
    if config.n_targets < 1 or config.n_targets > config.n_models:
        raise ConfigError(f"n_targets must lie in [1, n_models = {config.n_models}], got {config.n_targets}")
    if not config.reference_counts or min(config.reference_counts) < 1:
        raise ConfigError("reference counts must be >= 1")
    if config.n_models < 4 or config.n_models % 2:
        raise ConfigError(f"n_models must be even and >= 4 (paired complementary halves), got {config.n_models}")
    check_at_most("models", config.n_models, "--models (models the many-target experiment trains)")
    check_at_most("models", max(config.reference_counts), "the largest reference count")
    check_user_seed(config.seed, "--seed")
    return names


def run_many_targets(config: ManyTargetConfig, *, progress: bool = False, executor: Any = None) -> ManyTargetResult:
    """Train the models (ModelBank, cached), then score and evaluate every attack for every target and k."""
    from miaudit.models import ModelCache, TrainingRecipe
    from miaudit.paths import cache_dir as default_cache_dir

    names = _check(config)
    dataset = load_dataset(config.dataset, config.data_dir)
    defaults = defaults_for(dataset.name)
    model_name = config.model or defaults.model
    options = dict(config.model_options if config.model_options is not None else defaults.model_options if model_name == defaults.model else {})
    recipe = TrainingRecipe(**{**defaults.recipe, **config.recipe})
    rng = stream_rng(config.seed, "many-targets/subset")
    rows_used = np.sort(rng.permutation(len(dataset))[: config.subset]) if config.subset else np.arange(len(dataset))
    x, y = dataset.x[rows_used], dataset.y[rows_used]
    subsets = half_splits(len(y), config.n_models, seed=config.seed)
    seeds = [int(s) for s in rng.integers(0, 2**31 - 1, config.n_models)]
    cache = ModelCache(default_cache_dir(config.cache_dir) / "models") if config.use_cache else None
    fingerprint = f"{dataset.fingerprint}:{config.subset}:{config.seed}"

    started = time.perf_counter()
    trained = train_models(
        ModelSpec(model_name, options, recipe), x, y, subsets, seeds, num_classes=dataset.num_classes,
        cache=cache, data_fingerprint=fingerprint, progress=progress, executor=executor,
    )  # fmt: skip
    models = [m.model for m in trained]
    trained_at = time.perf_counter()
    outputs = compute_outputs(models, x, y, subsets, config.augmentation, recipe.augment)

    per: dict[tuple[str, int], list[dict[str, float | None]]] = {}
    accuracy: list[float] = []
    records: list[Any] = []
    k_record = max(config.reference_counts)
    for t in range(config.n_targets):
        is_member = outputs.member[t]
        others = stream_rng(config.seed, "many-targets/order", t).permutation(
            np.delete(np.arange(config.n_models), t)
        )
        target, refs = outputs.take(np.array([t])), outputs.take(others)
        accuracy.append(_accuracy(models[t], x[~is_member], y[~is_member]))
        at_k: dict[str, np.ndarray] = {}
        for k in config.reference_counts:
            context = Context(target, refs, k)
            for name in names:
                scored = PROTOCOL_ATTACKS.get(name)(context)
                if scored is None:
                    continue
                scores, used = scored
                per.setdefault((name, k), []).append({**_evaluate(scores, is_member), "refs_used": used})
                if k == k_record:
                    at_k[name] = scores
        records.append(_target_record(config, dataset, model_name, t, k_record, at_k, is_member, rows_used,
                                      train_acc=_accuracy(models[t], x[is_member], y[is_member]), test_acc=accuracy[-1]))  # fmt: skip
    finished = time.perf_counter()
    rows = [_summarise(name, k, values) for (name, k), values in per.items()]
    return ManyTargetResult(
        config, len(y), trained_at - started, finished - trained_at, config.n_models, accuracy, rows, records,
        augment.resolve(config.augmentation, tuple(x.shape[1:]), recipe.augment)[0],
    )


def _target_record(
    config: ManyTargetConfig, dataset: Any, model_name: str, t: int, k: int, scores: dict[str, np.ndarray],
    is_member: np.ndarray, rows_used: np.ndarray, *, train_acc: float, test_acc: float,
) -> Any:
    """Target ``t``'s audit record at ``k`` references per record (every record of the subset scored)."""
    from dataclasses import asdict

    from miaudit.core.record import record_from_scores

    return record_from_scores(
        kind="many-targets", threat_model="gray-box (reference models: the other models of the protocol)",
        dataset={"name": dataset.name, "records": int(len(rows_used)), "num_classes": dataset.num_classes,
                 "fingerprint": dataset.fingerprint, "class_names": list(dataset.class_names)},
        target={"source": f"model {t} of {config.n_models} trained here (many-target protocol)", "model": model_name,
                "seed": config.seed, "train_accuracy": train_acc, "test_accuracy": test_acc, "stand_in": None},
        config={**asdict(config), "target_index": t, "reference_models_per_record": k},
        scores=scores, is_member=is_member, record_indices=rows_used,
        notes=[f"target {t}: every record of the {len(rows_used)}-record subset is scored; {k} reference models per record"],
        seed=config.seed,
    )  # fmt: skip


def _accuracy(model: Any, x: np.ndarray, y: np.ndarray) -> float:
    return float((np.argmax(model.predict_logits(x), axis=1) == y).mean())


def _evaluate(scores: np.ndarray, is_member: np.ndarray) -> dict[str, float | None]:
    out: dict[str, float | None] = {"auc": metrics.auc(scores, is_member)}
    for f in FPRS:
        # Reported even below 10 expected false positives (TPR@0.1% with 2,500 non-members has
        # 2.5): the table says how many non-members each target had, and averages over targets.
        out[f"tpr@{f:g}"] = metrics.tpr_at_fpr(scores, is_member, f, min_false_positives=1)
    return out


def _summarise(name: str, k: int, values: list[dict[str, float | None]]) -> dict[str, Any]:
    row: dict[str, Any] = {"attack": name, "reference_models": k, "targets": len(values)}
    for key in values[0]:
        got = np.array([v[key] for v in values if v[key] is not None], dtype=float)
        row[key] = float(got.mean()) if len(got) else None
        row[f"{key}_std"] = float(got.std(ddof=1)) if len(got) > 1 else None
    return row


def format_table(result: ManyTargetResult) -> str:
    """Markdown: one row per attack and k, mean +- std over the targets."""

    def cell(row: dict[str, Any], key: str) -> str:
        if row[key] is None:
            return "n/a"
        std = row.get(f"{key}_std")
        return f"{row[key]:.3f}" + (f" ± {std:.3f}" if std is not None else "")

    lines = [
        "| attack | k refs/record | AUC | TPR@1%FPR | TPR@0.1%FPR |",
        "|---|---|---|---|---|",
    ]
    order = {name: i for i, name in enumerate(("loss", "attack-r", "lira-offline", "rmia-offline", "lira", "rmia"))}
    for row in sorted(result.rows, key=lambda r: (order.get(r["attack"], 99), r["reference_models"])):
        if row["attack"] == "loss" and row["reference_models"] != min(result.config.reference_counts):
            continue  # the loss attack uses no reference model: one row
        used = row["refs_used"]
        k = "0" if row["attack"] == "loss" else str(row["reference_models"]) + ("" if abs(used - row["reference_models"]) < 0.05 else f" ({used:.1f} used)")
        lines.append(f"| {row['attack']} | {k} | {cell(row, 'auc')} | {cell(row, 'tpr@0.01')} | {cell(row, 'tpr@0.001')} |")
    return "\n".join(lines)


def to_dict(result: ManyTargetResult) -> dict[str, Any]:
    """JSON-ready: the config, timings, the targets' test accuracy and the table rows."""
    from dataclasses import asdict

    acc = np.array(result.test_accuracy)
    return {
        "protocol": "many targets (Carlini et al. 2022): paired complementary halves, each target vs the other models",
        "config": asdict(result.config),
        "records": result.n_records,
        "models_trained": result.models_trained,
        "train_seconds": result.train_seconds,
        "score_seconds": result.score_seconds,
        "target_test_accuracy": {"mean": float(acc.mean()), "std": float(acc.std(ddof=1)) if len(acc) > 1 else None},
        "rows": result.rows,
    }


def write_many_targets(result: ManyTargetResult, out_dir: Path) -> tuple[Path, Path]:
    """``many_targets.json`` and ``many_targets.md`` in ``out_dir``, written atomically."""
    import json

    from miaudit.io_utils import atomic_path

    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out_dir / "many_targets.json", out_dir / "many_targets.md"
    with atomic_path(json_path) as tmp:
        tmp.write_text(json.dumps(to_dict(result), indent=2))
    with atomic_path(md_path) as tmp:
        tmp.write_text(format_table(result) + "\n")
    for t, record in enumerate(result.records):  # one audit record per target: `miaudit report` reads each
        record.write(out_dir / f"target-{t}", report=False)
    return json_path, md_path
