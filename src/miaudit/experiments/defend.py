"""The privacy-utility trade-off: each defense's target, every attack against it, one table.

For every defense spec and seed, :func:`run_defend` runs one audit
(:func:`~miaudit.experiments.audit.run_audit` with ``defense=spec``): the defended target is
trained (or wrapped), every attack the threat model permits scores it, and where an attack uses
shadow models the attacker builds them with the same defense (``adaptive=True``, Song and
Mittal's adaptive attacker) or without it (``adaptive=False``). A defense needing reference data
gets the split's population part, which no attacker and no evaluated record touches.

An adaptive attacker's defended shadows and references train at the target's training-set size,
with reference data of the defender's size from its pool outside each model's subset
(:mod:`miaudit.attacks.defended_plan`); the sizes used are in the protocol.

Per defense the table gives the test accuracy and, for attack power, the *headline* attack
chosen without the target's truth (the verdict's fixed order, :mod:`miaudit.experiments.defend_rows`):
its TPR at 1% FPR (the main privacy axis) and AUC, mean ± std over seeds and a bootstrap
interval over records per seed, an AUC below 0.5 flagged as inverted, and the verdict per seed
(Holm-controlled over every attack). The maximum over attacks is kept only as columns labelled
"upper bound (max over attacks on the target's truth)". Outputs (:func:`write_defend`):
``privacy_utility.json`` (protocol, per-seed values, per-attack means, the audits' folders),
``privacy_utility.csv`` / ``.md`` (the table), ``per_attack.csv`` and ``privacy_utility.png``
(test accuracy against the headline attack's TPR at 1% FPR and AUC, matplotlib's Agg backend).
"""

from __future__ import annotations

import csv
import dataclasses
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from miaudit import __version__
from miaudit.data.split import SplitSizes
from miaudit.errors import ConfigError
from miaudit.experiments.audit import AuditConfig, run_audit
from miaudit.experiments.defend_rows import POWER_METRICS, UPPER_BOUND_LABEL, seed_row, summarise
from miaudit.io_utils import atomic_path
from miaudit.seeds import check_user_seed

Log = Callable[[str], None]


@dataclass(frozen=True)
class DefendConfig:
    """A privacy-utility study: one base audit, several defenses, several seeds.

    With ``preset`` (a reproduction preset, e.g. ``song-mittal-location30``) the data set, model,
    recipe, split and shadow count are the preset's; otherwise the data set's defaults.
    ``reference`` is the size of the defender's reference set (the split's population).
    ``attacks=None`` runs every attack the threat model permits.
    """

    dataset: str = "location30"
    defenses: tuple[str, ...] = ("none", "dpsgd", "advreg", "memguard", "dmp")
    seeds: tuple[int, ...] = (0,)
    preset: str | None = None
    attacks: tuple[str, ...] | None = None
    adaptive: bool = True
    reference: int | float | None = None  # None: as many records as the target's training set
    n_shadow_models: int | None = None  # None: the preset's (at least 2, for RMIA) or 4
    epochs: int | None = None  # override the recipe's epochs (a quick run, not the protocol)
    split: SplitSizes | None = None
    threat_model: str = "gray-box"
    n_bootstrap: int = 200  # resamples of the evaluated records per seed (0: no intervals)
    data_dir: str | None = None
    cache_dir: str | None = None


def base_config(config: DefendConfig, seed: int) -> AuditConfig:
    """The audit of one seed, before the defense is set."""
    if config.preset is not None:
        from miaudit.experiments.presets import PRESETS

        preset = PRESETS.get(config.preset)
        if config.dataset != preset.dataset:
            raise ConfigError(f"preset {config.preset!r} is on data set {preset.dataset!r}, not {config.dataset!r}")
        audit = preset.config(seed, attacks=(), epochs=config.epochs, data_dir=config.data_dir, cache_dir=config.cache_dir)
        audit = dataclasses.replace(audit, attacks=config.attacks, n_shadow_models=max(2, preset.n_shadow_models))
    else:
        recipe = {} if config.epochs is None else {"epochs": config.epochs}
        audit = AuditConfig(dataset=config.dataset, recipe=recipe, seed=seed, split=config.split, attacks=config.attacks,
                            data_dir=config.data_dir, cache_dir=config.cache_dir)  # fmt: skip
    split = config.split or audit.split
    if split is None:
        from miaudit.experiments.defaults import defaults_for

        split = defaults_for(audit.dataset).split
    if config.reference is not None or split.population in (None, 0):
        split = dataclasses.replace(split, population=config.reference if config.reference is not None else split.target_in)
    return dataclasses.replace(
        audit,
        split=split,
        threat_model=config.threat_model,
        n_bootstrap=config.n_bootstrap,
        n_shadow_models=config.n_shadow_models or audit.n_shadow_models,
        adaptive=config.adaptive,
    )


