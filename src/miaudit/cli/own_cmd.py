"""``miaudit audit-model`` and ``miaudit audit-outputs``: the older forms of auditing your own
model (records and truth in one ``.npz``) or only its outputs. Both build the same audit plan as
``miaudit audit --model-file`` / ``--outputs`` and write the same record (report included)."""

from __future__ import annotations

import argparse
from pathlib import Path

from miaudit.cli.audit_cmd import exit_code, leak_gate, npz_arrays, print_record
from miaudit.cli.common import COMMANDS, Command, add_output_flags, claimed_out, parse_name_list
from miaudit.errors import ConfigError


def _common(p: argparse.ArgumentParser, out: str) -> None:
    p.add_argument("--seed", type=int, default=0, help="the attacker's seed (and the bootstrap's)")
    p.add_argument("--bootstrap", type=int, default=200, help="bootstrap resamples for confidence intervals")
    p.add_argument("--fail-on-leak", default=None, metavar="LEVEL", help="exit 1 when the verdict is at least LEVEL (low | medium | high)")
    p.add_argument("--no-report", action="store_true", help="do not write report.html into --out")
    p.add_argument("--out", default=out, help="results folder (results.json, scores.csv, report.html)")
    add_output_flags(p)


def _configure_model(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model-file", required=True, help="ONNX (.onnx), skops (.skops) or TorchScript (.pt) model file")
    p.add_argument("--data", required=True, help=".npz with arrays x (records), y (labels), is_member (0/1)")
    p.add_argument("--pool", default=None, help=".npz with arrays x, y: same-distribution records the attacker holds")
    p.add_argument("--threat-model", default="black-box", help="black-box | gray-box | white-box | label-only")
    p.add_argument("--attacks", default=None, help="comma-separated attack names (default: all that can run)")
    p.add_argument("--shadow-model", default=None, help="the attacker's stand-in for the model in shadow models: same | a miaudit model name")
    p.add_argument("--outputs", default="logits", choices=["logits", "probabilities"], help="what an ONNX model's first output is")
    p.add_argument("--trusted-type", action="append", default=[], metavar="TYPE", help="a type a .skops file may hold beyond scikit-learn's own")
    p.add_argument("--trust-model-code", action="store_true", help="run a TorchScript model file (refused without this) in a sandboxed process; only for files you trust")
    _common(p, "results/own-model")


def _run(args: argparse.Namespace, config: object) -> int:
    from miaudit.experiments import run_audit

    if args.bootstrap < 0:
        raise ConfigError(f"--bootstrap must be >= 0, got {args.bootstrap}")
    if args.fail_on_leak:
        args.fail_on_leak = leak_gate(args.fail_on_leak)
    with claimed_out(args, "results/own-model") as out_dir:
        record = run_audit(config, progress=False).record()  # type: ignore[arg-type]
        paths = record.write(out_dir, report=not args.no_report)
    print_record(args, record, ", ".join(str(p) for p in paths.values()))
    return exit_code(args, record)


def _run_model(args: argparse.Namespace) -> int:
    from miaudit.core.own_data import OwnData
    from miaudit.core.sources import TargetSource
    from miaudit.experiments import AuditConfig

    data = npz_arrays(args.data, ("x", "y", "is_member"), "--data")
    pool = npz_arrays(args.pool, ("x", "y"), "--pool") if args.pool else None
    own = OwnData.from_membership(
        data["x"], data["y"], data["is_member"], pool=(pool["x"], pool["y"]) if pool else None,
        pool_share=0.0, balance=False, name=Path(args.data).name,
    )  # fmt: skip
    options: dict[str, object] = {"outputs": args.outputs}
    if args.trusted_type:
        options["trusted_types"] = tuple(args.trusted_type)
    if args.trust_model_code:
        options["trust_model_code"] = True
    attacks = parse_name_list("--attacks", args.attacks)
    config = AuditConfig(
        dataset=own.name, threat_model=args.threat_model, attacks=attacks, seed=args.seed, n_bootstrap=args.bootstrap,
        target=TargetSource("file", args.model_file, options), own_data=own, shadow_model=args.shadow_model,
    )  # fmt: skip
    return _run(args, config)


def _configure_outputs(p: argparse.ArgumentParser) -> None:
    p.add_argument("outputs_file", metavar="FILE", help=".npz (logits or probabilities, labels, is_member) or .csv (label, is_member, logit_0.. or prob_0..)")
    _common(p, "results/own-outputs")


def _run_outputs(args: argparse.Namespace) -> int:
    from miaudit.core.sources import TargetSource
    from miaudit.experiments import AuditConfig
    from miaudit.targets.external import PrecomputedOutputs

    outputs = PrecomputedOutputs.load(args.outputs_file)
    config = AuditConfig(dataset=outputs.source, seed=args.seed, n_bootstrap=args.bootstrap, target=TargetSource("outputs", outputs))
    return _run(args, config)


COMMANDS.add("audit-model", Command("Audit your own model file on records with their truth (= audit --model-file).", _configure_model, _run_model, torch=True))
COMMANDS.add(
    "audit-outputs",
    Command("Audit precomputed model outputs (= audit --outputs; threshold-free metrics, no queries).", _configure_outputs, _run_outputs),
)
