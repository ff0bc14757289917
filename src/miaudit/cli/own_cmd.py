"""``miaudit audit-model`` and ``miaudit audit-outputs``: audit a model trained elsewhere,
or only its precomputed outputs. Nothing the user hands in is unpickled."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING

from rich.table import Table

from miaudit.cli.common import COMMANDS, Command, add_output_flags, console
from miaudit.errors import ConfigError, InputError

if TYPE_CHECKING:
    from miaudit.experiments.own_model import OwnAuditResult


def _fmt(value: float | None) -> str:
    return "n/m" if value is None else f"{value:.4f}"


def _print(args: argparse.Namespace, result: OwnAuditResult, paths: tuple[Path, Path]) -> None:
    if args.json:
        print(json.dumps(result.summary(), indent=2))
        return
    out = console(args)
    table = Table(
        title=f"{result.source} / threat model {result.threat_model or 'none (precomputed outputs)'}",
        caption="balanced accuracy at each attack's own threshold; '-' = no calibrated threshold; n/m = not measurable",
    )
    for col in ("attack", "AUC [95% CI]", "TPR@1%FPR", "TPR@0.1%FPR", "advantage (upper bound)", "balanced acc"):
        table.add_column(col, justify="left" if col == "attack" else "right")
    for o in result.outcomes:
        m = o.metrics
        ci = f" [{m.auc_ci[0]:.3f}, {m.auc_ci[1]:.3f}]" if m.auc_ci else ""
        table.add_row(
            o.result.attack,
            f"{m.auc:.4f}{ci}",
            _fmt(m.tpr_at_fpr.get(0.01)),
            _fmt(m.tpr_at_fpr.get(0.001)),
            f"{m.advantage:.4f}",
            "-" if m.threshold is None else _fmt(m.balanced_accuracy),
        )
    out.print(table)
    for name, reason in result.skipped.items():
        out.print(f"skipped {name}: {reason}")
    for note in result.notes:
        out.print(f"note: {note}")
    out.print(
        f"accuracy on members {result.member_accuracy:.4f}, on non-members {result.nonmember_accuracy:.4f}; "
        f"wrote {paths[0]} and {paths[1]}"
    )


def _configure_model(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model-file", required=True, help="TorchScript archive (.pt, torch.jit.save) or ONNX model (.onnx)")
    p.add_argument("--data", required=True, help=".npz with arrays x (records), y (labels), is_member (0/1)")
    p.add_argument("--pool", default=None, help=".npz with arrays x, y: same-distribution records the attacker holds")
    p.add_argument("--threat-model", default="black-box", help="black-box | gray-box | white-box | label-only")
    p.add_argument("--attacks", default=None, help="comma-separated attack names (default: all that can run)")
    p.add_argument("--shadow-model", default=None, help="miaudit model standing in for the target's recipe in shadow models (gray box)")
    p.add_argument("--outputs", default="logits", choices=["logits", "probabilities"], help="what an ONNX model's first output is")
    p.add_argument("--seed", type=int, default=0, help="the attacker's seed")
    p.add_argument("--bootstrap", type=int, default=200, help="bootstrap resamples for confidence intervals")
    p.add_argument("--out", default="results/own-model", help="results folder (results.json, scores.csv)")
    add_output_flags(p)


def _arrays(path: str, keys: tuple[str, ...], what: str) -> dict:
    from miaudit.targets.external import read_npz

    if Path(path).suffix.lower() != ".npz":
        raise ConfigError(f"{what} must be a .npz file with arrays {', '.join(keys)}, got {Path(path).name!r}")
    arrays = read_npz(path, what)
    missing = [k for k in keys if k not in arrays]
    if missing:
        raise InputError(f"{Path(path).name}: missing array(s) {', '.join(missing)} (need {', '.join(keys)})")
    return arrays


def _run_model(args: argparse.Namespace) -> int:
    from miaudit.experiments.own_model import audit_own_model
    from miaudit.targets.external import load_model_file

    if args.bootstrap < 0:
        raise ConfigError(f"--bootstrap must be >= 0, got {args.bootstrap}")
    data = _arrays(args.data, ("x", "y", "is_member"), "--data")
    pool = _arrays(args.pool, ("x", "y"), "--pool") if args.pool else None
    classifier = load_model_file(args.model_file, outputs=args.outputs)
    attacks = tuple(a.strip() for a in args.attacks.split(",") if a.strip()) if args.attacks else None
    result = audit_own_model(
        classifier,
        data["x"],
        data["y"],
        data["is_member"],
        attacks=attacks,
        threat_model=args.threat_model,
        pool_x=pool["x"] if pool else None,
        pool_y=pool["y"] if pool else None,
        shadow_model=args.shadow_model,
        n_bootstrap=args.bootstrap,
        seed=args.seed,
    )
    _print(args, result, result.write(args.out))
    return 0


def _configure_outputs(p: argparse.ArgumentParser) -> None:
    p.add_argument("outputs_file", metavar="FILE", help=".npz (logits or probabilities, labels, is_member) or .csv (label, is_member, logit_0.. or prob_0..)")
    p.add_argument("--seed", type=int, default=0, help="seed of the bootstrap")
    p.add_argument("--bootstrap", type=int, default=200, help="bootstrap resamples for confidence intervals")
    p.add_argument("--out", default="results/own-outputs", help="results folder (results.json, scores.csv)")
    add_output_flags(p)


def _run_outputs(args: argparse.Namespace) -> int:
    from miaudit.experiments.own_model import audit_precomputed
    from miaudit.targets.external import PrecomputedOutputs

    if args.bootstrap < 0:
        raise ConfigError(f"--bootstrap must be >= 0, got {args.bootstrap}")
    result = audit_precomputed(PrecomputedOutputs.load(args.outputs_file), n_bootstrap=args.bootstrap, seed=args.seed)
    _print(args, result, result.write(args.out))
    return 0


COMMANDS.add("audit-model", Command("Audit your own model (TorchScript or ONNX file) on your records.", _configure_model, _run_model))
COMMANDS.add(
    "audit-outputs",
    Command("Audit precomputed model outputs (threshold-free metrics, no queries).", _configure_outputs, _run_outputs),
)