def run_defend(config: DefendConfig, *, log: Log | None = None, out_dir: Path | None = None) -> dict[str, Any]:
    """Every defense of ``config`` over its seeds; returns the study (see :func:`write_defend`).

    With ``out_dir``, each audit's ``results.json``/``scores.csv`` go to ``<defense>/seed-<n>/``.
    """
    from miaudit.defenses import parse_defense
    from miaudit.experiments.results import write_results

    say = log or (lambda _m: None)
    if not config.defenses:
        raise ConfigError("no defense given; e.g. --defenses none,dpsgd,memguard")
    if not config.seeds:
        raise ConfigError("no seed given")
    for seed in config.seeds:  # all checked before the first defense trains
        check_user_seed(seed, "--seeds")
    defenses = [parse_defense(spec) for spec in config.defenses]  # every spec checked before any training
    rows, per_seed = [], {}
    started = time.time()
    for spec, defense in zip(config.defenses, defenses):
        runs = []
        for seed in config.seeds:
            t0 = time.time()
            audit = dataclasses.replace(base_config(config, seed), defense=spec)
            result = run_audit(audit, progress=False)
            run = seed_row(result, n_bootstrap=config.n_bootstrap)
            run["seconds"] = round(time.time() - t0, 1)
            run["folder"] = f"{_folder(spec)}/seed-{seed}"
            runs.append(run)
            if out_dir is not None:
                write_results(result, Path(out_dir) / run["folder"])
            head = run["headline"] or {}
            say(f"{spec} seed {seed}: test accuracy {run['test_accuracy']:.3f}, headline {head.get('attack', '-')} "
                f"TPR@1%FPR {_fmt(head.get('tpr_at_1pct_fpr'), None)} AUC {_fmt(head.get('auc'), None)}, "
                f"verdict {(run['verdict'] or {}).get('level', '-')}, {run['seconds']:.0f} s")  # fmt: skip
        rows.append({**summarise(spec, defense.describe(), runs), "adaptive_models": adaptive_sizes(config, defense)})
        per_seed[spec] = runs
        if out_dir is not None:  # the table so far, so that an interrupted study keeps its finished rows
            write_defend(_study(config, rows, per_seed, started), Path(out_dir))
    return _study(config, rows, per_seed, started)


def adaptive_sizes(config: DefendConfig, defense: Any) -> dict[str, Any] | None:
    """The training and reference sizes of the adaptive attacker's defended shadows and online
    references for ``defense`` (None: naive attacker or no defense), from the split's sizes."""
    from miaudit.attacks.defended_plan import plan_sizes
    from miaudit.attacks.reference_models import reference_train_size
    from miaudit.data import load_dataset

    if not config.adaptive or defense.name == "none":
        return None
    audit = base_config(config, config.seeds[0])
    counts = audit.split.resolve(len(load_dataset(audit.dataset, audit.data_dir)))
    n, pool = counts["target_in"], counts["attacker_pool"]
    ref = counts["population"] if defense.needs_reference else 0
    evaluated = n + counts["target_out"]  # the online references' candidates (before any subsampling)
    out: dict[str, Any] = {"target_train_size": n, "target_reference_size": ref}
    for kind, records, size in (("shadows", pool, n), ("online_references", pool + evaluated, reference_train_size(n, evaluated))):
        train, reference, note = plan_sizes(records, pool, size, ref)
        out[kind] = {"train_size": train, "reference_size": reference, "note": note}
    return out


