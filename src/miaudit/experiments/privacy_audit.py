"""``miaudit privacy-audit``: an empirical lower bound on a training run's epsilon, beside the
accountant's.

Issue 17's pipeline, from the parts in :mod:`miaudit.auditing`: canaries (a registered kind,
each IN with probability 1/2 from seeded, recorded coins) are added to a base training set
drawn from a data set; the model is trained non-privately or with DP-SGD (Opacus); a registered
attack with no reference models scores the canaries; each epsilon method of
:data:`miaudit.auditing.base.BOUNDS` that applies to the mode turns scores and coins into a bound
at a stated confidence, selection done on a held-out half (never on the scores it reports).

Modes:

- ``one-run`` (Steinke, Nasr & Jagielski, NeurIPS 2023): one model, ``m`` canaries; the
  ``one-run`` bound and its f-DP counterpart ``one-run-fdp`` (Mahloujifar, Melis & Chaudhuri 2024,
  (epsilon, delta) family). Black box: record canaries scored by an uncalibrated attack (``loss``) or by
  LiRA on the auditor's reference models (``lira``, ``lira-offline``). White box: canary kind
  ``dirac``, gradient canaries inserted into DP-SGD's clipped sum, scored by how far their
  parameter coordinate moved (``parameter-move``).
- ``multi-run`` (Jagielski et al., NeurIPS 2020; Nasr et al., S&P 2021): ``R`` models, one
  canary, each run's coin independent: ``clopper-pearson`` (a bound) and ``gdp`` (an estimate).

Units: epsilon in nats; every bound is at the audit's ``delta`` (DP-SGD's, 1e-5 by default, also
for non-private runs, so the figures compare).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from miaudit.errors import ConfigError

MODES = ("one-run", "multi-run")
GRADIENT_KIND = "dirac"
"""The white-box canary kind: gradient canaries, not records (see :func:`miaudit.auditing.runs.one_run_gradient`)."""
GRADIENT_ATTACK = "parameter-move"
DEFAULT_RECORD_ATTACK = "loss"
#: The bounds each mode reports (names in :data:`miaudit.auditing.base.BOUNDS`).
MODE_BOUNDS = {"one-run": ("one-run", "one-run-fdp"), "multi-run": ("clopper-pearson", "gdp")}
DEFAULT_DELTA = 1e-5


@dataclass(frozen=True)
class PrivacyAuditConfig:
    """One empirical privacy audit: data, canaries, training (``epsilon=None``: non-private),
    the scoring attack and the bounds' confidence.

    ``noise_divisor`` > 1 is a deliberate fault for testing the auditor (DP-SGD adds
    ``1/noise_divisor`` of the noise it claims; see :class:`miaudit.auditing.runs.DPTraining`).
    ``attack=None`` is the canary kind's default: ``loss`` for record canaries,
    ``parameter-move`` for ``dirac`` gradient canaries; ``references`` is the number of reference
    models ``lira`` / ``lira-offline`` train.
    """

    dataset: str = "location30"
    mode: str = "one-run"
    canary_kind: str = "ood"
    canaries: int = 1000
    runs: int = 64
    base_records: int = 1000
    epsilon: float | None = None
    noise_multiplier: float | None = None
    delta: float = DEFAULT_DELTA
    dp_params: dict[str, Any] = field(default_factory=dict)
    noise_divisor: float = 1.0
    attack: str | None = None
    references: int = 8
    confidence: float = 0.95
    seed: int = 0
    data_dir: str | None = None

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ConfigError(f"unknown mode {self.mode!r}; choose one of: {', '.join(MODES)}")
        for name in ("canaries", "runs", "base_records"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name.replace('_', '-')} must be a whole number >= 1, got {value!r}")
        if self.epsilon is not None and self.noise_multiplier is not None:
            raise ConfigError("give epsilon or noise_multiplier for DP-SGD, not both")
        if self.epsilon is not None and not self.epsilon > 0:
            raise ConfigError(f"epsilon must be positive, got {self.epsilon}")
        from miaudit.auditing.canaries import CANARY_KINDS

        kinds = [*CANARY_KINDS.names(), GRADIENT_KIND]
        if self.canary_kind not in kinds:
            raise ConfigError(f"unknown canary kind {self.canary_kind!r}; choose one of: {', '.join(kinds)}")
        if self.canary_kind == GRADIENT_KIND:
            if self.mode != "one-run":
                raise ConfigError("gradient (dirac) canaries are audited in one run; use --mode one-run")
            if not self.private:
                raise ConfigError("gradient (dirac) canaries are inserted into DP-SGD's clipped sum; give --epsilon or --noise-multiplier")
            if self.attack not in (None, GRADIENT_ATTACK):
                raise ConfigError(f"gradient (dirac) canaries are scored by their parameter's move ({GRADIENT_ATTACK}), not by {self.attack!r}")
        elif self.attack == GRADIENT_ATTACK:
            raise ConfigError(f"{GRADIENT_ATTACK} scores gradient canaries; use --canary-kind {GRADIENT_KIND}")
        from miaudit.auditing.reference_canaries import REFERENCE_ATTACKS, reference_memberships

        if self.attack in REFERENCE_ATTACKS:
            reference_memberships(1, self.references, self.seed, online=self.attack == "lira")  # checks the count

    @property
    def scoring_attack(self) -> str:
        """The attack that scores the canaries (``attack``, or the canary kind's default)."""
        if self.attack is not None:
            return self.attack
        return GRADIENT_ATTACK if self.canary_kind == GRADIENT_KIND else DEFAULT_RECORD_ATTACK

    @property
    def private(self) -> bool:
        """Whether the audited training is DP-SGD."""
        return self.epsilon is not None or self.noise_multiplier is not None


def _check_power(config: PrivacyAuditConfig) -> None:
    """Refuse, before training, an audit whose trials cannot give a positive bound at its confidence."""
    from miaudit.auditing.base import BOUNDS

    trials = config.canaries if config.mode == "one-run" else config.runs
    coins = np.arange(trials) % 2 == 0
    perfect = coins + np.linspace(0.0, 0.5, trials)  # separates the coins, no ties
    best = max(BOUNDS.get(name)(perfect, coins, confidence=config.confidence, delta=config.delta,
                                seed=config.seed).epsilon for name in MODE_BOUNDS[config.mode] if name != "gdp")  # fmt: skip
    if not best > 0:
        what = "canaries" if config.mode == "one-run" else "runs"
        raise ConfigError(
            f"{trials} {what} cannot give a positive epsilon bound at confidence {config.confidence:g} even with a perfect "
            f"attack; use more {what} or a lower confidence"
        )


def run_privacy_audit(config: PrivacyAuditConfig) -> dict[str, Any]:
    """Train, score the canaries, compute every bound of the mode; returns a JSON-able record."""
    from miaudit.auditing.canaries import make_canaries
    from miaudit.auditing.runs import AuditTraining, DPTraining, multi_run, one_run, one_run_gradient
    from miaudit.data import load_dataset

    _check_power(config)
    data = load_dataset(config.dataset, data_dir=config.data_dir)
    x = np.asarray(data.x, dtype=np.float32).reshape(len(data.x), -1)
    y = np.asarray(data.y, dtype=np.int64)
    m = config.canaries if config.mode == "one-run" else 1
    if config.base_records + m > len(y):
        raise ConfigError(f"{config.dataset} has {len(y)} records: too few for {config.base_records} base records and {m} canaries")
    order = np.random.default_rng(config.seed).permutation(len(y))
    base, rest = order[: config.base_records], order[config.base_records :]
    dp = None
    if config.private:
        dp = DPTraining(epsilon=config.epsilon, noise_multiplier=config.noise_multiplier, delta=config.delta,
                        params=dict(config.dp_params), noise_divisor=config.noise_divisor)  # fmt: skip
    if config.canary_kind == GRADIENT_KIND:
        assert dp is not None  # checked by the config
        grad = one_run_gradient(x[base], y[base], m, num_classes=data.num_classes, dp=dp, seed=config.seed)
        scores, coins, claimed = grad.scores, grad.coins, grad.epsilon
        runs_info: dict[str, Any] = {"canaries": {k: v for k, v in grad.to_json().items() if k != "info"}, "training": {"dpsgd": grad.info}}
        return _record(config, scores, coins, claimed, runs_info)
    canaries = make_canaries(config.canary_kind, x[rest], y[rest], m, config.seed, num_classes=data.num_classes)
    training = AuditTraining(dp=dp, attack=config.scoring_attack, references=config.references)
    if config.mode == "one-run":
        run = one_run(x[base], y[base], canaries, num_classes=data.num_classes, seed=config.seed, training=training)
        scores, coins, claimed = run.scores, run.coins, run.epsilon
        runs_info = {"canaries": canaries.to_json(), "training": run.info}
    else:
        multi = multi_run(x[base], y[base], canaries.x, canaries.y, runs=config.runs, num_classes=data.num_classes,
                          seed=config.seed, kind=config.canary_kind, training=training)  # fmt: skip
        scores, coins = multi.scores, multi.coins
        claimed = max((e for e in multi.epsilons if e is not None), default=None)
        runs_info = {"runs": multi.to_json()}
    return _record(config, scores, coins, claimed, runs_info)


def _record(config: PrivacyAuditConfig, scores: np.ndarray, coins: np.ndarray, claimed: float | None,
            runs_info: dict[str, Any]) -> dict[str, Any]:  # fmt: skip
    """Every bound of the mode from the canaries' scores and coins, as the audit's JSON-able record."""
    from miaudit.auditing.base import BOUNDS

    bounds = []
    for name in MODE_BOUNDS[config.mode]:
        # every method at the audit's delta; the GDP estimate has no confidence level
        level = {} if name == "gdp" else {"confidence": config.confidence}
        result = BOUNDS.get(name)(scores, coins, delta=config.delta, seed=config.seed, **level)
        row = asdict(result)
        if math.isnan(row["confidence"]):  # an estimate has no confidence level; JSON has no NaN
            row["confidence"] = None
        row["ratio_to_accountant"] = None if claimed is None or claimed <= 0 else float(result.epsilon / claimed)
        bounds.append(row)
    return {
        "schema": "miaudit.privacy-audit",
        "schema_version": 1,
        "config": {**asdict(config), "attack": config.scoring_attack},  # the attack that ran (None: the kind's default)
        "accountant_epsilon": claimed,
        "delta": config.delta,
        "trials": int(len(coins)),
        "bounds": bounds,
        **runs_info,
    }


def format_table(record: dict[str, Any]) -> str:
    """The bounds as a markdown table beside the accountant's epsilon."""
    eps = record["accountant_epsilon"]
    lines = ["| method | kind | epsilon (nats) | confidence | accountant's epsilon | ratio | selection |", "|---|---|---|---|---|---|---|"]
    for b in record["bounds"]:
        ratio = "-" if b["ratio_to_accountant"] is None else f"{b['ratio_to_accountant']:.3f}"
        confidence = "none (estimate)" if b["confidence"] is None else f"{b['confidence']:g}"
        lines.append(f"| {b['method']} | {b['kind']} | {b['epsilon']:.3f} | {confidence} | "
                     f"{'non-private' if eps is None else f'{eps:.3f}'} | {ratio} | {b['selection']} |")  # fmt: skip
    return "\n".join(lines)


def write_privacy_audit(record: dict[str, Any], out_dir: Path) -> tuple[Path, Path]:
    """``privacy_audit.json`` and ``privacy_audit.md`` in ``out_dir``, written atomically."""
    from miaudit.io_utils import atomic_path

    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out_dir / "privacy_audit.json", out_dir / "privacy_audit.md"
    for path, text in ((json_path, json.dumps(record, indent=2, default=_plain)), (md_path, format_table(record) + "\n")):
        with atomic_path(path) as tmp:
            tmp.write_text(text)
    return json_path, md_path


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON-able: {type(value).__name__}")
