"""Run a :class:`~miaudit.experiments.presets.Preset` over its seeds and compare with the paper.

Each seed is one :func:`~miaudit.experiments.audit.run_audit` (data -> split -> target -> attacks
-> metrics). From each we keep the target's train and test accuracy and, per attack, its
balanced accuracy at its own (shadow-calibrated or fixed) threshold and its AUC. The table gives,
per metric, the published figure, our mean ± sample standard deviation over the seeds, and
whether the mean is within the preset's tolerance of the published figure.

Outputs (``write_reproduction``): ``reproduction.json`` (protocol, per-seed values, summary rows)
and ``reproduction.md`` (the table and the per-seed values), plus each seed's own
``results.json``/``scores.csv`` under ``seed-<n>/``.
"""

from __future__ import annotations

import json
import math
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from miaudit import __version__
from miaudit.errors import ConfigError
from miaudit.experiments.audit import AuditResult, run_audit
from miaudit.data.split import FixedSplit
from miaudit.experiments.presets import Preset, PublishedFigure
from miaudit.experiments.results import write_results
from miaudit.io_utils import atomic_path

Log = Callable[[str], None]

TABLE_COLUMNS = ("metric", "published", "ours (mean ± std, n seeds)", "within goal?")


@dataclass(frozen=True)
class SeedRun:
    """What one seed's audit gave."""

    seed: int
    train_accuracy: float
    test_accuracy: float
    balanced_accuracy: dict[str, float | None]  # registry name -> at the attack's own threshold
    auc: dict[str, float]
    best_balanced_accuracy: dict[str, float]  # at the best threshold on the target's truth (upper bound)
    threshold_source: dict[str, str | None]
    skipped: dict[str, str]
    seconds: float
    sweep: dict[str, float | None] = field(default_factory=dict)  # point label -> the sweep attack's balanced accuracy

    def to_dict(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "train_accuracy": self.train_accuracy,
            "test_accuracy": self.test_accuracy,
            "attacks": {
                name: {
                    "balanced_accuracy": self.balanced_accuracy[name],
                    "auc": self.auc[name],
                    "best_balanced_accuracy_upper_bound": self.best_balanced_accuracy[name],
                    "threshold_source": self.threshold_source[name],
                }
                for name in self.auc
            },
            "skipped": self.skipped,
            "sweep": self.sweep,
            "seconds": round(self.seconds, 1),
        }


@dataclass(frozen=True)
class Row:
    """One line of the comparison table."""

    metric: str
    key: str
    published: PublishedFigure | None
    values: tuple[float, ...]
    note: str = ""  # why there are no values (e.g. the attack is not registered)

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float | None:
        return float(np.mean(self.values)) if self.values else None

    @property
    def std(self) -> float | None:
        """Sample standard deviation (ddof=1); None for fewer than two seeds."""
        return float(np.std(self.values, ddof=1)) if len(self.values) > 1 else None

    def within_goal(self, protocol: bool) -> bool | None:
        """Whether the mean is within tolerance of the published figure (None: no goal, no values,
        or not the protocol)."""
        if not protocol or self.published is None or self.published.tolerance is None or self.mean is None:
            return None
        return abs(self.mean - self.published.value) <= self.published.tolerance + 1e-12

    def to_dict(self, protocol: bool) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "key": self.key,
            "published": None if self.published is None else self.published.value,
            "tolerance": None if self.published is None else self.published.tolerance,
            "published_source": None if self.published is None else self.published.source,
            "mean": self.mean,
            "std": self.std,
            "n_seeds": self.n,
            "values": list(self.values),
            "within_goal": self.within_goal(protocol),
            "note": self.note,
        }


