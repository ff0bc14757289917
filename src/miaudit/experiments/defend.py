"""The privacy-utility trade-off: each defense's target, every attack against it, one table.

For every defense spec and seed, :func:`run_defend` runs one audit
(:func:`~miaudit.experiments.audit.run_audit` with ``defense=spec``): the defended target is
trained (or wrapped), every attack the threat model permits scores it, and where an attack uses
shadow models the attacker builds them with the same defense (``adaptive=True``, Song and
Mittal's adaptive attacker) or without it (``adaptive=False``). A defense needing reference data
gets the split's population part, which no attacker and no evaluated record touches.

Per defense the table gives the test accuracy and, for attack power, the best attack by AUC, by
TPR at 1% FPR and by balanced accuracy (at the attack's own shadow-calibrated or fixed
threshold), each naming the attack that achieved it; with several seeds, mean ± sample std over
seeds of the per-seed best. Outputs (:func:`write_defend`): ``privacy_utility.json`` (protocol,
per-seed values, per-attack means), ``privacy_utility.csv`` (the table), ``per_attack.csv`` and
``privacy_utility.png`` (test accuracy against best attack AUC, matplotlib's Agg backend).
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from miaudit import __version__
from miaudit.data.split import SplitSizes
from miaudit.errors import ConfigError
from miaudit.experiments.audit import AuditConfig, AuditResult, run_audit
from miaudit.io_utils import atomic_path
from miaudit.seeds import check_user_seed

Log = Callable[[str], None]
TPR_LEVEL = 0.01
POWER_METRICS = ("auc", "tpr_at_1pct_fpr", "balanced_accuracy")


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
    n_bootstrap: int = 0
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


def _seed_row(result: AuditResult) -> dict[str, Any]:
    attacks: dict[str, dict[str, float | None]] = {}
    for o in result.outcomes:
        m = o.metrics
        attacks[o.result.attack] = {
            "auc": float(m.auc),
            "tpr_at_1pct_fpr": m.tpr_at_fpr.get(TPR_LEVEL),
            "balanced_accuracy": m.balanced_accuracy,
            "advantage_upper_bound": float(m.advantage),
            "threshold_source": m.threshold_source,
        }
    best: dict[str, dict[str, Any]] = {}
    for metric in POWER_METRICS:
        candidates = [(v[metric], name) for name, v in attacks.items() if v[metric] is not None and not math.isnan(v[metric])]
        if candidates:
            value, name = max(candidates)
            best[metric] = {"value": float(value), "attack": name}
    return {
        "seed": result.config.seed,
        "train_accuracy": result.train_accuracy,
        "test_accuracy": result.test_accuracy,
        "defense_info": (result.defense or {}).get("info", {}),
        "best": best,
        "attacks": attacks,
        "skipped": result.skipped,
    }


def _mean_std(values: Sequence[float]) -> tuple[float | None, float | None]:
    vals = [v for v in values if v is not None and not math.isnan(v)]
    if not vals:
        return None, None
    return float(np.mean(vals)), (float(np.std(vals, ddof=1)) if len(vals) > 1 else None)


def summarise(spec: str, describe: dict[str, Any], runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One table row: means ± std over seeds, each best naming its attack(s)."""
    row: dict[str, Any] = {"defense": spec, "stage": describe["stage"], "paper": describe["paper"], "n_seeds": len(runs)}
    for key in ("test_accuracy", "train_accuracy"):
        row[key], row[key + "_std"] = _mean_std([r[key] for r in runs])
    eps = [r["defense_info"].get("epsilon") for r in runs if "epsilon" in r["defense_info"]]
    if eps:
        row["epsilon"], _ = _mean_std(eps)
        row["delta"] = runs[0]["defense_info"].get("delta")
    for metric in POWER_METRICS:
        found = [r["best"][metric] for r in runs if metric in r["best"]]
        row[f"best_{metric}"], row[f"best_{metric}_std"] = _mean_std([b["value"] for b in found])
        names = Counter(b["attack"] for b in found)
        row[f"best_{metric}_attack"] = "/".join(n for n, _ in names.most_common())
    per_attack: dict[str, dict[str, float | None]] = {}
    for name in sorted({a for r in runs for a in r["attacks"]}):
        per_attack[name] = {}
        for metric in POWER_METRICS:
            mean, std = _mean_std([r["attacks"][name][metric] for r in runs if name in r["attacks"]])
            per_attack[name][metric], per_attack[name][metric + "_std"] = mean, std
    row["per_attack"] = per_attack
    return row


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
            run = _seed_row(result)
            run["seconds"] = round(time.time() - t0, 1)
            runs.append(run)
            if out_dir is not None:
                write_results(result, Path(out_dir) / _folder(spec) / f"seed-{seed}")
            best = run["best"].get("auc", {})
            say(f"{spec} seed {seed}: test accuracy {run['test_accuracy']:.3f}, best AUC "
                f"{best.get('value', float('nan')):.3f} ({best.get('attack', '-')}), {run['seconds']:.0f} s")  # fmt: skip
        rows.append(summarise(spec, defense.describe(), runs))
        per_seed[spec] = runs
        if out_dir is not None:  # the table so far, so that an interrupted study keeps its finished rows
            write_defend(_study(config, rows, per_seed, started), Path(out_dir))
    return _study(config, rows, per_seed, started)


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
        },
        "rows": rows,
        "per_seed": per_seed,
        "seconds": round(time.time() - started, 1),
    }