def _study(config: DefendConfig, rows: list[dict[str, Any]], per_seed: dict[str, Any], started: float) -> dict[str, Any]:
    from miaudit.experiments.defaults import defaults_for

    first = base_config(config, config.seeds[0])
    return {
        "miaudit_version": __version__,
        "protocol": {
            "dataset": first.dataset,
            "preset": config.preset,
            # Unset: the data set's default model and options (what the audits trained).
            "model": first.model or defaults_for(first.dataset).model,
            "model_options": first.model_options if first.model is not None else defaults_for(first.dataset).model_options,
            "recipe": first.recipe,
            "split": dataclasses.asdict(first.split) if first.split else None,
            "threat_model": config.threat_model,
            "attacker": "adaptive (shadow models built with the defense)" if config.adaptive else "naive (undefended shadow models)",
            "n_shadow_models": first.n_shadow_models,
            "seeds": list(config.seeds),
            "epochs_override": config.epochs,
            "attacks": list(config.attacks) if config.attacks else "every attack the threat model permits",
            "n_bootstrap": config.n_bootstrap,
            "headline_rule": "the verdict's headline attack: the first run in miaudit.verdict.HEADLINE_ORDER "
                             "(a fixed order, never chosen on the target's membership truth)",
            "upper_bound": UPPER_BOUND_LABEL,
        },
        "rows": rows,
        "per_seed": per_seed,
        "seconds": round(time.time() - started, 1),
    }


def _folder(spec: str) -> str:
    return "".join(c if c.isalnum() or c in "-_.=" else "_" for c in spec)


TABLE_COLUMNS = (
    "defense", "stage", "n_seeds", "test_accuracy", "test_accuracy_std", "train_accuracy", "epsilon", "delta",
    "headline_attack", "headline_tpr_at_1pct_fpr", "headline_tpr_at_1pct_fpr_std", "headline_tpr_at_1pct_fpr_ci",
    "headline_auc", "headline_auc_std", "headline_auc_ci", "verdict", "flag",
    "upper_bound_tpr_at_1pct_fpr", "upper_bound_tpr_at_1pct_fpr_attack", "upper_bound_auc", "upper_bound_auc_attack",
    "upper_bound_balanced_accuracy", "upper_bound_balanced_accuracy_attack",
)  # fmt: skip


def _fmt(mean: float | None, std: float | None) -> str:
    if mean is None:
        return "-"
    return f"{mean:.3f}" + (f" ± {std:.3f}" if std is not None else "")