@dataclass
class Reproduction:
    """A preset run over seeds: the per-seed results and everything needed to judge them."""

    preset: Preset
    seeds: tuple[int, ...]
    attacks: dict[str, str]  # preset attack name -> registry name used
    missing_attacks: list[str]
    epochs: int | None  # an override of the protocol's epochs, or None
    runs: list[SeedRun] = field(default_factory=list)
    seconds: float = 0.0
    command: str | None = None
    fixed_split: FixedSplit | None = None  # the authors' split (--authors-split), or None: random per seed

    @property
    def split_used(self) -> str:
        """Which split ran, in words (recorded in reproduction.json and .md)."""
        if self.fixed_split is None:
            return "random: one seeded permutation per seed (make_split); seeds vary the split, weights and batch order"
        return f"{self.fixed_split.source}, the same for every seed; seeds vary only the weights and batch order"

    @property
    def protocol(self) -> bool:
        """True when the preset's training protocol was followed (no epoch override)."""
        return self.epochs is None or self.epochs == self.preset.recipe.get("epochs")

    def rows(self) -> list[Row]:
        p = self.preset
        rows = [
            Row("target train accuracy", "train_accuracy", p.train_accuracy, tuple(r.train_accuracy for r in self.runs)),
            Row("target test accuracy", "test_accuracy", p.test_accuracy, tuple(r.test_accuracy for r in self.runs)),
        ]
        for attack in p.attacks:
            label = f"{attack.label}: balanced accuracy"
            key = f"attack:{attack.name}:balanced_accuracy"
            name = self.attacks.get(attack.name)
            if name is None:
                rows.append(Row(label, key, attack.published, (), note="not run: the attack is not registered in this build"))
                continue
            values = [r.balanced_accuracy.get(name) for r in self.runs if name in r.auc]
            skipped = [r.skipped[name] for r in self.runs if name in r.skipped]
            note = f"skipped: {skipped[0]}" if skipped else ""
            rows.append(Row(label, key, attack.published, tuple(v for v in values if v is not None), note=note))
        for attack in p.attacks:
            name = self.attacks.get(attack.name)
            if name is not None:
                values = tuple(r.auc[name] for r in self.runs if name in r.auc)
                rows.append(Row(f"{attack.label}: AUC", f"attack:{attack.name}:auc", None, values))
        for point in p.sweep:
            values = tuple(v for r in self.runs if (v := r.sweep.get(point.label)) is not None)
            rows.append(Row(f"{p.sweep_attack} under {point.label}: balanced accuracy", f"sweep:{point.label}:balanced_accuracy", point.published, values))
        return rows

    def to_dict(self) -> dict[str, Any]:
        import torch

        return {
            "miaudit_version": __version__,
            "preset": self.preset.name,
            "title": self.preset.title,
            "citation": self.preset.citation,
            "protocol": self.protocol,
            "epochs_override": self.epochs,
            "settings": self.preset.protocol(),
            "split_used": self.split_used,
            "authors_split": self.fixed_split is not None,
            "seeds": list(self.seeds),
            "attacks": self.attacks,
            "missing_attacks": self.missing_attacks,
            "findings": list(self.preset.findings),
            "command": self.command,
            "seconds": round(self.seconds, 1),
            "environment": {
                "python": platform.python_version(),
                "numpy": np.__version__,
                "torch": torch.__version__,
                "torch_threads": torch.get_num_threads(),
            },
            "rows": [row.to_dict(self.protocol) for row in self.rows()],
            "runs": [r.to_dict() for r in self.runs],
        }


def _run_sweep(
    preset: Preset, seed: int, *, epochs: int | None, data_dir: str | None, cache_dir: str | None,
    progress: bool, out_dir: Path | None, fixed_split: FixedSplit | None = None,
) -> dict[str, float | None]:  # fmt: skip
    """The sweep attack's balanced accuracy under each defended point of ``preset`` (one audit each;
    a defense that keeps a fitted state per model, as MemGuard's phase I, reuses it across points)."""
    from miaudit.attacks import ATTACKS

    if not preset.sweep:
        return {}
    attack = preset.sweep_attack
    if attack not in ATTACKS.names():
        raise ConfigError(f"preset {preset.name}: sweep attack {attack!r} is not registered in this build")
    out: dict[str, float | None] = {}
    for i, point in enumerate(preset.sweep):
        config = preset.config(
            seed, attacks=(attack,), epochs=epochs, data_dir=data_dir, cache_dir=cache_dir, defense=point.defense,
            fixed_split=fixed_split,
        )
        result = run_audit(config, progress=progress)
        if out_dir is not None:
            write_results(result, out_dir / f"sweep-{i}")
        out[point.label] = {o.result.attack: o.metrics.balanced_accuracy for o in result.outcomes}.get(attack)
    return out