def _folder(spec: str) -> str:
    return "".join(c if c.isalnum() or c in "-_.=" else "_" for c in spec)


TABLE_COLUMNS = (
    "defense", "stage", "n_seeds", "test_accuracy", "test_accuracy_std", "train_accuracy", "epsilon", "delta",
    "best_auc", "best_auc_std", "best_auc_attack",
    "best_tpr_at_1pct_fpr", "best_tpr_at_1pct_fpr_std", "best_tpr_at_1pct_fpr_attack",
    "best_balanced_accuracy", "best_balanced_accuracy_std", "best_balanced_accuracy_attack",
)  # fmt: skip


def _fmt(mean: float | None, std: float | None) -> str:
    if mean is None:
        return "-"
    return f"{mean:.3f}" + (f" ± {std:.3f}" if std is not None else "")


def markdown_table(study: dict[str, Any]) -> str:
    """The privacy-utility table as Markdown (means ± std over seeds)."""
    lines = [
        "| defense | test acc. | ε (δ) | best AUC (attack) | best TPR@1%FPR (attack) | best bal. acc. (attack) |",
        "|---|---|---|---|---|---|",
    ]
    for r in study["rows"]:
        eps = f"{r['epsilon']:.2f} ({r['delta']:g})" if r.get("epsilon") is not None else "-"
        cells = [f"{_fmt(r[f'best_{m}'], r[f'best_{m}_std'])} ({r[f'best_{m}_attack'] or '-'})" for m in POWER_METRICS]
        lines.append(f"| {r['defense']} | {_fmt(r['test_accuracy'], r['test_accuracy_std'])} | {eps} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot(study: dict[str, Any], path: Path) -> None:
    """Test accuracy against the best attack AUC, one point per defense (error bars: std over seeds)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.8))
    for r in study["rows"]:
        if r["best_auc"] is None or r["test_accuracy"] is None:
            continue
        ax.errorbar(r["best_auc"], r["test_accuracy"], xerr=r["best_auc_std"] or 0, yerr=r["test_accuracy_std"] or 0,
                    fmt="o", capsize=3)  # fmt: skip
        ax.annotate(r["defense"], (r["best_auc"], r["test_accuracy"]), textcoords="offset points", xytext=(4, 4), fontsize=8)
    proto = study["protocol"]
    ax.axvline(0.5, color="grey", lw=0.8, ls=":")
    ax.set_xlabel("attack power: best attack AUC over the suite")
    ax.set_ylabel("target test accuracy")
    ax.set_title(f"{proto['dataset']}, {proto['model']}, {len(proto['seeds'])} seed(s), {proto['attacker'].split(' ')[0]} attacker", fontsize=9)
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
            writer.writerow({k: r.get(k) for k in TABLE_COLUMNS})
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