def _cis(intervals: list[list[float] | None]) -> str:
    """Per-seed intervals, ``[low, high]`` each, separated by '; ' ('-' where none)."""
    shown = [f"[{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "-" for ci in intervals]
    return "; ".join(shown) if any(intervals) else "-"


def markdown_table(study: dict[str, Any]) -> str:
    """The privacy-utility table as Markdown: mean ± std over seeds, 95% bootstrap intervals
    over records per seed, the verdict per seed, the upper bound labelled as such."""
    lines = [
        "| defense | test acc. | ε (δ) | headline attack | TPR@1%FPR | 95% CI per seed | AUC | 95% CI per seed "
        "| verdict | flag | upper bound (max over attacks on the target's truth): TPR@1%FPR / AUC |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in study["rows"]:
        eps = f"{r['epsilon']:.2f} ({r['delta']:g})" if r.get("epsilon") is not None else "-"
        upper = (f"{_fmt(r['upper_bound_tpr_at_1pct_fpr'], r['upper_bound_tpr_at_1pct_fpr_std'])} "
                 f"({r['upper_bound_tpr_at_1pct_fpr_attack'] or '-'}) / "
                 f"{_fmt(r['upper_bound_auc'], r['upper_bound_auc_std'])} ({r['upper_bound_auc_attack'] or '-'})")  # fmt: skip
        cells = [
            r["defense"], _fmt(r["test_accuracy"], r["test_accuracy_std"]), eps, r["headline_attack"] or "-",
            _fmt(r["headline_tpr_at_1pct_fpr"], r["headline_tpr_at_1pct_fpr_std"]), _cis(r["headline_tpr_at_1pct_fpr_ci"]),
            _fmt(r["headline_auc"], r["headline_auc_std"]), _cis(r["headline_auc_ci"]),
            " / ".join(v or "-" for v in r["verdicts"]), r["flag"] or "-", upper,
        ]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n\n" + per_attack_table(study)


def per_attack_table(study: dict[str, Any]) -> str:
    """Every attack's TPR at 1% FPR and AUC per defense (mean ± std over seeds), so no single
    attack's choice hides another's result; '(inverted)' marks an AUC below 0.5."""
    names = sorted({a for r in study["rows"] for a in r["per_attack"]})
    lines = [
        "Every attack, TPR@1%FPR / AUC (mean ± std over seeds):",
        "",
        "| defense | " + " | ".join(names) + " |",
        "|---|" + "---|" * len(names),
    ]
    for r in study["rows"]:
        cells = []
        for name in names:
            v = r["per_attack"].get(name)
            if v is None:
                cells.append("-")
                continue
            mark = " (inverted)" if v["inverted"] else ""
            cells.append(f"{_fmt(v['tpr_at_1pct_fpr'], v['tpr_at_1pct_fpr_std'])} / {_fmt(v['auc'], v['auc_std'])}{mark}")
        lines.append("| " + " | ".join([r["defense"], *cells]) + " |")
    return "\n".join(lines) + "\n"


def plot(study: dict[str, Any], path: Path) -> None:
    """Test accuracy against the headline attack's TPR at 1% FPR (left, the main privacy axis)
    and AUC (right), one point per defense, error bars the std over seeds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4.4), sharey=True)
    for ax, metric, chance, label in ((axes[0], "tpr_at_1pct_fpr", 0.01, "TPR at 1% FPR"), (axes[1], "auc", 0.5, "AUC")):
        for r in study["rows"]:
            x, acc = r[f"headline_{metric}"], r["test_accuracy"]
            if x is None or acc is None:
                continue
            ax.errorbar(x, acc, xerr=r[f"headline_{metric}_std"] or 0, yerr=r["test_accuracy_std"] or 0, fmt="o", capsize=3)
            ax.annotate(r["defense"], (x, acc), textcoords="offset points", xytext=(4, 4), fontsize=8)
        ax.axvline(chance, color="grey", lw=0.8, ls=":")
        ax.set_xlabel(f"headline attack's {label}\n(the verdict's fixed order, not chosen on the truth)", fontsize=9)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("target test accuracy")
    proto = study["protocol"]
    fig.suptitle(f"{proto['dataset']}, {proto['model']}, {len(proto['seeds'])} seed(s), "
                 f"{proto['attacker'].split(' ')[0]} attacker; error bars: std over seeds", fontsize=9)  # fmt: skip
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)


def write_defend(study: dict[str, Any], out_dir: Path) -> dict[str, Path]:
    """``privacy_utility.json``, ``.csv``, ``.md``, ``per_attack.csv`` and ``privacy_utility.png``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {name: out / name for name in ("privacy_utility.json", "privacy_utility.csv", "privacy_utility.md", "per_attack.csv", "privacy_utility.png")}
    with atomic_path(paths["privacy_utility.json"]) as tmp:
        tmp.write_text(json.dumps(study, indent=2, default=_json_default))
    with atomic_path(paths["privacy_utility.csv"]) as tmp, open(tmp, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=TABLE_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        for r in study["rows"]:
            writer.writerow({k: (_cis(r[k]) if k.endswith("_ci") else r.get(k)) for k in TABLE_COLUMNS})
    with atomic_path(paths["per_attack.csv"]) as tmp, open(tmp, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["defense", "attack", *[x for m in POWER_METRICS for x in (m, m + "_std")]])
        for r in study["rows"]:
            for name, v in r["per_attack"].items():
                writer.writerow([r["defense"], name, *[v[x] for m in POWER_METRICS for x in (m, m + "_std")]])
    with atomic_path(paths["privacy_utility.md"]) as tmp:
        tmp.write_text(markdown_table(study))
    plot(study, paths["privacy_utility.png"])
    return paths


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, tuple):
        return list(value)
    raise TypeError(f"not JSON-able: {type(value).__name__}")