def _seed_run(result: AuditResult, seconds: float, sweep: dict[str, float | None] | None = None) -> SeedRun:
    outcomes = {o.result.attack: o for o in result.outcomes}
    return SeedRun(
        seed=result.config.seed,
        train_accuracy=result.train_accuracy,
        test_accuracy=result.test_accuracy,
        balanced_accuracy={n: o.metrics.balanced_accuracy for n, o in outcomes.items()},
        auc={n: o.metrics.auc for n, o in outcomes.items()},
        best_balanced_accuracy={n: o.metrics.best_balanced_accuracy for n, o in outcomes.items()},
        threshold_source={n: o.metrics.threshold_source for n, o in outcomes.items()},
        skipped=dict(result.skipped),
        seconds=seconds,
        sweep=dict(sweep or {}),
    )


def run_preset(
    preset: Preset,
    *,
    seeds: Sequence[int] | None = None,
    epochs: int | None = None,
    data_dir: str | None = None,
    cache_dir: str | None = None,
    out_dir: Path | None = None,
    progress: bool = True,
    log: Log | None = None,
    command: str | None = None,
    authors_split: bool = False,
) -> Reproduction:
    """Run ``preset`` for each of ``seeds`` (default: the preset's); with ``out_dir``, write each
    seed's results under ``out_dir/seed-<n>/`` as soon as it finishes. ``authors_split``: every
    seed on the preset's :class:`~miaudit.experiments.presets.AuthorsSplit` (read from the data
    directory; ConfigError naming the file when it is missing) instead of a random split per seed.

    Attacks of the preset that are not registered are skipped, with a note through ``log``.
    """
    from miaudit.attacks import ATTACKS

    say = log or (lambda _msg: None)
    seed_list = tuple(preset.seeds if seeds is None else seeds)
    if not seed_list:
        raise ConfigError("give at least one seed")
    if len(set(seed_list)) != len(seed_list):
        raise ConfigError(f"seeds must be distinct, got {list(seed_list)}")
    fixed = preset.load_authors_split(data_dir) if authors_split else None
    found, missing = preset.resolve_attacks(ATTACKS.names())
    for name in missing:
        say(f"note: attack {name!r} of preset {preset.name} is not registered in this build; it is skipped")
    rep = Reproduction(preset, seed_list, found, missing, epochs, command=command, fixed_split=fixed)
    start = time.perf_counter()
    for i, seed in enumerate(seed_list):
        config = preset.config(
            seed, attacks=tuple(found.values()), epochs=epochs, data_dir=data_dir, cache_dir=cache_dir, fixed_split=fixed
        )
        t0 = time.perf_counter()
        result = run_audit(config, progress=progress)
        if out_dir is not None:
            write_results(result, out_dir / f"seed-{seed}")
        sweep = _run_sweep(preset, seed, epochs=epochs, data_dir=data_dir, cache_dir=cache_dir, progress=progress,
                           out_dir=None if out_dir is None else out_dir / f"seed-{seed}", fixed_split=fixed)  # fmt: skip
        run = _seed_run(result, time.perf_counter() - t0, sweep)
        rep.runs.append(run)
        accs = ", ".join(f"{n} {_fmt(v)}" for n, v in {**run.balanced_accuracy, **run.sweep}.items())
        say(
            f"seed {seed} ({i + 1}/{len(seed_list)}, {run.seconds:.0f}s): train acc {run.train_accuracy:.3f}, "
            f"test acc {run.test_accuracy:.3f}; balanced accuracy: {accs}"
        )
    rep.seconds = time.perf_counter() - start
    return rep


