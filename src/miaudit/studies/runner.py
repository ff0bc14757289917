"""Shared steps of the studies: load (and subsample) the data, audit one setting, summarise it.

Every setting is a full :func:`miaudit.experiments.run_audit`: the same split protocol, threat
model and attacks as ``miaudit audit``, so a study's numbers mean what an audit's numbers mean.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from miaudit.data.base import Dataset
from miaudit.data.split import SplitSizes
from miaudit.errors import ConfigError
from miaudit.experiments.audit import AuditConfig, AuditResult, load_audit_data, run_audit
from miaudit.studies.base import StudyConfig
from miaudit.seeds import stream_rng

FPR_LOW = 0.01


def study_split(n: int) -> SplitSizes:
    """Every study setting splits its (sub)set 1/4 members, 1/4 non-members, 1/2 the attacker's
    pool, rounded as :class:`SplitSizes` rounds fractions, but with the pool cut by the record
    that rounding can overshoot (e.g. 1710 records: 428 + 428 + 854)."""
    members = int(round(0.25 * n))
    return SplitSizes(target_in=members, target_out=members, attacker_pool=min(int(round(0.5 * n)), n - 2 * members), population=0)


def load_study_data(config: StudyConfig) -> Dataset:
    """The study's data set, restricted to ``config.max_records`` random records when set."""
    dataset = load_audit_data(AuditConfig(dataset=config.dataset, label_column=config.label_column, data_dir=config.data_dir))
    if config.max_records is None or config.max_records >= len(dataset):
        return dataset
    if config.max_records < 20:
        raise ConfigError(f"--records must be at least 20, got {config.max_records}")
    rng = stream_rng(config.max_records, "study/subsample")
    return subset(dataset, np.sort(rng.permutation(len(dataset))[: config.max_records]))


def subset(dataset: Dataset, idx: np.ndarray, classes: list[int] | None = None) -> Dataset:
    """Records ``idx`` of ``dataset``; with ``classes``, labels are renumbered 0..len(classes)-1
    in that order (records of other classes must not be in ``idx``). The name is kept, so the
    subset takes the data set's audit defaults; the fingerprint is recomputed (new cache keys)."""
    y = dataset.y[idx]
    names = dataset.class_names
    num_classes = dataset.num_classes
    if classes is not None:
        remap = np.full(dataset.num_classes, -1, dtype=np.int64)
        remap[np.asarray(classes)] = np.arange(len(classes))
        y = remap[y]
        if (y < 0).any():
            raise ValueError("subset: idx holds records outside the chosen classes")
        names = tuple(names[c] for c in classes) if names else ()
        num_classes = len(classes)
    return Dataset(name=dataset.name, x=dataset.x[idx], y=y, num_classes=num_classes, class_names=names)


def audit_setting(
    config: StudyConfig,
    dataset: Dataset,
    *,
    seed: int,
    model: str | None = None,
    model_options: dict[str, Any] | None = None,
    recipe: dict[str, Any] | None = None,
    split: Any = None,
    progress: bool = False,
) -> AuditResult:
    """One audit of ``dataset`` under the study's threat model and attacks."""
    recipe = dict(recipe or {})
    if config.epochs is not None:
        recipe.setdefault("epochs", config.epochs)
    audit_config = AuditConfig(
        dataset=config.dataset,
        label_column=config.label_column,
        model=model if model is not None else config.model,
        model_options=model_options if model_options is not None else config.model_options,
        recipe=recipe,
        seed=seed,
        # Fractions, not the data set's audit counts: studies run on subsets of varying size.
        split=split or config.split or study_split(len(dataset)),
        threat_model=config.threat_model,
        attacks=config.attacks,
        n_shadow_models=config.n_shadow_models,
        n_bootstrap=config.n_bootstrap,
        data_dir=config.data_dir,
        cache_dir=config.cache_dir,
        use_cache=config.use_cache,
    )
    return run_audit(audit_config, progress=progress, dataset=dataset)


def _nan_if_none(v: float | None) -> float:
    return float("nan") if v is None else float(v)


def power_row(result: AuditResult) -> dict[str, Any]:
    """Target accuracy, generalization gap and each attack's AUC / TPR@1%FPR, plus the strongest
    attack (highest AUC) and the highest TPR@1%FPR over the attacks (NaN: not measurable)."""
    row: dict[str, Any] = {
        "model": result.model_name,
        "seed": result.config.seed,
        "train_accuracy": result.train_accuracy,
        "test_accuracy": result.test_accuracy,
        "gap": result.train_accuracy - result.test_accuracy,
        "members": int(result.is_member.sum()),
    }
    best_auc, best_attack, best_tpr = -math.inf, "", float("nan")
    for o in result.outcomes:
        tpr = _nan_if_none(o.metrics.tpr_at_fpr.get(FPR_LOW))
        row[f"auc[{o.result.attack}]"] = o.metrics.auc
        row[f"tpr@1%[{o.result.attack}]"] = tpr
        if o.metrics.auc > best_auc:
            best_auc, best_attack = o.metrics.auc, o.result.attack
        if not math.isnan(tpr) and (math.isnan(best_tpr) or tpr > best_tpr):
            best_tpr = tpr
    row.update({"best_attack": best_attack, "best_auc": best_auc, "best_tpr@1%": best_tpr})
    return row


def parse_grid(config: StudyConfig, key: str, default: list[Any], cast: type = float) -> list[Any]:
    """A comma-separated ``--grid key=v1,v2`` list, or ``default``."""
    text = config.grid.get(key)
    if text is None:
        return default
    try:
        values = [cast(v) for v in text.replace(";", ",").split(",") if v.strip()]
    except ValueError:
        raise ConfigError(f"--grid {key}= must be comma-separated {cast.__name__} values, got {text!r}") from None
    if not values:
        raise ConfigError(f"--grid {key}= names no values")
    return values


def check_grid_keys(config: StudyConfig, known: set[str], study: str) -> None:
    unknown = sorted(set(config.grid) - known)
    if unknown:
        raise ConfigError(
            f"study {study!r} has no grid setting {', '.join(unknown)}; it knows: {', '.join(sorted(known)) or '(none)'}"
        )


def context(config: StudyConfig, dataset: Dataset, model: str | None) -> dict[str, Any]:
    """What every figure states: data set, records, model, seeds, attacks, threat model."""
    return {
        "dataset": dataset.name,
        "records": len(dataset),
        "num_classes": dataset.num_classes,
        "model": model,
        "seeds": list(config.seeds),
        "attacks": list(config.attacks),
        "threat_model": config.threat_model,
        "shadow_models": config.n_shadow_models,
    }