def _fmt(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def _cell_ours(row: Row) -> str:
    if not row.values:
        return row.note or "no values"
    std = "n/a" if row.std is None else f"{row.std:.3f}"
    return f"{row.mean:.3f} ± {std} (n={row.n})"


def _cell_goal(row: Row, protocol: bool) -> str:
    within = row.within_goal(protocol)
    if row.published is None or row.published.tolerance is None:
        return "—"
    if not protocol:
        return "n/a (not the protocol)"
    if within is None:
        return "n/a"
    diff = row.mean - row.published.value  # type: ignore[operator]
    return f"{'yes' if within else 'NO'} ({diff:+.3f}, goal ±{row.published.tolerance:g})"


def markdown(rep: Reproduction) -> str:
    """The comparison table (and per-seed values) as Markdown."""
    p = rep.preset
    lines = [f"# Reproduction: {p.title}", ""]
    if not rep.protocol:
        lines += [
            f"**NOT the protocol**: epochs overridden to {rep.epochs} (the protocol trains "
            f"{p.recipe.get('epochs')}); a quick run, not comparable with the published figures.",
            "",
        ]
    lines += [
        f"Preset `{p.name}`; seeds {', '.join(map(str, rep.seeds))}; {rep.seconds / 60:.1f} min in all.",
        "",
        f"Split: {rep.split_used}.",
        "",
        f"Source: {p.citation}.",
        "",
        "| " + " | ".join(TABLE_COLUMNS) + " |",
        "|---|---:|---:|---|",
    ]
    for row in rep.rows():
        published = "—" if row.published is None else f"{row.published.value:.3f}"
        lines.append(f"| {row.metric} | {published} | {_cell_ours(row)} | {_cell_goal(row, rep.protocol)} |")
    lines += [
        "",
        "Balanced accuracy is at each attack's own threshold (per-class thresholds from the shadow model, "
        "or the attack's fixed rule); std is the sample standard deviation over seeds (ddof=1). "
        "AUCs have no published counterpart.",
    ]
    if rep.missing_attacks:
        lines += ["", "Not run (not registered in this build): " + ", ".join(rep.missing_attacks) + "."]
    if p.findings:
        lines += ["", "## Known gaps with the paper (investigated earlier; see the preset)", ""]
        lines += [f"- {finding}" for finding in p.findings]
    names = list(rep.attacks.values())
    points = [pt.label for pt in p.sweep]
    if rep.runs:
        lines += [
            "",
            "## Per seed",
            "",
            "| seed | train acc | test acc | " + " | ".join(f"{n} BA (upper bound)" for n in names)
            + "".join(f" | {p.sweep_attack} BA, {label}" for label in points) + " | seconds |",
            "|" + "|".join(["---:"] * (4 + len(names) + len(points))) + "|",
        ]
        for r in rep.runs:
            cells = [
                f"{_fmt(r.balanced_accuracy.get(n))} ({_fmt(r.best_balanced_accuracy.get(n))})" if n in r.auc else "skipped"
                for n in names
            ]
            cells += [_fmt(r.sweep.get(label)) for label in points]
            lines.append(
                f"| {r.seed} | {r.train_accuracy:.3f} | {r.test_accuracy:.3f} | " + " | ".join(cells) + f" | {r.seconds:.0f} |"
            )
        lines += [
            "",
            "BA: balanced accuracy at the attack's own threshold; in parentheses the best balanced accuracy "
            "over thresholds on the target's own truth (an upper bound no attacker can pick).",
        ]
    lines += ["", "## Protocol", ""]
    settings = p.protocol()
    lines += [
        f"- data set `{settings['dataset']}`, model `{settings['model']}` {json.dumps(settings['model_options'])}",
        f"- recipe {json.dumps(settings['recipe'])}" + (f" (epochs overridden to {rep.epochs})" if not rep.protocol else ""),
        f"- split {json.dumps(settings['split'])}, {settings['n_shadow_models']} shadow model(s), threat model `{settings['threat_model']}`",
    ]
    lines += [f"- {note}" for note in p.protocol_notes]
    if rep.command:
        lines += ["", f"Command: `{rep.command}`"]
    return "\n".join(lines) + "\n"


def write_reproduction(rep: Reproduction, out_dir: Path) -> tuple[Path, Path]:
    """Write ``reproduction.json`` and ``reproduction.md`` into ``out_dir``; return their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out_dir / "reproduction.json", out_dir / "reproduction.md"
    with atomic_path(json_path) as tmp:
        tmp.write_text(json.dumps(rep.to_dict(), indent=2) + "\n")
    with atomic_path(md_path) as tmp:
        tmp.write_text(markdown(rep))
    return json_path, md_path
